"""go-runtime's sampled latency: goreplay times 1 op in N with Go's clock into harness/latency.py's histogram."""
from __future__ import annotations

import numpy as np
import pytest

from alloclab.harness import latency
from alloclab.harness.cli import main
from alloclab.harness.runner import Instrument, run_cell
from alloclab.strategies import go_runtime as G
from alloclab.workloads import generate

WHY = G.unavailable_reason()
needs_go = pytest.mark.skipif(WHY is not None, reason=f"go-runtime unavailable: {WHY}")
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@pytest.fixture(scope="module")
def web():
    return generate("web", procs=2, scale=0.002)


def _sampled(n: int, every: int) -> np.ndarray:
    """The executor's 1-in-``every`` sample of op indexes 0..n-1 (executor._sampled)."""
    if every == 1:
        return np.ones(n, bool)
    return np.arange(n, dtype=np.uint64) * GOLDEN < np.uint64((1 << 64) // every)


@needs_go
@pytest.mark.parametrize("mode", ["serial", "threads"])
def test_latency_reps_time_the_executors_sample(web, mode):
    every = 3
    out = run_cell("go-runtime", G.Config(), web, mode=mode, reps=2, instrument=Instrument(sample=every))
    if mode == "serial":
        picked = _sampled(len(web), every)
        want = [int((picked & (web.op == k)).sum()) for k in (0, 1)]
    else:   # each P's own stream, by its index there
        want = [0, 0]
        for p in range(web.procs):
            ops = web.op[web.p == p]
            picked = _sampled(len(ops), every)
            want = [w + int((picked & (ops == k)).sum()) for w, k in zip(want, (0, 1))]
    for _, r in out:
        assert r.status == "ok", r.error
        h = r.extra["latency"]
        assert isinstance(h, latency.Histogram)
        assert [h.count(0), h.count(1)] == want            # the same ops every rep, as the kernels'
        for op in (0, 1):
            s = h.summary(op)
            assert 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["p99.9"] <= s["max"] * (1 + latency.RELATIVE_ERROR)
            assert s["max"] < 1e9                           # no op of a 17k-op replay takes a second
        assert set(h.tail(0)) <= {"fast", "gc"}
        clock = r.extra["clock"]
        assert 0 < clock["read_ns"] < 10_000 and 0 < clock["step_ns"] < 10_000


@needs_go
def test_latency_rows_round_trip(web):
    [(_, r)] = run_cell("go-runtime", G.Config(), web, reps=1, instrument=Instrument(sample=1))
    h = r.extra["latency"]
    assert h.count(0) == int((web.op == 0).sum()) and h.count(1) == int((web.op == 1).sum())
    import pandas as pd
    back = latency.Histogram.from_rows(pd.DataFrame(h.to_rows(strategy="go-runtime")))
    assert back.count(0) == h.count(0) and back.quantile(1, 0.99) == h.quantile(1, 0.99)
    assert back.max_ns[0] == h.max_ns[0]


def test_histogram_from_goreplays_json_matches_numpy():
    """goreplay's rows (op, cause index into its cause names, bucket, count) in ns: the same buckets as
    latency.bucket_of, so a value reads back within the layout's relative error."""
    rng = np.random.default_rng(1)
    vals = rng.lognormal(6, 1.2, 20_000).astype(np.int64) + 1
    b = latency.bucket_of(vals)
    idx, cnt = np.unique(b, return_counts=True)
    rows = [[0, 1 if k % 2 else 0, int(i), int(c)] for k, (i, c) in enumerate(zip(idx, cnt))]
    h = G.latency_histogram(dict(sub_bits=6, max_msb=46, causes=["fast", "gc"], buckets=rows,
                                 max_ns=[int(vals.max()), 0], timed=[len(vals), 0]))
    assert h.count(0) == len(vals) and h.count(1) == 0 and np.isnan(h.max_ns[1])
    for q in (0.5, 0.9, 0.99, 0.999):
        want = np.quantile(vals, q, method="inverted_cdf")
        assert abs(h.quantile(0, q) - want) <= latency.RELATIVE_ERROR * want + 1
    assert sum(h.tail(0, 0.0).values()) == len(vals) and set(h.tail(0, 0.0)) == {"fast", "gc"}
    with pytest.raises(G.GoRuntimeError):
        G.latency_histogram(dict(sub_bits=5, max_msb=46, causes=["fast"], buckets=[], max_ns=[0, 0], timed=[0, 0]))


@needs_go
def test_cli_run_latency_and_a_threads_timeline_print_their_summaries(capsys):
    assert main(["run", "-s", "go-runtime", "-w", "web", "--scale", "0.002", "--reps", "1", "--latency",
                 "--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert "alloc" in out and "p99.9" in out and "timed" in out
    assert main(["run", "-s", "go-runtime", "-w", "web", "--scale", "0.002", "--procs", "2", "--mode", "threads",
                 "--reps", "1", "--timeline"]) == 0
    out = capsys.readouterr().out
    assert "in_use" in out and "peak" in out


@needs_go
def test_timeline_rows_every_k_ops_ending_at_the_trace_with_its_live_bytes():
    from alloclab.harness import timeline

    tr = generate("phase-shift", procs=1, seed=1, scale=0.01)
    [(_, r)] = run_cell("go-runtime", G.Config(), tr, reps=1, instrument=Instrument(timeline_every=500))
    df = r.extra["timeline"]
    assert list(df.columns) == list(timeline.COLUMNS)
    ops = df["op"].to_numpy()
    assert ops[0] == 0 and ops[-1] == len(tr) and (np.diff(ops[:-1]) == 500).all()
    signed = np.where(tr.op == 0, tr.size.astype(np.int64), -tr.size.astype(np.int64))
    assert (df["live"].to_numpy() == np.concatenate([[0], np.cumsum(signed)])[ops]).all()
    assert (np.diff(df["gc_cycles"]) >= 0).all() and (df["in_use"] >= 0).all()
    assert (df["mapped"] >= df["in_use"]).all() and (df["heap_goal"] >= 4 << 20).all()
    assert df["mapped"].iloc[-1] > 0


@needs_go
def test_a_threads_timeline_has_each_ps_rows_merged_by_op_and_ends_at_the_trace():
    from alloclab.harness import timeline

    tr = generate("pipeline", procs=2, seed=1, scale=0.01)   # cross-P frees: the Ps wait on each other
    every = 400
    [(_, r)] = run_cell("go-runtime", G.Config(), tr, mode="threads", reps=1,
                        instrument=Instrument(timeline_every=every))
    assert r.status == "ok", r.error
    df = r.extra["timeline"]
    ops = df["op"].to_numpy()
    # each P's rows: the trace index of its ops 0, K, 2K, ... of its own stream; then the end
    want = np.sort(np.concatenate([np.flatnonzero(tr.p == p)[::every] for p in range(tr.procs)] + [[len(tr)]]))
    assert (ops == want).all()
    assert (df["live"].to_numpy() == tr.live_bytes()[ops]).all()
    # (held and in-use are deltas over the rep's baseline, and the Ps' rows interleave in real time,
    # so neither held >= in-use nor GC cycles rising with op hold row by row here)
    assert (df["heap_goal"] >= 4 << 20).all() and df["in_use"].max() > 0
    assert df["gc_cycles"].iloc[-1] == df["gc_cycles"].max()   # the last row, read once every P is done


def test_bench_probes_go_runtime_for_latency_and_timeline_in_both_modes(tmp_path):
    """A matrix with latency and timeline on: go-runtime's cells get both (it records them) in either
    mode, as a kernel strategy's do. No toolchain needed: nothing runs."""
    from alloclab.harness import bench

    f = tmp_path / "s.toml"
    f.write_text('[suite]\nname = "s"\n[[matrix]]\nstrategies = ["go-runtime", "freelist"]\nworkloads = ["web"]\n'
                 'procs = [2]\nmodes = ["serial", "threads"]\nlatency = true\ntimeline = true\n')
    cells = {(c.strategy, c.mode): (c.latency, c.timeline) for c in bench.load_suite(str(f)).cells}
    assert cells == {(s, m): (True, True) for s in ("go-runtime", "freelist") for m in ("serial", "threads")}
