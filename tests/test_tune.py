"""Tuning: search spaces, pruning, storage, continuing a study, workers on PostgreSQL, held-out validation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from alloclab import strategies
from alloclab.harness import tune as T
from alloclab.harness.cli import main

SCALE = "0.01"


def _tune(tmp_path, *extra):
    return main(["tune", "-s", "freelist", "-w", "web", "--scale", SCALE, "--no-progress", "--no-validate",
                 "--storage", f"sqlite:///{tmp_path}/t.db", "--out", str(tmp_path / "best.toml"), *extra])


def test_every_sampled_config_validates_or_is_pruned():
    for name in strategies.names():
        mod = strategies.get(name)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        ok = pruned = 0
        for _ in range(40):
            trial = study.ask()
            try:
                cfg = mod.Config.suggest(trial)
            except Exception as e:
                assert type(e).__name__ == "ConfigError", (name, e)
                pruned += 1
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            assert cfg.validate() is cfg
            ok += 1
            study.tell(trial, 0.0)
        assert ok > 0, name


def test_tune_writes_best_toml_and_continues_the_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _tune(tmp_path, "--trials", "6", "--objective", "memory,locks") == 0
    best = tmp_path / "best.toml"
    assert best.exists() and "[freelist]" in best.read_text()
    study = optuna.load_study(study_name="freelist-web-memory+locks", storage=f"sqlite:///{tmp_path}/t.db")
    n = len(study.trials)
    assert n >= 6 and len(study.directions) == 2
    assert _tune(tmp_path, "--trials", "3", "--objective", "memory,locks") == 0   # the same study continues
    study = optuna.load_study(study_name="freelist-web-memory+locks", storage=f"sqlite:///{tmp_path}/t.db")
    assert len(study.trials) == n + 3
    # the best config is usable by run
    assert main(["run", "-s", "freelist", "-w", "random", "--ops", "2000", "--reps", "1", "--config", str(best)]) == 0
    rec = json.loads(next((tmp_path / "results").glob("*tune*/tuning.json")).read_text())
    assert rec["objectives"] == ["memory", "locks"] and rec["best"]


def test_journal_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "-s", "bitmap", "-w", "web", "--scale", SCALE, "--trials", "3", "--no-progress",
                 "--no-validate", "--storage", str(tmp_path / "j.log"), "--out", str(tmp_path / "b.toml")]) == 0
    st = optuna.load_study(study_name="bitmap-web-memory", storage=T.open_storage(str(tmp_path / "j.log")))
    assert len(st.trials) == 3


def test_objective_values_are_deterministic_in_serial():
    spec = T.TuneSpec("go", ["web"], ["memory", "locks"], scale=0.01).validate()
    a = T.evaluate(spec, strategies.get("go").Config())
    b = T.evaluate(spec, strategies.get("go").Config())
    assert a["values"]["memory"] == b["values"]["memory"] and a["values"]["locks"] == b["values"]["locks"]
    # the in-use measure (bytes in spans) is finer than mapped memory and never above it
    assert a["values"]["inuse"] == b["values"]["inuse"] and 1.0 < a["values"]["inuse"] <= a["values"]["memory"]


def test_inuse_objective_falls_back_to_mapped_without_span_accounting():
    spec = T.TuneSpec("freelist", ["web"], ["inuse"], scale=0.01).validate()
    v = T.evaluate(spec, strategies.get("freelist").Config())["values"]
    assert v["inuse"] == v["memory"]


def test_time_objective_is_a_ratio_to_the_default_measured_in_fresh_processes():
    spec = T.TuneSpec("freelist", ["web"], ["time"], scale=0.01, time_processes=2, time_reps=1).validate()
    fl = strategies.get("freelist")
    out = T.evaluate(spec, fl.Config(cache_capacity=8, batch=4))
    w = out["per_workload"]["web"]
    assert out["status"] == "ok" and out["values"]["time"] == pytest.approx(w["time_ratio"])
    assert 0.2 < w["time_ratio"] < 5 and w["ns_per_op"] > 0
    # the default against itself: the same cells on both sides, a ratio of exactly 1
    assert T.evaluate(spec, fl.Config())["values"]["time"] == pytest.approx(1.0)
    with pytest.raises(T.TuneError, match="--time-processes 0"):
        T.TuneSpec("freelist", ["web"], ["time"], time_processes=0).validate()


def test_held_out_validation_rows():
    spec = T.TuneSpec("freelist", ["web"], ["memory"], scale=0.01).validate()
    tuned = strategies.get("freelist").Config(cache_capacity=8, batch=4)
    rows = T.held_out_validation(spec, tuned, other_workloads=["tiny"], processes=4)
    groups = {r["group"] for r in rows}
    # time: default and tuned timed in 4 fresh processes each, a verdict per row
    assert all(r["ns_processes"] == 4 and r["ns_verdict"] in ("faster", "slower", "~") for r in rows)
    assert all(r["ns_change"] == pytest.approx(r["tuned_ns"] / r["default_ns"] - 1) for r in rows)
    assert groups == {"tuning workload, held-out seed", "held-out workload"}
    assert all(r["status"] == "ok" and r["seed"] not in (spec.seed,) for r in rows)
    assert all(r["inuse_change"] == r["tuned_inuse"] / r["default_inuse"] - 1 for r in rows)
    # freelist has no growth step: its floor is the live bytes themselves
    assert all(r["floor_overhead"] == pytest.approx(1.0) for r in rows)


def test_go_mapped_floor_is_live_rounded_to_the_growth_step():
    go = strategies.get("go")
    cfg = go.Config()
    step = cfg.heap_growth_kb * 1024
    assert go.mapped_floor(cfg, 1) == step and go.mapped_floor(cfg, step) == step
    assert go.mapped_floor(cfg, step + 1) == 2 * step
    assert go.mapped_floor(go.Config(heap_growth_kb=256), 17 * 2**20 + 5) == 17 * 2**20 + 256 * 1024


def test_go_runs_never_map_below_the_floor():
    spec = T.TuneSpec("go", ["web", "spawn-storm"], ["memory"], scale=0.01).validate()
    for cfg in (strategies.get("go").Config(), strategies.get("go").Config(heap_growth_kb=256)):
        for w, v in T.evaluate(spec, cfg)["per_workload"].items():
            assert 1.0 <= v["floor_overhead"] <= v["overhead"], w


def test_realizable_search_varies_only_tables_real_go_can_run():
    from alloclab.strategies.go import sizeclasses_go as SCGO

    spec = T.TuneSpec("go", ["web"], ["inuse"], realizable=True).validate()
    go = strategies.get("go")
    default = go.Config().to_dict()
    fixed = spec.fixed_fields()
    assert set(default) - set(fixed) <= set(SCGO.table_fields())          # only the table is searched
    assert fixed["page_size"] == 8192 and fixed["max_small_size"] == 32768
    assert all(fixed[k] == default[k] for k in fixed if k not in SCGO.table_fields())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    kept, refused = [], []
    for _ in range(40):
        trial = study.ask()
        try:
            cfg = go.Config.suggest(trial, fixed=fixed)
        except Exception as e:
            assert type(e).__name__ == "ConfigError", e
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        why = spec.realizable_problem(cfg)
        (kept if why is None else refused).append((cfg, why))
        study.tell(trial, 0.0)
    assert kept and refused   # the space holds both; the objective prunes the second kind with the reason
    assert all(SCGO.go119_problem(c) is None for c, _ in kept)
    assert all("16" in why or "classes" in why for _, why in refused)
    assert T.TuneSpec("go", ["web"], ["inuse"]).validate().realizable_problem(refused[0][0]) is None


WHY_NO_GO = strategies.unavailable_reason("go-runtime")


@pytest.mark.skipif(WHY_NO_GO is not None, reason=f"go-runtime unavailable: {WHY_NO_GO}")
def test_real_validation_runs_both_tables_in_the_real_runtime():
    spec = T.TuneSpec("go", ["web"], ["inuse"], scale=0.01, realizable=True).validate()
    go = strategies.get("go")
    rows = [dict(workload="web", seed=T.HELD_OUT_SEEDS[0], inuse_change=0.05)]
    [r] = T._real_validation(spec, go.Config(), go.Config(sc_tail_waste_div=5), rows)
    assert r["real_status"] == "ok"
    assert r["real_inuse_change"] == pytest.approx(r["real_tuned_inuse"] / r["real_default_inuse"] - 1)
    assert r["inuse_gap_pp"] == pytest.approx(100 * (0.05 - r["real_inuse_change"]))
    assert r["real_default_inuse"] > 0.5 and r["real_default_ns"] > 0 and r["real_tuned_ns"] > 0
    # a table the real runtime cannot take: said, not run
    [r] = T._real_validation(spec, go.Config(), go.Config(sc_align16_from=64), rows)
    assert "cannot take" in r["real_status"] and "real_inuse_change" not in r


def test_report_shows_predicted_beside_real_change():
    from alloclab.harness.report import tuning_tables

    row = dict(group="tuning workload, held-out seed", workload="web", seed=1001, status="ok", default_overhead=1.5,
               tuned_overhead=1.4, overhead_change=-0.07, default_ns=50.0, tuned_ns=51.0, ns_change=0.02,
               default_inuse=1.3, tuned_inuse=1.2, inuse_change=-0.077, real_status="ok", real_default_inuse=2.0,
               real_tuned_inuse=1.86, real_inuse_change=-0.07, inuse_gap_pp=-0.7, real_default_ns=150.0,
               real_tuned_ns=149.0, real_ns_change=-0.0067)
    tables = dict(tuning_tables(dict(study="s", strategy="go", validation=[row])))
    t = tables["Model-predicted vs real Go runtime change, held-out seeds: s"]
    assert t.iloc[0]["model in-use change"] == -0.077 and t.iloc[0]["real in-use change"] == -0.07
    assert t.iloc[0]["gap (pp)"] == -0.7


def test_cli_prints_predicted_beside_real_change(capsys):
    from alloclab.harness.cli_tune import _print_real_validation

    ok = dict(workload="web", seed=1001, inuse_change=-0.05, ns_change=0.01, real_status="ok",
              real_default_inuse=2.0, real_tuned_inuse=1.92, real_inuse_change=-0.04, inuse_gap_pp=-1.0,
              real_default_ns=150.0, real_tuned_ns=153.0, real_ns_change=0.02)
    _print_real_validation([ok, dict(workload="web", seed=1002, real_status="go-runtime cannot take this table")])
    out = capsys.readouterr().out
    assert "real -4.0%, model -5.0%, gap -1.0 pp" in out and "real +2.0%, model +1.0%" in out
    assert "seed  1002: go-runtime cannot take this table" in out and "|gap| 1.0 pp" in out


@pytest.mark.parametrize("argv,msg", [
    (["--objective", "speed"], "choose one or more of memory, inuse, time, locks"),
    (["--fix", "nosuch=1"], "has no config field(s) nosuch"),
    (["--storage", "nosuchdb://x"], "storage 'nosuchdb://x'"),
    (["--realizable"], "--realizable: only for -s go"),
])
def test_bad_tune_input(tmp_path, monkeypatch, capsys, argv, msg):
    monkeypatch.chdir(tmp_path)
    rc = main(["tune", "-s", "freelist", "-w", "web", "--trials", "1", "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and msg in err[-1] and err[-1].startswith("alloclab tune: error:"), err


PG_URL = os.environ.get("ALLOCLAB_TEST_PG_URL", "postgresql://alloclab:alloclab@127.0.0.1:5432/alloclab_test")


def _pg_reachable() -> str | None:
    try:
        import sqlalchemy

        eng = sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        return None
    except Exception as e:
        return f"no PostgreSQL at {PG_URL} ({type(e).__name__}); .ci/run installs and starts one"


@pytest.mark.skipif(_pg_reachable() is not None, reason=str(_pg_reachable()))
def test_two_workers_share_one_study_on_postgresql(tmp_path):
    study = f"pgtest-{os.getpid()}"
    try:
        optuna.delete_study(study_name=study, storage=PG_URL)
    except KeyError:
        pass
    r = subprocess.run([sys.executable, "-m", "alloclab.harness.cli", "tune", "-s", "freelist", "-w", "web",
                        "--scale", SCALE, "--trials", "10", "--workers", "2", "--storage", PG_URL, "--study", study,
                        "--no-validate", "--no-progress", "--out", str(tmp_path / "b.toml")],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    st = optuna.load_study(study_name=study, storage=PG_URL)
    states = [t.state.name for t in st.trials]
    workers = {t.user_attrs.get("worker") for t in st.trials if t.user_attrs.get("worker")}
    # 1 enqueued default + 10 trials; none lost, none left running, both processes contributed
    assert len(st.trials) == 10 and all(s in ("COMPLETE", "PRUNED") for s in states), states
    assert len(workers) == 2, workers
    optuna.delete_study(study_name=study, storage=PG_URL)


# study.ask() on a heartbeat storage is this test's way to leave a trial RUNNING without a heartbeat, which is what
# Optuna's warning is about
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize:UserWarning")
def test_a_killed_trial_without_heartbeat_is_failed_once_older_than_grace(tmp_path, monkeypatch):
    """A process killed before its first heartbeat leaves a RUNNING trial no stale check sees; fail_dead_trials fails it
    once it is older than grace + one interval, and leaves a young one alone (its process may still be alive)."""
    import datetime as dt
    import sqlite3

    monkeypatch.setenv("ALLOCLAB_TUNE_GRACE_S", "1")
    db = tmp_path / "h.db"
    storage = T.open_storage(f"sqlite:///{db}")
    study = optuna.create_study(study_name="h", storage=storage)
    old = study.ask()._trial_id
    young = study.ask()._trial_id
    with sqlite3.connect(db) as c:  # age the first trial past grace (1 s) + heartbeat interval (1 s)
        c.execute("update trials set datetime_start = ? where trial_id = ?",
                  ((dt.datetime.now() - dt.timedelta(seconds=10)).isoformat(" "), old))
    assert T.fail_dead_trials(study, storage) == 1
    states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert states[old] == optuna.trial.TrialState.FAIL
    assert states[young] == optuna.trial.TrialState.RUNNING


FAKE_PW = "h7-Fake:p@ss/word"   # ':', '@' and '/' unescaped: the masking must not stop at the first of them


@pytest.mark.parametrize("url,masked", [
    ("postgresql://alloclab:s3cret@127.0.0.1/db", "postgresql://alloclab:***@127.0.0.1/db"),
    ("postgresql+psycopg://alloclab:s3cret@db.example:5432/tune?sslmode=require",
     "postgresql+psycopg://alloclab:***@db.example:5432/tune?sslmode=require"),
    (f"postgresql://alloclab:{FAKE_PW}@127.0.0.1/db", "postgresql://alloclab:***@127.0.0.1/db"),
    ("postgresql://alloclab@127.0.0.1/db?password=s3cret&sslmode=disable",
     "postgresql://alloclab@127.0.0.1/db?password=***&sslmode=disable"),
    ("postgresql://alloclab@127.0.0.1/db", "postgresql://alloclab@127.0.0.1/db"),   # nothing to hide
    ("sqlite:///results/tuning.db", "sqlite:///results/tuning.db"),
    ("journal:results/go.log", "journal:results/go.log"),
])
def test_mask_url_hides_the_password(url, masked):
    assert T.mask_url(url) == masked


def test_storage_error_does_not_show_the_password(tmp_path, monkeypatch, capsys):
    """An unreachable server: the driver's error is shown, the password in the URL is not."""
    pytest.importorskip("psycopg")
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://alloclab:{FAKE_PW.replace('@', '%40').replace('/', '%2F')}@127.0.0.1:1/db"
    rc = main(["tune", "-s", "freelist", "-w", "web", "--trials", "1", "--no-progress", "--storage", url])
    out, err = capsys.readouterr()
    assert rc == 2 and "postgresql://alloclab:***@127.0.0.1:1/db" in err, err
    assert "h7-Fake" not in out + err and "word" not in out + err


