"""gosim: a goroutine scheduler simulator that turns goroutine behaviour into a trace.

The model follows Go's runtime (proc.go) closely enough that the allocation
stream has Go's shape: which P allocates, which P frees, and in what order.

  Ps         ``procs`` processors; each has a local run queue of RUNQ_CAP = 256
             Gs (a ring, as ``p.runq``) and a ``runnext`` slot. One global run
             queue (``sched.runq``) is shared.
  time       logical ticks; in each tick every P, in order 0..procs-1, performs
             one step of its current goroutine (or schedules one). The trace is
             the ops in the order they happen, so Ps interleave op by op.
  schedule   as ``findRunnable``: every 61st schedule a P takes one G from the
             global queue first; otherwise runnext, then the local queue, then
             a batch from the global queue (``globrunqget``: min(len/procs+1,
             128)), then it steals half of another P's local queue (``runqsteal``
             -> ``runqgrab``: n - n/2 Gs from a victim chosen from a random
             start), else it is idle this tick.
  spawn      ``newproc`` on the spawning P: allocate a G descriptor (kind stack,
             G_DESC_BYTES < 2048, so "descriptor") and a 2 KiB stack (kind
             stack, 2048), put the new G in runnext (the previous runnext goes
             to the local queue's tail); a full local queue moves half of
             itself plus the G to the global queue (``runqputslow``).
  run        a G runs one step per tick; a step may grow the stack (copystack:
             allocate the doubled stack, free the old one, 2 -> 4 -> 8 KiB up to
             the class's max_stack), receive objects from its P's channel inbox
             and free them, allocate an object (size and kind drawn from the
             class's bands), free its most recent live object (temporaries).
             An allocated object's fate: handed off through a channel to
             another P's inbox (freed there by a receiving G: a cross-P free),
             kept in the program-wide long-lived cache (freed by random eviction
             when the cache is full, by the main goroutine's evictions, or at
             the end), or owned by the G until it exits.
  preempt    after ``slice`` steps (Go's 10 ms sysmon preemption) or at random
             with ``p_yield`` (Gosched / blocking and resuming), a G goes to the
             global queue (``gopreempt_m`` -> ``globrunqput``) and may resume on
             another P, so its later frees are cross-P.
  exit       ``goexit``: free the objects it still owns (newest first), its
             stack and its descriptor. Larson-style Gs (``slots``) instead own a
             slot table; on exit they spawn a replacement that inherits the
             slots (``gens`` generations), the last one frees them.
  main       G 0, the main goroutine (not in the trace: its own memory is not
             allocated here). It runs the workload's script of waves: evict a
             fraction of the cache, spawn ``count`` Gs (alternating two
             classes), blocking while ``max_live`` Gs are alive, optionally
             wait for the wave to exit. At the end it waits for every G, frees
             what is left in the channel inboxes (on each inbox's P) and in the
             cache. It is never preempted; when it blocks it parks, and the G
             whose exit unblocks it readies it into that G's P's runnext (Go's
             ``ready``), so main migrates between Ps as in Go.

Deliberate departures from Go: no runnext stealing, no netpoller or timers, no
spinning-M accounting, P steps are lock-step; G descriptors and stacks are
freed at exit (Go keeps them on per-P free-G lists: that is the allocator's
business, and the ``go`` strategy models it on the alloc/free stream).

Determinism: the simulation is a pure function of (classes, waves, procs,
seed, caps); it draws from its own splitmix64 stream seeded with ``seed``.

Output: trace columns in global logical order with dense object ids in
allocation order, every object freed by the end (so allocs == frees).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from alloclab.harness.limits import MAX_PROCS
from alloclab.workloads.trace import make_trace

G_DESC_BYTES = 448      # sizeof(runtime.g) on amd64 rounded to its size class; < 2048 marks a descriptor
STACK_MIN = 2048        # Go's _StackMin / fixedStack
RUNQ_CAP = 256          # len(p.runq)
GLOBAL_CHECK = 61       # schedtick % 61: fairness check of the global queue
KIND_HEAP, KIND_NOSCAN, KIND_STACK = 0, 1, 2
ROOT = 0                # G id of the main goroutine

# Each prefix names the array it indexes.
# CLS_: columns of the goroutine-class matrix, cls[c, CLS_*] (float64)
(CLS_WORK_LO, CLS_WORK_HI, CLS_P_ALLOC, CLS_P_FREE, CLS_P_HANDOFF, CLS_P_CACHE, CLS_RECV, CLS_P_GROW,
 CLS_MAX_STACK, CLS_SLICE, CLS_P_YIELD, CLS_SLOTS, CLS_GENS, CLS_NBANDS) = range(14)
NCF = 14
# B_: columns of the size bands, bands[c, b, B_*]
B_CUM, B_LO, B_HI, B_NOSCAN, B_UNIFORM, B_LOGLO, B_LOGHI = range(7)
NBF = 7
MAX_BANDS = 8
# W_: columns of main's script of waves, waves[w, W_*]
W_CLASS_A, W_CLASS_B, W_COUNT, W_WAIT, W_MAX_LIVE, W_EVICT = range(6)
NWF = 6

STAT_NAMES = ("error", "ticks", "idle_ticks", "steps", "spawns", "exits", "steals", "stolen",
              "runq_overflows", "global_puts", "global_gets", "preempts", "yields", "parks",
              "stack_grows", "handoffs", "handoff_fallbacks", "cache_evictions", "max_live_g",
              "main_evictions", "drained")
# ST_: slots of the stats array, stats[ST_*] (named by STAT_NAMES)
(ST_ERROR, ST_TICKS, ST_IDLE, ST_STEPS, ST_SPAWNS, ST_EXITS, ST_STEALS, ST_STOLEN, ST_RUNQ_OVERFLOW,
 ST_GLOBAL_PUTS, ST_GLOBAL_GETS, ST_PREEMPTS, ST_YIELDS, ST_PARKS, ST_GROWS, ST_HANDOFFS,
 ST_HANDOFF_FALLBACK, ST_CACHE_EVICT, ST_MAX_LIVE_G, ST_MAIN_EVICT, ST_DRAINED) = range(len(STAT_NAMES))
NSTATS = len(STAT_NAMES)
ERR_TRACE_FULL, ERR_OBJ_FULL, ERR_G_FULL, ERR_DEADLOCK = 1, 2, 3, 4

# K_: scalars shared by the helpers, k[K_*] (one small array, mutated in place)
K_N, K_NOBJ, K_GQ_HEAD, K_GQ_N, K_NQ, K_NFREE_G, K_NG, K_LIVE_G = range(8)
NK = 8
# GT_: rows of the per-G table, gt[GT_*, g]
(GT_CLASS, GT_WORK, GT_STACK, GT_SSIZE, GT_DESC, GT_HEAD, GT_SLOT, GT_FILL, GT_GEN) = range(9)
NGF = 9
# PT_: rows of the per-P table, pt[PT_*, p]
(PT_RQ_HEAD, PT_RQ_TAIL, PT_RUNNEXT, PT_CUR, PT_SLICE, PT_TICK, PT_IB_HEAD, PT_IB_N) = range(8)
NPF = 8

# R_: states of the main (root) goroutine's script
R_WAVE, R_EVICT, R_SPAWN, R_WAIT, R_FINAL_WAIT, R_DRAIN_INBOX, R_DRAIN_CACHE = range(7)


# ------------------------------------------------------------------ numba core
# No NRT: every array is made in Python (sized by exact upper bounds, see _bounds), so
# passing arrays between these functions costs no reference counting.
_jit = njit(cache=True, nogil=True, _nrt=False)


# splitmix64: a private, seedable stream (numba's np.random is a per-thread global and slower)
@_jit
def _next(rs):
    z = rs[0] + np.uint64(0x9E3779B97F4A7C15)
    rs[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_jit
def _rand(rs):
    """uniform in [0, 1)"""
    return np.float64(_next(rs) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_jit
def _randint(rs, n):
    """uniform in 0..n-1"""
    return np.int64(_rand(rs) * n)


@_jit
def _emit(k, stats, tp, top, tk, ts, to, p, op, kind, size, obj):
    n = k[K_N]
    if n >= tp.shape[0]:
        stats[ST_ERROR] = ERR_TRACE_FULL
        return
    tp[n] = p
    top[n] = op
    tk[n] = kind
    ts[n] = size
    to[n] = obj
    k[K_N] = n + 1


@_jit
def _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, kind, size):
    o = k[K_NOBJ]
    if o >= o_size.shape[0]:
        stats[ST_ERROR] = ERR_OBJ_FULL
        return 0
    k[K_NOBJ] = o + 1
    o_size[o] = size
    o_kind[o] = kind
    _emit(k, stats, tp, top, tk, ts, to, p, 0, kind, size, o)
    return o


@_jit
def _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, o):
    _emit(k, stats, tp, top, tk, ts, to, p, 1, o_kind[o], o_size[o], o)


@_jit
def _draw(rs, bands, c, nb):
    """(size, kind) from class c's bands: pick a band by weight, then a size in it."""
    u = _rand(rs)
    b = 0
    while b < nb - 1 and u >= bands[c, b, B_CUM]:
        b += 1
    lo = np.int64(bands[c, b, B_LO])
    hi = np.int64(bands[c, b, B_HI])
    if bands[c, b, B_UNIFORM] != 0.0:
        s = lo + np.int64((hi - lo + 1) * _rand(rs))
    else:
        llo = bands[c, b, B_LOGLO]
        s = np.int64(np.exp(llo + (bands[c, b, B_LOGHI] - llo) * _rand(rs)))
    if s < lo:
        s = lo
    if s > hi:
        s = hi
    kind = KIND_NOSCAN if _rand(rs) < bands[c, b, B_NOSCAN] else KIND_HEAP
    return s, kind


