"""Replay a trace against a strategy: the one kernel every strategy runs under.

``replay`` walks ops ``start..stop`` of a column set. Serial mode passes the
whole trace (all Ps interleaved in logical order); threads mode passes each
OS thread the columns of its own P and sets ``wait_publish``, so that a free
of an object allocated on another P waits, with yield backoff, until that P
has published the address (``addr_of`` holds -2 until then). The op with the
smallest logical time is never blocked, so the wait cannot deadlock; an OOM
or check failure on any thread raises ``flags[ABORT]`` and every waiter quits.

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

from alloclab.strategies._atomics import atomic_load, atomic_store, sched_yield
from alloclab.strategies._atomics import peek_u8, poke_u8, peek_i64, poke_i64
from alloclab.strategies._counters import ALLOCS, FREES, IN_USE
from alloclab.strategies._dispatch import strategy_alloc, strategy_free, strategy_real_ptrs
from alloclab.strategies._heap import MAPPED

OP_ALLOC = 0
OP_FREE = 1
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

# stats row fields (one row per replay call's thread)
S_FAIL_OP = 0     # op index of the failure
S_FAIL_ADDR = 1
S_IN_USE_AT_PEAK = 2  # sum of IN_USE counters right after the peak-live op (-1 if not seen)
S_LEN = 4

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


@kernel
def replay(st, arena64, p_col, op_col, kind_col, size_col, obj_col, addr_of,
           start, stop, check, align16, shadow, wait_publish, peak_op, stats, flags):
    real = strategy_real_ptrs(st)
    arena = st.arena
    for i in range(start, stop):
        p = p_col[i]
        obj = obj_col[i]
        size = size_col[i]
        kind = kind_col[i]
        if op_col[i] == OP_ALLOC:
            a = strategy_alloc(st, p, size, kind)
            if a < 0:
                stats[S_FAIL_OP] = i
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
                stats[S_FAIL_ADDR] = a
                if a % _required_align(size, align16) != 0:
                    stats[S_FAIL_OP] = i
                    flags[ABORT] = 1
                    return BAD_ALIGN
                if not real:
                    if a + size > st.meta[MAPPED]:
                        stats[S_FAIL_OP] = i
                        flags[ABORT] = 1
                        return OUTSIDE
                    for b in range(a, a + size):
                        if shadow[b] != 0:
                            stats[S_FAIL_OP] = i
                            flags[ABORT] = 1
                            return OVERLAP
                        shadow[b] = 1
            if wait_publish:
                atomic_store(addr_of, obj, a)
            else:
                addr_of[obj] = a
        else:
            if wait_publish:
                spins = 0
                while atomic_load(addr_of, obj) == UNPUBLISHED:
                    if flags[ABORT] != 0:
                        return ABORTED
                    spins += 1
                    if spins > 16:
                        sched_yield()
            a = addr_of[obj]
            if check:
                stats[S_FAIL_ADDR] = a
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
                    stats[S_FAIL_OP] = i
                    flags[ABORT] = 1
                    return CLOBBERED
            strategy_free(st, p, a, size, kind)
            st.counters[p, FREES] += 1
        if i == peak_op:
            stats[S_IN_USE_AT_PEAK] = st.counters[:, IN_USE].sum()
    return OK


def new_stats() -> np.ndarray:
    s = np.zeros(S_LEN, np.int64)
    s[S_IN_USE_AT_PEAK] = -1
    return s
