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
NOT_READY = -1   # internal: a deferred free's address has not arrived yet
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
def _retire(st, arena, real, j, p_col, kind_col, size_col, obj_col, addr_of, wait, check, shadow, stats, flags):
    """Do deferred free ``j`` if its address has arrived (with ``wait``: once it does); NOT_READY if not."""
    if wait:
        a = _await_publish(addr_of, obj_col[j], stats, flags)
        if a == UNPUBLISHED:
            return ABORTED
    else:
        a = atomic_load(addr_of, obj_col[j])
        if a == UNPUBLISHED:
            return NOT_READY
    return _free_op(st, arena, real, j, p_col[j], obj_col[j], size_col[j], kind_col[j], a, check, shadow, stats, flags)


@kernel
def replay(st, arena64, p_col, op_col, kind_col, size_col, obj_col, addr_of,
           start, stop, check, align16, shadow, pending, peak_op, stats, flags):
    real = strategy_real_ptrs(st)
    arena = st.arena
    threads = pending.shape[0] > 0
    mask = pending.shape[0] - 1   # ring of deferred frees (op indices), capacity a power of two
    head = 0
    npend = 0
    for i in range(start, stop):
        # retire deferred frees whose address has arrived, oldest first; polled every
        # POLL_EVERY ops, since the line polled is one the other P is writing
        while npend > 0 and (i & (POLL_EVERY - 1)) == 0:
            r = _retire(st, arena, real, pending[head], p_col, kind_col, size_col, obj_col, addr_of, False, check,
                        shadow, stats, flags)
            if r == NOT_READY:
                break
            if r != OK:
                return r
            head = (head + 1) & mask
            npend -= 1
        p = p_col[i]
        obj = obj_col[i]
        if op_col[i] == OP_ALLOC:
            r = _alloc_op(st, arena64, arena, real, i, p, obj, size_col[i], kind_col[i], addr_of, threads, check,
                          align16, shadow, stats, flags)
            if r != OK:
                return r
        else:
            if threads:
                a = atomic_load(addr_of, obj)
                if a == UNPUBLISHED:
                    # allocated on a P that has not got there yet: put the free aside
                    stats[STAT_DEFERRED] += 1
                    if npend > mask:
                        # the ring is full: wait for its oldest entry (see the module docstring)
                        r = _retire(st, arena, real, pending[head], p_col, kind_col, size_col, obj_col, addr_of,
                                    True, check, shadow, stats, flags)
                        if r != OK:
                            return r
                        head = (head + 1) & mask
                        npend -= 1
                    pending[(head + npend) & mask] = i
                    npend += 1
                    continue
            else:
                a = addr_of[obj]
            r = _free_op(st, arena, real, i, p, obj, size_col[i], kind_col[i], a, check, shadow, stats, flags)
            if r != OK:
                return r
        if i == peak_op:
            stats[STAT_IN_USE_AT_PEAK] = st.counters[:, IN_USE].sum()
    # end of the stream: every deferred free, in order
    while npend > 0:
        r = _retire(st, arena, real, pending[head], p_col, kind_col, size_col, obj_col, addr_of, True, check,
                    shadow, stats, flags)
        if r != OK:
            return r
        head = (head + 1) & mask
        npend -= 1
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
                 check: bool = False, align16: bool = True, pending_cap: int | None = None):
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
        return replay(st, self.arena64, *cols, self.addr_of, start, stop, self.check, self.align16, self.shadow,
                      pending, peak_op, self.stats[p if self.threads else 0], self.flags)