@_jit
def _gq_put(k, stats, gq, g):
    cap = gq.shape[0]
    if k[K_GQ_N] >= cap:
        stats[ST_ERROR] = ERR_G_FULL
        return
    gq[(k[K_GQ_HEAD] + k[K_GQ_N]) % cap] = g
    k[K_GQ_N] += 1
    stats[ST_GLOBAL_PUTS] += 1


@_jit
def _gq_get(k, gq):
    g = gq[k[K_GQ_HEAD]]
    k[K_GQ_HEAD] = (k[K_GQ_HEAD] + 1) % gq.shape[0]
    k[K_GQ_N] -= 1
    return g


@_jit
def _runq_put(k, stats, runq, pt, gq, p, g):
    """runqput(pp, g, false); a full queue moves half of it and g to the global queue (runqputslow)."""
    h = pt[PT_RQ_HEAD, p]
    t = pt[PT_RQ_TAIL, p]
    if t - h < RUNQ_CAP:
        runq[p, t % RUNQ_CAP] = g
        pt[PT_RQ_TAIL, p] = t + 1
        k[K_NQ] += 1
        return
    half = RUNQ_CAP // 2
    for i in range(half):
        _gq_put(k, stats, gq, runq[p, (h + i) % RUNQ_CAP])
    pt[PT_RQ_HEAD, p] = h + half
    k[K_NQ] -= half
    _gq_put(k, stats, gq, g)
    stats[ST_RUNQ_OVERFLOW] += 1


