"""pytest-benchmark micro-suite: an alloc+free pair per strategy and size.

Each benchmarked call replays PAIRS alloc/free pairs of one size on one P
through the real executor (ids written, counters kept), on a fresh state that
has already served the same pairs once, so the steady-state path is what is
timed. ``extra_info["ns_per_pair"]`` is the per-pair figure.

    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest-benchmark compare 0001 0002 --group-by=param:size
"""
from __future__ import annotations

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness import executor as ex
from alloclab.strategies._heap import Heap
from alloclab.workloads.trace import make_trace

PAIRS = 10_000
SIZES = [16, 256, 4096, 65536]


def _pairs(size: int):
    op = np.tile(np.array([0, 1], np.int8), PAIRS)
    obj = np.repeat(np.arange(PAIRS, dtype=np.int64), 2)
    return make_trace(np.zeros(2 * PAIRS, np.int16), op, np.zeros(2 * PAIRS, np.int8),
                      np.full(2 * PAIRS, size, np.int32), obj, procs=1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", strategies.kernel_names())
def test_alloc_free_pair(benchmark, name, size):
    mod = strategies.get(name)
    tr = _pairs(size)
    addr_of = np.full(tr.nobj, ex.UNPUBLISHED, np.int64)
    shadow = np.zeros(1, np.uint8)
    flags = np.zeros(1, np.int64)

    def fresh():
        # bump never reuses, so every round starts from a fresh state (over the same, faulted-in arena)
        heap = Heap(2048 << 20)
        st = mod.make_state(mod.Config(), heap, 1)
        replay(st, heap)  # the same pairs once: steady state, compiled, pages touched
        return (st, heap), {}

    def replay(st, heap):
        status = ex.replay(st, heap.arena64, tr.p, tr.op, tr.kind, tr.size, tr.obj, addr_of, 0, len(tr),
                           False, True, shadow, False, -1, ex.new_stats(), flags)
        assert status == ex.OK

    benchmark.pedantic(replay, setup=fresh, rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info["ns_per_pair"] = benchmark.stats.stats.median * 1e9 / PAIRS
