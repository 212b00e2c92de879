"""pow2: power-of-two size classes with a LIFO free list per class and P.

The worked example of docs/adding-a-strategy.md: the smallest strategy that
reuses memory. A request is rounded up to a power of two (16 B at least);
each P keeps, per class, a list of free blocks linked through their first
word, and carves new blocks from a region it maps ``region_kb`` at a time
(a block larger than the region gets a mapping of its own). A free goes on
the freeing P's list, so no P touches another's words and no lock is needed.

State invariants:
    carve[p, NEXT] <= carve[p, END]                  (a P never runs past its region)
    every listed block lies inside mapped memory
    sum_p counters[p, IN_USE] == live bytes, each rounded to its class
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import FAST_HITS, IN_USE, REFILLS, new_counters
from alloclab.strategies._heap import MAPPED, heap_map, heap_round
from alloclab.strategies._kernel import kernel

NAME = "pow2"
DESCRIPTION = "power-of-two classes, a LIFO free list per class and P"
EXTRA_COUNTERS: tuple[str, ...] = ("reuses",)
ALIGN16 = True          # blocks are powers of two >= 16, carved at 16-aligned offsets

NCLASSES = 48           # class c holds blocks of 2**c bytes
REUSES = 16             # _counters.EXTRA_BASE + 0
NEXT, END = 0, 1        # columns of carve: the region a P carves new blocks from


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    region_kb: int = param(256, lo=64, hi=65536, log=True,
                           doc="bytes a P maps at a time: larger = fewer map calls, more idle mapped tail per P")


class State(NamedTuple):
    counters: np.ndarray   # (nprocs, NCOUNTERS)
    meta: np.ndarray       # heap mapping words
    arena: np.ndarray
    words: np.ndarray      # the arena as int64: the free lists' links
    head: np.ndarray       # (nprocs, NCLASSES) first free block, -1 if none
    carve: np.ndarray      # (nprocs, 2) NEXT, END of each P's region
    region: np.ndarray     # (1,) region bytes


def make_state(config: Config, heap, nprocs: int) -> State:
    return State(new_counters(nprocs), heap.meta, heap.arena, heap.arena64,
                 np.full((nprocs, NCLASSES), -1, np.int64), np.zeros((nprocs, 2), np.int64),
                 np.array([config.region_kb * 1024], np.int64))


@kernel(inline="always")
def _class(size):
    c = 4
    while (1 << c) < size:
        c += 1
    return c


@kernel
def alloc(st, p, size, kind):
    c = _class(size)
    n = 1 << c
    a = st.head[p, c]
    if a >= 0:                          # reuse: pop the class's list
        st.head[p, c] = st.words[a >> 3]
        st.counters[p, REUSES] += 1
        st.counters[p, FAST_HITS] += 1
    elif st.carve[p, NEXT] + n <= st.carve[p, END]:
        a = st.carve[p, NEXT]
        st.carve[p, NEXT] = a + n
        st.counters[p, FAST_HITS] += 1
    else:                               # a fresh region (or a mapping of its own, if larger)
        want = max(st.region[0], n)
        a = heap_map(st.meta, want)
        if a < 0:
            return -1
        st.carve[p, NEXT] = a + n
        st.carve[p, END] = a + heap_round(st.meta, want)
        st.counters[p, REFILLS] += 1
    st.counters[p, IN_USE] += n
    return a


@kernel
def free(st, p, addr, size, kind):
    c = _class(size)
    st.words[addr >> 3] = st.head[p, c]
    st.head[p, c] = addr
    st.counters[p, IN_USE] -= 1 << c


def check(st: State) -> list[str]:
    errs = []
    for p in range(st.carve.shape[0]):
        if st.carve[p, NEXT] > st.carve[p, END]:
            errs.append(f"P{p}: next block {st.carve[p, NEXT]} beyond its region's end {st.carve[p, END]}")
        for c in range(NCLASSES):
            a, seen = int(st.head[p, c]), 0
            while a >= 0 and seen <= st.meta[MAPPED] >> 4:
                if a + (1 << c) > st.meta[MAPPED]:
                    errs.append(f"P{p} class {c}: free block {a} outside mapped memory")
                    break
                a, seen = int(st.words[a >> 3]), seen + 1
    if st.counters[:, IN_USE].sum() < 0:
        errs.append("negative bytes in use")
    return errs


_dispatch.register(State, alloc, free)