@_jit
def _ready(k, stats, runq, pt, gq, p, g):
    """runqput(pp, g, true): g takes runnext, the previous runnext goes to the tail."""
    old = pt[PT_RUNNEXT, p]
    pt[PT_RUNNEXT, p] = g
    if old >= 0:
        _runq_put(k, stats, runq, pt, gq, p, old)


@_jit
def _find_runnable(rs, k, stats, runq, pt, gq, p, nprocs):
    pt[PT_TICK, p] += 1
    if pt[PT_TICK, p] % GLOBAL_CHECK == 0 and k[K_GQ_N] > 0:
        stats[ST_GLOBAL_GETS] += 1
        return _gq_get(k, gq)
    g = pt[PT_RUNNEXT, p]
    if g >= 0:
        pt[PT_RUNNEXT, p] = -1
        return g
    h = pt[PT_RQ_HEAD, p]
    if pt[PT_RQ_TAIL, p] > h:
        pt[PT_RQ_HEAD, p] = h + 1
        k[K_NQ] -= 1
        return runq[p, h % RUNQ_CAP]
    gn = k[K_GQ_N]
    if gn > 0:
        n = min(gn, gn // nprocs + 1, RUNQ_CAP // 2)
        stats[ST_GLOBAL_GETS] += 1
        g = _gq_get(k, gq)
        for _ in range(n - 1):
            _runq_put(k, stats, runq, pt, gq, p, _gq_get(k, gq))
        return g
    if k[K_NQ] > 0 and nprocs > 1:
        start = _randint(rs, nprocs)
        for i in range(nprocs):
            v = (start + i) % nprocs
            if v == p:
                continue
            vh = pt[PT_RQ_HEAD, v]
            qn = pt[PT_RQ_TAIL, v] - vh
            if qn > 0:
                m = qn - qn // 2
                t = pt[PT_RQ_TAIL, p]
                for j in range(m):
                    runq[p, (t + j) % RUNQ_CAP] = runq[v, (vh + j) % RUNQ_CAP]
                pt[PT_RQ_HEAD, v] = vh + m
                # the last stolen G runs now, the rest stay in p's queue
                pt[PT_RQ_TAIL, p] = t + m - 1
                k[K_NQ] -= 1
                stats[ST_STEALS] += 1
                stats[ST_STOLEN] += m
                return runq[p, (t + m - 1) % RUNQ_CAP]
    return -1


@_jit
def _newproc(rs, k, stats, tp, top, tk, ts, to, o_size, o_kind, cls, gt, g_freelist, runq, pt, gq, p, c,
             slot, fill, gen):
    """Spawn a G of class c on P p (descriptor + 2 KiB stack allocated there) into p's runnext."""
    if k[K_NFREE_G] > 0:
        k[K_NFREE_G] -= 1
        g = g_freelist[k[K_NFREE_G]]
    elif k[K_NG] < gt.shape[1]:
        g = k[K_NG]
        k[K_NG] += 1
    else:
        stats[ST_ERROR] = ERR_G_FULL
        return
    gt[GT_DESC, g] = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, KIND_STACK, G_DESC_BYTES)
    gt[GT_STACK, g] = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, KIND_STACK, STACK_MIN)
    gt[GT_SSIZE, g] = STACK_MIN
    gt[GT_CLASS, g] = c
    wlo = np.int64(cls[c, CLS_WORK_LO])
    gt[GT_WORK, g] = wlo + _randint(rs, np.int64(cls[c, CLS_WORK_HI]) - wlo + 1)
    gt[GT_HEAD, g] = -1
    gt[GT_SLOT, g] = slot
    gt[GT_FILL, g] = fill
    gt[GT_GEN, g] = gen
    k[K_LIVE_G] += 1
    if k[K_LIVE_G] > stats[ST_MAX_LIVE_G]:
        stats[ST_MAX_LIVE_G] = k[K_LIVE_G]
    stats[ST_SPAWNS] += 1
    _ready(k, stats, runq, pt, gq, p, g)


