"""A simple size-class table and large-object path shared by ``bitmap`` and ``freelist``.

Size classes: 16-byte steps from 16 to 256 B (16 classes: small objects are
the common case and 16 B steps keep their rounding waste under 16 B), then
geometric steps of ~12.5% rounded up to a multiple of 16, up to 32 KiB
(``MAX_SMALL``): 56 classes. Every class is a multiple of 16, so blocks
carved at 16-aligned bases are 16-aligned (``ALIGN16 = True`` holds). The
worst internal fragmentation above 256 B is one step (~12.5-17%), the same
order as Go's table. This is deliberately not Go's mksizeclasses table: the
``go`` strategy models that; these two strategies model the article's pools.

Lookup is one load: ``class_of[(size + 15) >> 4]`` (2049 int32 entries).

Large objects (size > MAX_SMALL) get a dedicated region of
``heap_round(size)`` bytes (whole heap chunks, 64 KiB by default). A freed
region goes onto an exact-fit free list keyed by its chunk count, linked
intrusively through its first word; the next large allocation of the same
chunk count pops it. So repeated alloc/free of one large size reuses one
region, but regions are never split or coalesced: a free 3-chunk region does
not serve a 2-chunk request (mapped memory can grow under a large-size mix
that keeps changing; the heap never unmaps anything anyway). One heap-wide
lock (``LOCK_GLOBAL``) guards these lists; large objects are rare enough
that it is not the bottleneck, and the map call itself is lock-free.

Large-object state (``make_large_state``):
    large_head[n]  first free region of n chunks, -1 if none
    gl[GL_LOCK]    the heap-wide lock word (alone on its cache line)
    gl[GL_LARGE_MAPPED]  bytes of every large region ever mapped
    gl[GL_LARGE_FREE]    bytes of large regions on the free lists
    gl[GL_USER..]        free for the strategy (bitmap keeps its pool carving there)
Invariants (``check_large``):
    gl[GL_LARGE_FREE] == sum of region bytes over every free list
    every listed region lies in mapped memory, appears once, sits in list n = its size / chunk
    live large bytes == gl[GL_LARGE_MAPPED] - gl[GL_LARGE_FREE]
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._atomics import spin_lock, spin_unlock
from alloclab.strategies._counters import IN_USE, LOCK_GLOBAL
from alloclab.strategies._heap import ARENA, CHUNK, MAPPED, heap_map, heap_round
from alloclab.strategies._kernel import kernel

MAX_SMALL = 32768


def _class_sizes() -> np.ndarray:
    s = list(range(16, 257, 16))
    while s[-1] < MAX_SMALL:
        nxt = -(-int(s[-1] * 1.125) // 16) * 16
        s.append(min(max(nxt, s[-1] + 16), MAX_SMALL))
    return np.array(s, np.int64)


CLASS_SIZES = _class_sizes()
NCLASSES = len(CLASS_SIZES)


def _class_of() -> np.ndarray:
    t = np.empty(MAX_SMALL // 16 + 1, np.int32)
    for i in range(t.shape[0]):
        t[i] = int(np.searchsorted(CLASS_SIZES, max(i * 16, 1)))
    return t


CLASS_OF = _class_of()   # CLASS_OF[(size + 15) >> 4] = smallest class with CLASS_SIZES[c] >= size

# Block index without a divide: for an offset that is an exact multiple of the
# class size, off // size == (off * CLASS_MAGIC[c]) >> MAGIC_SHIFT with
# MAGIC = ceil(2^40 / size) = 2^40 / size + e (0 <= e < 1): the product is
# (off / size) * 2^40 + off * e, and off * e < 2^40 for any offset below
# 2^40; the product stays below nblocks * 2^40 + off, in int64 for pools of
# up to 2^22 blocks. (A 64-bit idiv costs 20-90 cycles; this is a multiply.)
MAGIC_SHIFT = 40
CLASS_MAGIC = np.array([-(-(1 << MAGIC_SHIFT) // int(s)) for s in CLASS_SIZES], np.int64)


def class_of_size(size: int) -> int:
    """The class of ``size`` (Python side, for tests and check); -1 = large."""
    return -1 if size > MAX_SMALL else int(CLASS_OF[(size + 15) >> 4])


# gl words; the lock has the first cache line to itself
GL_LOCK = 0
GL_LARGE_MAPPED = 8
GL_LARGE_FREE = 9
GL_USER = 10
GL_LEN = 16


def make_large_state(heap):
    """(large_head, gl): one free-list head per possible chunk count."""
    nbuckets = int(heap.meta[ARENA] // heap.meta[CHUNK]) + 1
    return np.full(nbuckets, -1, np.int64), np.zeros(GL_LEN, np.int64)


# The large path is called out of line from the inlined alloc and free: it is rare,
# and inlining it would grow every replay loop. ``st`` is the caller's State: any
# NamedTuple with the fields meta, arena64, large_head, gl and counters (bitmap's
# and freelist's both have them; numba compiles one copy per State type).
@kernel
def large_alloc(st, p, size, col_large_maps):
    """A region of heap_round(size) bytes: a freed one of that chunk count, else a fresh map."""
    n = heap_round(st.meta, size)
    b = n // st.meta[CHUNK]
    spin_lock(st.gl, GL_LOCK, st.counters, p, LOCK_GLOBAL)
    a = st.large_head[b]
    if a >= 0:
        st.large_head[b] = st.arena64[a >> 3]
        st.gl[GL_LARGE_FREE] -= n
    else:
        a = heap_map(st.meta, n)
        if a < 0:
            spin_unlock(st.gl, GL_LOCK)
            return -1
        st.gl[GL_LARGE_MAPPED] += n
        st.counters[p, col_large_maps] += 1
    spin_unlock(st.gl, GL_LOCK)
    st.counters[p, IN_USE] += n
    return a


@kernel
def large_free(st, p, addr, size):
    n = heap_round(st.meta, size)
    b = n // st.meta[CHUNK]
    spin_lock(st.gl, GL_LOCK, st.counters, p, LOCK_GLOBAL)
    st.arena64[addr >> 3] = st.large_head[b]
    st.large_head[b] = addr
    st.gl[GL_LARGE_FREE] += n
    spin_unlock(st.gl, GL_LOCK)
    st.counters[p, IN_USE] -= n


def check_large(meta, arena64, large_head, gl) -> tuple[list[str], int]:
    """(errors, live large bytes) — see the module doc for the equations."""
    errs: list[str] = []
    chunk = int(meta[CHUNK])
    mapped = int(meta[MAPPED])
    seen: set[int] = set()
    free_bytes = 0
    for b in np.flatnonzero(large_head >= 0):
        a = int(large_head[b])
        while a >= 0:
            n = int(b) * chunk
            if a % 8 or a + n > mapped:
                errs.append(f"large list {b}: region {a} (+{n}) outside mapped memory ({mapped})")
                break
            if a in seen:
                errs.append(f"large list {b}: region {a} listed twice (cycle or double free)")
                break
            seen.add(a)
            free_bytes += n
            a = int(arena64[a >> 3])
    if free_bytes != gl[GL_LARGE_FREE] and not errs:
        errs.append(f"large free bytes {int(gl[GL_LARGE_FREE])} != {free_bytes} on the lists")
    if gl[GL_LARGE_MAPPED] > mapped:
        errs.append(f"large mapped bytes {int(gl[GL_LARGE_MAPPED])} > mapped {mapped}")
    return errs, int(gl[GL_LARGE_MAPPED] - gl[GL_LARGE_FREE])
