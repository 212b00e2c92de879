"""Process-level repetitions, compare's verdicts and ab: the rules of significance.py at work."""
import numpy as np
import pandas as pd
import pytest

from alloclab import strategies
from alloclab.harness import bench, compare, rounds
from alloclab.harness import results as R
from alloclab.harness.cli import main

from conftest import DELAYED


def _suite(tmp_path, processes, reps, strategies_=("bump",)):
    p = tmp_path / "s.toml"
    p.write_text(f"[suite]\nname = 'rt'\nprocesses = {processes}\nreps = {reps}\narena_mb = 256\n[[matrix]]\n"
                 f"strategies = {list(strategies_)!r}\nworkloads = [{{ name = 'random', ops = 20000 }}]\n")
    return p


def test_each_process_is_a_fresh_worker_and_resume_reruns_only_the_missing_rounds(tmp_path):
    out = tmp_path / "run"
    assert main(["bench", "--suite", str(_suite(tmp_path, 3, 2)), "--out", str(out), "--no-progress"]) == 0
    df = R.load([out])
    assert sorted(df["proc"].unique()) == [0, 1, 2]
    assert sorted(df["rep"]) == list(range(6))  # reps numbered across processes
    costs = rounds.round_costs(out)
    assert [c["round"] for c in costs] == [0, 1, 2] and all(c["wall_s"] > 0 for c in costs)
    assert not (out / rounds.TRACES_DIR).exists()  # scratch traces are removed
    # lose process 1's part: --resume runs that round alone
    part = next(p for p in sorted(out.glob("part-*.parquet")) if int(pd.read_parquet(p)["proc"].iloc[0]) == 1)
    part.unlink()
    assert main(["bench", "--suite", str(_suite(tmp_path, 3, 2)), "--out", str(out), "--resume", "--no-progress"]) == 0
    df2 = R.load([out])
    assert sorted(df2["proc"].unique()) == [0, 1, 2] and len(df2) == 6
    assert [c["round"] for c in rounds.round_costs(out)] == [0, 1, 2, 1]


def test_rounds_alternate_direction():
    assert rounds.round_order(3, 0) == [0, 1, 2]
    assert rounds.round_order(3, 1) == [2, 1, 0]


def _fake_run(path, rng, cells=45, procs=6, slow=(), factor=1.0):
    store = R.ResultsStore(path)
    rows = []
    for c in range(cells):
        for p in range(procs):
            ns = 50.0 * (1 + c / 10) * np.exp(rng.normal(0, 0.05)) * (factor if c in slow else 1.0)
            row = dict(schema_version=R.SCHEMA_VERSION, strategy=f"s{c % 7}", config_hash="x", workload=f"w{c}",
                       workload_json="{}", seed=1, procs=1, mode="serial", rep=p, proc=p, ns_per_op=ns,
                       wall_s=ns * 1e-3, status="ok")
            row["cell_id"] = R.cell_id(row)
            rows.append(row)
    store.append(rows)
    return path


def test_compare_fail_exits_0_on_two_runs_of_identical_code_with_noise(tmp_path, capsys):
    rng = np.random.default_rng(1)
    flagged = 0
    for i in range(3):
        a = _fake_run(tmp_path / f"a{i}", rng)
        b = _fake_run(tmp_path / f"b{i}", rng)
        assert main(["compare", str(a), str(b), "--fail", "min:5%"]) == 0
        flagged += capsys.readouterr().out.count(" slower ")
    assert flagged <= 2  # 135 cells of A/A, BH at 5%: a flag at all is rare


def test_compare_calls_a_20_percent_slowdown_slower_and_fails(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = _fake_run(tmp_path / "a", rng)
    b = _fake_run(tmp_path / "b", rng, slow=set(range(0, 45, 7)), factor=1.2)
    assert main(["compare", str(a), str(b), "--fail", "median:5%"]) == 1
    df, regressions, _ = compare.compare_frames(R.load([a]), R.load([b]), fail_pct=5)
    slow = df[df["cell"].str.startswith("s0 ")]
    assert (slow["verdict"] == "slower").mean() >= 0.8
    assert (df.loc[~df["cell"].str.startswith("s0 "), "verdict"] == "~").mean() >= 0.95
    # --fail lists every cell called slower beyond 5%: the real ones, and (BH bounds the false
    # discovery rate, not each cell) at most a stray one
    assert int((slow["verdict"] == "slower").sum()) <= len(regressions) <= int((slow["verdict"] == "slower").sum()) + 2


def test_one_process_runs_can_only_say_cannot_tell(tmp_path, capsys):
    rng = np.random.default_rng(3)
    a = _fake_run(tmp_path / "a", rng, procs=1)
    b = _fake_run(tmp_path / "b", rng, procs=1, slow=set(range(45)), factor=3.0)
    assert main(["compare", str(a), str(b), "--fail", "min:5%"]) == 0
    out = capsys.readouterr().out
    assert "0 of 45 cells differ" in out and "process-level sample" in out


@pytest.fixture
def delayed():
    strategies.register(DELAYED)
    yield DELAYED
    strategies._REGISTRY.pop(DELAYED.name, None)


def test_ab_detects_an_injected_slowdown(tmp_path, capsys, delayed):
    cfg = tmp_path / "slow.toml"
    cfg.write_text("delay = 200\n")
    rc = main(["ab", "delayed", f"delayed:{cfg}", "-w", "random", "--scale", "0.02", "--processes", "6",
               "--out", str(tmp_path / "ab"), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "slower" in out
    df = R.load([tmp_path / "ab"])
    assert sorted(df["proc"].unique()) == [0, 1, 2, 3, 4, 5]


def test_noise_reports_the_split_and_no_false_positive_on_a_clear_aa(tmp_path, capsys):
    rng = np.random.default_rng(4)
    run = _fake_run(tmp_path / "n", rng, cells=10, procs=8)
    assert main(["noise", "--from", str(run)]) == 0
    out = capsys.readouterr().out
    assert "A/A:" in out and "flagged" in out and "share_between" in out