@_jit
def _simulate(cls, bands, waves, nprocs, inbox_cap, rs, k, stats, tp, top, tk, ts, to, o_size, o_kind, o_next,
              gt, g_freelist, gq, runq, pt, inbox, cache, slot_obj):
    """Run to completion; results are in the arrays (k[K_N] ops written, stats)."""
    cache_cap = cache.shape[0]
    cache_n = 0
    slot_next = 0
    nwaves = waves.shape[0]
    r_state = R_WAVE
    r_wave = 0
    r_i = 0
    r_left = 0
    root_parked = False
    done = False
    k[K_NG] = 1                                # G 0 is main
    pt[PT_CUR, 0] = ROOT

    while not done and stats[ST_ERROR] == 0:
        stats[ST_TICKS] += 1
        active = 0
        for p in range(nprocs):
            g = pt[PT_CUR, p]
            if g < 0:
                g = _find_runnable(rs, k, stats, runq, pt, gq, p, nprocs)
                if g < 0:
                    stats[ST_IDLE] += 1
                    continue
                pt[PT_CUR, p] = g
                if g != ROOT:
                    pt[PT_SLICE, p] = np.int64(cls[gt[GT_CLASS, g], CLS_SLICE])
            active += 1
            stats[ST_STEPS] += 1
            if g == ROOT:
                # ---------------- main goroutine: the workload's script, one action per step
                while True:
                    if r_state == R_WAVE:
                        if r_wave >= nwaves:
                            r_state = R_FINAL_WAIT
                            continue
                        r_left = np.int64(waves[r_wave, W_EVICT] * cache_n + 0.5)
                        r_i = 0
                        r_state = R_EVICT
                        continue
                    if r_state == R_EVICT:
                        if r_left > 0 and cache_n > 0:
                            j = _randint(rs, cache_n)
                            _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, cache[j])
                            cache_n -= 1
                            cache[j] = cache[cache_n]
                            r_left -= 1
                            stats[ST_MAIN_EVICT] += 1
                            break
                        r_state = R_SPAWN
                        continue
                    if r_state == R_SPAWN:
                        if r_i >= np.int64(waves[r_wave, W_COUNT]):
                            if waves[r_wave, W_WAIT] != 0.0:
                                r_state = R_WAIT
                            else:
                                r_wave += 1
                                r_state = R_WAVE
                            continue
                        ml = np.int64(waves[r_wave, W_MAX_LIVE])
                        if ml > 0 and k[K_LIVE_G] >= ml:
                            root_parked = True
                            pt[PT_CUR, p] = -1
                            stats[ST_PARKS] += 1
                            break
                        c = np.int64(waves[r_wave, W_CLASS_A] if r_i % 2 == 0 else waves[r_wave, W_CLASS_B])
                        r_i += 1
                        ns = np.int64(cls[c, CLS_SLOTS])
                        _newproc(rs, k, stats, tp, top, tk, ts, to, o_size, o_kind, cls, gt, g_freelist, runq, pt,
                                 gq, p, c, slot_next, 0, 0)
                        slot_next += ns
                        break
                    if r_state == R_WAIT or r_state == R_FINAL_WAIT:
                        if k[K_LIVE_G] > 0:
                            root_parked = True
                            pt[PT_CUR, p] = -1
                            stats[ST_PARKS] += 1
                            break
                        if r_state == R_WAIT:
                            r_wave += 1
                            r_state = R_WAVE
                        else:
                            r_state = R_DRAIN_INBOX
                            r_i = 0
                        continue
                    if r_state == R_DRAIN_INBOX:
                        while r_i < nprocs and pt[PT_IB_N, r_i] == 0:
                            r_i += 1
                        if r_i < nprocs:
                            d = r_i
                            o = inbox[d, pt[PT_IB_HEAD, d]]
                            pt[PT_IB_HEAD, d] = (pt[PT_IB_HEAD, d] + 1) % inbox_cap
                            pt[PT_IB_N, d] -= 1
                            # what no receiver took is freed on the inbox's P, as a late receiver would
                            _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, d, o)
                            stats[ST_DRAINED] += 1
                            break
                        r_state = R_DRAIN_CACHE
                        continue
                    # R_DRAIN_CACHE
                    if cache_n > 0:
                        cache_n -= 1
                        _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, cache[cache_n])
                        break
                    done = True
                    break
                if done:
                    break
                continue

            # ---------------- an ordinary goroutine: one step
            c = gt[GT_CLASS, g]
            ns = np.int64(cls[c, CLS_SLOTS])
            exiting = False
            # copystack: the new stack is allocated before the old one is freed
            pg = cls[c, CLS_P_GROW]
            if pg > 0.0 and gt[GT_SSIZE, g] < cls[c, CLS_MAX_STACK] and _rand(rs) < pg:
                old = gt[GT_STACK, g]
                gt[GT_SSIZE, g] *= 2
                gt[GT_STACK, g] = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, KIND_STACK, gt[GT_SSIZE, g])
                _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, old)
                stats[ST_GROWS] += 1
            if ns > 0:
                # Larson: fill the slot table once, then replace a random slot per step
                if gt[GT_FILL, g] < ns:
                    s, kd = _draw(rs, bands, c, np.int64(cls[c, CLS_NBANDS]))
                    slot_obj[gt[GT_SLOT, g] + gt[GT_FILL, g]] = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind,
                                                                     p, kd, s)
                    gt[GT_FILL, g] += 1
                elif gt[GT_WORK, g] > 0:
                    gt[GT_WORK, g] -= 1
                    si = gt[GT_SLOT, g] + _randint(rs, ns)
                    if slot_obj[si] >= 0:
                        _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, slot_obj[si])
                    s, kd = _draw(rs, bands, c, np.int64(cls[c, CLS_NBANDS]))
                    slot_obj[si] = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, kd, s)
                else:
                    exiting = True
            elif gt[GT_WORK, g] > 0:
                gt[GT_WORK, g] -= 1
                recv = np.int64(cls[c, CLS_RECV])
                for _ in range(recv):
                    if pt[PT_IB_N, p] == 0:
                        break
                    o = inbox[p, pt[PT_IB_HEAD, p]]
                    pt[PT_IB_HEAD, p] = (pt[PT_IB_HEAD, p] + 1) % inbox_cap
                    pt[PT_IB_N, p] -= 1
                    _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, o)
                pa = cls[c, CLS_P_ALLOC]
                if pa > 0.0 and (pa >= 1.0 or _rand(rs) < pa):
                    s, kd = _draw(rs, bands, c, np.int64(cls[c, CLS_NBANDS]))
                    o = _alloc(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, kd, s)
                    ph = cls[c, CLS_P_HANDOFF]
                    pc = cls[c, CLS_P_CACHE]
                    kept = True
                    if ph > 0.0 or pc > 0.0:
                        u = _rand(rs)
                        if u < ph:
                            # chan send to a goroutine on another P; a full channel is tried on the next P
                            d = p
                            if nprocs > 1:
                                d = (p + 1 + _randint(rs, nprocs - 1)) % nprocs
                            for _ in range(nprocs):
                                if pt[PT_IB_N, d] < inbox_cap and (d != p or nprocs == 1):
                                    inbox[d, (pt[PT_IB_HEAD, d] + pt[PT_IB_N, d]) % inbox_cap] = o
                                    pt[PT_IB_N, d] += 1
                                    kept = False
                                    stats[ST_HANDOFFS] += 1
                                    break
                                d = (d + 1) % nprocs
                            if kept:
                                stats[ST_HANDOFF_FALLBACK] += 1
                        elif u < ph + pc:
                            kept = False
                            if cache_n < cache_cap:
                                cache[cache_n] = o
                                cache_n += 1
                            else:
                                j = _randint(rs, cache_n)
                                _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, cache[j])
                                cache[j] = o
                                stats[ST_CACHE_EVICT] += 1
                    if kept:
                        o_next[o] = gt[GT_HEAD, g]
                        gt[GT_HEAD, g] = o
                pf = cls[c, CLS_P_FREE]
                if pf > 0.0 and gt[GT_HEAD, g] >= 0 and _rand(rs) < pf:
                    o = gt[GT_HEAD, g]
                    gt[GT_HEAD, g] = o_next[o]
                    _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, o)
            else:
                exiting = True

            if exiting:
                o = gt[GT_HEAD, g]
                while o >= 0:
                    _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, o)
                    o = o_next[o]
                if ns > 0:
                    if gt[GT_GEN, g] + 1 < np.int64(cls[c, CLS_GENS]):
                        # the replacement inherits the slot table (Larson's thread hand-over)
                        _newproc(rs, k, stats, tp, top, tk, ts, to, o_size, o_kind, cls, gt, g_freelist, runq, pt,
                                 gq, p, c, gt[GT_SLOT, g], gt[GT_FILL, g], gt[GT_GEN, g] + 1)
                    else:
                        for si in range(gt[GT_SLOT, g], gt[GT_SLOT, g] + ns):
                            if slot_obj[si] >= 0:
                                _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, slot_obj[si])
                                slot_obj[si] = -1
                _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, gt[GT_STACK, g])
                _free(k, stats, tp, top, tk, ts, to, o_size, o_kind, p, gt[GT_DESC, g])
                g_freelist[k[K_NFREE_G]] = g
                k[K_NFREE_G] += 1
                k[K_LIVE_G] -= 1
                stats[ST_EXITS] += 1
                pt[PT_CUR, p] = -1
                if root_parked:
                    if r_state == R_SPAWN:
                        wake = k[K_LIVE_G] < np.int64(waves[r_wave, W_MAX_LIVE])
                    else:
                        wake = k[K_LIVE_G] == 0
                    if wake:
                        root_parked = False
                        _ready(k, stats, runq, pt, gq, p, ROOT)
                continue

            sl = pt[PT_SLICE, p]
            if sl > 0:
                pt[PT_SLICE, p] = sl - 1
                if sl == 1:
                    stats[ST_PREEMPTS] += 1
                    _gq_put(k, stats, gq, g)
                    pt[PT_CUR, p] = -1
                    continue
            py = cls[c, CLS_P_YIELD]
            if py > 0.0 and _rand(rs) < py:
                stats[ST_YIELDS] += 1
                _gq_put(k, stats, gq, g)
                pt[PT_CUR, p] = -1
        if active == 0 and not done:
            stats[ST_ERROR] = ERR_DEADLOCK


