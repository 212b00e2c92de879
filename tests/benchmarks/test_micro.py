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
from alloclab.harness.runner import replay_trace
from alloclab.workloads.trace import make_trace

PAIRS = 10_000
SIZES = [16, 256, 4096, 65536]
ARENA_MB = 2048


def _pairs(size: int):
    op = np.tile(np.array([0, 1], np.int8), PAIRS)
    obj = np.repeat(np.arange(PAIRS, dtype=np.int64), 2)
    return make_trace(np.zeros(2 * PAIRS, np.int16), op, np.zeros(2 * PAIRS, np.int8),
                      np.full(2 * PAIRS, size, np.int32), obj, procs=1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", strategies.kernel_names())
def test_alloc_free_pair(benchmark, name, size):
    tr = _pairs(size)
    cols = ex.columns(tr)

    def fresh():
        # bump never reuses, so every round starts from a fresh state (over the same, faulted-in arena),
        # which has served the same pairs once: steady state, compiled, pages touched
        r = replay_trace(name, tr, arena_mb=ARENA_MB)
        assert r.status == "ok", r.error
        return (r.state, ex.Replay(r.state.arena, tr.nobj)), {}

    def replay(st, rp):
        assert rp.run(st, cols) == ex.OK

    benchmark.pedantic(replay, setup=fresh, rounds=15, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:   # None under --benchmark-disable (a smoke run: the calls, no timing)
        benchmark.extra_info["ns_per_pair"] = benchmark.stats.stats.median * 1e9 / PAIRS
