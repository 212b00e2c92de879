"""A yardstick timed beside every repetition: how fast is the machine right now?

On a shared or virtual machine the speed of the whole machine changes from
moment to moment (a neighbour on the same physical core, steal time,
frequency): measured here, every strategy and even the real Go runtime got
15-30% slower together for seconds at a time, in no relation to the
process they ran in. A comparison of two runs made at different moments
then compares the moments. So a fixed piece of work, the same in every
commit, is timed right before and right after each timed repetition
(``ref_ns``), and the statistics divide a repetition's time by it: what the
machine's moment did to both cancels, and what a code change did to the
strategy does not (the yardstick's code never changes with alloclab's).

The work mixes what allocators spend time on: a dependent pointer chase
through a 4 MiB permutation (cache and TLB misses, memory latency) and a
dependent multiply-add chain (core speed). ~1-2 ms a call: long enough to
time well, short enough to stay beside its repetition.

Do not change ``_yardstick`` or its parameters: results measured with
different yardsticks are not comparable (``YARDSTICK_VERSION`` says which).
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

YARDSTICK_VERSION = 1
_WORDS = 1 << 19        # 4 MiB of int64: beyond L2, within a typical L3
_STEPS = 20_000
_SEED = 20261129


@njit(cache=True, nogil=True)
def _yardstick(nxt, steps):
    i = 0
    x = np.uint64(1)
    for _ in range(steps):
        i = nxt[i]
        x = x * np.uint64(6364136223846793005) + np.uint64(i)
    return x


class Yardstick:
    """One per process: a fixed random cycle through ``_WORDS`` slots."""

    def __init__(self):
        perm = np.random.default_rng(_SEED).permutation(_WORDS).astype(np.int64)
        self.nxt = np.empty_like(perm)
        self.nxt[perm] = np.roll(perm, 1)   # one cycle through every slot
        self.sink = _yardstick(self.nxt, 100)  # compile or load, fault the pages in

    def __call__(self) -> float:
        """Seconds for one fixed piece of work, now."""
        t0 = time.perf_counter()
        self.sink ^= _yardstick(self.nxt, _STEPS)
        return time.perf_counter() - t0
