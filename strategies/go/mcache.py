"""mcache: the per-P tier. mallocgc's small, tiny and large paths, mcache.refill, and their frees.

Models src/runtime/malloc.go (mallocgc, the tiny allocator, nextFree) and
src/runtime/mcache.go (alloc[spanClass], refill, allocLarge, releaseAll).
See __init__.py for an overview and the departures from Go.

Everything in a P's ``mc`` row is that P's alone: no lock, no atomic. The
exceptions are shared on purpose and say so: tiny-block reference counts
(other Ps free sub-objects) and the span fields a free may touch (mcentral.py).

State: one row of ``mc`` per P. Its MCACHE_* columns are Go's mcache; the
others hold what Go keeps in the P itself (p.pcache, p.gFree, ...), each
named PP_* by the file that owns it:

    0  MCACHE_TINY, 1 MCACHE_TINYOFFSET     tiny block and offset
    2  PP_PCACHE_BASE, 3 PP_PCACHE_CACHE    page cache (mheap.py)
    4  MCACHE_FLUSHGEN                      sweepgen of the last flush (prepareForSweep)
    5  PP_DEAD_BYTES                        freed, not yet swept, with gogc > 0 (mgc.py)
    6-9  PP_GFREE_*                         free-G list and its stacks (stacks.py)
    10 PP_FREEBATCH_N                       frees in this P's mcentral batches (mheap.py)
    16 MCACHE_STACKCACHE_LIST + order, 24 MCACHE_STACKCACHE_SIZE + order   stackcache (stacks.py)
    32 MCACHE_ALLOC + spanclass             alloc[spanclass]: the cached span, emptymspan if none

``tinyref`` holds one count per tiny block: 2 per live sub-object, 1 while it
is some P's current block (MCACHE_TINY). Invariants (``check``):
    mc[p, MCACHE_ALLOC + spc] is emptymspan or a small span of class spc whose owner is p,
        and every span with an owner is in its owner's mcache.alloc
    each P's current tiny block holds the mcache's reference (an odd count)
    a free slot of the tiny span class has no count; a counted block is live (gogc = 0)
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import atomic_add, spin_lock, spin_unlock
from alloclab.strategies._counters import FAST_HITS, IN_USE, LOCK_CENTRAL, REFILLS
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import atomic_add_i8
from alloclab.strategies.go.layout import (
    CFG_EMPTYMSPAN, CFG_GOGC, CFG_LARGE_SIZE_DIV, CFG_MALLOC_HEADER, CFG_MALLOC_HEADER_MIN, CFG_NUM_SPANCLASSES,
    CFG_PAGE_SHIFT, CFG_PAGE_SIZE, CFG_SMALL_LIMIT, CFG_SMALL_SIZE_DIV, CFG_SMALL_SIZE_MAX, CFG_TINY_SHIFT,
    CFG_TINY_SIZE, CFG_TINY_SPANCLASS, MCACHE_ALLOC, X_LARGE, X_NEXT_FREE, X_NEXT_FREE_FAST, X_TINY, X_TINY_BLOCKS,
)
from alloclab.strategies.go.mbitmap import load_alloc_cache, next_free_fast, next_free_index
from alloclab.strategies.go.mcentral import (
    free_emptied, free_small_slot, mcentral_grow, mcentral_uncache, sweep_batch_locked,
)
from alloclab.strategies.go.mgc import GC_HEAP_LIVE, LARGE_DEAD, LARGE_UNMARKED, PP_DEAD_BYTES, maybe_gc
from alloclab.strategies.go.mheap import MHEAP_SWEEPGEN, mheap_alloc, mheap_free_span
from alloclab.strategies.go.mspan import (
    MSPAN_LARGE, MSPAN_SMALL, SPAN_ALLOCCOUNT, SPAN_AUX, SPAN_BASE, SPAN_ELEMSIZE, SPAN_FREEINDEX, SPAN_NELEMS,
    SPAN_NPAGES, SPAN_OWNER, SPAN_SPANCLASS, SPAN_STATE, SPAN_SWEEPGEN, list_pop_head, list_push_tail,
)

# ---------------------------------------------------------------- mc: one row per P (see the module docstring)
MCACHE_TINY = 0
MCACHE_TINYOFFSET = 1
MCACHE_FLUSHGEN = 4           # sweepgen this mcache was last flushed at (prepareForSweep)
MCACHE_STACKCACHE_LIST = 16   # stackcache[order].list, MAX_STACK_ORDERS slots
MCACHE_STACKCACHE_SIZE = 24   # stackcache[order].size, MAX_STACK_ORDERS slots


@kernel(inline="always")
def size_to_class(st, size):
    """malloc.go: size_to_class8 up to smallSizeMax-8, size_to_class128 above."""
    cfg = st.cfg
    ssm = cfg[CFG_SMALL_SIZE_MAX]
    if size <= ssm - 8:
        d = cfg[CFG_SMALL_SIZE_DIV]
        return st.t_c8[(size + (1 << d) - 1) >> d]
    d = cfg[CFG_LARGE_SIZE_DIV]
    return st.t_c128[(size - ssm + (1 << d) - 1) >> d]


@kernel
def mcache_refill(st, p, spc):
    """mcache.refill: return the full cached span, take a span with free slots (partial list, else grow)."""
    col = MCACHE_ALLOC + spc
    old = st.mc[p, col]
    spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
    release_old = False
    if old != st.cfg[CFG_EMPTYMSPAN]:
        release_old = mcentral_uncache(st, p, old)
    emptied = 0
    if st.fbuf[p, spc, 0] > 0:
        emptied = sweep_batch_locked(st, p, spc)
    s = list_pop_head(st.lists, st.spans, spc)
    if s >= 0:
        st.spans[s, SPAN_OWNER] = p
        st.spans[s, SPAN_SWEEPGEN] = st.gl[MHEAP_SWEEPGEN]
    spin_unlock(st.locks, spc * 8)
    if release_old:
        mheap_free_span(st, p, old)
    free_emptied(st, p, spc, emptied)
    st.counters[p, REFILLS] += 1
    if s < 0:
        s = mcentral_grow(st, p, spc)
        if s < 0:
            st.mc[p, col] = st.cfg[CFG_EMPTYMSPAN]
            return -1
    else:
        load_alloc_cache(st, s)
    st.mc[p, col] = s
    if st.cfg[CFG_GOGC] > 0:
        atomic_add(st.gl, GC_HEAP_LIVE, (st.spans[s, SPAN_NELEMS] - st.spans[s, SPAN_ALLOCCOUNT]) * st.spans[s, SPAN_ELEMSIZE])
        maybe_gc(st, p)
    return s


@kernel(inline="always")
def mcache_next_free(st, p, spc):
    """mcache.nextFree: the next slot via nextFreeIndex, refilling the span when it is full; -1 = OOM."""
    s = st.mc[p, MCACHE_ALLOC + spc]
    idx = next_free_index(st, s)
    if idx == st.spans[s, SPAN_NELEMS]:
        s = mcache_refill(st, p, spc)
        if s < 0:
            return -1
        idx = next_free_index(st, s)
    else:
        st.counters[p, X_NEXT_FREE] += 1
        st.counters[p, FAST_HITS] += 1
    st.spans[s, SPAN_ALLOCCOUNT] += 1
    return st.spans[s, SPAN_BASE] + idx * st.spans[s, SPAN_ELEMSIZE]


@kernel(inline="always")
def malloc_spc(st, p, spc):
    """One slot of span class ``spc`` from P's mcache: nextFreeFast, else nextFree."""
    v = next_free_fast(st, st.mc[p, MCACHE_ALLOC + spc])
    if v >= 0:
        st.counters[p, X_NEXT_FREE_FAST] += 1
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
    old = atomic_add_i8(st.tinyref, blk >> st.cfg[CFG_TINY_SHIFT], -d)
    new = old - d
    if d == 2 and new < 2:
        st.counters[p, IN_USE] -= st.cfg[CFG_TINY_SIZE]
    if new == 0:
        tiny_block_free(st, p, blk)


