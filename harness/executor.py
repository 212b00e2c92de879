"""Replay a trace against a strategy: the one kernel every strategy runs under.

``replay`` walks ops ``start..stop`` of a column set. Serial mode passes the
whole trace (all Ps interleaved in logical order) and ``pending = SERIAL``.
Threads mode passes each OS thread the columns of its own P and a ring
``pending`` of PENDING_CAP slots: a free of an object whose allocating P has
not yet published its address (``addr_of`` holds -2 until then) is put
aside in the ring and done as soon as the address arrives, checked before
every op, oldest first. The object lives a little longer, as a dead Go
object does until its span is swept; the P's other ops keep their order.
An earlier version waited at the free itself: web at 2 Ps then ran in
lock-step, ~1 sched_yield per 4 cross-P frees, and no strategy scaled.

A P stops to wait (spin, then sched_yield) only when its ring is full or its
stream has ended, and then for its oldest deferred free. That cannot
deadlock: the P it waits on has not reached the alloc, so if that P waits
too, it waits for a free earlier in logical time than its current op, hence
than the alloc, hence than ours; a chain of waits runs strictly backwards in
logical time and must end at a P that can run. An OOM or check failure on
any thread raises ``flags[ABORT]`` and every waiter quits.

Every allocation is touched: the object's id is written into its first
min(size, 8) bytes (for ``system``, at the real pointer), so cache and TLB
effects are real, and ``check`` mode verifies per op that
    addr % align(size) == 0     align16 strategies (malloc's promise): 16 from 16 B, 8 from 8 B;
                                others (Go): 8 from 16 B; below, min(8, the size's lowest set bit)
    0 <= addr, addr + size <= mapped bytes                 (arena strategies)
    [addr, addr+size) overlaps no live object              (byte shadow of the arena)
    the id written at alloc is intact at free
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from alloclab.strategies._kernel import kernel

from alloclab.strategies import _aligned as aligned
from alloclab.strategies._atomics import atomic_load, atomic_store, sched_yield
from alloclab.strategies._atomics import peek_u8, poke_u8, peek_i64, poke_i64
from alloclab.strategies._counters import ALLOCS, FREES, IN_USE
from alloclab.strategies._dispatch import strategy_alloc, strategy_free, strategy_real_ptrs
from alloclab.strategies._heap import MAPPED

OP_ALLOC = 0   # the trace's op column: 0 alloc, anything else free
UNPUBLISHED = -2

# status codes returned by replay
OK = 0
OOM = 1
BAD_ALIGN = 2
OUTSIDE = 3
OVERLAP = 4
CLOBBERED = 5
ABORTED = 6
STATUS_TEXT = {
    OK: "ok", OOM: "arena exhausted (out of memory)", BAD_ALIGN: "misaligned address",
    OUTSIDE: "address outside mapped memory", OVERLAP: "object overlaps a live object",
    CLOBBERED: "object id overwritten while live", ABORTED: "aborted: another P failed",
}

# stats row fields (one row per replay call's thread; STAT_, not S_: other modules' S_ mean other things)
STAT_FAIL_OP = 0     # op index of the failure
STAT_FAIL_ADDR = 1
STAT_IN_USE_AT_PEAK = 2  # sum of IN_USE counters right after the peak-live op (-1 if not seen)
STAT_DEFERRED = 3    # threads mode: frees put aside because the allocating P had not published the address
STAT_WAITS = 4       # threads mode: times the P stopped to wait for a publish (ring full, or end of its stream)
STAT_YIELDS = 5      # threads mode: sched_yield calls while waiting
STAT_LEN = 8

# threads mode: deferred frees a P may hold before it must wait (x 8 bytes per P). What it trades:
# two Ps at the same speed still drift apart by thousands of ops, and a full ring stops the one
# ahead (web at 2 Ps, scale 0.3, 16-core machine: ~6,000 stops); but a deferred free is an
# object kept alive, so a larger ring inflates threads-mode peak memory (65,536 slots: ~6,000
# stops fewer, and go's peak mapped on the same trace went from 24 MiB to 40 MiB in one run).
PENDING_CAP = 4096
POLL_EVERY = 64          # ops between looks at the oldest deferred free's address (a power of two)
SPINS_BEFORE_YIELD = 64   # loads before each sched_yield: a yield is a syscall (~0.3-1 us)

# the ``pending`` argument for serial replay: no ring, every address is published before its free
SERIAL = np.zeros(0, np.int64)

ABORT = 0  # flags[ABORT] != 0: some thread failed


@kernel(inline="always")
def _required_align(size, align16):
    # malloc-like strategies promise 16 from 16 B and 8 from 8 B; Go promises
    # 8 from 16 B and, in its tiny allocator, only the size's low bits below
    # 16 B (malloc.go: a 12 B noscan object is 4-aligned, a 10 B one 2-aligned)
    if size >= 16:
        return 16 if align16 else 8
    if align16 and size >= 8:
        return 8
    return min(size & -size, 8)


@kernel(inline="always")
def _alloc_op(st, arena64, arena, real, i, p, obj, size, kind, addr_of, threads, check, align16, shadow,
              stats, flags):
    a = strategy_alloc(st, p, size, kind)
    if a < 0:
        stats[STAT_FAIL_OP] = i
        flags[ABORT] = 1
        return OOM
    st.counters[p, ALLOCS] += 1
    # touch: the object's id in its first min(size, 8) bytes
    if real:
        if size >= 8:
            poke_i64(a, obj)
        else:
            for j in range(size):
                poke_u8(a + j, (obj >> (8 * j)) & 0xFF)
    elif size >= 8 and (a & 7) == 0:
        arena64[a >> 3] = obj
    else:
        for j in range(min(size, 8)):
            arena[a + j] = (obj >> (8 * j)) & 0xFF
    if check:
        stats[STAT_FAIL_ADDR] = a
        if a % _required_align(size, align16) != 0:
            stats[STAT_FAIL_OP] = i
            flags[ABORT] = 1
            return BAD_ALIGN
        if not real:
            if a + size > st.meta[MAPPED]:
                stats[STAT_FAIL_OP] = i
                flags[ABORT] = 1
                return OUTSIDE
            for b in range(a, a + size):
                if shadow[b] != 0:
                    stats[STAT_FAIL_OP] = i
                    flags[ABORT] = 1
                    return OVERLAP
                shadow[b] = 1
    if threads:
        atomic_store(addr_of, obj, a)
    else:
        addr_of[obj] = a
    return OK


@kernel(inline="always")
def _free_op(st, arena, real, i, p, obj, size, kind, a, check, shadow, stats, flags):
    if check:
        stats[STAT_FAIL_ADDR] = a
        intact = True
        if real:
            if size >= 8:
                intact = peek_i64(a) == obj
            else:
                for j in range(size):
                    if peek_u8(a + j) != ((obj >> (8 * j)) & 0xFF):
                        intact = False
        else:
            for j in range(min(size, 8)):
                if arena[a + j] != ((obj >> (8 * j)) & 0xFF):
                    intact = False
            for b in range(a, a + size):
                shadow[b] = 0
        if not intact:
            stats[STAT_FAIL_OP] = i
            flags[ABORT] = 1
            return CLOBBERED
    strategy_free(st, p, a, size, kind)
    st.counters[p, FREES] += 1
    return OK


@kernel(inline="always")
def _await_publish(addr_of, obj, stats, flags):
    """Block until ``obj``'s address is published (spin, then yield); UNPUBLISHED if another P failed."""
    stats[STAT_WAITS] += 1
    spins = 0
    while True:
        a = atomic_load(addr_of, obj)
        if a != UNPUBLISHED:
            return a
        if flags[ABORT] != 0:
            return UNPUBLISHED
        spins += 1
        if spins > SPINS_BEFORE_YIELD:
            stats[STAT_YIELDS] += 1
            sched_yield()


