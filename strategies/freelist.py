"""freelist: per-size-class intrusive free lists with an optional per-P cache (the article's pool + TLA).

The article's object pool with a thread-local cache ("对象池 + TLA": take a
free object from the local cache, else from the global pool, else make a
new one) and its O(1) free-list pool, made concrete:

1. Size classes from ``_sizeclass_simple`` (16 B steps to 256 B, ~12.5%
   steps to 32 KiB). Each class has a *central list*: a singly linked list
   of free blocks whose next pointer lives in the free block's own first
   word (``arena64[addr >> 3]``), so the list costs no memory of its own.
   One lock per class (LOCK_CENTRAL: every P shares it) guards the list
   head and count, and the class's *slab*: a mapped region (``slab_kb``)
   from which blocks never used before are carved when the list is empty.
2. With ``per_p_cache`` each P keeps, per class, a stack of up to
   ``cache_capacity`` free block addresses. alloc pops from it without any
   lock (FAST_HITS); an empty stack is refilled with ``batch`` blocks taken
   from the central list (carving if needed) under the class lock
   (REFILLS). free pushes onto the stack; a full stack first returns its top
   ``batch`` blocks to the central list under the lock. An object freed on
   another P goes into *that* P's cache: memory migrates between Ps only
   through the central list, as in tcmalloc and Go's mcache/mcentral.
   Without ``per_p_cache`` every alloc and free takes the class lock: the
   article's plain pool.
3. Blocks are never returned to the heap or moved between classes: a
   class's carved blocks are its peak need (plus cached slack).
4. Objects above 32 KiB: the shared large-object path (``_sizeclass_simple``).
   ``kind`` is ignored: stacks and G descriptors are ordinary objects here.

Tunables: ``slab_kb``, ``per_p_cache``, ``cache_capacity`` and ``batch``
(at most ``cache_capacity``); what each trades is in its ``param(doc=...)``,
shown by ``alloclab list -v``.

State invariants (``check``):
    0 <= ccount[p, c] <= cache_capacity
    every block in a cache or a central list is 16-aligned, inside mapped
        memory, and listed once; no two free blocks overlap
    length of central list c == cls[c, COUNT]       (walked with that bound: a cycle is caught)
    cls[c, CUR] <= cls[c, LIM]                       (a slab never runs past its mapping)
    sum_p counters[p, IN_USE] ==
        sum_c (carved[c] - central count[c] - sum_p ccount[p, c]) * size(c) + live large bytes
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch
from alloclab.strategies import _sizeclass_simple as sc
from alloclab.strategies._atomics import spin_lock, spin_unlock
from alloclab.strategies._config import ConfigBase, ConfigError, param
from alloclab.strategies import _aligned as aligned
from alloclab.strategies._counters import EXTRA_BASE, FAST_HITS, IN_USE, LOCK_CENTRAL, REFILLS, new_counters
from alloclab.strategies._heap import MAPPED, heap_map, heap_round
from alloclab.strategies._kernel import kernel

NAME = "freelist"
DESCRIPTION = "per-size-class intrusive free lists, optional per-P cache with batch transfer (pool + TLA)"
EXTRA_COUNTERS: tuple[str, ...] = ("batch_moves", "flushes", "slabs", "large_maps")
ALIGN16 = True

X_MOVES = EXTRA_BASE + 0    # blocks moved between a P's cache and a central list (both ways)
X_FLUSHES = EXTRA_BASE + 1  # full caches that returned a batch
X_SLABS = EXTRA_BASE + 2    # slab mappings
X_LARGE_MAPS = EXTRA_BASE + 3


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    slab_kb: int = param(64, lo=64, hi=16384, log=True,
                         doc="KiB mapped per class slab: larger = fewer map calls, more uncarved tail per class; "
                             "map calls are lock-free and rare, so the default is the heap chunk")
    per_p_cache: bool = param(True, doc="per-P lock-free caches (the article's TLA); false = every op takes the class lock")
    cache_capacity: int = param(64, lo=1, hi=2048, log=True,
                                doc="blocks per P per class: larger = more lock-free ops, more idle memory per P "
                                    "(up to capacity x class size per class), invisible to other Ps")
    batch: int = param(32, lo=1, hi=1024, log=True,
                       doc="blocks per cache<->central transfer (at most cache_capacity): larger = fewer lock holds, "
                           "longer ones (a transfer walks the list), more parked blocks")

    def _validate_combination(self) -> None:
        if self.batch > self.cache_capacity:
            raise ConfigError(f"batch ({self.batch}) must not exceed cache_capacity ({self.cache_capacity})")


# cls row of class c: its lock word and what the lock guards, on one cache line
CLS_LOCK = 0
CLS_HEAD = 1    # central list head, -1 = empty
CLS_COUNT = 2   # central list length
CLS_CUR = 3     # slab: next uncarved block
CLS_LIM = 4     # slab: end of its mapping
CLS_CARVED = 5  # blocks ever carved for the class

CFG_CACHE = 0
CFG_CAP = 1
CFG_BATCH = 2
CFG_SLAB = 3

_CCOUNT_ROW = 64  # ccount row padding: a P's counts start on their own cache line


class State(NamedTuple):
    counters: np.ndarray    # (nprocs, NCOUNTERS)
    meta: np.ndarray
    arena: np.ndarray
    arena64: np.ndarray     # int64 view: the free blocks' next pointers
    class_of: np.ndarray    # (MAX_SMALL/16 + 1,) int32
    class_size: np.ndarray  # (NCLASSES,) int64
    cls: np.ndarray         # (NCLASSES * 8,) int64: lock, central list, slab per class
    cache: np.ndarray       # (nprocs, NCLASSES, cache_capacity) int64 addresses; valid below ccount
    ccount: np.ndarray      # (nprocs, 64) int64: cached blocks per P per class
    large_head: np.ndarray
    gl: np.ndarray
    cfg: np.ndarray         # per_p_cache, capacity (0 without cache), batch, slab bytes


def _central_rows():
    """One 8-word row per class (lock first), each on its own cache line."""
    cls = aligned.zeros((sc.NCLASSES, 8))
    cls[:, 1] = -1
    return cls.reshape(-1)


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    cap = config.cache_capacity if config.per_p_cache else 1
    large_head, gl = sc.make_large_state(heap)
    return State(
        counters=new_counters(nprocs), meta=heap.meta, arena=heap.arena, arena64=heap.arena64,
        class_of=sc.CLASS_OF.copy(), class_size=sc.CLASS_SIZES.copy(),
        cls=_central_rows(),
        cache=aligned.zeros((nprocs, sc.NCLASSES, cap)),
        ccount=aligned.zeros((nprocs, _CCOUNT_ROW)),
        large_head=large_head, gl=gl,
        # capacity 0 without a per-P cache: every free then takes the slow (central) path
        cfg=np.array([int(config.per_p_cache), cap if config.per_p_cache else 0, config.batch,
                      config.slab_kb * 1024], np.int64),
    )


@kernel(inline="always")
def _take(st, p, li, csize):
    """One free block of the class at cls row ``li`` (caller holds its lock): list head, else carved; -1 = OOM."""
    cls = st.cls
    a = cls[li + CLS_HEAD]
    if a >= 0:
        cls[li + CLS_HEAD] = st.arena64[a >> 3]
        cls[li + CLS_COUNT] -= 1
        return a
    cur = cls[li + CLS_CUR]
    if cur + csize > cls[li + CLS_LIM]:
        want = max(st.cfg[CFG_SLAB], csize)
        m = heap_map(st.meta, want)
        if m < 0:
            return -1
        if m != cls[li + CLS_LIM]:  # not contiguous with the old slab: its tail is skipped
            cur = m
        cls[li + CLS_LIM] = m + heap_round(st.meta, want)
        st.counters[p, X_SLABS] += 1
    cls[li + CLS_CUR] = cur + csize
    cls[li + CLS_CARVED] += 1
    return cur


@kernel(inline="always")
def _put(st, li, a):
    """Push block ``a`` on the central list at cls row ``li`` (caller holds its lock)."""
    cls = st.cls
    st.arena64[a >> 3] = cls[li + CLS_HEAD]
    cls[li + CLS_HEAD] = a
    cls[li + CLS_COUNT] += 1


@kernel
def _refill(st, p, c, csize):
    """Fill P's empty cache of class c with up to ``batch`` blocks; returns how many (0 = OOM)."""
    li = c * 8
    spin_lock(st.cls, li, st.counters, p, LOCK_CENTRAL)
    n = 0
    for i in range(st.cfg[CFG_BATCH]):
        a = _take(st, p, li, csize)
        if a < 0:
            break
        st.cache[p, c, i] = a
        n += 1
    spin_unlock(st.cls, li)
    st.counters[p, REFILLS] += 1
    st.counters[p, X_MOVES] += n
    return n