# ------------------------------------------------------------------ Python API

@dataclass
class Band:
    """A share ``weight`` (>= 0; 0 leaves the band out) of allocations with sizes in [lo, hi]
    (log-uniform or uniform), noscan with chance p_noscan."""
    weight: float
    lo: int
    hi: int
    p_noscan: float = 0.0
    dist: str = "log"      # "log": log-uniform (each power-of-two band equally likely); "uniform"


@dataclass
class GClass:
    """One kind of goroutine: how long it lives, what it allocates and what becomes of it.

    work       (lo, hi): steps in its life, uniform (slot Gs: replacements per generation)
    p_alloc    chance that a step allocates one object (sizes from ``bands``)
    p_free     chance that a step frees the G's newest owned object (temporaries)
    p_handoff  share of its objects sent through a channel to a G on another P
    p_cache    share kept in the long-lived program cache
    recv       objects a step receives (and frees) from its P's channel inbox
    p_grow     chance per step to double its stack (copystack) while below max_stack
    slice      steps before preemption to the global queue (0 = never)
    p_yield    chance per step of Gosched / blocking and resuming via the global queue
    slots      Larson slot table size (0 = ordinary G); gens: generations inheriting it
    """
    bands: list
    work: tuple = (1, 1)
    p_alloc: float = 1.0
    p_free: float = 0.0
    p_handoff: float = 0.0
    p_cache: float = 0.0
    recv: int = 0
    p_grow: float = 0.0
    max_stack: int = 8192
    slice: int = 0
    p_yield: float = 0.0
    slots: int = 0
    gens: int = 1


