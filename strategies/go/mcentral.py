"""mcentral: the shared tier of one span class, and the free path that needs it.

Models src/runtime/mcentral.go (cacheSpan, uncacheSpan, grow); mcache.refill,
which calls them, is in mcache.py and mheap.alloc in mheap.py. See
__init__.py for an overview.

Each span class has one lock (``locks[spc * 8]``, LOCK_CENTRAL) and two
span lists: ``partial`` (spans with a free slot) and ``full``. Go's sets
are lock-free spanSets split into swept / unswept halves; here they are
doubly linked lists under the class lock (mspan.py), and a span on them is
always swept (see mgc.py), so one half each suffices.

State: lists partial[spc] = spc and full[spc] = nspc + spc; ``fbuf``, each
P's batches of freed slots per span class; PP_FREEBATCH_N of ``mc``
(defined in mheap.py, which reads it). Invariants (``check``):
    a span cached in an mcache (owner >= 0) is on no list
    every uncached small span is on partial[spc] iff 0 < allocCount < nelems,
        on full[spc] iff allocCount == nelems (gogc = 0; with gogc > 0 a span may
        sit on full with frees that the next sweep will find)
    with gogc = 0 an uncached span is swept: freeindex == 0 and freed == 0
    fbuf[p, spc, 0] = n, fbuf[p, spc, 1..n] = addresses of live slots P freed in spans of class
        spc and has not swept yet; n < free_batch; mc[p, PP_FREEBATCH_N] = sum over spc of n
        (a batched slot is still allocated in allocBits and not live: IN_USE left it at the free)

Batched frees (gogc = 0). Go never frees one object: the sweeper reclaims a
span's dead objects in one pass, and allocation never waits on a lock for
it. A model that took the class lock per explicit free took a central lock
on about every other operation of a free-heavy trace, and Ps sharing those
locks contended (docs/go-model.md has the figures). So a free of a slot in a
span this P does not cache goes into the P's batch for the span class, and
the batch is swept under one class-lock hold when it reaches ``free_batch``
entries, when the P refills that class (it holds the lock then anyway, and
its own dead slots become candidates for the very span it is about to take),
or before the heap would grow (mheap.reclaim: Go sweeps before it maps more).
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_CENTRAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.layout import (
    CFG_ALLOCBITS_WORDS, CFG_FREE_BATCH, CFG_GOGC, CFG_MALLOC_HEADER, CFG_NUM_SPANCLASSES, CFG_PAGE_SHIFT,
    X_BATCHED_FREES, X_FREE_BATCHES,
)
from alloclab.strategies.go.mgc import GC_HEAP_LIVE, PP_DEAD_BYTES, sweep_span
from alloclab.strategies.go.mheap import MHEAP_SWEEPGEN, PP_FREEBATCH_N, mheap_alloc, mheap_free_span
from alloclab.strategies.go.mspan import (
    MSPAN_SMALL, SPAN_ALLOCCOUNT, SPAN_BASE, SPAN_DIVMAGIC, SPAN_ELEMSIZE, SPAN_FREEINDEX, SPAN_LIST, SPAN_NELEMS,
    SPAN_OWNER, SPAN_SPANCLASS, SPAN_STATE, SPAN_SWEEPGEN, list_push_tail, list_remove,
)

U1 = np.uint64(1)


@kernel
def mcentral_uncache(st, p, s):
    """uncacheSpan (class lock held): sweep if needed, then file the span; True = it is empty, free it."""
    spans = st.spans
    spans[s, SPAN_OWNER] = -1
    gogc = st.cfg[CFG_GOGC]
    if gogc > 0:
        # refill counted the span's free slots as live (gcController.update); give back the unused ones
        atomic_add(st.gl, GC_HEAP_LIVE, -(spans[s, SPAN_NELEMS] - spans[s, SPAN_ALLOCCOUNT]) * spans[s, SPAN_ELEMSIZE])
    if gogc == 0 or spans[s, SPAN_SWEEPGEN] != st.gl[MHEAP_SWEEPGEN]:
        sweep_span(st, p, s)
    n = spans[s, SPAN_ALLOCCOUNT]
    if n == 0:
        return True
    spc = spans[s, SPAN_SPANCLASS]
    if n < spans[s, SPAN_NELEMS]:
        list_push_tail(st.lists, spans, spc, s)
    else:
        list_push_tail(st.lists, spans, st.cfg[CFG_NUM_SPANCLASSES] + spc, s)
    return False


@kernel
def mcentral_grow(st, p, spc):
    """mcentral.grow: a fresh span of the class from the heap, every slot free."""
    sc = spc >> 1
    s = mheap_alloc(st, p, st.t_npages[sc], MSPAN_SMALL, spc, st.t_size[sc], st.t_nelems[sc],
                         st.t_magic[sc], p)
    if s < 0:
        return -1
    W = st.cfg[CFG_ALLOCBITS_WORDS]
    half = st.freed.shape[0] >> 1    # the unmarked bitmap (mgc.py)
    for w in range(s * W, s * W + ((st.t_nelems[sc] + 63) >> 6)):
        st.allocbits[w] = 0
        st.freed[w] = 0
        st.freed[half + w] = 0
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
    gogc = st.cfg[CFG_GOGC]
    if gogc > 0 or spans[s, SPAN_OWNER] == p:
        idx = ((addr - spans[s, SPAN_BASE]) * spans[s, SPAN_DIVMAGIC]) >> 32
        atomic_add(st.freed, s * st.cfg[CFG_ALLOCBITS_WORDS] + (idx >> 6), np.int64(1) << (idx & 63))
        if gogc > 0:
            st.mc[p, PP_DEAD_BYTES] += spans[s, SPAN_ELEMSIZE]
    else:
        spc = spans[s, SPAN_SPANCLASS]
        fb = st.fbuf
        n = fb[p, spc, 0] + 1
        fb[p, spc, n] = addr
        fb[p, spc, 0] = n
        st.mc[p, PP_FREEBATCH_N] += 1
        st.counters[p, X_BATCHED_FREES] += 1
        if n >= st.cfg[CFG_FREE_BATCH]:
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
    W = st.cfg[CFG_ALLOCBITS_WORDS]
    shift = st.cfg[CFG_PAGE_SHIFT]
    n = fb[p, spc, 0]
    ne = 0
    for k in range(1, n + 1):
        addr = fb[p, spc, k]
        s = st.pagemap[addr >> shift]
        idx = ((addr - spans[s, SPAN_BASE]) * spans[s, SPAN_DIVMAGIC]) >> 32
        w = s * W + (idx >> 6)
        if spans[s, SPAN_OWNER] >= 0:
            atomic_add(st.freed, w, np.int64(1) << (idx & 63))
            continue
        st.allocbits[w] &= ~(U1 << np.uint64(idx & 63))
        c = spans[s, SPAN_ALLOCCOUNT] - 1
        spans[s, SPAN_ALLOCCOUNT] = c
        if c == 0:
            list_remove(st.lists, spans, s)
            ne += 1
            fb[p, spc, ne] = s
        elif spans[s, SPAN_LIST] != spc:
            list_remove(st.lists, spans, s)
            list_push_tail(st.lists, spans, spc, s)
    fb[p, spc, 0] = 0
    st.mc[p, PP_FREEBATCH_N] -= n
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
def mcentral_reclaim(st, p):
    """mheap.reclaim's part here: sweep every batch of P before the heap grows."""
    for spc in range(st.cfg[CFG_NUM_SPANCLASSES]):
        if st.fbuf[p, spc, 0] > 0:
            mcentral_free_batch(st, p, spc)


