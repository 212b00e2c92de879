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


def _commands(parser, path=()):
    """(path, parser) for every command and sub-command."""
    import argparse

    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _commands(sub, path + (name,))


def _flag(action) -> bool:
    return action.nargs == 0   # store_true / store_false / store_const / help: on or off, nothing to default


def test_every_option_says_what_it_does_and_its_default():
    from alloclab.harness.cli import build_parser

    missing = []
    for path, p in _commands(build_parser()):
        fmt = p._get_formatter()
        for a in p._actions:
            if a.__class__.__name__ == "_SubParsersAction" or a.dest == "help":
                continue
            name = " ".join(("alloclab",) + path) + " " + (a.option_strings[-1] if a.option_strings else a.dest)
            text = fmt._get_help_string(a) if a.help else ""
            if not text.strip():
                missing.append(f"{name}: no help")
            elif a.option_strings and not _flag(a) and not a.required and "default" not in text:
                missing.append(f"{name}: help does not give the default")
    assert not missing, "\n".join(missing)


def test_every_command_help_ends_with_examples():
    from alloclab.harness.cli import build_parser

    for path, p in _commands(build_parser()):
        assert p.epilog and "example" in p.epilog, f"alloclab {' '.join(path)}: no examples in --help"
        lines = p.format_help().rstrip().splitlines()
        # the examples end the help and keep their lines (not re-wrapped into one paragraph)
        ex = p.epilog.rstrip().splitlines()
        assert lines[-len(ex):] == ex, (path, lines[-len(ex):])
        assert any("alloclab " in line for line in ex), path


def test_doctor_reports_each_piece_and_what_a_missing_one_disables(tmp_path, monkeypatch, capsys):
    import shutil as sh

    from alloclab.harness import doctor

    # nothing on PATH, no psycopg: every optional piece is missing, and doctor says what that disables and
    # which package brings it; it reports, so it still exits 0
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(doctor, "_import_version", lambda mod: None if mod == "psycopg" else "9.9")
    assert sh.which("go") is None
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for piece, disables, package in (("go", "go-runtime", "golang-go"), ("chromium", "report", "chromium"),
                                     ("psycopg", "PostgreSQL", "psycopg[binary]")):
        line = next(x for x in out.splitlines() if x.split() and x.split()[0] == piece)
        assert "missing" in line, line
        assert disables in out and package in out
    assert "sqlite3" in out and "numba cache" in out


def test_doctor_finds_what_is_installed_and_the_cache_state(tmp_path, monkeypatch, capsys):
    from alloclab.harness import doctor

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    go = bin_ / "go"
    go.write_text("#!/bin/sh\necho 'go version go1.22.4 linux/amd64'\n")
    go.chmod(0o755)
    chromium = bin_ / "chromium"
    chromium.write_text("#!/bin/sh\necho 'Chromium 130.0.6723.91 built on Debian'\n")
    chromium.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))
    monkeypatch.setattr(doctor, "_import_version", lambda mod: "3.2.1")
    cache = tmp_path / "numba-cache"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    assert doctor.numba_cache_state(cache)[0] == "cold"
    sub = cache / "harness_0123"
    sub.mkdir(parents=True)
    (sub / "executor.replay-200.py311.nbi").write_bytes(b"x" * 10)
    (sub / "executor.replay-200.py311.1.nbc").write_bytes(b"x" * 10)
    assert doctor.numba_cache_state(cache)[0] == "warm"
    (sub / "executor.replay-200.py311.nbi").write_bytes(b"")
    assert doctor.numba_cache_state(cache)[0] == "cold"   # an empty index loads nothing
    text = doctor.report()
    assert "go1.22.4" in text and "Chromium 130.0.6723.91" in text and "3.2.1" in text and "missing" not in text


def test_terminal_summary_gives_each_claims_verdict_and_each_geomean():
    import numpy as np
    import pandas as pd

    from alloclab.harness import report

    kept = [c for c in report.CLAIMS if not c.optional]    # the real runtime's rows: absent from these runs
    claims = pd.DataFrame([dict(id=c.id, section=c.section, claim=c.claim, article=c.article,
                                article_ratio=c.article_ratio, compared="x", measured=m, measured_ratio=r, verdict=v)
                           for c, m, r, v in zip(kept, ["300 vs 100 ops/ms", "", "0.2 vs 0.1 us", "95.00% hits"],
                                                 [3.0, np.nan, 2.0, 0.95],
                                                 ["holds (ratio at least 3/4 of the article's)", "not measured",
                                                  "direction holds, smaller effect", "holds"])])
    gm = pd.DataFrame([dict(label="bump", workloads=3, geomean_rel_time=1.0, lo=1.0, hi=1.0, significant=False,
                            geomean_overhead=20.0),
                       dict(label="go[gogc=50]", workloads=3, geomean_rel_time=2.5, lo=2.25, hi=2.75, significant=True,
                            geomean_overhead=np.nan)])
    lines = report.terminal_summary(gm, claims, "bump").splitlines()
    assert len(lines) == 2 + len(kept) + len(gm)
    assert lines[1].split()[0] == "throughput" and "300 vs 100 ops/ms (3.00x)" in lines[1] and lines[1].endswith("holds (ratio at least 3/4 of the article's)")
    assert lines[2].split()[:2] == ["memory", "-;"] and lines[2].endswith("not measured")
    assert "95.00% hits; holds" in lines[4]    # a rate already in the text is not repeated
    assert "relative to bump" in lines[5]
    assert lines[6].split() == ["bump", "time", "1.00", "overhead", "20.00x"]
    assert lines[7].split() == ["go[gogc=50]", "time", "2.50", "(2.25..2.75)", "*", "overhead", "-"]


def test_quiet_compile_warnings_silences_only_numbas_ir_assumption_warning():
    import warnings

    from numba.core.errors import NumbaIRAssumptionWarning, NumbaPedanticWarning

    from alloclab.harness.cli import quiet_compile_warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_compile_warnings()
        warnings.warn(NumbaIRAssumptionWarning("variable 'x' is not in scope."))
        warnings.warn(NumbaPedanticWarning("another pedantic warning"))
        warnings.warn(UserWarning("anything else"))
    assert [type(w.message) for w in seen] == [NumbaPedanticWarning, UserWarning]