@kernel(inline="always")
def _await_oldest(pending, head, npend, mask, addr_of, obj_col, stats, flags):
    """Take the oldest deferred free off the ring once its address arrives: (op, address, head,
    npend); the address is UNPUBLISHED if another P failed meanwhile."""
    j = pending[head]
    return j, _await_publish(addr_of, obj_col[j], stats, flags), (head + 1) & mask, npend - 1


@kernel
def replay(st, arena64, p_col, op_col, kind_col, size_col, obj_col, addr_of,
           start, stop, check, align16, shadow, pending, peak_op, stats, flags, tl, lat):
    """Ops ``start..stop``; returns a status code.

    ``tl`` is a timeline's buffers (``Probe.timeline_args``; ``NO_TIMELINE`` for none), ``lat``
    None for a throughput run or a latency run's (``Probe.latency_args``).

    The timeline costs nothing per op: the loop runs in chunks that end where a memory row is
    due, and the row is written between them (for a run without one, the one chunk is the whole
    slice). So a timeline run is the throughput kernel itself, with no compile of its own, and
    its per-op code is the same machine code. Latency is per op: a clock around each sampled op.
    numba prunes every ``lat is not None`` branch when the argument is None, so a throughput
    run's machine code has no trace of the clock, and the timed variant is the same loop
    compiled once more (on demand).

    The loop has one call site for the strategy's alloc and one for its free, whichever free it
    is (op i, or a deferred one whose address has arrived): each site inlines the strategy's whole
    path, and a copy per site was most of the kernel's compile time.
    """
    real = strategy_real_ptrs(st)
    arena = st.arena
    threads = pending.shape[0] > 0
    mask = pending.shape[0] - 1   # ring of deferred frees (op indices), capacity a power of two
    head = 0
    npend = 0
    i = start
    polled = start - 1   # the op at which the ring was last found not ready
    t0 = -1
    tsum = -1            # the latency tags' sum before the op being timed (-1: not known; _clock_start)
    row = stats[STAT_TL_ROWS]
    every = tl[TLA_EVERY]
    next_row = _first_row(start, stop, every)
    if next_row == start and start < stop:
        row = _timeline_row(st, tl, row, start, p_col[start], threads)
        next_row += every
    end = min(stop, next_row)   # this chunk's last op + 1: the next row, or the slice's end
    while True:
        while i < end or (npend > 0 and i >= stop):
            # 1. a deferred free to do now: every POLL_EVERY ops, each one whose address has arrived,
            #    oldest first (the line polled is one the other P is writing); at the end of the
            #    stream, the oldest, once its address arrives
            j = -1
            a = UNPUBLISHED
            if npend > 0:
                if i >= stop:
                    j, a, head, npend = _await_oldest(pending, head, npend, mask, addr_of, obj_col, stats, flags)
                    if a == UNPUBLISHED:
                        return ABORTED
                elif (i & (POLL_EVERY - 1)) == 0 and polled != i:
                    a = atomic_load(addr_of, obj_col[pending[head]])
                    if a == UNPUBLISHED:
                        polled = i
                    else:
                        j = pending[head]
                        head = (head + 1) & mask
                        npend -= 1
            # 2. otherwise op i
            op_i = j < 0
            if op_i:
                if op_col[i] == OP_ALLOC:
                    p = p_col[i]
                    if lat is not None:
                        t0, tsum = _clock_start(st, p, i, tsum, lat)
                    r = _alloc_op(st, arena64, arena, real, i, p, obj_col[i], size_col[i], kind_col[i], addr_of,
                                  threads, check, align16, shadow, stats, flags)
                    if lat is not None:
                        tsum = _clock_stop(st, p, LAT_ALLOC, t0, tsum, lat)
                    if r != OK:
                        return r
                elif threads:
                    a = atomic_load(addr_of, obj_col[i])
                    if a == UNPUBLISHED:
                        # allocated on a P that has not got there yet: put the free aside
                        if npend > mask:
                            # the ring is full (see the module docstring): its oldest free, once its
                            # address arrives, and op i again after it
                            j, a, head, npend = _await_oldest(pending, head, npend, mask, addr_of, obj_col, stats,
                                                              flags)
                            if a == UNPUBLISHED:
                                return ABORTED
                            op_i = False
                        else:
                            stats[STAT_DEFERRED] += 1
                            pending[(head + npend) & mask] = i
                            npend += 1
                    else:
                        j = i
                else:
                    a = addr_of[obj_col[i]]
                    j = i
            # 3. the free
            if j >= 0:
                p = p_col[j]
                if lat is not None:
                    t0, tsum = _clock_start(st, p, j, tsum, lat)
                r = _free_op(st, arena, real, j, p, obj_col[j], size_col[j], kind_col[j], a, check, shadow, stats,
                             flags)
                if lat is not None:
                    tsum = _clock_stop(st, p, LAT_FREE, t0, tsum, lat)
                if r != OK:
                    return r
            # 4. op i done (or put aside): on to the next
            if op_i:
                if i == peak_op:
                    stats[STAT_IN_USE_AT_PEAK] = st.counters[:, IN_USE].sum()
                i += 1
        if i >= stop:
            break
        # a chunk's end: a timeline row is due at op i (ops done before it), and the next chunk
        row = _timeline_row(st, tl, row, i, p_col[i], threads)
        next_row += every
        end = min(stop, next_row)
    if every > 0 and stop == p_col.shape[0] and stop > 0:
        row = _timeline_row(st, tl, row, stop, p_col[stop - 1], threads)
    stats[STAT_TL_ROWS] = row
    return OK


