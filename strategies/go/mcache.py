"""mcache: the per-P tier. mallocgc's small, tiny and large paths, and their frees.

Models src/runtime/malloc.go (mallocgc, the tiny allocator, nextFree) and
src/runtime/mcache.go (alloc[spanClass], allocLarge, releaseAll). See the
package docstring for the overview and the departures from Go.

Everything in a P's ``mc`` row is that P's alone: no lock, no atomic. The
exceptions are shared on purpose and say so: tiny-block reference counts
(other Ps free sub-objects) and the span fields a free may touch (mcentral.py).
"""
from __future__ import annotations

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import FAST_HITS, IN_USE, LOCK_CENTRAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import atomic_add_i8
from alloclab.strategies.go.layout import (
    C_DUMMY, C_GOGC, C_HEADER, C_HEADER_MIN, C_SMALL_LIMIT, C_LARGE_DIV, C_NSPC, C_PAGE_SHIFT, C_PAGE_SIZE, C_SMALL_DIV,
    C_SMALL_SIZE_MAX, C_TINY, C_TINY_SHIFT, C_TINY_SPC, GL_HEAP_LIVE, GL_SWEEPGEN, MC_ALLOC, MC_DEAD,
    MC_FLUSHGEN, MC_TINY, MC_TINYOFF, SP_ALLOCCOUNT, SP_AUX, SP_BASE, SP_ELEMSIZE, SP_FREEINDEX, SP_NELEMS,
    SP_NPAGES, SPAN_LARGE, X_LARGE, X_NEXT_FREE, X_NFF, X_TINY, X_TINY_BLOCKS,
)
from alloclab.strategies.go.mbitmap import next_free_fast, next_free_index
from alloclab.strategies.go.mcentral import free_small_slot, mcache_refill, mcentral_uncache, mheap_alloc
from alloclab.strategies.go.mgc import maybe_gc
from alloclab.strategies.go.mheap import list_push_tail, mheap_free_span


@kernel(inline="always")
def size_to_class(st, size):
    """malloc.go: size_to_class8 up to smallSizeMax-8, size_to_class128 above."""
    cfg = st.cfg
    ssm = cfg[C_SMALL_SIZE_MAX]
    if size <= ssm - 8:
        d = cfg[C_SMALL_DIV]
        return st.t_c8[(size + (1 << d) - 1) >> d]
    d = cfg[C_LARGE_DIV]
    return st.t_c128[(size - ssm + (1 << d) - 1) >> d]


@kernel(inline="always")
def mcache_next_free(st, p, spc):
    """mcache.nextFree: the next slot via nextFreeIndex, refilling the span when it is full; -1 = OOM."""
    s = st.mc[p, MC_ALLOC + spc]
    idx = next_free_index(st, s)
    if idx == st.spans[s, SP_NELEMS]:
        s = mcache_refill(st, p, spc)
        if s < 0:
            return -1
        idx = next_free_index(st, s)
    else:
        st.counters[p, X_NEXT_FREE] += 1
        st.counters[p, FAST_HITS] += 1
    st.spans[s, SP_ALLOCCOUNT] += 1
    return st.spans[s, SP_BASE] + idx * st.spans[s, SP_ELEMSIZE]


@kernel(inline="always")
def malloc_spc(st, p, spc):
    """One slot of span class ``spc`` from P's mcache: nextFreeFast, else nextFree."""
    v = next_free_fast(st, st.mc[p, MC_ALLOC + spc])
    if v >= 0:
        st.counters[p, X_NFF] += 1
        st.counters[p, FAST_HITS] += 1
        return v
    return mcache_next_free(st, p, spc)


@kernel(inline="always")
def tiny_release(st, p, blk, d):
    """Drop ``d`` from a tiny block's count (2 per live sub-object, 1 for the mcache's hold).

    The block's slot is freed when nothing holds it: Go frees a tiny block when
    no sub-object is reachable and gcmarkTinyAllocs no longer marks it as
    some P's current block.
    """
    old = atomic_add_i8(st.tinyref, blk >> st.cfg[C_TINY_SHIFT], -d)
    new = old - d
    if d == 2 and new < 2:
        st.counters[p, IN_USE] -= st.cfg[C_TINY]
    if new == 0:
        tiny_block_free(st, p, blk)


@kernel(inline="always")
def tiny_block_free(st, p, blk):
    free_small_slot(st, p, st.pagemap[blk >> st.cfg[C_PAGE_SHIFT]], blk)


@kernel(inline="always")
def malloc_tiny(st, p, size):
    """The tiny allocator (malloc.go): noscan objects below C_TINY bytes share C_TINY-byte blocks."""
    cfg = st.cfg
    tsize = cfg[C_TINY]
    off = st.mc[p, MC_TINYOFF]
    # Go aligns by the size's low bits (8, 4, 2, else 1: a 9-byte string may sit at an odd offset),
    # exactly as here below 16 B; with a tiny block over Go's 16 B (tiny_size 32), objects of 16 B or
    # more align to 8, the alignment Go guarantees every object of that size
    if size & 7 == 0 or size >= 16:
        off = (off + 7) & ~7
    elif size & 3 == 0:
        off = (off + 3) & ~3
    elif size & 1 == 0:
        off = (off + 1) & ~1
    tiny = st.mc[p, MC_TINY]
    if off + size <= tsize and tiny >= 0:
        st.mc[p, MC_TINYOFF] = off + size
        if atomic_add_i8(st.tinyref, tiny >> cfg[C_TINY_SHIFT], 2) < 2:
            st.counters[p, IN_USE] += tsize
        st.counters[p, X_TINY] += 1
        st.counters[p, FAST_HITS] += 1
        return tiny + off
    return malloc_tiny_block(st, p, size, tiny)