@dataclass
class Wave:
    """Main spawns ``count`` Gs (alternating classes[0], classes[1]), at most ``max_live`` alive
    (0 = no limit), after evicting a share ``evict`` of the cache; ``wait``: wait for all to exit."""
    classes: tuple
    count: int
    wait: bool = True
    max_live: int = 0
    evict: float = 0.0


def _pack(classes: list[GClass], waves: list[Wave]):
    if not classes or not waves:
        raise ValueError("gosim needs at least one goroutine class and one wave")
    cls = np.zeros((len(classes), NCF), np.float64)
    bands = np.zeros((len(classes), MAX_BANDS, NBF), np.float64)
    for i, gc in enumerate(classes):
        lo, hi = gc.work
        if not 0 <= lo <= hi:
            raise ValueError(f"class {i}: work range {gc.work} must satisfy 0 <= lo <= hi")
        for name in ("p_alloc", "p_free", "p_handoff", "p_cache", "p_grow", "p_yield"):
            v = getattr(gc, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"class {i}: {name}={v} outside [0, 1]")
        if gc.p_handoff + gc.p_cache > 1.0 + 1e-12:
            raise ValueError(f"class {i}: p_handoff + p_cache exceeds 1")
        if gc.max_stack < STACK_MIN or gc.max_stack & (gc.max_stack - 1):
            raise ValueError(f"class {i}: max_stack {gc.max_stack} must be a power of two >= {STACK_MIN}")
        if not 1 <= len(gc.bands) <= MAX_BANDS:
            raise ValueError(f"class {i}: 1..{MAX_BANDS} size bands required")
        if any(b.weight < 0 for b in gc.bands):
            raise ValueError(f"class {i}: band weights must be >= 0")
        used = [b for b in gc.bands if b.weight > 0]    # a band of weight 0 is never drawn: leave it out
        if gc.slots < 0 or gc.gens < 1 or gc.recv < 0 or gc.slice < 0:
            raise ValueError(f"class {i}: slots, recv and slice must be >= 0 and gens >= 1")
        cls[i] = [lo, hi, gc.p_alloc, gc.p_free, gc.p_handoff, gc.p_cache, gc.recv, gc.p_grow,
                  gc.max_stack, gc.slice, gc.p_yield, gc.slots, gc.gens, len(used)]
        total = sum(b.weight for b in used)
        if total <= 0:
            raise ValueError(f"class {i}: band weights must sum to > 0")
        cum = 0.0
        for j, b in enumerate(used):
            if not 1 <= b.lo <= b.hi <= 1 << 30:
                raise ValueError(f"class {i} band {j}: sizes must satisfy 1 <= lo <= hi <= 1 GiB (got {b.lo}..{b.hi})")
            if b.dist not in ("log", "uniform"):
                raise ValueError(f"class {i} band {j}: dist {b.dist!r} must be log or uniform")
            cum += b.weight / total
            bands[i, j] = [cum, b.lo, b.hi, b.p_noscan, b.dist == "uniform", np.log(b.lo), np.log(b.hi + 1)]
        bands[i, len(used) - 1, B_CUM] = 1.0
    wv = np.zeros((len(waves), NWF), np.float64)
    for i, w in enumerate(waves):
        a, b = (w.classes, w.classes) if isinstance(w.classes, int) else (w.classes[0], w.classes[-1])
        if not (0 <= a < len(classes) and 0 <= b < len(classes)):
            raise ValueError(f"wave {i}: class index outside 0..{len(classes) - 1}")
        if w.count < 0 or w.max_live < 0 or not 0.0 <= w.evict <= 1.0:
            raise ValueError(f"wave {i}: count and max_live must be >= 0 and evict within [0, 1]")
        wv[i] = [a, b, w.count, bool(w.wait), w.max_live, w.evict]
    return cls, bands, wv