def new_stats() -> np.ndarray:
    s = aligned.zeros(STAT_LEN)   # a line of its own: each P writes its row while others run
    s[STAT_IN_USE_AT_PEAK] = -1
    return s


def columns(trace) -> tuple:
    """A trace's columns in the order ``replay`` takes them."""
    return trace.p, trace.op, trace.kind, trace.size, trace.obj


class Replay:
    """The buffers of one replay, so that a call names only the state and the ops.

    Owns the address table ``addr_of`` (``n_ids`` object ids), the check-mode
    shadow of ``arena`` (the Heap's, which the state maps), the abort ``flags``, one stats row per thread and,
    in threads mode, one ring of deferred frees per P (``pending_cap`` slots,
    a power of two; PENDING_CAP by default). ``system`` measures libc's heap
    from its make_state on: make the Replay before the state.
    """

    def __init__(self, arena: np.ndarray, n_ids: int, *, procs: int = 1, threads: bool = False,
                 check: bool = False, align16: bool = True, pending_cap: int | None = None, probe=None):
        if probe is not None and check:
            raise ValueError("latency and timeline runs do not run in check mode")
        self.probe = probe   # a Probe: the timed replay (latency, timeline)
        self.arena64 = arena.view(np.int64)
        self.check, self.align16, self.threads = bool(check), bool(align16), threads
        self.addr_of = np.full(max(n_ids, 1), UNPUBLISHED, np.int64)
        self.shadow = np.zeros(arena.shape[0] if check else 1, np.uint8)
        self.stats = [new_stats() for _ in range(procs if threads else 1)]
        cap = PENDING_CAP if pending_cap is None else pending_cap
        self.pending = [np.zeros(cap, np.int64) for _ in range(procs)] if threads else None
        self.flags = np.zeros(1, np.int64)

    def run(self, st, cols, start: int = 0, stop: int | None = None, *, p: int = 0, peak_op: int = -1) -> int:
        """Replay ops ``start..stop`` of ``cols`` (``columns(trace)``; threads mode: P ``p``'s own
        stream) on ``st``; returns a status code. Serial: the stats row is ``stats[0]``."""
        stop = cols[0].shape[0] if stop is None else stop
        pending = self.pending[p] if self.threads else SERIAL
        stats = self.stats[p if self.threads else 0]
        tl = NO_TIMELINE if self.probe is None else self.probe.timeline_args(p)
        lat = None if self.probe is None else self.probe.latency_args(p)
        return replay(st, self.arena64, *cols, self.addr_of, start, stop, self.check, self.align16, self.shadow,
                      pending, peak_op, stats, self.flags, tl, lat)


