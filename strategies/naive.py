"""naive: a K&R-style malloc — first fit over an address-ordered free list,
boundary tags, immediate coalescing, one global lock.

This is the "malloc" the article's pool is measured against: every operation
takes the one heap-wide lock, searches or edits a single shared free list, and
pays for it in time (the list walk) and under threads (contention).

Design
    1. Block layout. Every block carries its size (a multiple of 16) and an
       allocated bit in a header word and an identical footer word:

           b         b+8                          b+S-8    b+S
           | header  | payload (16-aligned) ...   | footer | next block's header
           | S|bits  | next | prev | ...          | S|bits |

       A block starts at b == 8 (mod 16) so that its payload b+8 is 16-aligned
       (ALIGN16) with only 8 bytes of header; the footer lets free() find the
       previous block in O(1) (``b - (footer of b-8)``) — Knuth's boundary
       tags. A block of S bytes serves any request of up to S - 16 bytes. A
       free block keeps its free-list links in its first two payload words, so
       the smallest block is 32 bytes.
    2. Heap. The first growth lays down, at the mapped address A: an unused
       padding word, a *prologue* block (32 B, allocated, the free list's
       sentinel) and, after the free space, a 0-sized allocated *epilogue*
       header in the last word. The two fences mean coalescing never needs a
       bounds test. Later growths map more with ``heap_map``; the heap hands
       out one contiguous high-water mark, so the new region starts exactly at
       the old end: the old epilogue header becomes the new space's header and
       the new space merges with a free block at the old end, as sbrk-based
       K&R does (``grow_merges``). Should a region ever not be contiguous
       (another user of the same heap), the hole is fenced off as one
       allocated *gap* block instead (FENCE bit, never freed), so the block
       walk still spans the heap.
    3. alloc(size): block size n = max(round16(size + 16), 32). Walk the free
       list from its lowest address and take the first block with S >= n
       (first fit; ``blocks_scanned`` counts the walk). If S - n >= min_block
       the block is split and its *front* is handed out; the free remainder
       takes over the block's place in the address-ordered list. (K&R hands
       out the tail, which saves the four link writes, but then the top of
       every region is allocated and a growth can never merge with the free
       remainder below it: measured on random/large, each region left a
       splinter behind and first fit walked ~2000 blocks per alloc.)
       Otherwise the whole block is unlinked and handed out. No fit: grow
       (step 2) and use the block at the heap top.
    4. free(addr): read the neighbours' tags; merge with a free block before
       and/or after (``coalesces`` counts merges). Merging into the previous
       block, or taking over the next block's list position, is O(1); only a
       block with two allocated neighbours must find its place in the list by
       walking it from the head (``insert_scanned``), the O(free blocks) step
       K&R pays on every free.
    5. One global lock (``LOCK_GLOBAL``) around the whole of alloc and free,
       growth included: threads mode is correct and shows what a single heap
       lock costs. No operation is ever served without it (FAST_HITS stays 0).
       REFILLS counts heap growths.

Departures from K&R: no rover (``freep``): the search always starts at the
lowest address, which is first fit (K&R's rover makes it next fit); and the
list is doubly linked so that a block can be unlinked in O(1) after coalescing.

Tunables: ``grow_kb`` (the growth step of 2.) and ``min_block`` (the
split threshold of 3.); what each trades is in its ``param(doc=...)``, shown
by ``alloclab list -v``. If a full growth step does not fit the arena,
growth retries with exactly what the request needs before reporting OOM.

Counters: IN_USE is the whole block size S of each live object (tags and any
unsplit remainder included): the bytes the object really takes from the heap.

State invariants (``check``), walking blocks b from heap[START] + 8:
    header(b) == footer(b)                       for every block
    b % 16 == 8, size(b) % 16 == 0               (payloads 16-aligned)
    sum_b size(b) + 16 == heap[OWNED] + heap[GAP]   (padding + epilogue words)
    no two physically adjacent blocks are free    (coalescing is complete)
    free-list walk == free blocks in address order, each once; prev(next(x)) == x
    sum_p counters[p, IN_USE] == sum of size(b) over allocated, non-fence b
    heap[END] <= meta[MAPPED]; locks[0] == 0 between operations
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch
from alloclab.strategies._atomics import spin_lock, spin_unlock
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import EXTRA_BASE, IN_USE, LOCK_GLOBAL, REFILLS, new_counters
from alloclab.strategies._heap import MAPPED, check_heap, heap_map, heap_round
from alloclab.strategies._kernel import kernel

NAME = "naive"
DESCRIPTION = "K&R first-fit free list with boundary tags and coalescing, one global lock"
EXTRA_COUNTERS: tuple[str, ...] = ("blocks_scanned", "insert_scanned", "coalesces", "splits", "grow_merges")
ALIGN16 = True

BLOCKS_SCANNED = EXTRA_BASE + 0   # free blocks looked at by first-fit searches
INSERT_SCANNED = EXTRA_BASE + 1   # free blocks walked to find a freed block's list position
COALESCES = EXTRA_BASE + 2        # merges of a freed block with a free neighbour
SPLITS = EXTRA_BASE + 3           # free blocks split to serve a smaller request
GROW_MERGES = EXTRA_BASE + 4      # growths merged with a free block at the old heap end

ALLOC_BIT = 1
FENCE_BIT = 2     # prologue and gap blocks: allocated, never freed, not objects
SIZE_MASK = ~15
TAGS = 16         # header + footer
MIN_BLOCK = 32    # header + next + prev + footer
PROLOGUE = 32
HEAP_OVERHEAD = 8 + PROLOGUE + 8  # padding word, prologue, epilogue header

# heap words (State.heap)
H_START = 0   # address of the first region (its padding word); -1 before the first growth
H_END = 1     # end of the heap; the epilogue header is the word at H_END - 8
H_SENT = 2    # the prologue block: the free list's sentinel (-1 before the first growth)
H_OWNED = 3   # bytes this strategy got from heap_map
H_GAP = 4     # bytes between non-contiguous regions (mapped by someone else)
H_LEN = 8

# config words (State.cfg)
CFG_GROW = 0
CFG_MIN_SPLIT = 1


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    grow_kb: int = param(256, lo=64, hi=65536, log=True,
                         doc="KiB mapped per heap growth (at least the request): larger = fewer growths under the "
                             "global lock, more mapped-but-unused memory at the heap top (up to one step)")
    min_block: int = param(32, choices=(32, 48, 64, 96, 128, 256),
                           doc="smallest free remainder a split leaves: larger = fewer splinters for first fit to "
                               "walk past, more internal waste (up to min_block - 16 B per object)")


class State(NamedTuple):
    counters: np.ndarray   # (nprocs, NCOUNTERS)
    meta: np.ndarray       # heap mapping words
    arena: np.ndarray      # uint8
    arena64: np.ndarray    # int64 view of the arena: tags and list links live here
    locks: np.ndarray      # (8,) the global lock word at index 0, alone on its cache line
    heap: np.ndarray       # (H_LEN,) H_* words above
    cfg: np.ndarray        # (2,) grow bytes, min split remainder


def make_state(config: Config, heap, nprocs: int) -> State:
    h = np.zeros(H_LEN, np.int64)
    h[H_START] = -1
    h[H_SENT] = -1
    return State(
        counters=new_counters(nprocs), meta=heap.meta, arena=heap.arena,
        arena64=heap.arena64, locks=np.zeros(8, np.int64), heap=h,
        cfg=np.array([config.grow_kb * 1024, config.min_block], np.int64),
    )


@kernel(inline="always")
def _set_tags(w, b, size, bits):
    w[b >> 3] = size | bits
    w[(b + size - 8) >> 3] = size | bits


@kernel(inline="always")
def _link_after(w, prev, b):
    """Insert free block b into the list right after ``prev``."""
    nxt = w[(prev + 8) >> 3]
    w[(b + 8) >> 3] = nxt
    w[(b + 16) >> 3] = prev
    w[(prev + 8) >> 3] = b
    w[(nxt + 16) >> 3] = b


@kernel(inline="always")
def _unlink(w, b):
    nxt = w[(b + 8) >> 3]
    prv = w[(b + 16) >> 3]
    w[(prv + 8) >> 3] = nxt
    w[(nxt + 16) >> 3] = prv


@kernel(inline="always")
def _take_place(w, old, b):
    """Free block b takes free block ``old``'s list position (the list is in address order, so b must lie
    between old's neighbours: the remainder of a split, or a freed block merging with the one above it)."""
    nxt = w[(old + 8) >> 3]
    prv = w[(old + 16) >> 3]
    w[(b + 8) >> 3] = nxt
    w[(b + 16) >> 3] = prv
    w[(prv + 8) >> 3] = b
    w[(nxt + 16) >> 3] = b


