"""Sweeping and the modelled GC cycle: the pacer's trigger, the concurrent mark, floating garbage.

Config ``gogc``, ``go_version``, ``gc_mark_end_pct``. Models mspan.sweep
(src/runtime/mgcsweep.go) and, for ``gogc > 0``, the pacer of
src/runtime/mgcpacer.go (read in Go 1.19.8's source) with the cycle of
src/runtime/mgc.go (gcStart, gcMarkDone, gcMarkTermination). See __init__.py
for an overview and where this departs from Go.

One cycle has two events, both run by the allocation slow path whose
heapLive update crosses ``GC_NEXT`` (mallocgc's gcTrigger{kind: gcTriggerHeap}
test; ``maybe_gc``):

  mark start (gcStart), at heapLive >= trigger. The mark is a snapshot at
    the beginning: what is dead now is what this cycle reclaims. Every
    ``freed`` bit moves to the span's ``unmarked`` bits, every dead large
    span (AUX = LARGE_DEAD) becomes LARGE_UNMARKED, and their bytes are
    GC_UNMARKED. From here on the program keeps allocating (new objects are
    black: they survive the cycle) and freeing (those objects are floating
    garbage: their bits stay in ``freed`` until the next cycle's mark start).
  mark termination (gcMarkDone -> gcMarkTermination), at heapLive >= the mark
    end. heapMarked = heapLive - GC_UNMARKED (what was live at mark start,
    floating garbage included, plus everything allocated during the mark),
    sweepgen += 2, every uncached span swept (its ``unmarked`` bits folded
    into allocBits), unmarked large spans freed, and each P's mcache flushed
    and swept at its next allocation (mcache.prepareForSweep). Then commit()
    sets the next goal and trigger() the next trigger.

The equations (``check`` verifies those it can see in the state):

    goal      = heapMarked + (heapMarked + lastStackScan) * GOGC/100           Go >= 1.18 (commit)
              = heapMarked * (1 + GOGC/100)                                    Go 1.17
              >= heapMinimum = 4 MiB * GOGC/100                                (commit; defaultHeapMinimum)
    trigger   = heapMarked + (goal - heapMarked) / den * num                  after a cycle
                  num/den = 45/64 (Go >= 1.18: minTriggerRatioNum / triggerRatioDen), 60/100 (Go 1.17's
                  minTriggerRatio = 0.6); before the first cycle 61/64 of the goal (maxTriggerRatioNum:
                  no runway measured yet, so trigger() clamps goal - 0 to its upper bound)
    mark end  = trigger + (goal - trigger) * gc_mark_end_pct / 100            (Go's pacer aims at 100: the goal)
    GC_NEXT   = mark end while marking, else trigger
    heapMarked <= trigger <= mark end <= goal          (between cycles / while marking)
    GC_UNMARKED = bytes of unmarked slots + pages of unmarked large spans      (serial; exact)
    sum(PP_DEAD_BYTES) = bytes of freed and unmarked slots + pages of dead and unmarked large spans

Why the trigger is trigger()'s lower bound. Go 1.19 puts the trigger at
goal - runway, clamped to [45/64, 61/64] of the way from heapMarked to the
goal (trigger()); runway = consMark x (1-u)/u x the last cycle's scan work
(commit), u = 0.25, and consMark (endCycle, smoothed by a PI controller) is
the bytes allocated during the last mark per byte of scan work, times
(u + idle utilisation) / (1 - u). The scan work cancels: the runway is
(1 + 4 x idle) times the bytes the program allocated during the last mark.
The model's mark ends at a fixed point, so with no idle P that is
goal - trigger again: every trigger reproduces itself, and the model cannot
tell which one Go would settle at. Idle mark time (more Ps than running
goroutines) only lengthens the runway, down to the lower bound. The model
takes the lower bound, where that case settles; against the real runtime
(docs/go-fidelity.md) it matched peak in-use better than the upper bound.

Where the mark ends is the one thing the model cannot derive: it depends on
how fast the mark runs against how fast the program allocates (CPU time the
model does not have). Go's pacer aims to finish at the goal, and assists
hold it there when the mark is slow; a mark with idle Ps helping ends sooner.
``gc_mark_end_pct`` places it (default 100: the goal). A lower value ends the
mark sooner: more cycles, each with less floating garbage.

A free never touches allocBits of a span another party may be allocating
from; it sets the slot's bit in ``freed`` (atomically: several Ps may free
into one word). ``freed`` holds two bitmaps of (arena pages + 1) x W words:
the first half the slots freed since the last mark start (gogc = 0: since
the last sweep), the second half (``unmarked``, gogc > 0 only) the slots dead
at the last mark start. Sweeping folds one of them into allocBits:

    allocBits  := (allocBits | bits below freeindex) & ~swept
    swept      := 0 (atomically: bits set meanwhile survive to the next sweep)
    freeindex  := 0,   allocCount := popcount(allocBits)

with swept = freed (gogc = 0) or unmarked (gogc > 0), which is Go's
``allocBits = gcmarkBits``. So both bitmaps mark only allocated slots of the
span, never the same slot (``check``).

Left out: the runway's measured consMark (above), assists and mark workers
(the mark costs the model no time), the sweep distance (sweepDistMinTrigger:
the model sweeps every uncached span at mark termination, not lazily), the
memory limit (Go 1.19's GOMEMLIMIT), globals in the goal, stacks by their
scanned part rather than their size, and later releases' pacer changes (the
model uses 1.19's pacer for every later version). In threads mode a span a P
takes from mcentral just as the mark starts (off the list, not yet in its
mcache) is not visited: its frees so far count as floating garbage.
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, atomic_cas, atomic_load, atomic_store, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_CENTRAL, LOCK_GLOBAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import low_mask, popcount64
from alloclab.strategies.go.layout import (
    CFG_ALLOCBITS_WORDS, CFG_GOAL_STACKS, CFG_GOGC, CFG_HEAP_MINIMUM, CFG_MARK_END_PCT, CFG_NPROCS,
    CFG_EMPTYMSPAN, CFG_NUM_SPANCLASSES, CFG_PAGE_SIZE, CFG_TRIGGER_DEN, CFG_TRIGGER_NUM, LK_GC, MCACHE_ALLOC, X_GC,
)
from alloclab.strategies.go.mheap import MHEAP_SWEEPGEN, mheap_free_span
from alloclab.strategies.go.mspan import (
    LIST_HEAD, MSPAN_LARGE, MSPAN_SMALL, SPAN_ALLOCCOUNT, SPAN_AUX, SPAN_ELEMSIZE, SPAN_FREEINDEX, SPAN_NELEMS,
    SPAN_NEXT, SPAN_NPAGES, SPAN_STATE, SPAN_SWEEPGEN, list_push_tail, list_remove,
)

# ---------------------------------------------------------------- gl: gcController words, one per cache line
GC_HEAP_LIVE = 1 * 8      # gcController.heapLive (gogc > 0)
GC_HEAP_GOAL = 2 * 8
GC_HEAP_MARKED = 3 * 8
GC_TRIGGER = 14 * 8       # heapLive at which the next mark starts (trigger())
GC_MARK_END = 15 * 8      # heapLive at which the running mark terminates
GC_MARKING = 16 * 8       # 1 while a mark runs (gcphase == _GCmark), else 0
GC_NEXT = 17 * 8          # the threshold maybe_gc tests: GC_MARK_END while marking, else GC_TRIGGER
GC_UNMARKED = 18 * 8      # bytes dead at the last mark start and not yet swept

# ---------------------------------------------------------------- mc: per-P GC bookkeeping (not a Go field)
PP_DEAD_BYTES = 5         # bytes freed by this P and not yet swept (gogc > 0): the cycle's heapMarked
PP_STACK_BYTES = 11       # bytes of goroutine stacks this P holds live (stacks.py): the goal's lastStackScan

# ---------------------------------------------------------------- SPAN_AUX of a large span (gogc > 0)
LARGE_DEAD = 1            # freed since the last mark start: floating garbage if a mark runs
LARGE_UNMARKED = 2        # dead at the last mark start: the cycle's sweep frees it

FULL = ~np.uint64(0)


@kernel
def sweep_span(st, p, s):
    """mspan.sweep for a small span: fold freed (gogc = 0) or unmarked (gogc > 0) slots into allocBits;
    returns the slots freed."""
    spans = st.spans
    W = st.cfg[CFG_ALLOCBITS_WORDS]
    gcing = st.cfg[CFG_GOGC] > 0
    base = s * W
    dead = base + (st.freed.shape[0] >> 1 if gcing else 0)
    nel = spans[s, SPAN_NELEMS]
    fi = spans[s, SPAN_FREEINDEX]
    count = 0
    folded = 0
    for w in range((nel + 63) >> 6):
        f = atomic_load(st.freed, dead + w)
        if f != 0:
            atomic_add(st.freed, dead + w, -f)
            folded += popcount64(f)
        lo = w << 6
        a = st.allocbits[base + w]
        if fi >= lo + 64:
            a = FULL
        elif fi > lo:
            a |= low_mask(fi - lo)
        a &= ~np.uint64(f)
        if nel - lo < 64:
            a &= low_mask(nel - lo)
        st.allocbits[base + w] = a
        count += popcount64(a)
    spans[s, SPAN_FREEINDEX] = 0
    spans[s, SPAN_ALLOCCOUNT] = count
    spans[s, SPAN_SWEEPGEN] = st.gl[MHEAP_SWEEPGEN]
    if folded != 0 and gcing:
        b = folded * spans[s, SPAN_ELEMSIZE]
        st.mc[p, PP_DEAD_BYTES] -= b
        atomic_add(st.gl, GC_HEAP_LIVE, -b)
        atomic_add(st.gl, GC_UNMARKED, -b)
    return folded


@kernel
def unmark_span(st, s):
    """Mark start for one span: what is dead now was not reached by the mark (freed -> unmarked); returns
    the bytes that became unmarked."""
    spans = st.spans
    if spans[s, SPAN_STATE] == MSPAN_LARGE:
        if spans[s, SPAN_AUX] == LARGE_DEAD:
            spans[s, SPAN_AUX] = LARGE_UNMARKED
            return spans[s, SPAN_NPAGES] * st.cfg[CFG_PAGE_SIZE]
        return 0
    base = s * st.cfg[CFG_ALLOCBITS_WORDS]
    half = st.freed.shape[0] >> 1
    n = 0
    for w in range(base, base + ((spans[s, SPAN_NELEMS] + 63) >> 6)):
        f = atomic_load(st.freed, w)
        if f != 0:
            atomic_add(st.freed, w, -f)
            atomic_add(st.freed, half + w, f)   # disjoint bits: add is or
            n += popcount64(f)
    return n * spans[s, SPAN_ELEMSIZE]


@kernel(inline="always")
def gc_mark_start(st, p):
    """gcStart: snapshot what is dead (every span, cached ones included), then let the program run on."""
    cfg = st.cfg
    nspc = cfg[CFG_NUM_SPANCLASSES]
    empty = cfg[CFG_EMPTYMSPAN]
    dead = 0
    for spc in range(nspc):
        spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
        for li in (spc, nspc + spc):  # partial, full
            s = st.lists[li, LIST_HEAD]
            while s >= 0:
                dead += unmark_span(st, s)
                s = st.spans[s, SPAN_NEXT]
        for q in range(cfg[CFG_NPROCS]):
            s = st.mc[q, MCACHE_ALLOC + spc]
            if s != empty:
                dead += unmark_span(st, s)
        spin_unlock(st.locks, spc * 8)
    atomic_add(st.gl, GC_UNMARKED, dead)   # on top of what unflushed mcaches still hold unmarked
    trigger = st.gl[GC_TRIGGER]
    goal = st.gl[GC_HEAP_GOAL]
    end = trigger + (goal - trigger) * cfg[CFG_MARK_END_PCT] // 100
    st.gl[GC_MARK_END] = end
    st.gl[GC_MARKING] = 1
    atomic_store(st.gl, GC_NEXT, end)


@kernel(inline="always")
def gc_mark_termination(st, p):
    """gcMarkTermination + gcSweep + commit/trigger: heapMarked, the sweep, the next goal and trigger."""
    cfg = st.cfg
    nspc = cfg[CFG_NUM_SPANCLASSES]
    stack = 0
    for q in range(cfg[CFG_NPROCS]):
        stack += st.mc[q, PP_STACK_BYTES]
    marked = atomic_load(st.gl, GC_HEAP_LIVE) - atomic_load(st.gl, GC_UNMARKED)
    if marked < 0:
        marked = 0
    atomic_store(st.gl, MHEAP_SWEEPGEN, st.gl[MHEAP_SWEEPGEN] + 2)
    for spc in range(nspc):
        spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
        for li in (spc, nspc + spc):  # partial, full
            s = st.lists[li, LIST_HEAD]
            while s >= 0:
                nxt = st.spans[s, SPAN_NEXT]
                if st.spans[s, SPAN_STATE] == MSPAN_LARGE:
                    if st.spans[s, SPAN_AUX] == LARGE_UNMARKED:
                        list_remove(st.lists, st.spans, s)
                        b = st.spans[s, SPAN_NPAGES] * cfg[CFG_PAGE_SIZE]
                        st.mc[p, PP_DEAD_BYTES] -= b
                        atomic_add(st.gl, GC_HEAP_LIVE, -b)
                        atomic_add(st.gl, GC_UNMARKED, -b)
                        mheap_free_span(st, p, s)
                else:
                    sweep_span(st, p, s)
                    n = st.spans[s, SPAN_ALLOCCOUNT]
                    if n == 0:
                        list_remove(st.lists, st.spans, s)
                        mheap_free_span(st, p, s)
                    elif li == nspc + spc and n < st.spans[s, SPAN_NELEMS]:
                        list_remove(st.lists, st.spans, s)
                        list_push_tail(st.lists, st.spans, spc, s)
                s = nxt
        spin_unlock(st.locks, spc * 8)
    gogc = cfg[CFG_GOGC]
    # commit: the goal by Go version (module docstring): stacks count towards it from Go 1.18
    scan = marked + (stack if cfg[CFG_GOAL_STACKS] != 0 and stack > 0 else 0)
    goal = marked + scan * gogc // 100
    floor = cfg[CFG_HEAP_MINIMUM] * gogc // 100
    if goal < floor:
        goal = floor
    # trigger(): its lower bound (module docstring), Go's integer arithmetic
    trigger = marked + (goal - marked) // cfg[CFG_TRIGGER_DEN] * cfg[CFG_TRIGGER_NUM]
    st.gl[GC_HEAP_MARKED] = marked
    st.gl[GC_TRIGGER] = trigger
    st.gl[GC_MARKING] = 0
    atomic_store(st.gl, GC_HEAP_GOAL, goal)
    atomic_store(st.gl, GC_NEXT, trigger)
    st.counters[p, X_GC] += 1


@kernel
def gc_cycle(st, p):
    """The GC event due now (module docstring), run by the P whose allocation crossed GC_NEXT.

    Not marking: mark start (gcStart). Marking: mark termination and the
    sweep (gcMarkDone, gcMarkTermination, then gcSweep); marking is implicit
    (the trace's frees say what is dead). Spans not held by an mcache are
    visited under their mcentral's lock; cached spans are swept when their P
    flushes its mcache.
    """
    cfg = st.cfg
    nspc = cfg[CFG_NUM_SPANCLASSES]
    lk = (nspc + LK_GC) * 8
    if atomic_cas(st.locks, lk, 0, 1) != 0:
        return  # another P is running the event
    st.counters[p, LOCK_GLOBAL] += 1
    if st.gl[GC_MARKING] == 0:
        gc_mark_start(st, p)
    else:
        gc_mark_termination(st, p)
    atomic_store(st.locks, lk, 0)


@kernel(inline="always")
def maybe_gc(st, p):
    """The allocation slow paths' trigger test (mallocgc's shouldhelpgc -> gcTrigger{kind: gcTriggerHeap})."""
    if atomic_load(st.gl, GC_HEAP_LIVE) >= atomic_load(st.gl, GC_NEXT):
        gc_cycle(st, p)


def check(st, census, errs: list[str]) -> None:
    """The module docstring's invariants: the freed and unmarked bitmaps, the dead bytes, the pacer's words."""
    cfg, gl, spans = st.cfg, st.gl, st.spans
    W, half = int(cfg[CFG_ALLOCBITS_WORDS]), st.freed.shape[0] // 2
    gogc = int(cfg[CFG_GOGC])
    dead_bytes = unmarked_bytes = 0
    for s in census.by_state[MSPAN_SMALL]:
        nel, freed_b = census.alloc[s].shape[0], census.freed[s]
        if freed_b[nel:].any() or (freed_b[:nel] & ~census.alloc[s]).any():
            errs.append(f"span {s}: a freed bit marks a slot that is not allocated")
        cur, unm = st.freed[s * W:(s + 1) * W], st.freed[half + s * W:half + (s + 1) * W]
        if (cur & unm).any():
            errs.append(f"span {s}: a slot is both freed and unmarked")
        if gogc == 0 and unm.any():
            errs.append(f"span {s}: unmarked bits with gogc = 0")
        esize = int(spans[s, SPAN_ELEMSIZE])
        n_unm = sum(bin(int(x) & 0xFFFFFFFFFFFFFFFF).count("1") for x in unm)
        dead_bytes += (sum(bin(int(x) & 0xFFFFFFFFFFFFFFFF).count("1") for x in cur) + n_unm) * esize
        unmarked_bytes += n_unm * esize
    page = int(cfg[CFG_PAGE_SIZE])
    for s in census.by_state[MSPAN_LARGE]:
        aux, b = int(spans[s, SPAN_AUX]), int(spans[s, SPAN_NPAGES]) * page
        dead_bytes += b if aux in (LARGE_DEAD, LARGE_UNMARKED) else 0
        unmarked_bytes += b if aux == LARGE_UNMARKED else 0
    if gogc == 0:
        return
    if int(st.mc[:, PP_DEAD_BYTES].sum()) != dead_bytes:
        errs.append(f"sum(PP_DEAD_BYTES) {int(st.mc[:, PP_DEAD_BYTES].sum())} != {dead_bytes} bytes freed or unmarked")
    if int(gl[GC_UNMARKED]) != unmarked_bytes:
        errs.append(f"GC_UNMARKED {int(gl[GC_UNMARKED])} != {unmarked_bytes} bytes of unmarked slots and spans")
    marked, trig, end, goal = (int(gl[w]) for w in (GC_HEAP_MARKED, GC_TRIGGER, GC_MARK_END, GC_HEAP_GOAL))
    marking = int(gl[GC_MARKING])
    if int(gl[GC_NEXT]) != (end if marking else trig):
        errs.append(f"GC_NEXT {int(gl[GC_NEXT])} is neither the running mark's end nor the trigger")
    if not marked <= trig <= goal or (marking and not trig <= end <= goal):
        errs.append(f"pacer out of order: marked {marked}, trigger {trig}, mark end {end}, goal {goal}")
    num, den = int(cfg[CFG_TRIGGER_NUM]), int(cfg[CFG_TRIGGER_DEN])
    if int(st.counters[:, X_GC].sum()) > 0 and trig != marked + (goal - marked) // den * num:
        errs.append(f"trigger {trig} is not {num}/{den} of the way from heapMarked {marked} to the goal {goal}")
