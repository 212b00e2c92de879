"""Sweeping and the modelled GC cycle (Config ``gogc``, ``go_version``).

Models mspan.sweep (src/runtime/mgcsweep.go) and, for ``gogc > 0``, the
pacer's heap goal and the cycle's effect on the allocator: sweepgen += 2,
every mcache flushed at its P's next allocation (mcache.prepareForSweep),
every span swept. See __init__.py for an overview and where this departs
from Go.

The heap goal, by Go version (gcControllerState.commit in
src/runtime/mgcpacer.go; read in Go 1.19.8's source):

    Go >= 1.18:  goal = heapMarked + (heapMarked + lastStackScan + globalsScan) * GOGC/100
    Go <= 1.17:  goal = heapMarked * (1 + GOGC/100)                    (gcSetTriggerRatio, mgc.go)
    both:        goal >= heapMinimum = 4 MiB * GOGC/100                (defaultHeapMinimum)

Go 1.18's pacer redesign (proposal 44167) added the stack and globals terms.
The model has no globals (0); lastStackScan is the bytes of goroutine stacks
live at the cycle (PP_STACK_BYTES summed over Ps), since a trace's stack size
is the stack it used. Go 1.19 starts a cycle at a trigger 70-95% of the way
from heapMarked to the goal (trigger(), from the measured cons/mark ratio)
and marks concurrently while the program allocates up to about the goal; the
model's cycle is instantaneous and runs when heapLive reaches the goal, the
point where Go's mark would end. What that leaves out: objects that die
during Go's mark phase survive it (floating garbage), so Go's heapMarked,
and with it the next goal, is somewhat higher.

A free never touches allocBits of a span another party may be allocating
from; it sets the slot's bit in ``freed`` (atomically: several Ps may free
into one word). Sweeping folds those bits into allocBits:

    allocBits  := (allocBits | bits below freeindex) & ~freed
    freed      := 0 (atomically: bits set meanwhile survive to the next sweep)
    freeindex  := 0,   allocCount := popcount(allocBits)

which is Go's ``allocBits = gcmarkBits`` with ``freed`` standing for the
objects the mark phase did not reach. So ``freed`` only ever marks allocated
slots of the span (``check``).
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, atomic_cas, atomic_load, atomic_store, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_CENTRAL, LOCK_GLOBAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import low_mask, popcount64
from alloclab.strategies.go.layout import (
    CFG_ALLOCBITS_WORDS, CFG_GOAL_STACKS, CFG_GOGC, CFG_HEAP_MINIMUM, CFG_NPROCS, CFG_NUM_SPANCLASSES, CFG_PAGE_SIZE,
    LK_GC, X_GC,
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

# ---------------------------------------------------------------- mc: per-P GC bookkeeping (not a Go field)
PP_DEAD_BYTES = 5         # bytes freed by this P and not yet swept (gogc > 0): the cycle's heapMarked
PP_STACK_BYTES = 11       # bytes of goroutine stacks this P holds live (stacks.py): the goal's lastStackScan

FULL = ~np.uint64(0)


@kernel
def sweep_span(st, p, s):
    """mspan.sweep for a small span: fold freed slots into allocBits; returns the slots freed."""
    spans = st.spans
    W = st.cfg[CFG_ALLOCBITS_WORDS]
    base = s * W
    nel = spans[s, SPAN_NELEMS]
    fi = spans[s, SPAN_FREEINDEX]
    count = 0
    folded = 0
    for w in range((nel + 63) >> 6):
        f = atomic_load(st.freed, base + w)
        if f != 0:
            atomic_add(st.freed, base + w, -f)
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
    if folded != 0 and st.cfg[CFG_GOGC] > 0:
        b = folded * spans[s, SPAN_ELEMSIZE]
        st.mc[p, PP_DEAD_BYTES] -= b
        atomic_add(st.gl, GC_HEAP_LIVE, -b)
    return folded


@kernel
def gc_cycle(st, p):
    """One modelled GC cycle, run by the P whose allocation crossed the heap goal.

    Marking is implicit (the trace's frees say what is dead); this does the
    cycle's bookkeeping and sweeps every span not held by an mcache, under its
    mcentral's lock. Cached spans are swept when their P flushes its mcache.
    """
    cfg = st.cfg
    nspc = cfg[CFG_NUM_SPANCLASSES]
    lk = (nspc + LK_GC) * 8
    if atomic_cas(st.locks, lk, 0, 1) != 0:
        return  # another P is running the cycle
    st.counters[p, LOCK_GLOBAL] += 1
    dead = 0
    stack = 0
    for q in range(cfg[CFG_NPROCS]):
        dead += st.mc[q, PP_DEAD_BYTES]
        stack += st.mc[q, PP_STACK_BYTES]
    marked = atomic_load(st.gl, GC_HEAP_LIVE) - dead
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
                    if st.spans[s, SPAN_AUX] == 1:
                        list_remove(st.lists, st.spans, s)
                        b = st.spans[s, SPAN_NPAGES] * st.cfg[CFG_PAGE_SIZE]
                        st.mc[p, PP_DEAD_BYTES] -= b
                        atomic_add(st.gl, GC_HEAP_LIVE, -b)
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
    # the goal by Go version (module docstring): stacks count towards it from Go 1.18
    scan = marked + (stack if cfg[CFG_GOAL_STACKS] != 0 and stack > 0 else 0)
    goal = marked + scan * gogc // 100
    floor = cfg[CFG_HEAP_MINIMUM] * gogc // 100
    st.gl[GC_HEAP_MARKED] = marked
    atomic_store(st.gl, GC_HEAP_GOAL, goal if goal > floor else floor)
    st.counters[p, X_GC] += 1
    atomic_store(st.locks, lk, 0)


@kernel(inline="always")
def maybe_gc(st, p):
    """The allocation slow paths' trigger test (mallocgc's shouldhelpgc -> gcTrigger{kind: gcTriggerHeap})."""
    if atomic_load(st.gl, GC_HEAP_LIVE) >= atomic_load(st.gl, GC_HEAP_GOAL):
        gc_cycle(st, p)


def check(st, census, errs: list[str]) -> None:
    """A freed bit marks an allocated slot of its span, never a free slot or one past nelems."""
    for s in census.by_state[MSPAN_SMALL]:
        nel, freed_b = census.alloc[s].shape[0], census.freed[s]
        if freed_b[nel:].any() or (freed_b[:nel] & ~census.alloc[s]).any():
            errs.append(f"span {s}: a freed bit marks a slot that is not allocated")