@kernel
def _alloc_slow(st, p, c):
    """alloc when P's cache of class c is empty: refill it, or (no per-P cache) take from the central list."""
    csize = st.class_size[c]
    if st.cfg[CFG_CACHE] != 0:
        n = _refill(st, p, c, csize)
        if n == 0:
            return -1
        n -= 1
        st.ccount[p, c] = n
        a = st.cache[p, c, n]
    else:
        li = c * 8
        spin_lock(st.cls, li, st.counters, p, LOCK_CENTRAL)
        a = _take(st, p, li, csize)
        spin_unlock(st.cls, li)
        if a < 0:
            return -1
    st.counters[p, IN_USE] += csize
    return a


@kernel
def _free_slow(st, p, c, addr):
    """free when P's cache of class c is full: return its top ``batch`` blocks first;
    without a per-P cache (capacity 0 in cfg) push straight on the central list."""
    li = c * 8
    spin_lock(st.cls, li, st.counters, p, LOCK_CENTRAL)
    if st.cfg[CFG_CACHE] != 0:
        n = st.ccount[p, c]
        b = st.cfg[CFG_BATCH]
        for i in range(n - b, n):
            _put(st, li, st.cache[p, c, i])
        spin_unlock(st.cls, li)
        st.cache[p, c, n - b] = addr
        st.ccount[p, c] = n - b + 1
        st.counters[p, X_FLUSHES] += 1
        st.counters[p, X_MOVES] += b
    else:
        _put(st, li, addr)
        spin_unlock(st.cls, li)