@kernel
def _map(st, need):
    """Map a growth step, or just ``need`` bytes when the step does not fit; (addr, bytes) or (-1, 0)."""
    want = max(need, st.cfg[CFG_GROW])
    a = heap_map(st.meta, want)
    if a < 0 and want > need:
        want = need
        a = heap_map(st.meta, want)
    if a < 0:
        return -1, 0
    return a, heap_round(st.meta, want)


@kernel
def _grow(st, p, n):
    """Add memory to the heap; returns the free block at the heap top (which
    holds the new memory) or -1 on OOM. It is at least n bytes unless the new
    region was not contiguous with the old one (then the caller grows again)."""
    w = st.arena64
    hp = st.heap
    if hp[H_SENT] < 0:
        a, got = _map(st, n + HEAP_OVERHEAD)
        if a < 0:
            return -1
        sent = a + 8
        _set_tags(w, sent, PROLOGUE, ALLOC_BIT | FENCE_BIT)
        w[(sent + 8) >> 3] = sent
        w[(sent + 16) >> 3] = sent
        b = sent + PROLOGUE
        _set_tags(w, b, got - HEAP_OVERHEAD, 0)
        _link_after(w, sent, b)
        w[(a + got - 8) >> 3] = ALLOC_BIT | FENCE_BIT  # epilogue
        hp[H_START] = a
        hp[H_SENT] = sent
        hp[H_END] = a + got
        hp[H_OWNED] = got
        st.counters[p, REFILLS] += 1
        return b
    end = hp[H_END]
    sent = hp[H_SENT]
    last_tag = w[(end - 16) >> 3]
    tail = 0 if (last_tag & ALLOC_BIT) else (last_tag & SIZE_MASK)
    a, got = _map(st, n - tail)
    if a < 0:
        return -1
    hp[H_OWNED] += got
    st.counters[p, REFILLS] += 1
    if a == end:
        # sbrk-style: the old epilogue header becomes the header of the new space
        if tail:
            b = end - 8 - tail
            _set_tags(w, b, tail + got, 0)
            st.counters[p, GROW_MERGES] += 1
        else:
            b = end - 8
            _set_tags(w, b, got, 0)
            # b is above every free block: the list's last position (before the sentinel)
            _link_after(w, w[(sent + 16) >> 3], b)
    else:
        # [end, a) belongs to someone else: fence it with an allocated gap block
        # from the old epilogue to the new region's first word
        _set_tags(w, end - 8, a + 16 - end, ALLOC_BIT | FENCE_BIT)
        hp[H_GAP] += a - end
        b = a + 8
        _set_tags(w, b, got - 16, 0)
        _link_after(w, w[(sent + 16) >> 3], b)
    w[(a + got - 8) >> 3] = ALLOC_BIT | FENCE_BIT  # epilogue
    hp[H_END] = a + got
    return b