# ------------------------------------------------------------------ check (host side)

def check(st, census, errs: list[str]) -> None:
    """The invariants of the module docstring. Takes each batched slot out of ``census.live``."""
    cfg = st.cfg
    nprocs, nspc = st.mc.shape[0], int(cfg[CFG_NUM_SPANCLASSES])
    shift, spans = int(cfg[CFG_PAGE_SHIFT]), st.spans
    batched: dict[int, list[int]] = {}
    for p in range(nprocs):
        total = 0
        for spc in range(nspc):
            n = int(st.fbuf[p, spc, 0])
            total += n
            if not 0 <= n < max(int(cfg[CFG_FREE_BATCH]), 1):
                errs.append(f"P{p}: free batch of class {spc} holds {n} entries")
                continue
            for addr in st.fbuf[p, spc, 1:n + 1].tolist():
                s = int(st.pagemap[addr >> shift]) if 0 <= addr >> shift < st.pagemap.shape[0] else -1
                if s < 0 or int(spans[s, SPAN_SPANCLASS]) != spc or int(spans[s, SPAN_STATE]) != MSPAN_SMALL:
                    errs.append(f"P{p}: batched free {addr} is not in a span of class {spc}")
                    continue
                batched.setdefault(s, []).append(addr)
        if total != int(st.mc[p, PP_FREEBATCH_N]):
            errs.append(f"P{p}: {total} batched frees but PP_FREEBATCH_N says {int(st.mc[p, PP_FREEBATCH_N])}")
    gogc, hdr, page = int(cfg[CFG_GOGC]), int(cfg[CFG_MALLOC_HEADER]), 1 << shift
    for s in census.by_state[MSPAN_SMALL]:
        row, live, tag = spans[s], census.live[s], f"span {s}"
        esize, spc = int(row[SPAN_ELEMSIZE]), int(row[SPAN_SPANCLASS])
        for addr in batched.get(s, ()):
            i = (addr - s * page) // esize       # the address of a pointerful object is past its header
            if (addr - s * page) % esize not in (0, hdr) or not live[i]:
                errs.append(f"{tag}: batched free {addr} is not a live slot (twice, or misplaced)")
            live[i] = False
        owner, li = int(row[SPAN_OWNER]), int(row[SPAN_LIST])
        if owner >= 0:        # mcache.check: and that P's mcache holds it
            if li != -1:
                errs.append(f"{tag}: cached by P{owner} and on mcentral list {li}")
        elif li not in (spc, nspc + spc):
            errs.append(f"{tag}: uncached but on no list of its class (list {li})")
        elif gogc == 0:
            fi, cnt, nel = int(row[SPAN_FREEINDEX]), int(row[SPAN_ALLOCCOUNT]), int(row[SPAN_NELEMS])
            if fi != 0 or census.freed[s].any():
                errs.append(f"{tag}: uncached but not swept (freeindex {fi})")
            if (li == spc) != (cnt < nel):
                errs.append(f"{tag}: on the {'partial' if li == spc else 'full'} list with {cnt}/{nel} allocated")