def _bounds(classes: list[GClass], waves: list[Wave]):
    """Exact upper bounds: every object is freed by the end, so ops <= 2 x allocations."""
    max_objs = 0
    max_g = 2
    slot_total = 0
    for w in waves:
        a, b = (w.classes, w.classes) if isinstance(w.classes, int) else (w.classes[0], w.classes[-1])
        counts = ((a, (w.count + 1) // 2), (b, w.count // 2))
        for c, n in counts:
            gc = classes[c]
            grows = max(0, int(gc.max_stack).bit_length() - STACK_MIN.bit_length())
            per_g = 2 + grows + gc.work[1] * (1 if (gc.p_alloc > 0 or gc.slots > 0) else 0)
            max_objs += n * (gc.gens * per_g + gc.slots)
            max_g += n * (2 if gc.gens > 1 else 1)
            slot_total += n * gc.slots
    return 2 * max_objs + 16, max_objs + 16, max_g, slot_total


def simulate(classes: list[GClass], waves: list[Wave], procs: int, seed: int,
             cache_cap: int = 0, inbox_cap: int = 1024):
    """Run the simulator; returns ((p, op, kind, size, obj), stats dict)."""
    if not 1 <= procs <= MAX_PROCS:
        raise ValueError(f"procs {procs} outside 1..{MAX_PROCS}")
    if cache_cap < 0 or inbox_cap < 1:
        raise ValueError("cache_cap must be >= 0 and inbox_cap >= 1")
    if cache_cap == 0 and any(c.p_cache > 0 for c in classes):
        raise ValueError("a class keeps objects in the cache (p_cache > 0) but cache_cap is 0")
    cls, bands, wv = _pack(classes, waves)
    max_ops, max_objs, max_g, slot_total = _bounds(classes, waves)
    rs = np.array([int(seed) % (1 << 64)], np.uint64)
    _next(rs)
    k = np.zeros(NK, np.int64)
    st = np.zeros(NSTATS, np.int64)
    # np.empty: pages of the bound-sized buffers that the run never reaches are never touched (no RSS)
    cols = (np.empty(max_ops, np.int16), np.empty(max_ops, np.int8), np.empty(max_ops, np.int8),
            np.empty(max_ops, np.int32), np.empty(max_ops, np.int64))
    pt = np.zeros((NPF, procs), np.int64)
    pt[PT_RUNNEXT] = -1
    pt[PT_CUR] = -1
    _simulate(cls, bands, wv, np.int64(procs), np.int64(inbox_cap), rs, k, st, *cols,
              np.empty(max_objs, np.int32), np.empty(max_objs, np.int8), np.empty(max_objs, np.int64),
              np.empty((NGF, max_g), np.int64), np.empty(max_g, np.int64), np.empty(max_g, np.int64),
              np.empty((procs, RUNQ_CAP), np.int64), pt, np.empty((procs, inbox_cap), np.int64),
              np.empty(cache_cap, np.int64), np.full(max(slot_total, 1), -1, np.int64))
    stats = {name: int(v) for name, v in zip(STAT_NAMES, st)}
    if stats["error"]:
        what = {ERR_TRACE_FULL: "trace bound exceeded", ERR_OBJ_FULL: "object bound exceeded",
                ERR_G_FULL: "goroutine bound exceeded", ERR_DEADLOCK: "deadlock (no runnable goroutine)"}
        raise RuntimeError(f"gosim internal error: {what.get(stats['error'], stats['error'])}")
    n = int(k[K_N])
    # copy out when the bound left much slack, so the big buffers are not kept alive
    cols = tuple(c[:n].copy() if n < max_ops // 2 else c[:n] for c in cols)
    return cols, stats


def build_trace(name: str, params: dict, classes: list[GClass], waves: list[Wave], procs: int, seed: int,
                scale: float, cache_cap: int = 0, inbox_cap: int = 1024):
    """simulate() wrapped as a Trace whose meta names the generator, params, seed, scale and sim stats."""
    cols, stats = simulate(classes, waves, procs, seed, cache_cap=cache_cap, inbox_cap=inbox_cap)
    meta = dict(generator=name, params=params, seed=seed, scale=scale, sim=stats)
    return make_trace(*cols, procs=procs, meta=meta, validate=False)


def scaled(n: int | float, scale: float, lo: int = 1) -> int:
    """round(n * scale), at least ``lo``."""
    return max(lo, int(round(n * scale)))


def spread(mean: int) -> tuple:
    """(lo, hi) of a uniform integer range around ``mean``: mean/2 .. 3*mean/2."""
    return (max(1, mean // 2), max(1, mean + mean // 2))
