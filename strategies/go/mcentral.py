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
    fbuf[p, spc, 0] = n, fbuf[p, spc, 1..n] = addresses of slots P freed in spans of class
        spc and has not swept yet; n < free_batch; mc[p, MC_FB_TOTAL] = sum over spc of n
        (a batched slot is still allocated in allocBits and not live: IN_USE left it at the free)

Batched frees (gogc = 0). Go never frees one object: the sweeper reclaims a
span's dead objects in one pass, and allocation never waits on a lock for
it. A model that took the class lock per explicit free ran web at one
central-lock acquisition per 2 ops (0.47 per free), and two Ps sharing those
locks ran slower than one. So a free of a slot in a span this P does not
cache goes into the P's batch for the span class, and the batch is swept
under one class-lock hold when it reaches ``free_batch`` entries, when the P
refills that class (it holds the lock then anyway, and its own dead slots
become candidates for the very span it is about to take), or before the heap
would grow (mheap.reclaim: Go sweeps before it maps more).
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_CENTRAL, REFILLS
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.layout import (
    C_DUMMY, C_FREE_BATCH, C_GOGC, C_NSPC, C_PAGE_SHIFT, C_W, GL_HEAP_LIVE, GL_SWEEPGEN, MC_ALLOC, MC_DEAD,
    MC_FB_TOTAL, SP_ALLOCCOUNT, SP_BASE, SP_DIVMAGIC, SP_ELEMSIZE, SP_LIST, SP_NELEMS, SP_OWNER, SP_SPC,
    SP_SWEEPGEN, SPAN_SMALL, X_BATCHED_FREES, X_FREE_BATCHES,
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
    s = mheap_alloc(st, p, st.t_npages[sc], SPAN_SMALL, spc, st.t_size[sc], st.t_nelems[sc],
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
    emptied = 0
    if st.fbuf[p, spc, 0] > 0:
        emptied = sweep_batch_locked(st, p, spc)
    s = list_pop_head(st.lists, st.spans, spc)
    if s >= 0:
        st.spans[s, SP_OWNER] = p
        st.spans[s, SP_SWEEPGEN] = st.gl[GL_SWEEPGEN]
    spin_unlock(st.locks, spc * 8)
    if release_old:
        mheap_free_span(st, p, old)
    free_emptied(st, p, spc, emptied)
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
    gogc = 0:
      - the span is in this P's mcache: set its freed bit (atomic: a batch of
        another P may set bits in the same word); the sweep at uncache reclaims
        it. Lock-free: only this P can uncache its own span.
      - otherwise (another P's mcache, or no mcache): into this P's batch for
        the span class (see the module docstring), swept under the class lock
        with the rest of the batch.
    """
    spans = st.spans
    gogc = st.cfg[C_GOGC]
    if gogc > 0 or spans[s, SP_OWNER] == p:
        idx = ((addr - spans[s, SP_BASE]) * spans[s, SP_DIVMAGIC]) >> 32
        atomic_add(st.freed, s * st.cfg[C_W] + (idx >> 6), np.int64(1) << (idx & 63))
        if gogc > 0:
            st.mc[p, MC_DEAD] += spans[s, SP_ELEMSIZE]
    else:
        spc = spans[s, SP_SPC]
        fb = st.fbuf
        n = fb[p, spc, 0] + 1
        fb[p, spc, n] = addr
        fb[p, spc, 0] = n
        st.mc[p, MC_FB_TOTAL] += 1
        st.counters[p, X_BATCHED_FREES] += 1
        if n >= st.cfg[C_FREE_BATCH]:
            mcentral_free_batch(st, p, spc)


@kernel
def sweep_batch_locked(st, p, spc):
    """Sweep P's batch of class ``spc`` (class lock held); returns how many spans it emptied.

    A slot in a span some mcache holds gets its freed bit (that P sweeps it at
    uncache); a slot in an uncached span is swept now: allocBit cleared, a
    full span moved to partial, an emptied span taken off its list and
    recorded in fbuf[p, spc, 1..] (entries already swept) for ``free_emptied``.
    """
    spans = st.spans
    fb = st.fbuf
    W = st.cfg[C_W]
    shift = st.cfg[C_PAGE_SHIFT]
    n = fb[p, spc, 0]
    ne = 0
    for k in range(1, n + 1):
        addr = fb[p, spc, k]
        s = st.pagemap[addr >> shift]
        idx = ((addr - spans[s, SP_BASE]) * spans[s, SP_DIVMAGIC]) >> 32
        w = s * W + (idx >> 6)
        if spans[s, SP_OWNER] >= 0:
            atomic_add(st.freed, w, np.int64(1) << (idx & 63))
            continue
        st.allocbits[w] &= ~(U1 << np.uint64(idx & 63))
        c = spans[s, SP_ALLOCCOUNT] - 1
        spans[s, SP_ALLOCCOUNT] = c
        if c == 0:
            list_remove(st.lists, spans, s)
            ne += 1
            fb[p, spc, ne] = s
        elif spans[s, SP_LIST] != spc:
            list_remove(st.lists, spans, s)
            list_push_tail(st.lists, spans, spc, s)
    fb[p, spc, 0] = 0
    st.mc[p, MC_FB_TOTAL] -= n
    st.counters[p, X_FREE_BATCHES] += 1
    return ne


@kernel
def free_emptied(st, p, spc, ne):
    """Give the spans a batch emptied back to the heap (after the class lock is dropped: heap lock)."""
    for k in range(1, ne + 1):
        mheap_free_span(st, p, st.fbuf[p, spc, k])


@kernel
def mcentral_free_batch(st, p, spc):
    spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
    ne = sweep_batch_locked(st, p, spc)
    spin_unlock(st.locks, spc * 8)
    free_emptied(st, p, spc, ne)


@kernel
def mheap_alloc(st, p, npages, state, spc, elemsize, nelems, magic, owner):
    """mheap.alloc: before the heap would grow, sweep this P's batches (mheap.reclaim), then allocSpan."""
    if st.mc[p, MC_FB_TOTAL] > 0:
        s = mheap_alloc_span(st, p, npages, state, spc, elemsize, nelems, magic, owner, False)
        if s >= 0:
            return s
        mcentral_reclaim(st, p)
    return mheap_alloc_span(st, p, npages, state, spc, elemsize, nelems, magic, owner, True)


@kernel
def mcentral_reclaim(st, p):
    """mheap.reclaim's part here: sweep every batch of P before the heap grows."""
    for spc in range(st.cfg[C_NSPC]):
        if st.fbuf[p, spc, 0] > 0:
            mcentral_free_batch(st, p, spc)