def test_tune_with_storage_from_the_environment_never_shows_the_password(tmp_path, monkeypatch, capfd):
    """ALLOCLAB_STORAGE names the storage; a tune on it prints, logs and stores the URL only masked.

    No PostgreSQL here: the password-carrying URL is mapped to an SQLite file at the one place a URL becomes a
    connection (open_storage), so every path the URL travels through the CLI is the real one."""
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://alloclab:{FAKE_PW}@127.0.0.1/tune"
    db = tmp_path / "env.db"
    real_open = T.open_storage
    seen = []

    def open_as_sqlite(u):
        seen.append(u)
        return real_open(f"sqlite:///{db}" if u == url else u)

    monkeypatch.setattr(T, "open_storage", open_as_sqlite)
    monkeypatch.setenv(T.STORAGE_ENV, url)
    assert main(["tune", "-s", "freelist", "-w", "web", "--scale", SCALE, "--trials", "3", "--no-progress",
                 "--no-validate", "--out", str(tmp_path / "best.toml")]) == 0
    out, err = capfd.readouterr()
    assert seen and set(seen) == {url}                       # the environment's URL is the storage used...
    assert len(optuna.load_study(study_name="freelist-web-memory", storage=f"sqlite:///{db}").trials) == 3
    assert "postgresql://alloclab:***@127.0.0.1/tune" in err  # ...and shown masked
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()] + [tmp_path / "best.toml"]
    meta = json.loads(next((tmp_path / "results").glob("*tune*/meta.json")).read_text())
    assert meta["storage"] == "postgresql://alloclab:***@127.0.0.1/tune"
    for text in [out, err] + [p.read_bytes().decode("utf-8", "replace") for p in written]:
        assert "h7-Fake" not in text and "p@ss" not in text


def test_progress_off_a_terminal_is_plain_lines(tmp_path, monkeypatch, capsys):
    """Piped to a log, tune's progress is a plain line now and then (the last at the end), never tqdm's redraws."""
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "-s", "freelist", "-w", "web", "--scale", SCALE, "--trials", "3", "--no-validate",
                 "--storage", f"sqlite:///{tmp_path}/t.db", "--out", str(tmp_path / "best.toml")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "tune: 3/3 trials" in err, err