@kernel(inline="always")
def tiny_block_free(st, p, blk):
    free_small_slot(st, p, st.pagemap[blk >> st.cfg[CFG_PAGE_SHIFT]], blk)


@kernel(inline="always")
def malloc_tiny(st, p, size):
    """The tiny allocator (malloc.go): noscan objects below CFG_TINY_SIZE bytes share CFG_TINY_SIZE-byte blocks."""
    cfg = st.cfg
    tsize = cfg[CFG_TINY_SIZE]
    off = st.mc[p, MCACHE_TINYOFFSET]
    # Go aligns by the size's low bits (8, 4, 2, else 1: a 9-byte string may sit at an odd offset),
    # exactly as here below 16 B; with a tiny block over Go's 16 B (tiny_size 32), objects of 16 B or
    # more align to 8, the alignment Go guarantees every object of that size
    if size & 7 == 0 or size >= 16:
        off = (off + 7) & ~7
    elif size & 3 == 0:
        off = (off + 3) & ~3
    elif size & 1 == 0:
        off = (off + 1) & ~1
    tiny = st.mc[p, MCACHE_TINY]
    if off + size <= tsize and tiny >= 0:
        st.mc[p, MCACHE_TINYOFFSET] = off + size
        if atomic_add_i8(st.tinyref, tiny >> cfg[CFG_TINY_SHIFT], 2) < 2:
            st.counters[p, IN_USE] += tsize
        st.counters[p, X_TINY] += 1
        st.counters[p, FAST_HITS] += 1
        return tiny + off
    return malloc_tiny_block(st, p, size, tiny)


