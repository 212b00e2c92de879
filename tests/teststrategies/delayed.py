"""delayed: bump plus a fixed busy delay on every alloc and free (test-only).

The injected slowdown of the statistics tests: a known, real change in
time per op with everything else equal, which ``alloclab ab`` and
``compare`` must call "slower". The delay is a chain of dependent
xorshift-multiply steps that the compiler cannot fold.

``slow_every``/``slow_delay``: a deliberate slow path for the latency tests,
a longer spin on every Nth alloc that bumps the ``heap_grows`` counter, as a
real heap growth would (harness/latency.py tags it "heap grow").
"""
from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np

from alloclab.strategies import _dispatch, bump
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._counters import EXTRA_BASE, new_counters
from alloclab.strategies._kernel import kernel

NAME = "delayed"
DESCRIPTION = "bump with a fixed busy delay per op (test-only: the injected slowdown)"
EXTRA_COUNTERS: tuple[str, ...] = ("heap_grows",)
X_SLOW = EXTRA_BASE
ALIGN16 = True


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    delay: int = param(0, lo=0, hi=1_000_000, doc="dependent xorshift-multiply steps per alloc and per free (0: no delay)")
    delay_frac: int = param(0, lo=0, hi=1023, doc="a further fraction of a step per op, in 1/1024ths, spent as a whole step "
                                                  "every 1024/delay_frac ops (a slowdown finer than one step: "
                                                  "tests/stats_targets.py sets a cell's to make it 20% slower)")
    slow_every: int = param(0, lo=0, hi=1_000_000, doc="every Nth alloc (per P) takes the slow path (0: never)")
    slow_delay: int = param(20_000, lo=0, hi=10_000_000, doc="extra steps the slow path spins")


class State(NamedTuple):
    counters: np.ndarray
    meta: np.ndarray
    arena: np.ndarray
    cursor: np.ndarray
    limit: np.ndarray
    region: np.ndarray
    delay: np.ndarray      # (3,) steps per op, fraction of a step per op (1/1024ths), the fraction's carry
    sink: np.ndarray       # (1,) where the chain ends, so it is not dead code
    slow: np.ndarray       # (2,) slow_every, slow_delay


def make_state(config: Config, heap, nprocs: int) -> State:
    # ALLOCLAB_TEST_DELAY_OFF=1 turns the config's delay off, so that two runs of the same cell
    # (same config hash, so compare matches them) can differ by a known slowdown: tests/stats_targets.py
    off = os.environ.get("ALLOCLAB_TEST_DELAY_OFF") == "1"
    delay, frac = (0, 0) if off else (config.delay, config.delay_frac)
    b = bump.make_state(bump.Config(), heap, nprocs)
    return State(new_counters(nprocs), heap.meta, heap.arena, b.cursor, b.limit, b.region,
                 np.array([delay, frac, 0], np.int64), np.zeros(1, np.uint64),
                 np.array([config.slow_every, config.slow_delay], np.int64))


@kernel
def _spin(st, steps):
    x = st.sink[0] | np.uint64(1)
    for _ in range(steps):
        # xorshift-multiply: each step depends on the last, and, unlike a plain
        # multiply-add chain (which LLVM collapsed to a fraction of a cycle a step),
        # has no closed form for the compiler to find
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
    st.sink[0] = x


@kernel
def _delay(st):
    # the carry is one word for all Ps: exact in serial mode, approximate (racy) in threads mode
    d = st.delay
    d[2] += d[1]
    _spin(st, d[0] + (d[2] >> 10))
    d[2] &= 1023


@kernel
def alloc(st, p, size, kind):
    _delay(st)
    every = st.slow[0]
    if every > 0 and st.counters[p, 0] % every == every - 1:   # counters[p, ALLOCS]: this P's allocs so far
        st.counters[p, X_SLOW] += 1
        _spin(st, st.slow[1])
    return bump.alloc(st, p, size, kind)


@kernel
def free(st, p, addr, size, kind):
    _delay(st)
    bump.free(st, p, addr, size, kind)


def check(st: State) -> list[str]:
    return bump.check(st)


_dispatch.register(State, alloc, free)
