"""mheap: the page heap. Page allocator, per-P page caches, span records, page->span map, growth.

Models src/runtime/mheap.go (mheap.alloc, allocSpan, freeSpanLocked, grow,
setSpans), src/runtime/mpagealloc.go (pageAlloc.alloc / free, searchAddr)
and src/runtime/mpagecache.go (pageCache, allocToCache). See __init__.py for
an overview and the departures from Go; the span record itself is mspan.py.

Locking: everything here that touches the page bitmap (``pa``), the search
hint or growth runs under the heap lock (LOCK_GLOBAL), as Go's h.lock. A P's
page cache is its own: allocating from it needs no lock, which is the point
of the cache. Span records are rows of ``spans`` indexed by the span's first
page, so creating a span allocates nothing (Go takes an mspan from the P's
mspancache or from fixalloc under the heap lock).

State: the MHEAP_* words of ``gl``, the page bitmap ``pa`` (bit i = 1: page i
is in a span, in a page cache, or not mapped), the page map ``pagemap``
(page -> span, -1 = none) and each P's page cache (PP_PCACHE_* of ``mc``).
Invariants (``check``):
    pages [0, MHEAP_PAGES_END) are the mapped bytes, page by page
    pages of spans + free pages + pages in page caches == mapped pages
    pa bit i == (page i is in a span or in a page cache)
    MHEAP_FREE_PAGES == clear bits of pa;  every page below searchAddr is allocated
    MHEAP_SPAN_PAGES == pages of spans <= MHEAP_SPAN_PAGES_PEAK
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import LOCK_GLOBAL
from alloclab.strategies._heap import MAPPED, heap_map, heap_round
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import bits_of, ctz64, find_bit_range64, low_mask, popcount64
from alloclab.strategies.go.layout import (
    CFG_ARENA_BYTES, CFG_GROWTH_PAGES, CFG_NUM_SPANCLASSES, CFG_PAGE_CACHE_MAX_NPAGES, CFG_PAGE_CACHE_PAGES,
    CFG_PAGE_SHIFT, CFG_PAGE_SIZE, LK_HEAP, X_GROWS, X_PC_HITS, X_PC_REFILLS, X_SPANS_RETURNED,
)
from alloclab.strategies.go.mspan import (
    MSPAN_DEAD, SPAN_ALLOCCACHE, SPAN_ALLOCCOUNT, SPAN_AUX, SPAN_BASE, SPAN_DIVMAGIC, SPAN_ELEMSIZE, SPAN_FREEINDEX,
    SPAN_LIST, SPAN_NELEMS, SPAN_NEXT, SPAN_NPAGES, SPAN_OWNER, SPAN_PREV, SPAN_SPANCLASS, SPAN_STATE, SPAN_SWEEPGEN,
)

# ---------------------------------------------------------------- gl: mheap_ words, one per cache line
MHEAP_SWEEPGEN = 0 * 8
MHEAP_SEARCHADDR = 4 * 8      # pageAlloc.searchAddr as a page index (heap lock)
MHEAP_PAGES_END = 5 * 8       # pages [0, end) are mapped and known to the page allocator (heap lock)
MHEAP_FREE_PAGES = 6 * 8      # free pages in the page allocator, not counting page caches (heap lock)
MHEAP_ARENA_END = 7 * 8       # end of reserved arenas in bytes (heap lock)
MHEAP_ARENAS = 8 * 8
MHEAP_SPAN_PAGES = 12 * 8     # pages in spans (Go: HeapInuse + StackInuse, in pages); atomic
MHEAP_SPAN_PAGES_PEAK = 13 * 8  # its peak (exact in serial replay; a racy max in threads mode)

# ---------------------------------------------------------------- mc: the P's page cache (Go: p.pcache)
PP_PCACHE_BASE = 2            # pageCache.base (page index), -1 = none
PP_PCACHE_CACHE = 3           # pageCache.cache (1 = free), read through the uint64 view (mcu)
PP_FREEBATCH_N = 10           # frees waiting in this P's mcentral batches (mcentral.py), all classes:
                              # mheap_alloc sweeps them before the heap grows

FULL = ~np.uint64(0)
U1 = np.uint64(1)


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
    end = gl[MHEAP_PAGES_END]
    i = gl[MHEAP_SEARCHADDR]
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
        gl[MHEAP_SEARCHADDR] = end if first_free < 0 else first_free
        return -1
    pa_mark(pa, start, npages, True)
    # every page below searchAddr is allocated: below first_free they were, and [start, start+n) now are
    gl[MHEAP_SEARCHADDR] = start + npages if start == first_free else first_free
    gl[MHEAP_FREE_PAGES] -= npages
    return start


@kernel
def pages_free(st, start, npages):
    """pageAlloc.free; heap lock held."""
    pa_mark(st.pa, start, npages, False)
    st.gl[MHEAP_FREE_PAGES] += npages
    if start < st.gl[MHEAP_SEARCHADDR]:
        st.gl[MHEAP_SEARCHADDR] = start


@kernel
def mheap_grow(st, p, npages):
    """mheap.grow: map whole growth steps (pallocChunkPages, 4 MiB) from the current arena; heap lock held."""
    cfg = st.cfg
    shift = cfg[CFG_PAGE_SHIFT]
    g = cfg[CFG_GROWTH_PAGES]
    ask = (npages + g - 1) // g * g
    a = heap_map(st.meta, ask << shift)
    if a < 0:
        return False
    got = heap_round(st.meta, ask << shift) >> shift
    first = a >> shift
    gl = st.gl
    # arenas are reserved in heapArenaBytes units; the model's mapping is contiguous, so only the count moves
    while gl[MHEAP_ARENA_END] < (first + got) << shift:
        gl[MHEAP_ARENA_END] += cfg[CFG_ARENA_BYTES]
        gl[MHEAP_ARENAS] += 1
    if first + got > gl[MHEAP_PAGES_END]:
        gl[MHEAP_PAGES_END] = first + got
    pages_free(st, first, got)
    st.counters[p, X_GROWS] += 1
    return True


# ------------------------------------------------------------------ page cache (mpagecache.go)

@kernel
def pcache_refill(st, p):
    """pageAlloc.allocToCache: take the aligned chunk around the first free page; heap lock held."""
    pa = st.pa
    gl = st.gl
    end = gl[MHEAP_PAGES_END]
    i = gl[MHEAP_SEARCHADDR]
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
        gl[MHEAP_SEARCHADDR] = end
        return False
    npc = st.cfg[CFG_PAGE_CACHE_PAGES]
    chunk = f & ~(npc - 1)
    sh = np.uint64(chunk & 63)
    w = pa[chunk >> 6]
    bits = (~w >> sh) & low_mask(npc)
    pa[chunk >> 6] = w | (bits << sh)
    gl[MHEAP_FREE_PAGES] -= popcount64(bits)
    gl[MHEAP_SEARCHADDR] = chunk + npc
    st.mc[p, PP_PCACHE_BASE] = chunk
    st.mcu[p, PP_PCACHE_CACHE] = bits
    return True


@kernel(inline="always")
def pcache_alloc(st, p, npages):
    """pageCache.alloc: lock-free; page index or -1."""
    bits = st.mcu[p, PP_PCACHE_CACHE]
    if bits == 0:
        return -1
    if npages == 1:
        i = ctz64(bits)
    else:
        i = find_bit_range64(bits, npages)
        if i >= 64:
            return -1
    st.mcu[p, PP_PCACHE_CACHE] = bits & ~(low_mask(npages) << np.uint64(i))
    return st.mc[p, PP_PCACHE_BASE] + i


@kernel(inline="always")
def heap_lock_index(st):
    return (st.cfg[CFG_NUM_SPANCLASSES] + LK_HEAP) * 8


@kernel
def mheap_alloc_pages(st, p, npages, may_grow):
    """The page half of mheap.allocSpan: page cache for small requests, else the heap lock. Page index or -1.

    ``may_grow`` False: -1 rather than map more (the caller reclaims first, mheap_alloc)."""
    cfg = st.cfg
    lk = heap_lock_index(st)
    if cfg[CFG_PAGE_CACHE_PAGES] > 0 and npages < cfg[CFG_PAGE_CACHE_MAX_NPAGES]:
        if st.mcu[p, PP_PCACHE_CACHE] == 0:
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
    spans[s, SPAN_BASE] = s << st.cfg[CFG_PAGE_SHIFT]
    spans[s, SPAN_NPAGES] = npages
    spans[s, SPAN_SPANCLASS] = spc
    spans[s, SPAN_ELEMSIZE] = elemsize
    spans[s, SPAN_NELEMS] = nelems
    spans[s, SPAN_FREEINDEX] = 0
    spans[s, SPAN_ALLOCCOUNT] = 0
    spans[s, SPAN_DIVMAGIC] = magic
    spans[s, SPAN_OWNER] = owner
    st.spans_u[s, SPAN_ALLOCCACHE] = FULL
    spans[s, SPAN_NEXT] = -1
    spans[s, SPAN_PREV] = -1
    spans[s, SPAN_LIST] = -1
    spans[s, SPAN_SWEEPGEN] = st.gl[MHEAP_SWEEPGEN]
    spans[s, SPAN_AUX] = -1
    spans[s, SPAN_STATE] = state
    for i in range(s, s + npages):
        st.pagemap[i] = s
    # the finer memory measure: peak mapped moves in 4 MiB growth steps, this in pages
    inuse = atomic_add(st.gl, MHEAP_SPAN_PAGES, npages) + npages
    if inuse > st.gl[MHEAP_SPAN_PAGES_PEAK]:
        st.gl[MHEAP_SPAN_PAGES_PEAK] = inuse


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
    npages = st.spans[s, SPAN_NPAGES]
    st.spans[s, SPAN_STATE] = MSPAN_DEAD
    st.spans[s, SPAN_OWNER] = -1
    for i in range(s, s + npages):
        st.pagemap[i] = -1
    atomic_add(st.gl, MHEAP_SPAN_PAGES, -npages)
    lk = heap_lock_index(st)
    spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
    pages_free(st, s, npages)
    spin_unlock(st.locks, lk)
    st.counters[p, X_SPANS_RETURNED] += 1


@kernel
def mheap_alloc(st, p, npages, state, spc, elemsize, nelems, magic, owner):
    """mheap.alloc: before the heap would grow, sweep this P's batches (mheap.reclaim), then allocSpan."""
    if st.mc[p, PP_FREEBATCH_N] > 0:
        s = mheap_alloc_span(st, p, npages, state, spc, elemsize, nelems, magic, owner, False)
        if s >= 0:
            return s
        mcentral.mcentral_reclaim(st, p)
    return mheap_alloc_span(st, p, npages, state, spc, elemsize, nelems, magic, owner, True)