@kernel
def alloc(st, p, size, kind):
    n = max((size + TAGS + 15) & SIZE_MASK, MIN_BLOCK)
    w = st.arena64
    spin_lock(st.locks, 0, st.counters, p, LOCK_GLOBAL)
    b = -1
    sent = st.heap[H_SENT]
    if sent >= 0:
        scanned = 0
        q = w[(sent + 8) >> 3]
        while q != sent:
            scanned += 1
            if (w[q >> 3] & SIZE_MASK) >= n:
                b = q
                break
            q = w[(q + 8) >> 3]
        st.counters[p, BLOCKS_SCANNED] += scanned
    while b < 0:
        b = _grow(st, p, n)
        if b < 0:
            spin_unlock(st.locks, 0)
            return -1
        if (w[b >> 3] & SIZE_MASK) < n:
            b = -1
    s = w[b >> 3] & SIZE_MASK
    if s - n >= st.cfg[CFG_MIN_SPLIT]:
        # hand out the front: the remainder, above it, takes over its list
        # position and stays at the heap top, where growth can merge with it
        r = b + n
        _take_place(w, b, r)
        _set_tags(w, r, s - n, 0)
        s = n
        st.counters[p, SPLITS] += 1
    else:
        _unlink(w, b)
    _set_tags(w, b, s, ALLOC_BIT)
    st.counters[p, IN_USE] += s
    spin_unlock(st.locks, 0)
    return b + 8