@kernel(inline="always")
def malloc_tiny_block(st, p, size, tiny):
    """A new tiny block; it becomes the P's current block if it leaves more room than the old one."""
    cfg = st.cfg
    tsize = cfg[CFG_TINY_SIZE]
    v = malloc_spc(st, p, cfg[CFG_TINY_SPANCLASS])
    if v < 0:
        return -1
    st.counters[p, X_TINY_BLOCKS] += 1
    st.counters[p, IN_USE] += tsize
    # keep the block that has more room left (Go compares with the old tinyoffset, unaligned)
    if size < st.mc[p, MCACHE_TINYOFFSET] or tiny < 0:
        st.tinyref[v >> cfg[CFG_TINY_SHIFT]] = 3  # a fresh slot: no other P can know it yet
        st.mc[p, MCACHE_TINY] = v
        st.mc[p, MCACHE_TINYOFFSET] = size
        if tiny >= 0:
            tiny_release(st, p, tiny, 1)
    else:
        st.tinyref[v >> cfg[CFG_TINY_SHIFT]] = 2
    return v


@kernel
def malloc_large(st, p, size, noscan):
    """mcache.allocLarge: a dedicated span of whole pages, class 0."""
    cfg = st.cfg
    shift = cfg[CFG_PAGE_SHIFT]
    npages = (size + cfg[CFG_PAGE_SIZE] - 1) >> shift
    nbytes = npages << shift
    s = mheap_alloc(st, p, npages, MSPAN_LARGE, noscan, nbytes, 1, 0, -1)
    if s < 0:
        return -1
    st.spans[s, SPAN_FREEINDEX] = 1
    st.spans[s, SPAN_ALLOCCOUNT] = 1
    st.counters[p, X_LARGE] += 1
    st.counters[p, IN_USE] += nbytes
    if cfg[CFG_GOGC] > 0:
        # Go files large spans on mcentral[class 0].fullSwept so that the sweeper finds them
        spin_lock(st.locks, noscan * 8, st.counters, p, LOCK_CENTRAL)
        list_push_tail(st.lists, st.spans, cfg[CFG_NUM_SPANCLASSES] + noscan, s)
        spin_unlock(st.locks, noscan * 8)
        atomic_add(st.gl, GC_HEAP_LIVE, nbytes)
        maybe_gc(st, p)
    return s << shift


@kernel(inline="always")
def mallocgc(st, p, size, noscan):
    """mallocgc: tiny, small (size-classed) or large; returns the address or -1 (out of memory)."""
    cfg = st.cfg
    if size > cfg[CFG_SMALL_LIMIT]:
        return malloc_large(st, p, size, noscan)
    if noscan and size < cfg[CFG_TINY_SIZE]:
        return malloc_tiny(st, p, size)
    hdr = 0
    if not noscan and size > cfg[CFG_MALLOC_HEADER_MIN]:
        hdr = cfg[CFG_MALLOC_HEADER]
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
    if size > cfg[CFG_SMALL_LIMIT]:
        free_large(st, p, addr)
        return
    if noscan and size < cfg[CFG_TINY_SIZE]:
        tiny_release(st, p, addr & ~(cfg[CFG_TINY_SIZE] - 1), 2)
        return
    s = st.pagemap[addr >> cfg[CFG_PAGE_SHIFT]]
    st.counters[p, IN_USE] -= st.spans[s, SPAN_ELEMSIZE]
    free_small_slot(st, p, s, addr)


@kernel
def free_large(st, p, addr):
    cfg = st.cfg
    s = st.pagemap[addr >> cfg[CFG_PAGE_SHIFT]]
    nbytes = st.spans[s, SPAN_NPAGES] << cfg[CFG_PAGE_SHIFT]
    st.counters[p, IN_USE] -= nbytes
    if cfg[CFG_GOGC] > 0:
        st.spans[s, SPAN_AUX] = LARGE_DEAD
        st.mc[p, PP_DEAD_BYTES] += nbytes
    else:
        mheap_free_span(st, p, s)


