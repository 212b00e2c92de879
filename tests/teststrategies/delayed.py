"""delayed: bump plus a fixed busy delay on every alloc and free (test-only).

The injected slowdown of the statistics tests: a known, real change in
time per op with everything else equal, which ``alloclab ab`` and
``compare`` must call "slower". The delay is a chain of dependent
multiply-adds (a linear congruential step) that the compiler cannot fold.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch, bump
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import new_counters
from alloclab.strategies._kernel import kernel

NAME = "delayed"
DESCRIPTION = "bump with a fixed busy delay per op (test-only: the injected slowdown)"
EXTRA_COUNTERS: tuple[str, ...] = ()
ALIGN16 = True


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    delay: int = param(0, lo=0, hi=1_000_000, doc="dependent multiply-add steps per op (0: bump's speed)")


class State(NamedTuple):
    counters: np.ndarray
    meta: np.ndarray
    arena: np.ndarray
    cursor: np.ndarray
    limit: np.ndarray
    region: np.ndarray
    delay: np.ndarray      # (1,) steps per op
    sink: np.ndarray       # (1,) where the chain ends, so it is not dead code


def make_state(config: Config, heap, nprocs: int) -> State:
    b = bump.make_state(bump.Config(), heap, nprocs)
    return State(new_counters(nprocs), heap.meta, heap.arena, b.cursor, b.limit, b.region,
                 np.array([config.delay], np.int64), np.zeros(1, np.uint64))


@kernel
def _spin(st):
    x = st.sink[0]
    for _ in range(st.delay[0]):
        x = x * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
    st.sink[0] = x


@kernel
def alloc(st, p, size, kind):
    _spin(st)
    return bump.alloc(st, p, size, kind)


@kernel
def free(st, p, addr, size, kind):
    _spin(st)
    bump.free(st, p, addr, size, kind)


def check(st: State) -> list[str]:
    return bump.check(st)


_dispatch.register(State, alloc, free)
