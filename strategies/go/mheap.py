"""The page heap: page allocator, per-P page caches, span records, page->span map, growth.

Models src/runtime/mheap.go (allocSpan, freeSpanLocked, grow, setSpans,
mSpanList), src/runtime/mpagealloc.go (pageAlloc.alloc / free, searchAddr)
and src/runtime/mpagecache.go (pageCache, allocToCache). See the package
docstring for the overview and the departures from Go.

Locking: everything here that touches the page bitmap (``pa``), the search
hint or growth runs under the heap lock (LOCK_GLOBAL), as Go's h.lock. A P's
page cache is its own: allocating from it needs no lock, which is the point
of the cache. Span records are rows of ``spans`` indexed by the span's first
page, so creating a span allocates nothing (Go takes an mspan from the P's
mspancache or from fixalloc under the heap lock).
"""
from __future__ import annotations

import numpy as np
from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_GLOBAL
from alloclab.strategies._heap import heap_map, heap_round
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import ctz64, find_bit_range64, low_mask, popcount64
from alloclab.strategies.go.layout import (
    C_ARENA_BYTES, C_GROWTH_PAGES, C_NSPC, C_PAGE_SHIFT, C_PCACHE_MAXN, C_PCACHE_PAGES,
    GL_ARENA_END, GL_ARENAS, GL_FREE_PAGES, GL_PAGES_END, GL_SEARCH, GL_SPAN_PAGES, GL_SPAN_PAGES_PEAK, GL_SWEEPGEN,
    L_HEAD, L_LEN, L_TAIL, LK_HEAP, MC_PC_BASE, MC_PC_BITS,
    SP_ALLOCCACHE, SP_ALLOCCOUNT, SP_AUX, SP_BASE, SP_DIVMAGIC, SP_ELEMSIZE, SP_FREEINDEX,
    SP_LIST, SP_NELEMS, SP_NEXT, SP_NPAGES, SP_OWNER, SP_PREV, SP_SPC, SP_STATE, SP_SWEEPGEN,
    SPAN_FREE, X_GROWS, X_PC_HITS, X_PC_REFILLS, X_SPANS_RETURNED,
)

FULL = ~np.uint64(0)
U1 = np.uint64(1)


# ------------------------------------------------------------------ mSpanList (mheap.go)
# Doubly linked lists of span records: mcentral's partial/full sets and the
# stack pools. The caller holds the lock that guards the list.

@kernel(inline="always")
def list_push_tail(lists, spans, li, s):
    t = lists[li, L_TAIL]
    spans[s, SP_PREV] = t
    spans[s, SP_NEXT] = -1
    spans[s, SP_LIST] = li
    if t >= 0:
        spans[t, SP_NEXT] = s
    else:
        lists[li, L_HEAD] = s
    lists[li, L_TAIL] = s
    lists[li, L_LEN] += 1


@kernel(inline="always")
def list_push_head(lists, spans, li, s):
    h = lists[li, L_HEAD]
    spans[s, SP_NEXT] = h
    spans[s, SP_PREV] = -1
    spans[s, SP_LIST] = li
    if h >= 0:
        spans[h, SP_PREV] = s
    else:
        lists[li, L_TAIL] = s
    lists[li, L_HEAD] = s
    lists[li, L_LEN] += 1


@kernel(inline="always")
def list_remove(lists, spans, s):
    li = spans[s, SP_LIST]
    n = spans[s, SP_NEXT]
    pv = spans[s, SP_PREV]
    if pv >= 0:
        spans[pv, SP_NEXT] = n
    else:
        lists[li, L_HEAD] = n
    if n >= 0:
        spans[n, SP_PREV] = pv
    else:
        lists[li, L_TAIL] = pv
    lists[li, L_LEN] -= 1
    spans[s, SP_LIST] = -1
    spans[s, SP_NEXT] = -1
    spans[s, SP_PREV] = -1


@kernel(inline="always")
def list_pop_head(lists, spans, li):
    s = lists[li, L_HEAD]
    if s >= 0:
        list_remove(lists, spans, s)
    return s


# ------------------------------------------------------------------ page bitmap (mpagealloc.go)
# pa bit i = 1: page i is allocated (to a span or a page cache) or not mapped.

