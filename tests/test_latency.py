"""Per-op latency: the histogram against numpy, merging, the stored rows, sampling, and a deliberate
slow path that must show up in p99.9 tagged with its cause."""
import types

import numpy as np
import pytest
from numba import njit

from alloclab.harness import executor as ex
from alloclab.harness import latency as L
from alloclab.harness.cli import main
from alloclab.harness.runner import Instrument, replay_once
from alloclab.workloads import generate
from conftest import DELAYED
from alloclab.strategies import freelist
from teststrategies import delayed


@njit(cache=True)
def _buckets(v, out):
    for i in range(v.shape[0]):
        out[i] = ex.hist_bucket(v[i])


def _synthetic(seed=0, n=200_000):
    rng = np.random.default_rng(seed)
    body = rng.lognormal(np.log(60), 0.5, n)           # ~60 cycles, as fast paths are
    tail = rng.pareto(1.5, n // 100) * 2_000 + 1_000   # a heavy tail, as slow paths are
    return np.concatenate([body, tail, [0, 1, 63, 64, 65, 2**40]]).astype(np.int64)


def _hist(cycles, ns_cycle=0.5):
    counts = np.zeros((2, ex.LAT_CAUSES, ex.HIST_BUCKETS), np.int64)
    np.add.at(counts, (0, 0, L.bucket_of(cycles)), 1)
    mx = np.zeros(8, np.int64)
    mx[0] = cycles.max()
    return L.Histogram.from_probe(types.SimpleNamespace(hist=[counts], lat_max=[mx]), ns_cycle)


def test_kernel_and_numpy_buckets_agree_and_hold_their_values():
    v = np.concatenate([_synthetic(), (1 << np.arange(47)) - 1, 1 << np.arange(47)]).astype(np.int64)
    out = np.zeros(len(v), np.int64)
    _buckets(v, out)
    assert (out == L.bucket_of(v)).all()
    low, high = L.bucket_bounds()
    inside = v < (1 << (ex.HIST_MAX_MSB + 1))
    assert ((low[out] <= v) & (v < high[out]))[inside].all()
    assert ((high - low) <= np.maximum(low, 1) * L.RELATIVE_ERROR + (low < ex.HIST_SUB)).all()


def test_percentiles_match_numpy_within_the_stated_error():
    cyc = _synthetic()
    h = _hist(cyc)
    ns = cyc * 0.5
    for q in L.QUANTILES + (0.9999,):
        want = np.quantile(ns, q, method="inverted_cdf")
        assert abs(h.quantile(0, q) - want) <= L.RELATIVE_ERROR * want + 0.5, q
    s = h.summary(0)
    assert s["count"] == len(cyc) and s["max"] == cyc.max() * 0.5
    assert abs(h.mean(0) - ns.mean()) <= L.RELATIVE_ERROR * ns.mean()
    assert h.count(1) == 0 and np.isnan(h.summary(1)["max"])


def test_no_percentile_is_above_the_exact_max():
    """The top bucket's midpoint can lie above the slowest op (which sits in its lower half): the
    percentiles stop at the max, which is exact."""
    low, _ = L.bucket_bounds()
    cyc = np.concatenate([np.full(999, 100), [low[400]]]).astype(np.int64)   # the max at a bucket's floor
    h = _hist(cyc)
    s = h.summary(0)
    assert s["p99.9"] <= s["max"] == low[400] * 0.5 and h.quantile(0, 1.0) == s["max"]
    assert s["p50"] == h.quantile(0, 0.5) <= s["p99.9"]


def test_merge_and_stored_rows_give_back_the_whole():
    cyc = _synthetic(seed=3)
    whole = _hist(cyc)
    merged = _hist(cyc[::2]).merge(_hist(cyc[1::2]))
    assert merged.count(0) == whole.count(0)
    for q in L.QUANTILES:
        assert merged.quantile(0, q) == whole.quantile(0, q)
    import pandas as pd

    back = L.Histogram.from_rows(pd.DataFrame(whole.to_rows(cell_id="c", rep=0)))
    assert back.count(0) == whole.count(0) and back.max_ns[0] == whole.max_ns[0]
    assert back.quantile(0, 0.999) == whole.quantile(0, 0.999)


def test_tags_follow_the_declared_counter_names_in_priority_order():
    tags = L.tags_for({3: "refills", 7: "contended", 20: "gc_cycles", 21: "heap_grows", 22: "unrelated"})
    assert [L.CAUSES[k] for _, k in tags] == ["gc", "heap grow", "lock contention", "refill"]
    assert [c for c, _ in tags] == [20, 21, 7, 3]


@pytest.fixture(scope="module")
def trace():
    return generate("random", procs=1, seed=2, ops=60_000, dist="small", live=500)


def test_a_slow_path_shows_in_p999_and_is_tagged(trace, arena_mb):
    cfg = delayed.Config(slow_every=400, slow_delay=20_000)   # 0.25% of allocs spin ~20k steps
    r = replay_once(DELAYED, cfg, trace, 1, arena_mb=arena_mb, instrument=Instrument(sample=1))
    assert r.status == "ok", r.error
    h = r.extra["latency"]
    assert h.count(0) == int(r.counters[0])
    s = h.summary(0)
    assert s["p99.9"] > 20 * s["p50"]
    tail = h.tail(0)
    assert tail.get("heap grow", 0) >= 0.8 * sum(tail.values()), tail
    # without the slow path, nothing is tagged and p99.9 is nowhere near
    r0 = replay_once(DELAYED, delayed.Config(), trace, 1, arena_mb=arena_mb, instrument=Instrument(sample=1))
    h0 = r0.extra["latency"]
    assert "heap grow" not in h0.tail(0) and h0.summary(0)["p99.9"] < s["p99.9"] / 5


def test_sampling_is_deterministic_and_about_one_in_n(trace, arena_mb):
    runs = [replay_once(DELAYED, delayed.Config(), trace, 1, arena_mb=arena_mb, instrument=Instrument(sample=8))
            for _ in range(2)]
    counts = [(r.extra["latency"].count(0), r.extra["latency"].count(1)) for r in runs]
    assert counts[0] == counts[1]
    allocs = int(runs[0].counters[0])
    assert 0.8 * allocs / 8 < counts[0][0] < 1.2 * allocs / 8


@pytest.mark.parametrize("procs,every", [(1, 8), (1, 1), (3, 8), (3, 1)])
def test_a_run_tags_exactly_the_timed_slow_ops(procs, every, arena_mb):
    """The ops tagged are exactly the timed ones among delayed's slow allocs (every 50th of a P's).
    1 op in 8 timed: the untimed ops between two timed ones move the counters too, so a timed op's
    tags must come from a snapshot taken right before it, or an earlier untimed slow op would be
    blamed on it. 3 Ps in serial mode: consecutive ops move different Ps' rows, so a snapshot of
    one P's counters says nothing about the next op's."""
    slow = 50
    tr = generate("random", procs=procs, seed=2, ops=60_000, dist="small", live=500)
    cfg = delayed.Config(slow_every=slow, slow_delay=200)
    r = replay_once(DELAYED, cfg, tr, procs, arena_mb=arena_mb, instrument=Instrument(sample=every))
    assert r.status == "ok", r.error
    alloc = tr.op == 0
    nth = np.zeros(len(tr), np.int64)                    # the alloc's index among its P's allocs
    for p in range(procs):
        mine = alloc & (tr.p == p)
        nth[mine] = np.arange(int(mine.sum()))
    slow_ops = alloc & (nth % slow == slow - 1)
    sampled = (np.arange(len(tr), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) < np.uint64((1 << 64) // every)
               if every > 1 else np.ones(len(tr), bool))
    h = r.extra["latency"]
    grow = L.CAUSE_INDEX["heap grow"]
    assert int(h.counts[0, grow].sum()) == int((slow_ops & sampled).sum()) > 0
    others = [L.CAUSES[c] for c in range(1, len(L.CAUSES)) if c != grow and h.counts[:, c].sum()]
    assert others in ([], ["refill"])   # bump's own refills (a new region), tagged as such
    assert h.count(0) == int((alloc & sampled).sum())


def test_threads_mode_times_every_op_of_every_p(arena_mb):
    tr = generate("random", procs=2, seed=4, ops=20_000, dist="small", live=200)
    r = replay_once("freelist", freelist.Config(), tr, 2,
                    mode="threads", arena_mb=arena_mb, instrument=Instrument(sample=1))
    assert r.status == "ok", r.error
    h = r.extra["latency"]
    assert h.count(0) == int(r.counters[0]) and h.count(1) == int(r.counters[1])


def test_run_latency_prints_percentiles_and_refuses_check(capsys):
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "5000", "--reps", "1", "--latency"]) == 0
    out = capsys.readouterr().out
    assert "p99.9" in out and "alloc" in out and "top 0.1%" in out
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "2000", "--latency", "--check"]) == 2
    assert "--check" in capsys.readouterr().err
