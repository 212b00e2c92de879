"""mcentral: the shared tier of one span class, and the free path that needs it.

Models src/runtime/mcentral.go (cacheSpan, uncacheSpan, grow) and the refill
half of src/runtime/mcache.go (mcache.refill). See the package docstring.

Each span class has one lock (``locks[spc * 8]``, LOCK_CENTRAL) and two
span lists: ``partial`` (spans with a free slot) and ``full``. Go's sets
are lock-free spanSets split into swept / unswept halves; here they are
doubly linked lists under the class lock, and a span on them is always
swept (see mgc.py), so one half each suffices.

Invariants (checked by ``check``):
    a span cached in an mcache (owner >= 0) is on no list
    every uncached small span is on partial[spc] iff 0 < allocCount < nelems,
        on full[spc] iff allocCount == nelems (gogc = 0; with gogc > 0 a span may
        sit on full with frees that the next sweep will find)
    with gogc = 0 an uncached span is swept: freeindex == 0 and freed == 0
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_CENTRAL, REFILLS
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.layout import (
    C_DUMMY, C_GOGC, C_NSPC, C_W, GL_HEAP_LIVE, GL_SWEEPGEN, MC_ALLOC, MC_DEAD,
    SP_ALLOCCOUNT, SP_BASE, SP_DIVMAGIC, SP_ELEMSIZE, SP_LIST, SP_NELEMS, SP_OWNER, SP_SPC, SP_SWEEPGEN,
    SPAN_SMALL,
)
from alloclab.strategies.go.mbitmap import load_alloc_cache
from alloclab.strategies.go.mgc import maybe_gc, sweep_span
from alloclab.strategies.go.mheap import list_pop_head, list_push_tail, list_remove, mheap_alloc_span, mheap_free_span

U1 = np.uint64(1)


@kernel
def mcentral_uncache(st, p, s):
    """uncacheSpan (class lock held): sweep if needed, then file the span; True = it is empty, free it."""
    spans = st.spans
    spans[s, SP_OWNER] = -1
    gogc = st.cfg[C_GOGC]
    if gogc > 0:
        # refill counted the span's free slots as live (gcController.update); give back the unused ones
        atomic_add(st.gl, GL_HEAP_LIVE, -(spans[s, SP_NELEMS] - spans[s, SP_ALLOCCOUNT]) * spans[s, SP_ELEMSIZE])
    if gogc == 0 or spans[s, SP_SWEEPGEN] != st.gl[GL_SWEEPGEN]:
        sweep_span(st, p, s)
    n = spans[s, SP_ALLOCCOUNT]
    if n == 0:
        return True
    spc = spans[s, SP_SPC]
    if n < spans[s, SP_NELEMS]:
        list_push_tail(st.lists, spans, spc, s)
    else:
        list_push_tail(st.lists, spans, st.cfg[C_NSPC] + spc, s)
    return False


@kernel
def mcentral_grow(st, p, spc):
    """mcentral.grow: a fresh span of the class from the heap, every slot free."""
    sc = spc >> 1
    s = mheap_alloc_span(st, p, st.t_npages[sc], SPAN_SMALL, spc, st.t_size[sc], st.t_nelems[sc],
                         st.t_magic[sc], p)
    if s < 0:
        return -1
    W = st.cfg[C_W]
    for w in range(s * W, s * W + ((st.t_nelems[sc] + 63) >> 6)):
        st.allocbits[w] = 0
        st.freed[w] = 0
    return s


@kernel
def mcache_refill(st, p, spc):
    """mcache.refill: return the full cached span, take a span with free slots (partial list, else grow)."""
    col = MC_ALLOC + spc
    old = st.mc[p, col]
    spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
    release_old = False
    if old != st.cfg[C_DUMMY]:
        release_old = mcentral_uncache(st, p, old)
    s = list_pop_head(st.lists, st.spans, spc)
    if s >= 0:
        st.spans[s, SP_OWNER] = p
        st.spans[s, SP_SWEEPGEN] = st.gl[GL_SWEEPGEN]
    spin_unlock(st.locks, spc * 8)
    if release_old:
        mheap_free_span(st, p, old)
    st.counters[p, REFILLS] += 1
    if s < 0:
        s = mcentral_grow(st, p, spc)
        if s < 0:
            st.mc[p, col] = st.cfg[C_DUMMY]
            return -1
    else:
        load_alloc_cache(st, s)
    st.mc[p, col] = s
    if st.cfg[C_GOGC] > 0:
        atomic_add(st.gl, GL_HEAP_LIVE, (st.spans[s, SP_NELEMS] - st.spans[s, SP_ALLOCCOUNT]) * st.spans[s, SP_ELEMSIZE])
        maybe_gc(st, p)
    return s


@kernel(inline="always")
def free_small_slot(st, p, s, addr):
    """Free one slot of small span ``s``.

    gogc > 0: only mark it dead; the next sweep reclaims it.
    gogc = 0, three cases, so that a slot is never both free and handed out:
      - the span is in this P's mcache: set its freed bit (atomic: other Ps may
        set bits in the same word under the class lock); the sweep at uncache
        reclaims it. Lock-free: only this P can uncache its own span.
      - the span is in another P's mcache: the same, under the class lock,
        which keeps that P from sweeping (uncaching) while the bit goes in.
      - the span is uncached: under the class lock, sweep this one slot now
        (clear its allocBit), move a full span to partial, and give an
        empty span back to the heap (``free_small_locked``).
    """
    spans = st.spans
    idx = ((addr - spans[s, SP_BASE]) * spans[s, SP_DIVMAGIC]) >> 32
    w = s * st.cfg[C_W] + (idx >> 6)
    if st.cfg[C_GOGC] > 0:
        atomic_add(st.freed, w, np.int64(1) << (idx & 63))
        st.mc[p, MC_DEAD] += spans[s, SP_ELEMSIZE]
    elif spans[s, SP_OWNER] == p:
        atomic_add(st.freed, w, np.int64(1) << (idx & 63))
    else:
        free_small_locked(st, p, s, idx)


@kernel(inline="always")
def free_small_locked(st, p, s, idx):
    spans = st.spans
    w = s * st.cfg[C_W] + (idx >> 6)
    spc = spans[s, SP_SPC]
    spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
    if spans[s, SP_OWNER] >= 0:
        atomic_add(st.freed, w, np.int64(1) << (idx & 63))
        spin_unlock(st.locks, spc * 8)
        return
    st.allocbits[w] &= ~(U1 << np.uint64(idx & 63))
    n = spans[s, SP_ALLOCCOUNT] - 1
    spans[s, SP_ALLOCCOUNT] = n
    empty = n == 0
    if empty:
        list_remove(st.lists, spans, s)
    elif spans[s, SP_LIST] != spc:
        list_remove(st.lists, spans, s)
        list_push_tail(st.lists, spans, spc, s)
    spin_unlock(st.locks, spc * 8)
    if empty:
        mheap_free_span(st, p, s)
