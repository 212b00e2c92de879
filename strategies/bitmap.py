"""bitmap: per-size-class fixed-block pools with a free bitmap (the article's MemoryPool).

The article's ``struct MemoryPool { char* pool; bool* freeList; size_t
blockSize; size_t numBlocks; }`` is one pool of equal blocks with one flag
per block; "allocation scans the free map, free only sets a flag, O(n)".
Here it is made general the way the article suggests ("多级池"): one chain of
such pools per size class (``_sizeclass_simple``: 16 B steps to 256 B, then
~12.5% steps to 32 KiB), and the flag array is a bitmap of uint64 words
(bit = 1: block free) scanned with count-trailing-zeros, so finding a free
block costs one word per 64 blocks instead of one byte per block.

1. alloc(size): class c = CLASS_OF[(size+15) >> 4]. Under class c's lock,
   take the first pool on c's *avail list* (pools with a free block; a new
   pool is carved if it is empty), find its lowest free block: from the
   pool's hint word (no word below it has a free bit) to the first non-zero
   word, ctz gives the bit; clear it. A pool that becomes full leaves the
   avail list (it is always the head, so that is a pop).
2. free(addr, size): the pool is ``page_pool[addr >> page_shift]`` (pools
   are carved page-aligned and are whole pages, so a page belongs to one
   pool), the block index is (addr - base) / class size (a multiply by a
   per-class magic, see ``_sizeclass_simple``). Under the lock:
   set the bit, lower the hint, and a pool that was full (0 -> 1 free) is
   pushed back on the avail list.
3. Pools are carved from a heap-wide region under the heap lock
   (LOCK_GLOBAL), mapping whole heap chunks; a mapping contiguous with the
   region's end extends it, so only a pool-sized tail is ever skipped.
   Pools are never given back: a class's pool count is its peak need.
4. Objects above 32 KiB: the shared large-object path (``_sizeclass_simple``).
   ``kind`` is ignored: stacks and G descriptors are ordinary objects here.

Locks. The strategy table in docs/design.md says "one per pool". A pool is
found through its class's avail list, which every P shares, so a lock per
pool would still need a lock over the list: the lock is one per size class
and is counted as
LOCK_CENTRAL (every P takes it; there is no per-P tier, so FAST_HITS stays 0
— every small alloc and free takes a lock, which is the cost of this design
that ``freelist``'s per-P cache removes).

``linear_scan = True`` replaces the bitmap by the article's literal bool
array (one uint8 per block) scanned from block 0 on every allocation, to
measure what the article's O(n) design costs against ctz. Both take the
lowest free block of the same pool, so on one trace they return the same
addresses; ``words_scanned`` counts 64-bit words (ctz) or flag bytes
(linear) examined.

Tunables: ``blocks_per_pool`` is a multiple of 64 so that a pool is whole
bitmap words; what it and ``linear_scan`` trade is in their
``param(doc=...)``, shown by ``alloclab list -v``.

State invariants (``check``), for every pool k < npools of class c:
    nfree[k] == popcount(bits of k)                  (flags of k == 1, when linear_scan)
    0 <= nfree[k] <= blocks_per_pool
    no bits of k in words below hint[k]                (the scan may start at hint)
    k is on avail list of c  <=>  nfree[k] > 0
    page_pool[page] == k for each page of [base[k], base[k] + blocks_per_pool * size(c))
    sum_p counters[p, IN_USE] == sum_k (blocks_per_pool - nfree[k]) * size(class k) + live large bytes
    every live object's block has bit 0               (``check(st, live=...)``)
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from alloclab.strategies import _dispatch
from alloclab.strategies import _sizeclass_simple as sc
from alloclab.strategies._atomics import spin_lock, spin_unlock
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import EXTRA_BASE, IN_USE, LOCK_CENTRAL, LOCK_GLOBAL, new_counters
from alloclab.strategies._heap import ARENA, CHUNK, MAPPED, heap_map, heap_round
from alloclab.strategies._kernel import kernel

NAME = "bitmap"
DESCRIPTION = "per-size-class fixed-block pools with a free bitmap (the article's MemoryPool)"
EXTRA_COUNTERS: tuple[str, ...] = ("words_scanned", "pools", "large_maps")
ALIGN16 = True

X_WORDS = EXTRA_BASE + 0
X_POOLS = EXTRA_BASE + 1
X_LARGE_MAPS = EXTRA_BASE + 2


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    blocks_per_pool: int = param(64, choices=(64, 128, 256, 512, 1024, 2048, 4096),
                                 doc="blocks per pool: larger = fewer pool carvings, less metadata per block, "
                                     "but up to one partly used pool (blocks x class size) stranded per class "
                                     "(at 4096 blocks the 32 KiB class's pool is 128 MiB) and a longer linear scan")
    linear_scan: bool = param(False, tune=False,
                              doc="the article's bool-array O(n) scan from block 0 instead of ctz over bitmap "
                                  "words (same addresses, to measure the article's cost)")


# cls row of class c: its lock word and what the lock guards, on one cache line
CLS_LOCK = 0
CLS_AVAIL = 1     # first pool of the class with a free block, -1 if none

# pools columns
P_BASE = 0
P_NFREE = 1
P_HINT = 2      # lowest bitmap word that may hold a free bit
P_NEXT = 3      # next pool on the avail list

# cfg words
CFG_BPP = 0
CFG_NWORDS = 1
CFG_SHIFT = 2
CFG_LINEAR = 3

# gl words of the pool-carving region (after the large-object words)
GL_CUR = sc.GL_USER
GL_LIM = sc.GL_USER + 1
GL_NPOOLS = sc.GL_USER + 2


class State(NamedTuple):
    counters: np.ndarray    # (nprocs, NCOUNTERS)
    meta: np.ndarray
    arena: np.ndarray
    arena64: np.ndarray
    class_of: np.ndarray    # (MAX_SMALL/16 + 1,) int32
    class_size: np.ndarray  # (NCLASSES,) int64
    class_magic: np.ndarray # (NCLASSES,) int64: block index = offset * magic >> MAGIC_SHIFT
    cls: np.ndarray         # (NCLASSES * 8,) int64: lock and avail head per class
    pools: np.ndarray       # (maxpools, 4) int64: base, nfree, hint, next
    pool_class: np.ndarray  # (maxpools,) int32 (for check)
    page_pool: np.ndarray   # (arena >> page_shift,) int32
    bits: np.ndarray        # (maxpools * nwords,) int64, 1 = free   ((1,) when linear_scan)
    flags: np.ndarray       # (maxpools * bpp,) uint8, 1 = free      ((1,) unless linear_scan)
    large_head: np.ndarray
    gl: np.ndarray          # heap lock, large-object words, carving cursor/limit, pool count
    cfg: np.ndarray         # bpp, nwords, page_shift, linear


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    bpp = config.blocks_per_pool
    chunk = int(heap.meta[CHUNK])
    # A page must divide every pool (16 * bpp) and every mapping base (the chunk).
    page_shift = min((16 * bpp).bit_length() - 1, (chunk & -chunk).bit_length() - 1)
    npages = int(heap.meta[ARENA]) >> page_shift
    maxpools = npages  # pools are disjoint and at least one page each
    nwords = bpp // 64
    large_head, gl = sc.make_large_state(heap)
    # np.zeros of the big tables is lazily committed: only pages of used pools cost memory.
    return State(
        counters=new_counters(nprocs), meta=heap.meta, arena=heap.arena, arena64=heap.arena64,
        class_of=sc.CLASS_OF.copy(), class_size=sc.CLASS_SIZES.copy(), class_magic=sc.CLASS_MAGIC.copy(),
        cls=np.concatenate([np.array([0, -1, 0, 0, 0, 0, 0, 0], np.int64)] * sc.NCLASSES),
        pools=np.zeros((maxpools, 4), np.int64), pool_class=np.zeros(maxpools, np.int32),
        page_pool=np.zeros(npages, np.int32),
        bits=np.zeros(1 if config.linear_scan else maxpools * nwords, np.int64),
        flags=np.zeros(maxpools * bpp if config.linear_scan else 1, np.uint8),
        large_head=large_head, gl=gl,
        cfg=np.array([bpp, nwords, page_shift, int(config.linear_scan)], np.int64),
    )


@kernel
def _new_pool(st, p, c, csize):
    """Carve a pool for class c (caller holds c's lock) and make it c's avail head; -1 = OOM."""
    bpp = st.cfg[CFG_BPP]
    nbytes = bpp * csize
    gl = st.gl
    spin_lock(gl, sc.GL_LOCK, st.counters, p, LOCK_GLOBAL)
    cur = gl[GL_CUR]
    lim = gl[GL_LIM]
    if cur + nbytes > lim:
        a = heap_map(st.meta, nbytes)
        if a < 0:
            spin_unlock(gl, sc.GL_LOCK)
            return -1
        if a != lim:  # not contiguous with the region: its tail is skipped
            cur = a
        lim = a + heap_round(st.meta, nbytes)
        gl[GL_LIM] = lim
    gl[GL_CUR] = cur + nbytes
    pid = gl[GL_NPOOLS]
    gl[GL_NPOOLS] = pid + 1
    spin_unlock(gl, sc.GL_LOCK)
    shift = st.cfg[CFG_SHIFT]
    for pg in range(cur >> shift, (cur + nbytes) >> shift):
        st.page_pool[pg] = pid
    pools = st.pools
    pools[pid, P_BASE] = cur
    pools[pid, P_NFREE] = bpp
    pools[pid, P_HINT] = 0
    pools[pid, P_NEXT] = -1
    st.pool_class[pid] = c
    if st.cfg[CFG_LINEAR] != 0:
        fb = pid * bpp
        for i in range(bpp):
            st.flags[fb + i] = 1
    else:
        nw = st.cfg[CFG_NWORDS]
        for i in range(nw):
            st.bits[pid * nw + i] = -1
    st.cls[c * 8 + CLS_AVAIL] = pid
    st.counters[p, X_POOLS] += 1
    return pid


@kernel
def _scan_linear(flags, fb, counters, p):
    """The article's scan: the first free flag of the pool whose flags start at ``fb``."""
    idx = 0
    while flags[fb + idx] == 0:  # ends: the pool has a free block
        idx += 1
    flags[fb + idx] = 0
    counters[p, X_WORDS] += idx + 1
    return idx


# alloc and free are inlined into the executor's loop (numba IR inlining): as calls
# they would copy the whole State (~100 words) onto the stack per op (docs/findings.md,
# "Inlined kernels"). Slow paths stay out of line.
@kernel(inline="always")
def alloc(st, p, size, kind):
    if size > sc.MAX_SMALL:
        return sc.large_alloc(st, p, size, X_LARGE_MAPS)
    c = st.class_of[(size + 15) >> 4]
    csize = st.class_size[c]
    cls = st.cls
    li = c * 8
    spin_lock(cls, li, st.counters, p, LOCK_CENTRAL)
    pid = cls[li + CLS_AVAIL]
    if pid < 0:
        pid = _new_pool(st, p, c, csize)
        if pid < 0:
            spin_unlock(cls, li)
            return -1
    pools = st.pools
    if st.cfg[CFG_LINEAR] == 0:
        bits = st.bits
        wb = pid * st.cfg[CFG_NWORDS]
        w0 = pools[pid, P_HINT]
        w = w0
        word = bits[wb + w]
        while word == 0:  # ends: the pool has a free block at or above the hint
            w += 1
            word = bits[wb + w]
        bits[wb + w] = word & (word - 1)
        st.counters[p, X_WORDS] += w - w0 + 1
        pools[pid, P_HINT] = w
        idx = w * 64 + trailing_zeros(word)
    else:
        idx = _scan_linear(st.flags, pid * st.cfg[CFG_BPP], st.counters, p)
    nfree = pools[pid, P_NFREE] - 1
    pools[pid, P_NFREE] = nfree
    if nfree == 0:
        cls[li + CLS_AVAIL] = pools[pid, P_NEXT]
    a = pools[pid, P_BASE] + idx * csize
    spin_unlock(cls, li)
    st.counters[p, IN_USE] += csize
    return a


@kernel(inline="always")
def free(st, p, addr, size, kind):
    if size > sc.MAX_SMALL:
        sc.large_free(st, p, addr, size)
        return
    c = st.class_of[(size + 15) >> 4]
    pid = st.page_pool[addr >> st.cfg[CFG_SHIFT]]
    pools = st.pools
    # base is written before any address of the pool is handed out, so it is read unlocked
    idx = ((addr - pools[pid, P_BASE]) * st.class_magic[c]) >> sc.MAGIC_SHIFT
    cls = st.cls
    li = c * 8
    spin_lock(cls, li, st.counters, p, LOCK_CENTRAL)
    if st.cfg[CFG_LINEAR] == 0:
        w = idx >> 6
        st.bits[pid * st.cfg[CFG_NWORDS] + w] |= np.int64(1) << (idx & 63)
        if w < pools[pid, P_HINT]:
            pools[pid, P_HINT] = w
    else:
        st.flags[pid * st.cfg[CFG_BPP] + idx] = 1
    nfree = pools[pid, P_NFREE] + 1
    pools[pid, P_NFREE] = nfree
    if nfree == 1:  # it was full, hence off the avail list
        pools[pid, P_NEXT] = cls[li + CLS_AVAIL]
        cls[li + CLS_AVAIL] = pid
    spin_unlock(cls, li)
    st.counters[p, IN_USE] -= st.class_size[c]


def block_is_free(st: State, addr: int, size: int) -> bool:
    """Whether the block holding ``addr`` (a small object of ``size``) is marked free."""
    c = sc.class_of_size(size)
    pid = int(st.page_pool[addr >> int(st.cfg[CFG_SHIFT])])
    idx = (addr - int(st.pools[pid, P_BASE])) // int(st.class_size[c])
    if st.cfg[CFG_LINEAR]:
        return bool(st.flags[pid * int(st.cfg[CFG_BPP]) + idx])
    w = int(st.bits[pid * int(st.cfg[CFG_NWORDS]) + (idx >> 6)])
    return bool((w >> (idx & 63)) & 1)


def check(st: State, live=None) -> list[str]:
    """The invariants in the module doc; ``live``: optional (addr, size) pairs of live objects."""
    errs: list[str] = []
    bpp, nw, shift, linear = (int(x) for x in st.cfg)
    npools = int(st.gl[GL_NPOOLS])
    mapped = int(st.meta[MAPPED])
    pools = st.pools[:npools]
    nfree = pools[:, P_NFREE]
    if linear:
        counted = st.flags[: npools * bpp].reshape(npools, bpp).astype(np.int64).sum(axis=1)
        if npools and st.flags[: npools * bpp].max() > 1:
            errs.append("a block flag is neither 0 nor 1")
    else:
        words = st.bits[: npools * nw].reshape(npools, nw)
        counted = np.unpackbits(words.view(np.uint8), axis=1).sum(axis=1).astype(np.int64)
        for k in range(npools):
            h = int(pools[k, P_HINT])
            if not 0 <= h < nw or words[k, :h].any():
                errs.append(f"pool {k}: free bits below its hint word {h}")
                break
    bad = np.flatnonzero(counted != nfree)
    if bad.size:
        k = int(bad[0])
        errs.append(f"pool {k}: nfree {int(nfree[k])} != {int(counted[k])} free blocks in its map ({bad.size} pools)")
    if npools and (nfree.min() < 0 or nfree.max() > bpp):
        errs.append(f"a pool's free count is outside 0..{bpp}")
    sizes = st.class_size[st.pool_class[:npools]]
    for k in range(npools):
        base, n = int(pools[k, P_BASE]), bpp * int(sizes[k])
        if base < 0 or base + n > mapped or base % (1 << shift):
            errs.append(f"pool {k}: [{base}, {base + n}) not page-aligned inside mapped memory ({mapped})")
            break
        if np.any(st.page_pool[base >> shift:(base + n) >> shift] != k):
            errs.append(f"pool {k}: page map does not point to it")
            break
    on_list = np.zeros(npools, bool)
    for c in range(sc.NCLASSES):
        k = int(st.cls[c * 8 + CLS_AVAIL])
        steps = 0
        while k >= 0:
            if k >= npools or on_list[k] or steps > npools:
                errs.append(f"class {c}: avail list broken at pool {k} (out of range, repeated or cyclic)")
                break
            if st.pool_class[k] != c:
                errs.append(f"class {c}: avail list holds pool {k} of class {int(st.pool_class[k])}")
            on_list[k] = True
            steps += 1
            k = int(pools[k, P_NEXT])
        if st.cls[c * 8 + CLS_LOCK] != 0:
            errs.append(f"class {c}: lock still held")
    mismatch = np.flatnonzero(on_list != (nfree > 0))
    if mismatch.size:
        k = int(mismatch[0])
        errs.append(f"pool {k}: on avail list = {bool(on_list[k])} but nfree = {int(nfree[k])}")
    lerrs, large_live = sc.check_large(st.meta, st.arena64, st.large_head, st.gl)
    errs += lerrs
    small_live = int(((bpp - nfree) * sizes).sum())
    in_use = int(st.counters[:, IN_USE].sum())
    if in_use != small_live + large_live:
        errs.append(f"IN_USE {in_use} != {small_live} B in pools + {large_live} B large")
    if st.gl[sc.GL_LOCK] != 0:
        errs.append("heap lock still held")
    for addr, size in live or ():
        if size <= sc.MAX_SMALL and block_is_free(st, int(addr), int(size)):
            errs.append(f"live object at {addr} ({size} B) is marked free")
            break
    return errs


_dispatch.register(State, alloc, free)