# alloc and free are inlined into the executor's loop (numba IR inlining): as calls
# they would copy the whole State (~90 words) onto the stack per op (docs/findings.md,
# "Inlined kernels"). The slow paths stay out of line.
@kernel(inline="always")
def alloc(st, p, size, kind):
    if size > sc.MAX_SMALL:
        return sc.large_alloc(st, p, size, X_LARGE_MAPS)
    c = st.class_of[(size + 15) >> 4]
    n = st.ccount[p, c]
    if n == 0:
        return _alloc_slow(st, p, c)
    n -= 1
    st.ccount[p, c] = n
    st.counters[p, FAST_HITS] += 1
    st.counters[p, IN_USE] += st.class_size[c]
    return st.cache[p, c, n]


@kernel(inline="always")
def free(st, p, addr, size, kind):
    if size > sc.MAX_SMALL:
        sc.large_free(st, p, addr, size)
        return
    c = st.class_of[(size + 15) >> 4]
    st.counters[p, IN_USE] -= st.class_size[c]
    n = st.ccount[p, c]
    if n == st.cfg[CFG_CAP]:
        _free_slow(st, p, c, addr)
        return
    st.cache[p, c, n] = addr
    st.ccount[p, c] = n + 1


def check(st: State) -> list[str]:
    errs: list[str] = []
    use_cache, cap, _batch, _slab = (int(x) for x in st.cfg)
    cap = cap if use_cache else 0
    mapped = int(st.meta[MAPPED])
    nprocs = st.ccount.shape[0]
    counts = st.ccount[:, : sc.NCLASSES]
    if counts.min(initial=0) < 0 or counts.max(initial=0) > cap:
        p, c = np.unravel_index(int(np.argmax((counts < 0) | (counts > cap))), counts.shape)
        errs.append(f"P{p} class {c}: {int(counts[p, c])} cached blocks, capacity {cap}")
    addrs: list[np.ndarray] = []
    sizes: list[np.ndarray] = []
    for c in range(sc.NCLASSES):
        li = c * 8
        csize = int(st.class_size[c])
        cached = [st.cache[p, c, : max(0, min(int(counts[p, c]), cap))] for p in range(nprocs)]
        node, walked, bound = int(st.cls[li + CLS_HEAD]), [], int(st.cls[li + CLS_COUNT])
        while node >= 0 and len(walked) <= bound:
            if node % 16 or node + csize > mapped:
                errs.append(f"class {c}: central list node {node} outside mapped memory ({mapped}) or misaligned")
                break
            walked.append(node)
            node = int(st.arena64[node >> 3])
        else:
            if len(walked) != bound:
                errs.append(f"class {c}: central list has {'more than ' if node >= 0 else ''}{len(walked)} nodes, "
                            f"count {bound} (a cycle if more)")
        a = np.concatenate(cached + [np.array(walked, np.int64)])
        if a.size and (np.any(a % 16) or a.min() < 0 or a.max() + csize > mapped):
            errs.append(f"class {c}: a cached block is misaligned or outside mapped memory")
        addrs.append(a)
        sizes.append(np.full(a.size, csize, np.int64))
        if st.cls[li + CLS_CUR] > st.cls[li + CLS_LIM]:
            errs.append(f"class {c}: slab cursor beyond its limit")
        if st.cls[li + CLS_LOCK] != 0:
            errs.append(f"class {c}: lock still held")
        if int(st.cls[li + CLS_CARVED]) < bound + int(counts[:, c].sum()):
            errs.append(f"class {c}: more free blocks ({bound} central + cached) than carved ({int(st.cls[li + CLS_CARVED])})")
    allf = np.concatenate(addrs) if addrs else np.zeros(0, np.int64)
    alls = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    order = np.argsort(allf, kind="stable")
    sa, ss = allf[order], alls[order]
    if sa.size > 1:
        dup = np.flatnonzero(sa[1:] == sa[:-1])
        if dup.size:
            errs.append(f"free block {int(sa[dup[0]])} listed twice ({dup.size} duplicates)")
        elif np.any(sa[:-1] + ss[:-1] > sa[1:]):
            i = int(np.flatnonzero(sa[:-1] + ss[:-1] > sa[1:])[0])
            errs.append(f"free blocks {int(sa[i])} (+{int(ss[i])}) and {int(sa[i + 1])} overlap")
    lerrs, large_live = sc.check_large(st.meta, st.arena64, st.large_head, st.gl)
    errs += lerrs
    small_live = sum((int(st.cls[c * 8 + CLS_CARVED]) - int(st.cls[c * 8 + CLS_COUNT]) - int(counts[:, c].sum()))
                     * int(st.class_size[c]) for c in range(sc.NCLASSES))
    in_use = int(st.counters[:, IN_USE].sum())
    if in_use != small_live + large_live:
        errs.append(f"IN_USE {in_use} != {small_live} B in small blocks + {large_live} B large")
    if st.gl[sc.GL_LOCK] != 0:
        errs.append("heap lock still held")
    return errs


_dispatch.register(State, alloc, free)