@kernel
def pa_mark(pa, start, n, allocated):
    i = start
    end = start + n
    while i < end:
        sh = i & 63
        k = min(64 - sh, end - i)
        m = low_mask(k) << np.uint64(sh)
        if allocated:
            pa[i >> 6] |= m
        else:
            pa[i >> 6] &= ~m
        i += k


@kernel
def pages_alloc(st, npages):
    """First fit at the lowest address from searchAddr (pageAlloc.alloc); heap lock held. Page index or -1."""
    pa = st.pa
    gl = st.gl
    end = gl[GL_PAGES_END]
    i = gl[GL_SEARCH]
    first_free = -1
    run = 0
    start = -1
    while i < end:
        if (i & 63) == 0 and i + 64 <= end:
            w = pa[i >> 6]
            if w == FULL:
                run = 0
                i += 64
                continue
            if w == 0:
                if first_free < 0:
                    first_free = i
                if run + 64 >= npages:
                    start = i - run
                    break
                run += 64
                i += 64
                continue
        if (pa[i >> 6] >> np.uint64(i & 63)) & U1:
            run = 0
        else:
            if first_free < 0:
                first_free = i
            run += 1
            if run == npages:
                start = i - npages + 1
                break
        i += 1
    if start < 0:
        gl[GL_SEARCH] = end if first_free < 0 else first_free
        return -1
    pa_mark(pa, start, npages, True)
    # every page below searchAddr is allocated: below first_free they were, and [start, start+n) now are
    gl[GL_SEARCH] = start + npages if start == first_free else first_free
    gl[GL_FREE_PAGES] -= npages
    return start


@kernel
def pages_free(st, start, npages):
    """pageAlloc.free; heap lock held."""
    pa_mark(st.pa, start, npages, False)
    st.gl[GL_FREE_PAGES] += npages
    if start < st.gl[GL_SEARCH]:
        st.gl[GL_SEARCH] = start


@kernel
def mheap_grow(st, p, npages):
    """mheap.grow: map whole growth steps (pallocChunkPages, 4 MiB) from the current arena; heap lock held."""
    cfg = st.cfg
    shift = cfg[C_PAGE_SHIFT]
    g = cfg[C_GROWTH_PAGES]
    ask = (npages + g - 1) // g * g
    a = heap_map(st.meta, ask << shift)
    if a < 0:
        return False
    got = heap_round(st.meta, ask << shift) >> shift
    first = a >> shift
    gl = st.gl
    # arenas are reserved in heapArenaBytes units; the model's mapping is contiguous, so only the count moves
    while gl[GL_ARENA_END] < (first + got) << shift:
        gl[GL_ARENA_END] += cfg[C_ARENA_BYTES]
        gl[GL_ARENAS] += 1
    if first + got > gl[GL_PAGES_END]:
        gl[GL_PAGES_END] = first + got
    pages_free(st, first, got)
    st.counters[p, X_GROWS] += 1
    return True


# ------------------------------------------------------------------ page cache (mpagecache.go)

@kernel
def pcache_refill(st, p):
    """pageAlloc.allocToCache: take the aligned chunk around the first free page; heap lock held."""
    pa = st.pa
    gl = st.gl
    end = gl[GL_PAGES_END]
    i = gl[GL_SEARCH]
    f = -1
    while i < end:
        w = pa[i >> 6]
        if w == FULL:
            i = (i | 63) + 1
            continue
        free_bits = ~w >> np.uint64(i & 63)
        if free_bits != 0:
            f = i + ctz64(free_bits)
            break
        i = (i | 63) + 1
    if f < 0 or f >= end:
        gl[GL_SEARCH] = end
        return False
    npc = st.cfg[C_PCACHE_PAGES]
    chunk = f & ~(npc - 1)
    sh = np.uint64(chunk & 63)
    w = pa[chunk >> 6]
    bits = (~w >> sh) & low_mask(npc)
    pa[chunk >> 6] = w | (bits << sh)
    gl[GL_FREE_PAGES] -= popcount64(bits)
    gl[GL_SEARCH] = chunk + npc
    st.mc[p, MC_PC_BASE] = chunk
    st.mcu[p, MC_PC_BITS] = bits
    return True


