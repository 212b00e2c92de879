"""Robustness: fuzzed files and configs, oversubscribed threads, unwritable outputs, limits."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from alloclab import strategies
from alloclab.harness.cli import main
from alloclab.harness.runner import run_cell
from alloclab.strategies._config import ConfigError
from alloclab.workloads import generate
from alloclab.workloads import trace as T

FUZZ = settings(max_examples=int(os.environ.get("ALLOCLAB_FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=hs.binary(max_size=3000))
def test_random_bytes_are_refused_cleanly(tmp_path, data):
    p = tmp_path / "f.parquet"
    p.write_bytes(data)
    with pytest.raises(T.TraceError):
        T.load(p)


def _write(tmp_path, cols: dict, meta: dict | None):
    table = pa.table(cols)
    if meta is not None:
        import json

        table = table.replace_schema_metadata({b"alloclab": json.dumps(meta).encode()})
    p = tmp_path / "t.parquet"
    pq.write_table(table, p)
    return p


_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.float64, np.uint8]


@FUZZ
@given(n=hs.integers(0, 30), seed=hs.integers(0, 2**32 - 1), procs=hs.integers(-2, 5),
       dtypes=hs.lists(hs.sampled_from(_DTYPES), min_size=5, max_size=5),
       drop=hs.sets(hs.sampled_from(list(T.COLUMNS)), max_size=2), meta=hs.booleans())
def test_mutated_traces_load_or_refuse_with_trace_error(tmp_path, n, seed, procs, dtypes, drop, meta):
    rng = np.random.default_rng(seed)
    cols = {}
    for (name, _), dt in zip(T.COLUMNS.items(), dtypes):
        if name in drop:
            continue
        cols[name] = rng.integers(-3, 40, n).astype(dt)
    p = _write(tmp_path, cols, {"format_version": 1, "procs": procs} if meta else None)
    try:
        tr = T.load(p)
    except T.TraceError as e:
        assert "\n" not in str(e)
        return
    # anything that loads is valid and replays under check
    assert tr.validate() is tr
    [(_, r)] = run_cell("bump", strategies.get("bump").Config(), tr, check=True, warmup=False, arena_mb=64)
    assert r.status == "ok"


_VALUES = hs.one_of(hs.integers(-10**9, 10**9), hs.booleans(), hs.floats(allow_nan=True), hs.text(max_size=5),
                    hs.none(), hs.lists(hs.integers(), max_size=3))


@pytest.mark.parametrize("name", strategies.kernel_names())
@FUZZ
@given(data=hs.data())
def test_config_validation_fuzz(name, data):
    mod = strategies.get(name)
    fields = list(mod.Config().to_dict())
    keys = data.draw(hs.lists(hs.sampled_from(fields + ["bogus_key"]), max_size=4, unique=True))
    d = {k: data.draw(_VALUES) for k in keys}
    try:
        cfg = mod.Config.from_dict(d)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert cfg.validate() is cfg


@pytest.mark.parametrize("procs", [8, 16])
@pytest.mark.parametrize("name", strategies.kernel_names())
def test_oversubscribed_threads_pass_check(name, procs):
    tr = generate("random", procs=procs, seed=procs, ops=12000, dist="small", live=400, cross_p=0.5)
    [(_, r)] = run_cell(name, strategies.get(name).Config(), tr, mode="threads", check=True, warmup=False, arena_mb=256)
    assert r.status == "ok", r.error
    assert strategies.get(name).check(r.state) == []
    assert len(r.per_p_wall_s) == procs


def test_unwritable_outputs_are_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    cases = [
        (["trace", "gen", "-w", "random", "--ops", "100", "-o", str(tmp_path / "missing" / "t.parquet")], "does not exist"),
        (["bench", "--suite", "quick", "--out", "/proc/alloclab-nope", "--no-progress"], "cannot create results folder"),
        (["run", "-s", "bump", "-w", "random", "--ops", "100", "--out", "/proc/alloclab-nope"], "cannot create results folder"),
    ]
    if os.geteuid() != 0:  # root can write anywhere
        cases.append((["trace", "gen", "-w", "random", "--ops", "100", "-o", str(ro / "t.parquet")], "cannot write"))
    for argv, msg in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and len(err.splitlines()) == 1, (argv, err)


def test_limits_are_enforced(tmp_path, capsys):
    big = T.make_trace(np.zeros(1, np.int16), np.zeros(1, np.int8), np.zeros(1, np.int8),
                       np.array([2**31 - 1], np.int32), np.zeros(1, np.int64), procs=1, validate=False)
    with pytest.raises(T.TraceError, match="above the limit"):
        big.validate()
    with pytest.raises(T.TraceError, match="procs 2000 outside"):
        T.make_trace(np.zeros(0, np.int16), np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0, np.int32),
                     np.zeros(0, np.int64), procs=2000)
    for argv, msg in [(["run", "-s", "bump", "-w", "random", "--arena-mb", "100000"], "above the limit 65536"),
                      (["run", "-s", "bump", "-w", "random", "--scale", "0"], "outside (0, 1000]"),
                      (["run", "-s", "bump", "-w", "random", "--ops", "1"], "ops 1 outside")]:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err, (argv, err)


def test_kill_tune_mid_trial_then_continue(tmp_path):
    """SIGKILL a tuning process mid-study: finished trials stay, the study continues without duplicates."""
    db = tmp_path / "t.db"
    env = dict(os.environ, ALLOCLAB_TUNE_GRACE_S="1")
    cmd = [sys.executable, "-m", "alloclab.harness.cli", "tune", "-s", "freelist", "-w", "web", "--scale", "0.01",
           "--storage", f"sqlite:///{db}", "--study", "k", "--no-validate", "--no-progress", "--out", str(tmp_path / "b.toml")]
    proc = subprocess.Popen(cmd + ["--trials", "500"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def complete():
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db) as c:
                return c.execute("select number, state from trials").fetchall()
        except sqlite3.OperationalError:
            return []

    deadline = time.time() + 300
    while time.time() < deadline and sum(1 for _, s in complete() if s == "COMPLETE") < 4:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = complete()
    done_before = {n for n, s in before if s == "COMPLETE"}
    assert len(done_before) >= 4
    time.sleep(2.5)  # let the killed trial's heartbeat go stale
    r = subprocess.run(cmd + ["--trials", "3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-1500:]
    after = complete()
    numbers = [n for n, _ in after]
    assert len(numbers) == len(set(numbers))
    assert done_before <= {n for n, s in after if s == "COMPLETE"}
    assert not [n for n, s in after if s == "RUNNING"], after   # the killed trial was marked failed, not left running
    assert len(after) == len(before) + 3