@kernel
def free(st, p, addr, size, kind):
    w = st.arena64
    b = addr - 8
    spin_lock(st.locks, 0, st.counters, p, LOCK_GLOBAL)
    s = w[b >> 3] & SIZE_MASK
    st.counters[p, IN_USE] -= s
    prev_tag = w[(b - 8) >> 3]
    next_tag = w[(b + s) >> 3]
    prev_free = (prev_tag & ALLOC_BIT) == 0
    next_free = (next_tag & ALLOC_BIT) == 0
    if prev_free:
        pb = b - (prev_tag & SIZE_MASK)
        total = (prev_tag & SIZE_MASK) + s
        if next_free:
            _unlink(w, b + s)
            total += next_tag & SIZE_MASK
            st.counters[p, COALESCES] += 2
        else:
            st.counters[p, COALESCES] += 1
        _set_tags(w, pb, total, 0)  # pb keeps its list position
    elif next_free:
        # b takes over the next block's list position (same address order)
        _take_place(w, b + s, b)
        _set_tags(w, b, s + (next_tag & SIZE_MASK), 0)
        st.counters[p, COALESCES] += 1
    else:
        # both neighbours allocated: walk to the first free block above b
        sent = st.heap[H_SENT]
        q = w[(sent + 8) >> 3]
        walked = 0
        while q != sent and q < b:
            q = w[(q + 8) >> 3]
            walked += 1
        st.counters[p, INSERT_SCANNED] += walked
        _set_tags(w, b, s, 0)
        _link_after(w, w[(q + 16) >> 3], b)
    spin_unlock(st.locks, 0)


def walk_blocks(st: State) -> list[tuple[int, int, int]]:
    """Every block from the prologue to the epilogue (excluded): (address, size, tag bits).

    Stops at the first malformed tag (size 0 before the end, or a block past the end)."""
    w = st.arena64
    hp = st.heap
    out = []
    if hp[H_SENT] < 0:
        return out
    b, end = int(hp[H_START]) + 8, int(hp[H_END])
    while b < end - 8:
        h = int(w[b >> 3])
        size = h & SIZE_MASK
        if size <= 0 or b + size > end - 8:
            break
        out.append((b, size, h & 15))
        b += size
    return out


