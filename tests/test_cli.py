"""The command line: output, exit codes, and one-line refusals of bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alloclab.harness.cli import main

PY = sys.executable


def run_cli(*args, timeout=300):
    return subprocess.run([PY, "-m", "alloclab.harness.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "bump" in out and "random" in out and "trace:FILE" in out


def test_run_json_rows(capsys):
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "3000", "--reps", "2", "--json", "--check"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["rep"] for r in lines] == [0, 1]
    for r in lines:
        for k in ("strategy", "workload", "procs", "mode", "rep", "ops", "wall_s", "ns_per_op", "peak_live_bytes",
                  "peak_mapped_bytes", "overhead", "lock_global", "status"):
            assert k in r
        assert r["status"] == "ok" and r["ops"] == 3000 and r["peak_mapped_bytes"] >= r["peak_live_bytes"] > 0


def test_run_threads_mode(capsys):
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "4000", "--reps", "1", "--json",
                 "--mode", "threads", "--procs", "3", "--param", "cross_p=0.5", "--check"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["mode"] == "threads" and r["procs"] == 3 and len(json.loads(r["per_p_wall_json"])) == 3


def test_run_writes_results_folder(tmp_path, capsys):
    out = tmp_path / "r1"
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "2000", "--reps", "2", "--out", str(out)]) == 0
    from alloclab.harness.results import load

    df = load([out])
    assert len(df) == 2 and set(df["status"]) == {"ok"} and (out / "meta.json").exists()


BAD = [
    (["run", "-s", "nosuch", "-w", "random"], "unknown strategy 'nosuch'"),
    (["run", "-s", "bump", "-w", "nosuch"], "unknown workload 'nosuch'"),
    (["run", "-s", "bump", "-w", "random", "--procs", "0"], "expected a positive integer"),
    (["run", "-s", "bump", "-w", "random", "--procs", "5000"], "above the limit"),
    (["run", "-s", "bump", "-w", "random", "--reps", "x"], "expected a positive integer"),
    (["run", "-s", "bump", "-w", "random", "--bogus"], "unrecognized arguments"),
    (["run", "-s", "bump", "-w", "random", "--param", "nokey=1"], "has no parameter 'nokey'"),
    (["run", "-s", "bump", "-w", "random", "--param", "live=abc"], "expected int"),
    (["run", "-s", "bump", "-w", "random", "--param", "dist=weird"], "dist 'weird'"),
    (["run", "-s", "bump", "-w", "random", "--ops", "2000", "--arena-mb", "1", "--param", "dist=large"], "arena exhausted"),
    (["run", "-s", "bump", "-w", "trace:/nonexistent.parquet"], "no such trace file"),
]


@pytest.mark.parametrize("argv,msg", BAD)
def test_bad_input_one_line_exit_2(argv, msg, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert msg in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_bad_config_files(tmp_path, capsys):
    cases = {
        "unknown.toml": ("nosuch = 1\n", "unknown config key"),
        "range.toml": ("region_kb = 1\n", "below the minimum"),
        "type.toml": ("region_kb = 'big'\n", "expected an integer"),
        "broken.toml": ("region_kb = = 3\n", "not valid TOML"),
    }
    for fname, (text, msg) in cases.items():
        p = tmp_path / fname
        p.write_text(text)
        rc = main(["run", "-s", "bump", "-w", "random", "--ops", "100", "--config", str(p)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and len(err.splitlines()) == 1, (fname, err)
    good = tmp_path / "good.toml"
    good.write_text("[bump]\nregion_kb = 128\n")
    assert main(["run", "-s", "bump", "-w", "random", "--ops", "100", "--reps", "1", "--config", str(good)]) == 0


def test_trace_gen_info_and_replay(tmp_path, capsys):
    f = tmp_path / "t.parquet"
    assert main(["trace", "gen", "-w", "random", "--ops", "5000", "--procs", "2", "--seed", "3",
                 "--param", "cross_p=0.25", "-o", str(f)]) == 0
    assert main(["trace", "info", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert info["ops"] == 5000 and info["procs"] == 2 and 0.1 < info["cross_p_free_share"] < 0.4
    assert sum(info["size_histogram"].values()) == info["allocs"]
    assert main(["run", "-s", "bump", "-w", f"trace:{f}", "--reps", "1", "--check"]) == 0


def test_bad_trace_files(tmp_path, capsys):
    import numpy as np

    from alloclab.workloads import trace as T

    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    good = T.make_trace(np.zeros(2, np.int16), np.array([0, 1], np.int8), np.zeros(2, np.int8),
                        np.array([8, 8], np.int32), np.array([0, 0], np.int64), procs=1)
    T.save(good, tmp_path / "good.parquet")
    trunc = tmp_path / "trunc.parquet"
    trunc.write_bytes((tmp_path / "good.parquet").read_bytes()[:-30])
    dbl = T.make_trace(np.zeros(3, np.int16), np.array([0, 1, 1], np.int8), np.zeros(3, np.int8),
                       np.array([8, 8, 8], np.int32), np.array([0, 0, 0], np.int64), procs=1, validate=False)
    T.save(dbl, tmp_path / "double.parquet")
    for f, msg in [(empty, "not a readable Parquet"), (junk, "not a readable Parquet"),
                   (trunc, "not a readable Parquet"), (tmp_path / "double.parquet", "row 2: free of an already-freed")]:
        rc = main(["trace", "info", str(f)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and len(err.splitlines()) == 1, (f, err)


def test_console_script_runs_in_a_subprocess():
    r = run_cli("run", "-s", "bump", "-w", "random", "--ops", "1000", "--reps", "1")
    assert r.returncode == 0, r.stderr
    assert "ns/op" in r.stdout
    r = run_cli("run", "-s", "bump", "-w", "random", "--procs", "-3")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
