"""Memory over time: a timeline ends at the run's final counters, is deterministic in serial mode,
merges threads mode's Ps by op index, and goes to and from the results store's side table."""
import numpy as np
import pytest

from alloclab.harness import results as R
from alloclab.harness import timeline as T
from alloclab.harness.runner import Instrument, counters_dict, replay_once
from alloclab.strategies import _counters as C
from alloclab.strategies import freelist
from alloclab.workloads import generate


@pytest.fixture(scope="module")
def trace():
    # phase-shift: the live set rises, falls and rises again in another size mix
    return generate("phase-shift", procs=1, seed=0, scale=0.02)


def _run(trace, arena_mb, every=-1, mode="serial", procs=1):
    r = replay_once("freelist", freelist.Config(), trace, procs, mode=mode, arena_mb=arena_mb,
                    instrument=Instrument(timeline_every=every))
    assert r.status == "ok", r.error
    return r


def _live_at_end(trace):
    return int(trace.size[trace.op == 0].astype(np.int64).sum() - trace.size[trace.op != 0].astype(np.int64).sum())


def test_a_timeline_ends_at_the_final_counters(trace, arena_mb):
    r = _run(trace, arena_mb)
    tl = r.extra["timeline"]
    assert list(tl.columns) == list(T.COLUMNS)
    last = tl.iloc[-1]
    assert last["op"] == len(trace)
    assert last["in_use"] == int(r.state.counters[:, C.IN_USE].sum())
    assert last["mapped"] == int(r.state.meta[0]) and tl["mapped"].max() <= r.peak_mapped_bytes
    assert last["live"] == _live_at_end(trace)
    k = T.default_every(len(trace))
    assert (np.diff(tl["op"]) > 0).all() and len(tl) == -(-len(trace) // k) + 1   # every K ops, and the end
    # the live bytes of every row are the trace's own
    sizes = np.where(trace.op == 0, trace.size, -trace.size.astype(np.int64)).astype(np.int64)
    live = np.concatenate([[0], np.cumsum(sizes)])
    assert (tl["live"].to_numpy() == live[tl["op"].to_numpy()]).all()
    assert (tl["in_use"] >= tl["live"]).all()


def test_a_serial_timeline_is_the_same_run_to_run(trace, arena_mb):
    a = _run(trace, arena_mb, every=97).extra["timeline"]
    b = _run(trace, arena_mb, every=97).extra["timeline"]
    assert a.equals(b) and len(a) > 10


def test_a_timeline_run_is_the_throughput_kernel_and_changes_nothing(trace, arena_mb):
    """The rows are written between chunks of the throughput loop: the same specialisation of
    executor.replay (nothing compiled for it) and, serially, the same counters bit for bit."""
    from alloclab.harness import executor as ex

    plain = replay_once("freelist", freelist.Config(), trace, 1, arena_mb=arena_mb)
    sigs = len(ex.replay.signatures)
    r = _run(trace, arena_mb, every=97)
    assert len(ex.replay.signatures) == sigs
    assert (r.counters == plain.counters).all() and r.peak_mapped_bytes == plain.peak_mapped_bytes
    assert len(r.extra["timeline"]) == -(-len(trace) // 97) + 1


def test_threads_mode_merges_the_ps_by_op_index(arena_mb):
    tr = generate("pipeline", procs=2, seed=5, scale=0.01)   # cross-P frees: some wait for their alloc
    r = _run(tr, arena_mb, every=50, mode="threads", procs=2)
    tl = r.extra["timeline"]
    assert (np.diff(tl["op"]) > 0).all()
    # frees put aside at a chunk's end are done in a later chunk: every free was done
    assert r.counters[C.ALLOCS] == (tr.op == 0).sum() and r.counters[C.FREES] == (tr.op != 0).sum()
    want = np.sort(np.concatenate([np.flatnonzero(tr.p == p)[::50] for p in range(2)] + [[len(tr)]]))
    assert (tl["op"].to_numpy() == want).all()
    last = tl.iloc[-1]
    assert last["op"] == len(tr)
    assert last["in_use"] == int(r.state.counters[:, C.IN_USE].sum())
    assert last["live"] == _live_at_end(tr)


def test_side_tables_round_trip_through_the_store(trace, arena_mb, tmp_path):
    r = replay_once("freelist", freelist.Config(), trace, 1, arena_mb=arena_mb,
                    instrument=Instrument(sample=1, timeline_every=-1))
    store = R.ResultsStore(tmp_path / "run")
    row = R.make_row(run_id="run", started_at=R.now_iso(), strategy="freelist", config=freelist.Config(),
                     workload="phase-shift", workload_params={"scale": 0.02}, seed=0, procs=1, mode="serial", rep=0,
                     trace_stats=trace.stats(), result=r, counters=counters_dict("freelist", r))
    store.append_probe(row, r)
    tl = R.load_table([tmp_path / "run"], "timeline")
    assert len(tl) == len(r.extra["timeline"]) and (tl["cell_id"] == row["cell_id"]).all()
    assert tl["in_use"].iloc[-1] == r.extra["timeline"]["in_use"].iloc[-1]
    lat = R.load_table([tmp_path / "run"], "latency")
    assert lat.loc[lat["cause"] != "max", "count"].sum() == int(r.counters[0] + r.counters[1])
    assert store.done_probes("timeline") == {row["cell_id"]}
    assert R.load([tmp_path / "run"]).empty   # side tables are not result rows


def test_sparkline_shows_the_shape():
    s = T.sparkline([0, 1, 2, 3, 4, 8, 4, 0], width=8)
    assert len(s) == 8 and s[5] == T.SPARK[-1] and s[0] == T.SPARK[1]
    assert T.sparkline([]) == ""


def test_a_suite_matrix_turns_both_on_and_the_report_draws_them(tmp_path, capsys):
    from alloclab.harness import bench
    from alloclab.harness import report_latency as RL
    from alloclab.harness.report import ReportInput

    p = tmp_path / "s.toml"
    p.write_text("[suite]\nname = 'lt'\nprocesses = 1\nreps = 1\narena_mb = 256\n[[matrix]]\nstrategies = ['bump']\n"
                 "workloads = [{ name = 'random', ops = 3000 }, { name = 'phase-shift', scale = 0.01 }]\n"
                 "latency = true\ntimeline = true\n")
    suite = bench.load_suite(str(p))
    assert all(c.latency and c.timeline for c in suite.cells)
    out = tmp_path / "run"
    summary = bench.run_suite(suite, out, progress=False, log=lambda *a: None)
    assert summary["probed"] == 2
    assert len(R.load([out])) == 2   # the timed rows, apart from the probes
    tl = R.load_table([out], "timeline")
    assert set(tl["workload"]) == {"random", "phase-shift"}
    assert bench.run_suite(suite, out, resume=True, progress=False, log=lambda *a: None)["probed"] == 0
    df = R.load([out]).assign(label="bump")
    sec = RL.section(ReportInput(df, df, (out,), "bump"))
    assert {slug for slug, _, _ in sec.figures} == {"latency-ccdf", "latency-tail", "memory-timeline"}
    pct = dict(sec.tables)["Latency per op (ns): mean, percentiles, max and ops timed"]
    assert set(pct["op"]) == {"alloc", "free"} and (pct["p99.9"] <= pct["max"]).all()


def test_report_series_keep_two_cells_of_one_strategy_apart():
    """Serial at 4 Ps and threads at 2 Ps of go on web are two lines (and two histograms), not one."""
    import pandas as pd

    from alloclab.harness import report_latency as RL
    from alloclab.harness.report import ReportInput

    side = pd.DataFrame({"cell_id": ["a", "a", "b", "c"], "strategy": ["go", "go", "go", "freelist"],
                         "workload": ["web"] * 4, "procs": [4, 4, 2, 4], "mode": ["serial", "serial", "threads", "serial"]})
    df = pd.DataFrame({"cell_id": ["a", "b", "c"], "label": ["go", "go", "freelist"]})
    got = RL._labels(ReportInput(df, df, (), "bump"), side)
    assert got.tolist() == ["go P4 serial", "go P4 serial", "go P2 threads", "freelist"]


def test_libcs_memory_is_sampled_at_each_row_of_a_serial_timeline(trace, arena_mb):
    """system's memory is libc's: the runner samples it between slices cut at the rows, so every
    serial row has it, the last one what the run's last sample saw; a latency-and-timeline
    repetition runs the two apart (the slices' calls would be the latency tail)."""
    from alloclab.harness.runner import run_cell
    from alloclab.strategies import system

    r = replay_once("system", system.Config(), trace, 1, arena_mb=arena_mb, instrument=Instrument(timeline_every=500))
    assert r.status == "ok", r.error
    tl = r.extra["timeline"]
    assert tl["mapped"].notna().all() and len(tl) == -(-len(trace) // 500) + 1
    assert tl["mapped"].iloc[-1] == max(int(r.state.mem[system.LAST_OS]), tl["in_use"].iloc[-1])
    # (how much libc had to get from the OS depends on what the process freed before: the in-use
    # floor, as for the peak)
    assert (tl["mapped"] >= tl["in_use"]).all() and tl["mapped"].max() <= r.peak_mapped_bytes
    [(_, both)] = run_cell("system", system.Config(), trace, reps=1, arena_mb=arena_mb,
                           instrument=Instrument(sample=1, timeline_every=500))
    assert both.extra["latency"].count(0) == (trace.op == 0).sum()
    assert both.extra["timeline"]["mapped"].notna().all() and len(both.extra["timeline"]) == len(tl)
    tr2 = generate("random", procs=2, seed=5, ops=6_000, dist="small", live=300)
    t2 = replay_once("system", system.Config(), tr2, 2, mode="threads", arena_mb=arena_mb,
                     instrument=Instrument(timeline_every=500)).extra["timeline"]
    assert t2["mapped"].isna().all() and t2["in_use"].iloc[-1] >= 0   # threads mode: no sample per row