def free_list(st: State, limit: int) -> list[int]:
    """The free list from the sentinel, at most ``limit`` entries (so a cycle cannot hang)."""
    w = st.arena64
    sent = int(st.heap[H_SENT])
    out = []
    if sent < 0:
        return out
    q = int(w[(sent + 8) >> 3])
    while q != sent and len(out) < limit:
        out.append(q)
        q = int(w[(q + 8) >> 3])
    return out


def check(st: State) -> list[str]:
    errs = check_heap(st.meta)
    w = st.arena64
    hp = st.heap
    in_use = int(st.counters[:, IN_USE].sum())
    if st.locks[0] != 0:
        errs.append("global lock still held")
    if hp[H_SENT] < 0:
        if in_use != 0 or hp[H_OWNED] != 0:
            errs.append(f"no heap yet, but in_use={in_use}, owned={int(hp[H_OWNED])}")
        return errs
    start, end = int(hp[H_START]), int(hp[H_END])
    if end > st.meta[MAPPED]:
        errs.append(f"heap end {end} beyond mapped {int(st.meta[MAPPED])}")
    if int(hp[H_SENT]) != start + 8:
        errs.append(f"sentinel {int(hp[H_SENT])} is not the prologue at {start + 8}")
    # walk every block by its header; verify tags
    b = start + 8
    total = 0
    alloc_bytes = 0
    free_blocks = []
    prev_free = False
    while True:
        if b >= end:
            errs.append(f"block walk ran to {b} past the heap end {end} without an epilogue")
            break
        h = int(w[b >> 3])
        size = h & SIZE_MASK
        if size == 0:
            if h != ALLOC_BIT | FENCE_BIT or b != end - 8:
                errs.append(f"epilogue {h:#x} at {b}, expected {ALLOC_BIT | FENCE_BIT:#x} at {end - 8}")
            break
        if b % 16 != 8 or h & 12 or size < MIN_BLOCK - 16 * bool(h & FENCE_BIT):
            errs.append(f"block {b}: bad header {h:#x} (address %16 must be 8, size >= 32)")
            break
        if b + size > end - 8:
            errs.append(f"block {b} of {size} B runs past the epilogue at {end - 8}")
            break
        f = int(w[(b + size - 8) >> 3])
        if f != h:
            errs.append(f"block {b}: header {h:#x} != footer {f:#x}")
            break
        total += size
        is_free = not (h & ALLOC_BIT)
        if is_free:
            if h & FENCE_BIT:
                errs.append(f"block {b}: free fence block")
            if prev_free:
                errs.append(f"blocks {free_blocks[-1]} and {b} are adjacent and both free (not coalesced)")
            free_blocks.append(b)
        elif not h & FENCE_BIT:
            alloc_bytes += size
        prev_free = is_free
        b += size
    if not errs:
        if total + 16 != hp[H_OWNED] + hp[H_GAP]:
            errs.append(f"block sizes {total} + 16 != owned {int(hp[H_OWNED])} + gaps {int(hp[H_GAP])}")
    if in_use != alloc_bytes:
        errs.append(f"sum IN_USE {in_use} != allocated block bytes {alloc_bytes}")
    # the free list: exactly the free blocks, in address order, links consistent
    lst = free_list(st, len(free_blocks) + 1)
    if lst != free_blocks:
        extra = sorted(set(lst) - set(free_blocks))[:3]
        missing = sorted(set(free_blocks) - set(lst))[:3]
        errs.append(f"free list ({len(lst)} entries) != free blocks in address order ({len(free_blocks)}); "
                    f"not free: {extra}, missing: {missing}")
    sent = int(hp[H_SENT])
    prev = sent
    for q in lst:
        if int(w[(q + 16) >> 3]) != prev:
            errs.append(f"free block {q}: prev link {int(w[(q + 16) >> 3])} != {prev}")
            break
        prev = q
    if int(w[(sent + 16) >> 3]) != prev:
        errs.append(f"sentinel prev link {int(w[(sent + 16) >> 3])} != last free block {prev}")
    return errs


_dispatch.register(State, alloc, free)