# ---------------------------------------------------------------- the probes: latency and timeline
# A timeline is the throughput loop cut into chunks (``replay``'s docstring): a row costs a few loads
# and stores every K ops and nothing per op. Latency is ``replay`` with a ``lat`` tuple instead of
# None: the same loop compiled once more, only when a run asks for latency. Neither runs in check
# mode (a check's shadow walk would be the tail measured).

@intrinsic
def cycle_counter(typingctx):
    """The CPU's cycle counter (LLVM ``readcyclecounter``: ``rdtsc`` on x86, a constant rate)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


@kernel
def read_cycles():
    """The cycle counter, callable from Python (harness/latency.py's calibration)."""
    return cycle_counter()


@intrinsic
def _msb(typingctx, v):
    """Index of the highest set bit of ``v`` > 0 (LLVM ``ctlz``)."""
    def codegen(context, builder, signature, args):
        x = context.cast(builder, args[0], signature.args[0], types.int64)
        lz = builder.ctlz(x, ir.Constant(ir.IntType(1), 1))
        return builder.sub(ir.Constant(ir.IntType(64), 63), lz)

    return types.int64(v), codegen


# The latency histogram (harness/latency.py reads it): log-linear in cycles, HDR-style. Values below
# HIST_SUB are their own bucket; above, each power of two is split into HIST_SUB equal buckets, so a
# bucket is at most 1/HIST_SUB of its lower bound wide. What HIST_SUB_BITS trades: one more bit halves
# the relative error and doubles the buckets (2,688 x 8 B per op kind and cause now).
HIST_SUB_BITS = 6
HIST_SUB = 1 << HIST_SUB_BITS
HIST_MAX_MSB = 46                     # values of 2^47 cycles and more (hours) share the last bucket
HIST_BUCKETS = (HIST_MAX_MSB - HIST_SUB_BITS + 2) * HIST_SUB
LAT_ALLOC, LAT_FREE = 0, 1            # the histogram's first axis
LAT_CAUSES = 8                        # its second: 0 = no slow path seen, 1.. = harness/latency.py's CAUSES
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# timeline columns (one row every K ops, and one at the end of the stream). Live bytes are not
# here: they are the trace's own, known without running it (harness/timeline.py adds them).
TL_OP = 0        # op index (threads mode: in the P's own stream; the runner maps it to the trace's)
TL_MAPPED = 1    # the heap's mapped bytes (meta[MAPPED]; not libc's for real-pointer strategies)
TL_IN_USE = 2    # sum of IN_USE (threads mode: this P's row)
TL_GC = 3        # the strategy's GC-cycle counter (0 if it has none; threads mode: this P's row)
TL_GOAL = 4      # its heap goal word (0 if it has none)
TL_NCOL = 5

# stats row field carried across serial slices: timeline rows written so far
STAT_TL_ROWS = 7

# ``replay``'s ``tl`` argument: (rows every K ops (0: none), the rows, GC-cycle counter column (-1:
# none), the goal word's array and index (-1: none)); the same types whether or not a timeline is
# kept, so a timeline run is the throughput kernel's own specialisation
TLA_EVERY, TLA_ROWS, TLA_GC_COL, TLA_GOAL_ARR, TLA_GOAL_IDX = 0, 1, 2, 3, 4
NO_TIMELINE = (0, np.zeros((0, TL_NCOL), np.int64), -1, np.zeros(1, np.int64), -1)


@kernel(inline="always")
def hist_bucket(v):
    if v < HIST_SUB:
        return max(v, 0)
    m = _msb(v)
    if m > HIST_MAX_MSB:
        return HIST_BUCKETS - 1
    shift = m - HIST_SUB_BITS
    return (shift + 1) * HIST_SUB + (v >> shift) - HIST_SUB


@kernel(inline="always")
def _sampled(i, every, below):
    # a deterministic 1-in-``every`` sample: op i is timed when i x the golden ratio (a Weyl sequence,
    # mod 2^64) falls below ``below`` = 2^64 / every. A plain i % every would alias with a workload's
    # own periods (a refill every 64 allocs of a class) and costs a division per op.
    if every <= 1:
        return every == 1
    return np.uint64(i) * _GOLDEN < below


# ``replay``'s ``lat`` argument (``Probe.latency_args``): (1 op in N timed, 2^64 / N, the number of
# tag counters K, the thread's latency block). The block is one int64 array, laid out
#     [0, K)          tag counter columns, highest priority first
#     [K, 2K)         their causes (1.. = harness/latency.py's CAUSES)
#     [2K, 3K)        the tags' values after the last timed op (the snapshot)
#     [3K, 3K + 2)    the largest alloc and free seen, in cycles
#     3K + 2          the P whose counters the snapshot holds (serial mode runs every P's ops)
#     [lb_head(K), )  the histogram, (cause, bucket, op): alloc and free of a bucket side by side
LA_EVERY, LA_BELOW, LA_K, LA_BLOCK = 0, 1, 2, 3


@kernel(inline="always")
def lb_head(k):
    """The latency block's first histogram word for K tag counters (whole lines of header)."""
    return (3 * max(k, 1) + 3 + 7) // 8 * 8


@kernel
def _lat_snapshot(counters, p, block, k):
    """Copy P ``p``'s tag counters into the block's snapshot; returns their sum."""
    s = 0
    for j in range(k):
        c = counters[p, block[j]]
        block[2 * k + j] = c
        s += c
    block[3 * k + 2] = p
    return s


@kernel
def _lat_tagged(counters, p, which, dt, block, k):
    """A timed op during which a tag counter moved: recorded under the first that moved (highest
    priority first), and the snapshot retaken; returns the tags' sum now."""
    cause = 0
    for j in range(k):
        if counters[p, block[j]] != block[2 * k + j]:
            cause = block[k + j]
            break
    _lat_count(block, k, which, cause, dt)
    return _lat_snapshot(counters, p, block, k)


@kernel(inline="always")
def _lat_count(block, k, which, cause, dt):
    block[lb_head(k) + (cause * HIST_BUCKETS + hist_bucket(dt)) * 2 + which] += 1
    m = 3 * k + which
    if dt > block[m]:
        block[m] = dt


@kernel(inline="always")
def _clock_start(st, p, i, tsum, lat):
    """Before op ``i`` on P ``p``: (-1, -1) if the op is not sampled; else (the cycle counter, the
    tag counters' sum). The snapshot is retaken only when it may be stale (``tsum`` -1: an untimed
    op ran since, or the slice just began) or is another P's (serial mode: the ops of every P, and
    an op moves only its own P's row); after a timed op ``_clock_stop`` leaves it current, so
    timing every op of one P reads the tags once per op, not twice.

    What is inlined into the loop is kept small: the sample test, the counter reads, the sum of
    the tags and one bucket. The rest (a snapshot, an op that moved a tag) is a call. Inlined
    whole, the timed op's work made the loop's untimed ops slower too, by a different amount in
    different processes (docs/latency.md).
    """
    if not _sampled(i, lat[LA_EVERY], lat[LA_BELOW]):
        return -1, -1
    block = lat[LA_BLOCK]
    k = lat[LA_K]
    if tsum < 0 or block[3 * k + 2] != p:
        tsum = _lat_snapshot(st.counters, p, block, k)
    return cycle_counter(), tsum


@kernel(inline="always")
def _clock_stop(st, p, which, t0, tsum, lat):
    """After the op: its latency into the histogram, tagged with the slow path it took; returns the
    tags' sum now, or -1 if the op was not timed (it may have moved them). Tag counters count
    events, so they only grow, and their sum moved iff one of them did: the common op (no slow
    path) costs one pass of loads and adds and no compare per counter."""
    if t0 < 0:
        return -1
    dt = cycle_counter() - t0
    block = lat[LA_BLOCK]
    k = lat[LA_K]
    s = 0
    for j in range(k):
        s += st.counters[p, block[j]]
    if s != tsum:
        return _lat_tagged(st.counters, p, which, dt, block, k)
    _lat_count(block, k, which, 0, dt)
    return s


@kernel(inline="always")
def _first_row(start, stop, every):
    """The first op index >= start a timeline row is due at (stop if none)."""
    if every <= 0:
        return stop
    return ((start + every - 1) // every) * every


@kernel
def _timeline_row(st, tl, row, i, p, threads):
    # not inlined: it runs once per chunk, and a copy at each of replay's three sites is compile
    # time for nothing
    rows = tl[TLA_ROWS]
    if row >= rows.shape[0]:
        return row
    gc_col = tl[TLA_GC_COL]
    in_use = 0
    gc = 0
    if threads:
        in_use = st.counters[p, IN_USE]
        if gc_col >= 0:
            gc = st.counters[p, gc_col]
    else:
        for q in range(st.counters.shape[0]):
            in_use += st.counters[q, IN_USE]
            if gc_col >= 0:
                gc += st.counters[q, gc_col]
    rows[row, TL_OP] = i
    rows[row, TL_MAPPED] = atomic_load(st.meta, MAPPED)
    rows[row, TL_IN_USE] = in_use
    rows[row, TL_GC] = gc
    rows[row, TL_GOAL] = atomic_load(tl[TLA_GOAL_ARR], tl[TLA_GOAL_IDX]) if tl[TLA_GOAL_IDX] >= 0 else 0
    return row + 1


def _latency_block(k: int, nb: int) -> np.ndarray:
    """One thread's latency block (the layout above ``LA_EVERY``), page-aligned.

    One array, not five, because the timed op's rarer work is out of line (``_clock_start``) and
    numba passes an array to a call as seven words: the calls take one. The header shares a page
    with the busy buckets (fast ops are tens to hundreds of cycles), alloc and free of a bucket
    share a line, and each P's block is its own allocation (no line shared between threads)."""
    words = lb_head(k) + LAT_CAUSES * nb * 2
    buf = np.zeros(words + 512, np.int64)
    off = (-buf.ctypes.data % 4096) // 8
    return buf[off:off + words]


class Probe:
    """The buffers of a latency and/or timeline run, one set per thread (threads mode: per P; serial: one).

    ``sample_every``: time 1 op in that many (0: no latency); ``tags``: (counter column, cause)
    pairs, highest priority first; ``tl_every``: a timeline row every that many ops (0: none),
    ``tl_rows`` rows at most per thread; ``gc_col``: the GC-cycle counter column (-1: none);
    ``goal``: (array, index) of the heap goal word, or None. harness/latency.py and
    harness/timeline.py build it and read it back.
    """

    def __init__(self, threads: int, *, sample_every: int = 0, tags=(), tl_every: int = 0, tl_rows: int = 0,
                 gc_col: int = -1, goal=None):
        if sample_every < 0 or tl_every < 0:
            raise ValueError("sample_every and tl_every must be >= 0")
        self.sample_every, self.tl_every, self.gc_col = int(sample_every), int(tl_every), int(gc_col)
        self.sample_below = np.uint64((1 << 64) // max(self.sample_every, 1) if self.sample_every > 1 else 0)
        self.tag_cols = np.array([c for c, _ in tags], np.int64)
        self.tag_cause = np.array([k for _, k in tags], np.int64)
        if ((self.tag_cause <= 0) | (self.tag_cause >= LAT_CAUSES)).any():
            raise ValueError(f"a cause is 1..{LAT_CAUSES - 1}")
        k = self.k = len(self.tag_cols)
        nb = HIST_BUCKETS if sample_every else 1
        self.blocks = [_latency_block(k, nb) for _ in range(threads)]
        for blk in self.blocks:
            blk[:k], blk[k:2 * k] = self.tag_cols, self.tag_cause
        # views, as harness/latency.py reads them: the histogram as (op, cause, bucket), the maxima
        self.hist = [blk[lb_head(k):].reshape(LAT_CAUSES, nb, 2).transpose(2, 0, 1) for blk in self.blocks]
        self.lat_max = [blk[3 * k:3 * k + 2] for blk in self.blocks]
        self.timeline = [np.zeros((tl_rows if tl_every else 0, TL_NCOL), np.int64) for _ in range(threads)]
        self.goal_arr, self.goal_idx = (goal[0], int(goal[1])) if goal is not None else (np.zeros(1, np.int64), -1)

    def timeline_args(self, p: int) -> tuple:
        """Thread ``p``'s timeline buffers as ``replay``'s ``tl`` argument (fields TLA_*)."""
        if not self.tl_every:
            return NO_TIMELINE
        return self.tl_every, self.timeline[p], self.gc_col, self.goal_arr, self.goal_idx

    def latency_args(self, p: int):
        """Thread ``p``'s latency buffers as ``replay``'s ``lat`` argument (fields LA_*), or None."""
        if not self.sample_every:
            return None
        return self.sample_every, self.sample_below, self.k, self.blocks[p]