@kernel
def mcache_release_all(st, p):
    """mcache.releaseAll via prepareForSweep: after a GC cycle, return every cached span (swept: stale)."""
    nspc = st.cfg[CFG_NUM_SPANCLASSES]
    dummy = st.cfg[CFG_EMPTYMSPAN]
    for spc in range(nspc):
        s = st.mc[p, MCACHE_ALLOC + spc]
        if s != dummy:
            spin_lock(st.locks, spc * 8, st.counters, p, LOCK_CENTRAL)
            empty = mcentral_uncache(st, p, s)
            spin_unlock(st.locks, spc * 8)
            if empty:
                mheap_free_span(st, p, s)
            st.mc[p, MCACHE_ALLOC + spc] = dummy
    tiny = st.mc[p, MCACHE_TINY]
    st.mc[p, MCACHE_TINY] = -1
    st.mc[p, MCACHE_TINYOFFSET] = 0
    if tiny >= 0:
        tiny_release(st, p, tiny, 1)
    st.mc[p, MCACHE_FLUSHGEN] = st.gl[MHEAP_SWEEPGEN]


# ------------------------------------------------------------------ check (host side)

def check(st, census, errs: list[str]) -> int:
    """The invariants of the module docstring; returns the bytes of live heap objects, as IN_USE counts them:
    the size-class size per small object (a tiny block's size while it holds a live sub-object) and whole
    pages per large object. ``census`` is mspan.check's, batched frees taken out by mcentral.check."""
    cfg, spans = st.cfg, st.spans
    nprocs, nspc, empty = st.mc.shape[0], int(cfg[CFG_NUM_SPANCLASSES]), int(cfg[CFG_EMPTYMSPAN])
    page, gogc = int(cfg[CFG_PAGE_SIZE]), int(cfg[CFG_GOGC])
    tiny, tshift = int(cfg[CFG_TINY_SIZE]), int(cfg[CFG_TINY_SHIFT])
    live_bytes = 0
    for s in census.by_state[MSPAN_SMALL]:
        row, live, alloc_b, tag = spans[s], census.live[s], census.alloc[s], f"span {s}"
        esize, spc, owner = int(row[SPAN_ELEMSIZE]), int(row[SPAN_SPANCLASS]), int(row[SPAN_OWNER])
        if owner >= 0 and (owner >= nprocs or st.mc[owner, MCACHE_ALLOC + spc] != s):
            errs.append(f"{tag}: owner P{owner} does not cache it")
        if tiny and spc == int(cfg[CFG_TINY_SPANCLASS]):
            base = s * page
            idx = np.flatnonzero(alloc_b)
            refs = st.tinyref[(base + idx * esize) >> tshift]
            tiny_slots = refs > 0
            live_tiny = live[idx] & tiny_slots
            if (tiny_slots & ~live[idx]).any() and gogc == 0:
                errs.append(f"{tag}: a tiny block with a count is not live")
            live_bytes += int((live[idx] & ~tiny_slots).sum()) * esize + int((refs[live_tiny] >= 2).sum()) * tiny
            free_refs = st.tinyref[(base + np.flatnonzero(~alloc_b) * esize) >> tshift]
            if (free_refs != 0).any():
                errs.append(f"{tag}: a free slot has a tiny count")
        else:
            live_bytes += int(live.sum()) * esize
    for s in census.by_state[MSPAN_LARGE]:
        if int(spans[s, SPAN_AUX]) not in (LARGE_DEAD, LARGE_UNMARKED):
            live_bytes += int(spans[s, SPAN_NPAGES]) * page
    for p in range(nprocs):
        for spc in range(nspc):
            s = int(st.mc[p, MCACHE_ALLOC + spc])
            if s != empty and (spans[s, SPAN_STATE] != MSPAN_SMALL or spans[s, SPAN_OWNER] != p
                               or spans[s, SPAN_SPANCLASS] != spc):
                errs.append(f"P{p}: mcache.alloc[{spc}] = span {s}, which it does not own")
        t = int(st.mc[p, MCACHE_TINY])
        if t >= 0 and (not tiny or st.tinyref[t >> tshift] % 2 != 1):
            errs.append(f"P{p}: current tiny block {t} does not hold the mcache's reference")
    return live_bytes