@kernel(inline="always")
def malloc_tiny_block(st, p, size, tiny):
    """A new tiny block; it becomes the P's current block if it leaves more room than the old one."""
    cfg = st.cfg
    tsize = cfg[C_TINY]
    v = malloc_spc(st, p, cfg[C_TINY_SPC])
    if v < 0:
        return -1
    st.counters[p, X_TINY_BLOCKS] += 1
    st.counters[p, IN_USE] += tsize
    # keep the block that has more room left (Go compares with the old tinyoffset, unaligned)
    if size < st.mc[p, MC_TINYOFF] or tiny < 0:
        st.tinyref[v >> cfg[C_TINY_SHIFT]] = 3  # a fresh slot: no other P can know it yet
        st.mc[p, MC_TINY] = v
        st.mc[p, MC_TINYOFF] = size
        if tiny >= 0:
            tiny_release(st, p, tiny, 1)
    else:
        st.tinyref[v >> cfg[C_TINY_SHIFT]] = 2
    return v


@kernel
def malloc_large(st, p, size, noscan):
    """mcache.allocLarge: a dedicated span of whole pages, class 0."""
    cfg = st.cfg
    shift = cfg[C_PAGE_SHIFT]
    npages = (size + cfg[C_PAGE_SIZE] - 1) >> shift
    nbytes = npages << shift
    s = mheap_alloc(st, p, npages, SPAN_LARGE, noscan, nbytes, 1, 0, -1)
    if s < 0:
        return -1
    st.spans[s, SP_FREEINDEX] = 1
    st.spans[s, SP_ALLOCCOUNT] = 1
    st.counters[p, X_LARGE] += 1
    st.counters[p, IN_USE] += nbytes
    if cfg[C_GOGC] > 0:
        # Go files large spans on mcentral[class 0].fullSwept so that the sweeper finds them
        spin_lock(st.locks, noscan * 8, st.counters, p, LOCK_CENTRAL)
        list_push_tail(st.lists, st.spans, cfg[C_NSPC] + noscan, s)
        spin_unlock(st.locks, noscan * 8)
        atomic_add(st.gl, GL_HEAP_LIVE, nbytes)
        maybe_gc(st, p)
    return s << shift


@kernel(inline="always")
def mallocgc(st, p, size, noscan):
    """mallocgc: tiny, small (size-classed) or large; returns the address or -1 (out of memory)."""
    cfg = st.cfg
    if size > cfg[C_SMALL_LIMIT]:
        return malloc_large(st, p, size, noscan)
    if noscan and size < cfg[C_TINY]:
        return malloc_tiny(st, p, size)
    hdr = 0
    if not noscan and size > cfg[C_HEADER_MIN]:
        hdr = cfg[C_HEADER]
    sc = size_to_class(st, size + hdr)
    v = malloc_spc(st, p, (sc << 1) | noscan)
    if v < 0:
        return -1
    st.counters[p, IN_USE] += st.t_size[sc]
    return v + hdr


@kernel(inline="always")
def freegc(st, p, addr, size, noscan):
    """The free that Go's sweeper performs for a dead object, done here when the trace frees it."""
    cfg = st.cfg
    if size > cfg[C_SMALL_LIMIT]:
        free_large(st, p, addr)
        return
    if noscan and size < cfg[C_TINY]:
        tiny_release(st, p, addr & ~(cfg[C_TINY] - 1), 2)
        return
    s = st.pagemap[addr >> cfg[C_PAGE_SHIFT]]
    st.counters[p, IN_USE] -= st.spans[s, SP_ELEMSIZE]
    free_small_slot(st, p, s, addr)


@kernel
def free_large(st, p, addr):
    cfg = st.cfg
    s = st.pagemap[addr >> cfg[C_PAGE_SHIFT]]
    nbytes = st.spans[s, SP_NPAGES] << cfg[C_PAGE_SHIFT]
    st.counters[p, IN_USE] -= nbytes
    if cfg[C_GOGC] > 0:
        st.spans[s, SP_AUX] = 1
        st.mc[p, MC_DEAD] += nbytes
    else:
        mheap_free_span(st, p, s)


@kernel
def mcache_release_all(st, p):
    """mcache.releaseAll via prepareForSweep: after a GC cycle, return every cached span (swept: stale)."""
    nspc = st.cfg[C_NSPC]
    dummy = st.cfg[C_DUMMY]
    for spc in range(nspc):
        s = st.mc[p, MC_ALLOC + spc]
        if s != dummy:
            spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
            empty = mcentral_uncache(st, p, s)
            spin_unlock(st.locks, spc * 8)
            if empty:
                mheap_free_span(st, p, s)
            st.mc[p, MC_ALLOC + spc] = dummy
    tiny = st.mc[p, MC_TINY]
    st.mc[p, MC_TINY] = -1
    st.mc[p, MC_TINYOFF] = 0
    if tiny >= 0:
        tiny_release(st, p, tiny, 1)
    st.mc[p, MC_FLUSHGEN] = st.gl[GL_SWEEPGEN]
