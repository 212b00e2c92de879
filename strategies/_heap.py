"""The simulated address space: one arena per process, mapped in chunks.

Glossary (as mimalloc's types.h keeps one):
- *arena*: a numpy uint8 array reserved large; np.zeros is lazily committed by
  the OS, so an unused reserve costs nothing. An *address* is a byte offset
  into it; NULL is -1 (offset 0 is a real address).
- *mapped*: the prefix of the arena handed to the strategy by ``heap_map``,
  the model's mmap. It only ever grows, in multiples of ``chunk`` bytes, and
  it is the only source of ``mapped_bytes``: a strategy cannot hold memory the
  report does not see.

Invariants (``check_heap``):
    0 <= meta[MAPPED] <= meta[ARENA]
    meta[MAPPED] % meta[CHUNK] == 0
    meta[PEAK] == meta[MAPPED]            (nothing is ever unmapped)

The arena is reused across runs in one process: re-faulting a fresh 1 GiB
arena for every repetition would charge 1-2 ns/op of page faults to fast
strategies and distort ratios. Strategies must therefore never assume that
mapped memory reads as zero.
"""
from __future__ import annotations

import numpy as np
from alloclab.strategies._kernel import kernel

from alloclab.harness.limits import DEFAULT_ARENA_MB
from alloclab.strategies._atomics import atomic_add, atomic_cas, atomic_load

MAPPED = 0      # bytes mapped so far (the high-water mark; mapping is contiguous)
ARENA = 1       # bytes reserved
CHUNK = 2       # mapping granularity
OOM = 3         # 1 once a map request failed
MAP_CALLS = 4   # number of successful heap_map calls
PEAK = 5        # peak mapped bytes (== MAPPED while nothing unmaps)
FAILED_REQ = 6  # size of the request that failed
META_LEN = 8

DEFAULT_CHUNK = 64 * 1024  # an OS-ish mapping granule; Go asks for 4 MiB itself


@kernel
def heap_round(meta, nbytes):
    c = meta[CHUNK]
    return (nbytes + c - 1) // c * c


@kernel
def heap_map(meta, nbytes):
    """Map ``heap_round(nbytes)`` fresh bytes; returns their address or -1 (OOM).

    Lock-free (CAS on the high-water mark) so that strategies with per-class
    locks can grow concurrently in threads mode.
    """
    n = heap_round(meta, nbytes)
    while True:
        cur = atomic_load(meta, MAPPED)
        if cur + n > meta[ARENA] or n <= 0:
            meta[OOM] = 1
            meta[FAILED_REQ] = n
            return -1
        if atomic_cas(meta, MAPPED, cur, cur + n) == cur:
            atomic_add(meta, MAP_CALLS, 1)
            # PEAK follows MAPPED; a CAS-max keeps it right under races.
            while True:
                pk = atomic_load(meta, PEAK)
                if pk >= cur + n or atomic_cas(meta, PEAK, pk, cur + n) == pk:
                    break
            return cur


_ARENAS: dict[int, np.ndarray] = {}
_FAULTED: dict[int, int] = {}  # arena size -> bytes already touched once


def get_arena(nbytes: int) -> np.ndarray:
    """The process's arena of ``nbytes`` (created once, reused; see module doc)."""
    arena = _ARENAS.get(nbytes)
    if arena is None:
        _ARENAS.clear()  # one arena at a time: drop a differently sized one
        _FAULTED.clear()
        arena = np.zeros(nbytes, dtype=np.uint8)
        _ARENAS[nbytes] = arena
        _FAULTED[nbytes] = 0
    return arena


def prefault(arena: np.ndarray, nbytes: int) -> None:
    """Touch the arena's first ``nbytes`` once per process, so that no timed
    repetition pays first-touch page faults (about 0.5 us per 4 KiB page: for
    a bump allocator on small objects, more than its whole cost per op)."""
    size = arena.shape[0]
    nbytes = min(int(nbytes), size)
    done = _FAULTED.get(size, 0)
    if nbytes > done:
        arena[done:nbytes:4096] = 0
        _FAULTED[size] = nbytes


class Heap:
    """A fresh mapping state over the process arena."""

    def __init__(self, arena_bytes: int = DEFAULT_ARENA_MB << 20, chunk: int = DEFAULT_CHUNK):
        if arena_bytes < chunk or arena_bytes % 4096:
            raise ValueError(f"arena size {arena_bytes} must be a multiple of 4096 and >= the chunk ({chunk})")
        self.arena = get_arena(int(arena_bytes))
        self.arena64 = self.arena.view(np.int64)
        self.meta = np.zeros(META_LEN, dtype=np.int64)
        self.meta[ARENA] = arena_bytes
        self.meta[CHUNK] = chunk

    @property
    def mapped_bytes(self) -> int:
        return int(self.meta[MAPPED])

    @property
    def peak_mapped_bytes(self) -> int:
        return int(self.meta[PEAK])


def check_heap(meta) -> list[str]:
    errs = []
    if not (0 <= meta[MAPPED] <= meta[ARENA]):
        errs.append(f"heap: mapped {meta[MAPPED]} outside 0..arena {meta[ARENA]}")
    if meta[MAPPED] % meta[CHUNK]:
        errs.append(f"heap: mapped {meta[MAPPED]} not a multiple of chunk {meta[CHUNK]}")
    if meta[PEAK] != meta[MAPPED]:
        errs.append(f"heap: peak {meta[PEAK]} != mapped {meta[MAPPED]}")
    return errs
