"""bump: a pointer bump that never reuses memory — the speed limit.

Every allocation advances a per-P cursor by the size rounded to 16 bytes; a
P whose current region is exhausted maps a fresh one (``region_kb``). Frees
only update the in-use count. No locks: each P owns its region, and the heap's
map call is itself lock-free. Its ns/op is the floor that the other strategies
are quoted against ("go is 2.1x bump"), and its memory line is the worst case:
mapped grows with every byte ever allocated.

State invariants:
    cursor[p] <= limit[p]                         (a P never runs past its region)
    limit[p] - region_start[p] <= region bytes    (or the region is one oversized object)
    sum_p counters[p, IN_USE] == bytes of live objects rounded to 16
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from alloclab.strategies._kernel import kernel

from alloclab.strategies import _dispatch
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import FAST_HITS, IN_USE, REFILLS, new_counters
from alloclab.strategies._heap import heap_map, heap_round

NAME = "bump"
DESCRIPTION = "pointer bump, never reuses: the speed limit and reference line"
EXTRA_COUNTERS: tuple[str, ...] = ()
ALIGN16 = True


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    region_kb: int = param(1024, lo=64, hi=65536, log=True,
                           doc="bytes mapped per refill of a P's region: larger = fewer map calls, more idle mapped tail per P")


class State(NamedTuple):
    counters: np.ndarray   # (nprocs, NCOUNTERS)
    meta: np.ndarray       # heap mapping words
    arena: np.ndarray
    cursor: np.ndarray     # (nprocs,) next free address of each P
    limit: np.ndarray      # (nprocs,) end of each P's region
    region: np.ndarray     # (1,) region bytes


def make_state(config: Config, heap, nprocs: int) -> State:
    return State(
        counters=new_counters(nprocs), meta=heap.meta, arena=heap.arena,
        cursor=np.zeros(nprocs, np.int64), limit=np.zeros(nprocs, np.int64),
        region=np.array([config.region_kb * 1024], np.int64),
    )


@kernel
def alloc(st, p, size, kind):
    n = (size + 15) & ~15
    a = st.cursor[p]
    if a + n > st.limit[p]:
        want = max(st.region[0], n)
        a = heap_map(st.meta, want)
        if a < 0:
            return -1
        st.limit[p] = a + heap_round(st.meta, want)
        st.counters[p, REFILLS] += 1
    else:
        st.counters[p, FAST_HITS] += 1
    st.cursor[p] = a + n
    st.counters[p, IN_USE] += n
    return a


@kernel
def free(st, p, addr, size, kind):
    st.counters[p, IN_USE] -= (size + 15) & ~15


def check(st: State) -> list[str]:
    errs = []
    for p in range(st.cursor.shape[0]):
        if st.cursor[p] > st.limit[p]:
            errs.append(f"P{p}: cursor {st.cursor[p]} beyond limit {st.limit[p]}")
    if st.limit.max(initial=0) > st.meta[0]:
        errs.append("a region ends beyond mapped memory")
    if st.counters[:, IN_USE].sum() < 0:
        errs.append("negative bytes in use")
    return errs


_dispatch.register(State, alloc, free)