# ------------------------------------------------------------------ check (host side)

def check(st, census, errs: list[str]) -> None:
    """The page invariants of the module docstring; ``census`` is mspan.check's."""
    page, gl = int(st.cfg[CFG_PAGE_SIZE]), st.gl
    nprocs = st.mc.shape[0]
    end = int(gl[MHEAP_PAGES_END])
    if end * page != int(st.meta[MAPPED]):
        errs.append(f"page allocator covers {end} pages but {int(st.meta[MAPPED])} bytes are mapped")
    covered = census.covered
    pa_alloc = bits_of(st.pa, end) if end else np.zeros(0, bool)
    pc = np.zeros(end, bool)
    for p in range(nprocs):
        bits = int(st.mcu[p, PP_PCACHE_CACHE])
        base = int(st.mc[p, PP_PCACHE_BASE])
        for i in range(64):
            if bits >> i & 1:
                if not (0 <= base + i < end) or pc[base + i]:
                    errs.append(f"P{p}: page cache holds page {base + i} twice or outside the heap")
                    continue
                pc[base + i] = True
    if (pc & covered).any():
        errs.append("a page is both in a page cache and in a span")
    if (pa_alloc != (covered | pc)).any():
        errs.append("page bitmap disagrees with spans + page caches")
    nfree = int((~pa_alloc).sum())
    if nfree != int(gl[MHEAP_FREE_PAGES]):
        errs.append(f"free page count {int(gl[MHEAP_FREE_PAGES])} != {nfree} clear bits")
    if int(covered.sum()) != int(gl[MHEAP_SPAN_PAGES]) or int(gl[MHEAP_SPAN_PAGES]) > int(gl[MHEAP_SPAN_PAGES_PEAK]):
        errs.append(f"span page count {int(gl[MHEAP_SPAN_PAGES])} (peak {int(gl[MHEAP_SPAN_PAGES_PEAK])}) != "
                    f"{int(covered.sum())} pages in spans")
    if int(covered.sum()) + nfree + int(pc.sum()) != end:
        errs.append("spans + free pages + page-cache pages != mapped pages")
    search = int(gl[MHEAP_SEARCHADDR])
    if end and search < end and pa_alloc[:search].sum() != min(search, end):
        errs.append("a free page lies below searchAddr")


# mheap.alloc calls back up into mcentral (reclaim sweeps the P's free batches, which frees spans
# through this file), as Go's mheap.go and mgcsweep.go call each other; the import comes last so
# that either module may be imported first. numba resolves mcentral.mcentral_reclaim when it compiles.
from alloclab.strategies.go import mcentral  # noqa: E402
