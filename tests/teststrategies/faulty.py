"""A deliberately broken strategy: proves that check mode catches each kind of bug.

Not in the registry (``alloclab list`` never shows it): tests replay it through
its descriptor, ``DESCRIPTOR`` below. It lives in tests/, so only the test
session's numba cache folder ever holds its State type (see
strategies/_numba_cache.py and tests/conftest.py for why that matters).

``mode`` selects the bug: 0 correct bump, 1 every alloc returns the same
address (overlap), 2 misaligned addresses, 3 addresses past mapped memory,
4 alloc scribbles over the previously returned object (clobbered id).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import IN_USE, new_counters
from alloclab.strategies._descriptor import Strategy
from alloclab.strategies._heap import MAPPED, heap_map
from alloclab.strategies._kernel import kernel

NAME = "faulty"
DESCRIPTION = "broken on purpose"
EXTRA_COUNTERS = ()
ALIGN16 = True


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    mode: int = param(0, lo=0, hi=4, doc="which bug")


class State(NamedTuple):
    counters: np.ndarray
    meta: np.ndarray
    arena: np.ndarray
    words: np.ndarray  # [cursor, last, mode]


def make_state(config, heap, nprocs):
    return State(new_counters(nprocs), heap.meta, heap.arena,
                 np.array([0, -1, config.mode], np.int64))


@kernel
def alloc(st, p, size, kind):
    if st.meta[MAPPED] == 0:
        heap_map(st.meta, 1 << 20)
    mode = st.words[2]
    n = (size + 15) & ~15
    a = st.words[0]
    st.words[0] += n
    if mode == 1:
        a = 0
    elif mode == 2:
        a += 4
    elif mode == 3:
        a = st.meta[MAPPED] + 64
    elif mode == 4 and st.words[1] >= 0:
        st.arena[st.words[1]] ^= 0xFF
    st.words[1] = a
    st.counters[p, IN_USE] += n
    return a


@kernel
def free(st, p, addr, size, kind):
    st.counters[p, IN_USE] -= (size + 15) & ~15


def check(st):
    return []


_dispatch.register(State, alloc, free)

DESCRIPTOR = Strategy(NAME, __name__, DESCRIPTION)