@kernel(inline="always")
def pcache_alloc(st, p, npages):
    """pageCache.alloc: lock-free; page index or -1."""
    bits = st.mcu[p, MC_PC_BITS]
    if bits == 0:
        return -1
    if npages == 1:
        i = ctz64(bits)
    else:
        i = find_bit_range64(bits, npages)
        if i >= 64:
            return -1
    st.mcu[p, MC_PC_BITS] = bits & ~(low_mask(npages) << np.uint64(i))
    return st.mc[p, MC_PC_BASE] + i


@kernel(inline="always")
def heap_lock_index(st):
    return (st.cfg[C_NSPC] + LK_HEAP) * 8


@kernel
def mheap_alloc_pages(st, p, npages, may_grow):
    """The page half of mheap.allocSpan: page cache for small requests, else the heap lock. Page index or -1.

    ``may_grow`` False: -1 rather than map more (the caller reclaims first, mcentral.mheap_alloc)."""
    cfg = st.cfg
    lk = heap_lock_index(st)
    if cfg[C_PCACHE_PAGES] > 0 and npages < cfg[C_PCACHE_MAXN]:
        if st.mcu[p, MC_PC_BITS] == 0:
            spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
            if pcache_refill(st, p):
                st.counters[p, X_PC_REFILLS] += 1
            spin_unlock(st.locks, lk)
        pg = pcache_alloc(st, p, npages)
        if pg >= 0:
            st.counters[p, X_PC_HITS] += 1
            return pg
    spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
    pg = pages_alloc(st, npages)
    if pg < 0 and may_grow:
        if mheap_grow(st, p, npages):
            pg = pages_alloc(st, npages)
    spin_unlock(st.locks, lk)
    return pg


@kernel
def span_init(st, s, npages, state, spc, elemsize, nelems, magic, owner):
    """mspan.init + setSpans: the span's record is the row of its first page ``s``."""
    spans = st.spans
    spans[s, SP_BASE] = s << st.cfg[C_PAGE_SHIFT]
    spans[s, SP_NPAGES] = npages
    spans[s, SP_SPC] = spc
    spans[s, SP_ELEMSIZE] = elemsize
    spans[s, SP_NELEMS] = nelems
    spans[s, SP_FREEINDEX] = 0
    spans[s, SP_ALLOCCOUNT] = 0
    spans[s, SP_DIVMAGIC] = magic
    spans[s, SP_OWNER] = owner
    st.spans_u[s, SP_ALLOCCACHE] = FULL
    spans[s, SP_NEXT] = -1
    spans[s, SP_PREV] = -1
    spans[s, SP_LIST] = -1
    spans[s, SP_SWEEPGEN] = st.gl[GL_SWEEPGEN]
    spans[s, SP_AUX] = -1
    spans[s, SP_STATE] = state
    for i in range(s, s + npages):
        st.pagemap[i] = s
    # the finer memory measure: peak mapped moves in 4 MiB growth steps, this in pages
    inuse = atomic_add(st.gl, GL_SPAN_PAGES, npages) + npages
    if inuse > st.gl[GL_SPAN_PAGES_PEAK]:
        st.gl[GL_SPAN_PAGES_PEAK] = inuse


@kernel
def mheap_alloc_span(st, p, npages, state, spc, elemsize, nelems, magic, owner, may_grow):
    """mheap.allocSpan: pages plus an initialised span record; span id (= first page) or -1."""
    pg = mheap_alloc_pages(st, p, npages, may_grow)
    if pg < 0:
        return -1
    span_init(st, pg, npages, state, spc, elemsize, nelems, magic, owner)
    return pg


@kernel
def mheap_free_span(st, p, s):
    """mheap.freeSpan: the span's pages go back to the page allocator (not to a page cache)."""
    npages = st.spans[s, SP_NPAGES]
    st.spans[s, SP_STATE] = SPAN_FREE
    st.spans[s, SP_OWNER] = -1
    for i in range(s, s + npages):
        st.pagemap[i] = -1
    atomic_add(st.gl, GL_SPAN_PAGES, -npages)
    lk = heap_lock_index(st)
    spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
    pages_free(st, s, npages)
    spin_unlock(st.locks, lk)
    st.counters[p, X_SPANS_RETURNED] += 1
