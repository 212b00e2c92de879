"""Auto-tuning with Optuna: search a strategy's Config for a set of workloads.

A trial samples a config from the strategy's declared search space
(``Config.suggest``: every ``param`` with ``tune=True``), runs it on the
tuning workloads and scores it:

    memory  geometric mean over workloads of overhead = peak mapped / peak live
    inuse   the same with peak bytes in spans (Go's HeapInuse + StackInuse) for
            strategies that report it (``peak_inuse_bytes``; others: mapped):
            peak mapped moves in 4 MiB growth steps, so on one trace it only
            rewards configs that slip under that trace's next step, a gain that
            held-out seeds do not keep (docs/findings.md, "Tuning seeds"); in-use
            pages move page by page and show what a config saves on any trace
    time    the trial's time relative to the strategy's default config (1.0:
            as fast; geomean over workloads), measured as ``alloclab ab``
            measures (significance.py): ``time_processes`` fresh processes,
            each timing the default and the trial config on every tuning trace
            in ABBA order (``time_reps`` repetitions each, after a warm-up),
            the median over processes of each process's trial/default ratio.
            Why relative, and why processes: in one process, a trial timed at
            a slow moment of the machine loses to a worse one timed at a fast
            moment, and a process's placement moves ns/op by 1.4-2x
            (docs/statistics.md); a ratio within the process cancels both. The
            price is time: each trial starts ``time_processes`` processes.
            ``time_processes = 1``: the old in-process median ns/op, cheap,
            and as noisy as the moment. Whether the winner is really faster is
            decided afterwards on held-out traces (held-out validation)
    locks   central + global lock acquisitions per 1,000 ops
Several objectives give a multi-objective study and a Pareto front.

Trials are cheap by construction: traces are generated once per process and
reused, ``memory`` and ``locks`` run serially (deterministic: one repetition
is exact), and every config of a strategy has the same state *types*, so the
compiled kernels are loaded once and never recompiled per trial. Invalid
combinations (``ConfigError`` from ``validate``) are pruned, not failures.

Storage: any Optuna storage. A plain path ending in .log / .jsonl, or
``journal:PATH``, is an Optuna journal file; anything else is an SQLAlchemy
URL (default ``$ALLOCLAB_STORAGE``, else ``sqlite:///results/tuning.db``); its password is
masked (``mask_url``) wherever the URL is printed or stored. ``--workers N`` starts N
processes on one study (Optuna's own distributed mode); running the same
study again continues it. After the search, the best config(s) are validated
on held-out seeds and on the other named workloads against the strategy's
default, and the generalisation gap is reported: memory from one serial run
(exact), time from processes as ``alloclab ab`` measures it, with a verdict.

Realizable tables (``realizable``, ``--realizable``; go only): the search
varies only the size-class table, and only over tables the real Go runtime
of the installed toolchain can run (``go119_problem`` in
strategies/go/sizeclasses_go.py, the check go-runtime makes before it builds
one): the go model's other Go constants (tiny block, page cache, stacks, free
Gs) stay Go's, since no table rebuilds them into the real runtime, and a
sampled table that Go cannot take is pruned with the reason. With a Go
toolchain present, the held-out validation of a go study also runs
go-runtime, default table against tuned table, on each held-out seed
(``_real_validation``, its GC with the world stopped so that the peak
repeats run to run), so the model's predicted change in peak in-use and
ns/op stands beside the real runtime's.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing as mp
import os
import re
import socket
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alloclab import strategies, workloads
from alloclab.harness import results as R
from alloclab.harness import runner
from alloclab.harness.atomic_file import atomic_write
from alloclab.harness.limits import DEFAULT_ARENA_MB
from alloclab.strategies._config import ConfigError

OBJECTIVES = ("memory", "inuse", "time", "locks")
DEFAULT_STORAGE = "sqlite:///results/tuning.db"
STORAGE_ENV = "ALLOCLAB_STORAGE"  # the storage URL when --storage is not given (keeps a password out of shell history)
# Tuning scale per workload: small enough for tens of trials a minute (go on web
# at 0.3: 2.6M ops, ~17 MiB live; rates measured are in docs/findings.md). At
# this size one 4 MiB heap-growth step is ~17% of peak mapped memory, which is
# why `inuse` rather than `memory` steers the search.
TUNING_SCALE = {"web": 0.3, "spawn-storm": 0.05, "pipeline": 0.1, "larson": 0.1, "tiny": 0.1,
                "large-mix": 0.05, "phase-shift": 0.2, "random": 0.5}
# Fields that describe the machine or the model's fidelity rather than an
# allocator design choice: fixed during search unless --tune-all.
FIXED_BY_DEFAULT = {
    "go": ("heap_growth_kb", "arena_mb", "gogc", "gc_min_heap_kb", "g_size", "malloc_header", "fixed_stack"),
    "system": ("m_arena_max",),
}
HELD_OUT_SEEDS = (1001, 1002, 1003)  # never among the tuning seeds (seed .. seed + n_seeds - 1)


class TuneError(ValueError):
    """Bad tuning input (one line)."""


@dataclass
class TuneSpec:
    strategy: str
    workloads: list[str]
    objectives: list[str]
    scale: float | None = None
    procs: int = 2
    seed: int = 0
    n_seeds: int = 1
    time_reps: int = 3
    time_processes: int = 3    # time objective: fresh processes per trial, default and trial config in each
    arena_mb: int = DEFAULT_ARENA_MB
    tune_all: bool = False
    fixed: dict[str, Any] = field(default_factory=dict)
    realizable: bool = False   # go: only size-class tables the real Go runtime can run (module docstring)

    def validate(self) -> "TuneSpec":
        mod = strategies.get(self.strategy)
        for w in self.workloads:
            if not w.startswith("trace:"):
                workloads.get(w)
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise TuneError(f"--objective {','.join(self.objectives)}: choose one or more of {', '.join(OBJECTIVES)}")
        names = set(mod.Config().to_dict())
        unknown = set(self.fixed) - names
        if unknown:
            raise TuneError(f"--fix: {self.strategy} has no config field(s) {', '.join(sorted(unknown))}")
        if not 1 <= self.time_processes <= 30:
            raise TuneError(f"--time-processes {self.time_processes}: outside 1..30")
        if self.realizable and self.strategy != "go":
            raise TuneError(f"--realizable: only for -s go (size-class tables the real Go runtime can run), "
                            f"not {self.strategy}")
        return self

    def scale_for(self, w: str) -> float:
        return self.scale if self.scale is not None else TUNING_SCALE.get(w, 0.1)

    def fixed_fields(self) -> dict[str, Any]:
        mod = strategies.get(self.strategy)
        base = mod.Config().to_dict()
        out = {} if self.tune_all else {k: base[k] for k in FIXED_BY_DEFAULT.get(self.strategy, ()) if k in base}
        if self.realizable:
            from alloclab.strategies.go import sizeclasses_go as SCGO

            table = set(SCGO.table_fields())
            out.update({k: v for k, v in base.items() if k not in table})   # no table rebuilds these into Go
            out.update(SCGO.GO119_FIXED)
        out.update(self.fixed)
        return out

    def realizable_problem(self, config) -> str | None:
        """With ``realizable``: why the real Go runtime cannot run ``config``'s table (None if it can)."""
        if not self.realizable:
            return None
        from alloclab.strategies.go import sizeclasses_go as SCGO

        return SCGO.go119_problem(config)


_TRACES: dict = {}


def get_trace(workload: str, procs: int, seed: int, scale: float):
    key = (workload, procs, seed, scale)
    if key not in _TRACES:
        if len(_TRACES) > 16:
            _TRACES.clear()
        _TRACES[key] = workloads.generate(workload, procs=procs, seed=seed, scale=scale)
    return _TRACES[key]


def evaluate(spec: TuneSpec, config, workload_list=None, seed=None) -> dict[str, Any]:
    """Run ``config`` on the workloads; returns per-workload metrics and the objective values.

    Without ``seed``, each workload runs on ``spec.n_seeds`` seeds (``--tune-seeds``,
    default 1) and its metrics are the geometric mean over them (see ``inuse`` in the
    module docstring for why mapped memory alone is a poor search signal).
    """
    from alloclab.strategies import _counters as counters

    seeds = [spec.seed + i for i in range(spec.n_seeds)] if seed is None else [seed]
    strategies.get(spec.strategy)   # unknown or unavailable: the one-line error, before any run
    d = strategies.descriptor(spec.strategy)
    in_processes = "time" in spec.objectives and spec.time_processes > 1
    per = {}
    for w in workload_list or spec.workloads:
        rows = []
        for sd in seeds:
            tr = get_trace(w, spec.procs, sd, spec.scale_for(w))
            in_here = "time" in spec.objectives and not in_processes
            res = runner.run_cell(spec.strategy, config, tr, mode="serial", reps=spec.time_reps if in_here else 1,
                                  arena_mb=spec.arena_mb, warmup=in_here)
            bad = [r for _, r in res if r.status != "ok"]
            if bad:
                return {"status": bad[0].status, "error": bad[0].error, "per_workload": per}
            r0 = res[0][1]
            st = tr.stats()
            c = r0.counters
            live = max(st["peak_live_bytes"], 1)
            inuse = d.peak_inuse_bytes(r0)
            floor = d.mapped_floor(config, live)
            rows.append(dict(overhead=r0.peak_mapped_bytes / live, inuse_overhead=inuse / live, floor_overhead=floor / live,
                             peak_mapped_bytes=r0.peak_mapped_bytes, peak_live_bytes=st["peak_live_bytes"],
                             ns_per_op=statistics.median(r.wall_s * 1e9 / len(tr) for _, r in res),
                             locks=(int(c[counters.LOCK_CENTRAL]) + int(c[counters.LOCK_GLOBAL])) * 1000 / len(tr),
                             fast_path_rate=int(c[counters.FAST_HITS]) / max(int(c[counters.ALLOCS]), 1)))
        per[w] = {k: _gmean([r[k] for r in rows]) if k in ("overhead", "inuse_overhead", "floor_overhead", "ns_per_op")
                  else float(np.mean([r[k] for r in rows])) for k in rows[0]}
    if in_processes:
        default = strategies.get(spec.strategy).Config()
        trace_rows = [dict(workload=w, seed=sd) for w in per for sd in seeds]
        for r, t in zip(trace_rows, _interleaved_time(spec, default, config, trace_rows, spec.time_processes,
                                                      reps=spec.time_reps)):
            r.update(t)
        for w in per:
            mine = [r for r in trace_rows if r["workload"] == w]
            per[w]["ns_per_op"] = _gmean([r["tuned_ns"] for r in mine])
            per[w]["time_ratio"] = _gmean([r["ratio"] for r in mine])
    values = {"memory": _gmean([v["overhead"] for v in per.values()]),
              "inuse": _gmean([v["inuse_overhead"] for v in per.values()]),
              "time": _gmean([v["time_ratio"] if in_processes else v["ns_per_op"] for v in per.values()]),
              "locks": float(np.mean([v["locks"] for v in per.values()]))}
    return {"status": "ok", "per_workload": per, "values": values}


def _gmean(xs) -> float:
    return float(math.exp(np.mean([math.log(max(x, 1e-12)) for x in xs])))


# userinfo up to the LAST '@' (a password may hold '@' or '/' unescaped; over-masking is the safe side);
# and a password passed as a query parameter (?password=..., libpq's form)
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:@/]*:)(?P<pw>.*)@(?P<rest>[^@]*)$", re.S)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&](?:password|passwd|pwd)=)[^&#]*", re.I)


def storage_url(given: str | None) -> str:
    """The storage a command uses: --storage, else $STORAGE_ENV (kept out of shell history), else the default."""
    return given or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: what may be printed, logged or stored.

    Run folders are shared and published, so a storage URL never leaves the process with its password."""
    m = _URL_PASSWORD.match(url)
    if m:
        url = f"{m['head']}***@{m['rest']}"
    return _QUERY_PASSWORD.sub(lambda q: q["key"] + "***", url)


def mask_secrets(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url`` masked and its password, raw or decoded, blanked wherever else it
    appears (drivers quote parts of the URL in their own words)."""
    from urllib.parse import unquote

    text = text.replace(url, mask_url(url))
    secrets = []
    m = _URL_PASSWORD.match(url)
    if m and m["pw"]:
        secrets.append(m["pw"])
    secrets += [q.group(0).split("=", 1)[1] for q in _QUERY_PASSWORD.finditer(url)]
    for s in secrets:
        for form in {s, unquote(s)}:
            if form:
                text = text.replace(form, "***")
    return text


def open_storage(url: str):
    import optuna

    if url.startswith("journal:") or url.endswith((".log", ".jsonl")):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url[len("journal:"):] if url.startswith("journal:") else url
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite:///"):
        p = Path(url[len("sqlite:///"):])
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A trial whose process died (kill, crash) stops beating; after the grace period the next
        # process on the study marks it failed, so nothing stays RUNNING forever.
        grace = int(os.environ.get("ALLOCLAB_TUNE_GRACE_S", "120"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is marked experimental in Optuna
            return optuna.storages.RDBStorage(url, heartbeat_interval=max(1, min(30, grace // 2)), grace_period=grace,
                                              engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # sqlalchemy raises many types for a bad URL or an unreachable server
        raise TuneError(mask_secrets(f"storage {url!r}: {str(e).splitlines()[0][:200]}", url)) from None


def make_objective(spec: TuneSpec):
    import optuna

    mod = strategies.get(spec.strategy)
    fixed = spec.fixed_fields()
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial):
        trial.set_user_attr("worker", worker)
        try:
            config = mod.Config.suggest(trial, fixed=fixed)
        except ConfigError as e:
            trial.set_user_attr("pruned_because", str(e))
            raise optuna.TrialPruned(str(e)) from None
        why = spec.realizable_problem(config)
        if why is not None:
            trial.set_user_attr("pruned_because", f"not realizable: {why}")
            raise optuna.TrialPruned(why)
        out = evaluate(spec, config)
        if out["status"] != "ok":
            trial.set_user_attr("pruned_because", out["error"])
            raise optuna.TrialPruned(out["error"])
        trial.set_user_attr("config_json", config.to_json())
        trial.set_user_attr("per_workload", json.dumps(out["per_workload"]))
        vals = [out["values"][o] for o in spec.objectives]
        return vals[0] if len(vals) == 1 else vals

    return objective


def fail_dead_trials(study, storage) -> int:
    """Mark failed the RUNNING trials whose process is gone, so a killed run never leaves one behind.

    Optuna fails trials whose heartbeat went stale, but a process killed within
    its first heartbeat interval left no heartbeat at all; such a trial is dead
    once it is older than the grace period plus one interval (a live one would
    have beaten by then). ``storage`` is the one the study was opened on (the
    study holds Optuna's caching wrapper around it). The Optuna internals this
    needs are in ``optuna_compat``."""
    import optuna

    from alloclab.harness import optuna_compat

    if not isinstance(storage, optuna.storages.RDBStorage) or storage.heartbeat_interval is None:
        return 0
    optuna_compat.fail_stale_trials(study)
    limit = dt.timedelta(seconds=storage.grace_period + storage.heartbeat_interval)
    n = 0
    for trial_id, started in optuna_compat.beatless_running_trials(study, storage):
        if started is not None and dt.datetime.now() - started > limit:
            try:
                storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
                n += 1
            except Exception:  # another process got there first
                pass
    return n


def create_study(spec: TuneSpec, storage_url: str, study_name: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)   # its INFO lines repeat what the CLI prints
    storage = open_storage(storage_url)
    dirs = ["minimize"] * len(spec.objectives)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                    directions=dirs, load_if_exists=True)
    except Exception as e:
        raise TuneError(mask_secrets(f"study {study_name!r} in {storage_url}: {str(e).splitlines()[0][:200]}",
                                     storage_url)) from None
    if [d.name.lower() for d in study.directions] != dirs:
        raise TuneError(f"study {study_name!r} exists with {len(study.directions)} objective(s); "
                        f"use another --study for --objective {','.join(spec.objectives)}")
    attrs = study.user_attrs
    want = dict(strategy=spec.strategy, workloads=spec.workloads, objectives=spec.objectives)
    if attrs.get("spec") and any(attrs["spec"].get(k) != v for k, v in want.items()):
        raise TuneError(f"study {study_name!r} was made for {attrs['spec']}; use another --study name")
    if not attrs.get("spec"):
        study.set_user_attr("spec", want | {"scale": spec.scale, "procs": spec.procs, "seed": spec.seed,
                                            "n_seeds": spec.n_seeds, "realizable": spec.realizable})
    fail_dead_trials(study, storage)
    return study


def _worker_main(spec: TuneSpec, storage_url: str, study_name: str, n_trials: int, timeout, seed: int, quiet: bool):
    import optuna

    from alloclab.harness.cli import quiet_compile_warnings

    quiet_compile_warnings()   # a spawned process: the CLI's filters are not inherited
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(spec, storage_url, study_name, seed)
    cb = None if quiet else [_print_trial]
    study.optimize(make_objective(spec), n_trials=n_trials, timeout=timeout, callbacks=cb, gc_after_trial=False)


def _print_trial(study, trial):
    v = trial.values if trial.values is not None else "pruned"
    print(f"  trial {trial.number:4d} [{trial.user_attrs.get('worker', '')}] {trial.state.name.lower()} {v}", flush=True)


def run_study(spec: TuneSpec, storage_url: str, study_name: str, n_trials: int, timeout=None, workers: int = 1,
              seed: int = 0, progress: bool = True):
    """Run ``n_trials`` more trials (split over ``workers`` processes); returns the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(spec, storage_url, study_name, seed)
    if workers <= 1:
        from alloclab.harness.bench import Progress

        # a bar on a terminal; in a log, a plain line every 10 s (tqdm's redraws would fill it)
        bar = Progress(n_trials, "tune", enabled=progress, unit="trial")

        def tick(study, trial):
            bar.label(f"trial {trial.number} {trial.state.name.lower()}")
            bar.update()

        try:
            study.optimize(make_objective(spec), n_trials=n_trials, timeout=timeout, callbacks=[tick],
                           gc_after_trial=False)
        finally:
            bar.close()
        return study
    ctx = mp.get_context("spawn")
    share = [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]
    procs = [ctx.Process(target=_worker_main, args=(spec, storage_url, study_name, share[i], timeout, seed + 1 + i,
                                                    not progress)) for i in range(workers) if share[i]]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} tuning worker(s) failed (exit codes {bad})")
    return optuna.load_study(study_name=study_name, storage=open_storage(storage_url))


def best_trials(study):
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.values)


def held_out_validation(spec: TuneSpec, config, other_workloads: list[str] | None = None,
                        processes: int = 6, out_dir: Path | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Tuned vs default config on held-out seeds (tuning workloads) and on the other named workloads.

    Memory is deterministic (serial): one run each. Time is measured the way
    ``alloclab ab`` measures it (significance.py, rounds.py): ``processes``
    fresh worker processes, each timing default and tuned on every held-out
    trace in ABBA order beside the yardstick; each row gets the ratio of
    median ns/op, a paired verdict on the per-process ratios (faster, slower
    or ~, Benjamini-Hochberg across the rows; 6 processes at least, see
    significance.min_p_paired) and the smallest change it could have detected. The time
    cells land in ``out_dir`` (a results folder; a temporary one if None).
    """
    mod = strategies.get(spec.strategy)
    default = mod.Config()
    vspec = TuneSpec(**{**spec.__dict__, "objectives": ["memory"], "time_reps": 1})
    others = other_workloads if other_workloads is not None else [
        w for w in workloads.names() if w not in spec.workloads and w != "random"]
    plan = [(group, w, sd) for group, wl, seeds in (("tuning workload, held-out seed", spec.workloads, HELD_OUT_SEEDS),
                                                    ("held-out workload", others, HELD_OUT_SEEDS[:1]))
            for w in wl for sd in seeds]
    rows = []
    for group, w, sd in plan:
        d = evaluate(vspec, default, [w], seed=sd)
        t = evaluate(vspec, config, [w], seed=sd)
        if d["status"] != "ok" or t["status"] != "ok":
            rows.append(dict(group=group, workload=w, seed=sd, status=f"{d['status']}/{t['status']}"))
            continue
        dv, tv = d["per_workload"][w], t["per_workload"][w]
        rows.append(dict(group=group, workload=w, seed=sd, status="ok",
                         default_overhead=dv["overhead"], tuned_overhead=tv["overhead"],
                         overhead_change=tv["overhead"] / dv["overhead"] - 1,
                         floor_overhead=tv["floor_overhead"], floor_change=tv["floor_overhead"] / dv["overhead"] - 1,
                         default_inuse=dv["inuse_overhead"], tuned_inuse=tv["inuse_overhead"],
                         inuse_change=tv["inuse_overhead"] / dv["inuse_overhead"] - 1,
                         default_locks=dv["locks"], tuned_locks=tv["locks"]))
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        for r, v in zip(ok, _time_validation(spec, default, config, ok, processes, out_dir, progress)):
            r.update(v)
    seeds = [r for r in ok if r["group"] == "tuning workload, held-out seed"]
    if seeds and spec.strategy == "go" and strategies.unavailable_reason("go-runtime") is None:
        for r, v in zip(seeds, _real_validation(spec, default, config, seeds)):
            r.update(v)
    return rows


REAL_REPS = 5   # go-runtime repetitions per side and trace in the real validation (medians)


def _real_validation(spec: TuneSpec, default, tuned, rows) -> list[dict[str, Any]]:
    """The real Go runtime, default table against tuned table, on each row's held-out trace.

    go-runtime runs each go config's size-class table (a goreplay built against
    it) at the model's GOGC (Go's 100 for the model's no-GC-lag variant),
    serial, ``REAL_REPS`` repetitions in one process, with each GC cycle run
    with the world stopped (``gc_stw``): under Go's concurrent GC the peak
    heap moves from run to run with when each mark lands, by more than a
    size-class table changes it (docs/go-fidelity.md), and the model's GC,
    too, runs whole at its goal. A side's peak in-use (HeapInuse above the baseline)
    and ns/op are the medians of its repetitions. Beside
    the model's predicted change each row gets the real change and their gap
    in percentage points (``inuse_gap_pp``). A tuned table Go cannot run gives
    ``real_status`` with the reason and no real figures."""
    from alloclab.strategies import go_runtime as GR

    gogc = tuned.gogc if tuned.gogc > 0 else 100
    try:
        sides = [GR.from_go_config(c, gogc, gc_stw=True) for c in (default, tuned)]
    except ConfigError as e:
        return [dict(real_status=str(e))] * len(rows)
    out = []
    for r in rows:
        tr = get_trace(r["workload"], spec.procs, r["seed"], spec.scale_for(r["workload"]))
        live = max(tr.stats()["peak_live_bytes"], 1)
        try:
            got = [[res for _, res in runner.run_cell("go-runtime", cfg, tr, mode="serial", reps=REAL_REPS)]
                   for cfg in sides]
        except GR.GoRuntimeError as e:
            out.append(dict(real_status=str(e)))
            continue
        bad = [x for side in got for x in side if x.status != "ok"]
        if bad:
            out.append(dict(real_status=f"{bad[0].status}: {bad[0].error}"))
            continue
        inuse = [statistics.median(x.in_use_at_peak for x in side) / live for side in got]
        ns = [statistics.median(x.wall_s * 1e9 / len(tr) for x in side) for side in got]
        real_change = inuse[1] / inuse[0] - 1
        out.append(dict(real_status="ok", real_gogc=gogc, real_gc_stw=True, real_default_inuse=inuse[0], real_tuned_inuse=inuse[1],
                        real_inuse_change=real_change, inuse_gap_pp=100 * (r["inuse_change"] - real_change),
                        real_default_ns=ns[0], real_tuned_ns=ns[1], real_ns_change=ns[1] / ns[0] - 1))
    return out


def _interleaved_time(spec: TuneSpec, default, other, rows, processes: int, out_dir: Path | None = None,
                      progress: bool = False, reps: int = 1) -> list[dict[str, Any]]:
    """``default`` against ``other`` on each row's trace (``workload``, ``seed``), both timed in
    each of ``processes`` fresh worker processes, ABBA, as ``alloclab ab`` times them. Per row:
    each side's median ns/op, the median per-process ratio other/default, and a paired verdict
    (significance.paired_verdicts; Benjamini-Hochberg across the rows)."""
    import tempfile

    from alloclab.harness import bench, compare

    suite = bench.Suite(name="interleaved-time", description="default against another config, in fresh processes",
                        reps=reps, seed=0, arena_mb=spec.arena_mb, processes=processes)
    same = other.config_hash() == default.config_hash()   # a trial may sample the default itself
    for r in rows:
        for cfg in ((default,) if same else (default, other)):
            suite.cells.append(bench.Cell(spec.strategy, cfg, r["workload"], {"scale": spec.scale_for(r["workload"])},
                                          spec.procs, "serial", r["seed"]))
    with tempfile.TemporaryDirectory(prefix="alloclab-time-") as tmp:
        run = Path(out_dir) if out_dir is not None else Path(tmp) / "time"
        bench.run_suite(suite, run, progress=progress, log=lambda *a: None)
        df = R.load([run])
    df = df[df["status"] == "ok"]
    sides, meds = [], []
    for r in rows:
        g = df[(df["workload"] == r["workload"]) & (df["seed"] == r["seed"])]
        gd, gt = g[g["config_hash"] == default.config_hash()], g[g["config_hash"] == other.config_hash()]
        sides.append((gd, gt))
        meds.append((float(np.median(gd["ns_per_op"])) if len(gd) else math.nan,
                     float(np.median(gt["ns_per_op"])) if len(gt) else math.nan))
    return [dict(default_ns=dn, tuned_ns=tn, ratio=v.ratio, verdict=v.verdict, mde=v.mde, processes=v.n_old)
            for (dn, tn), v in zip(meds, compare.side_verdicts(sides, paired=True))]


def _time_validation(spec: TuneSpec, default, tuned, rows, processes: int, out_dir: Path | None,
                     progress: bool) -> list[dict[str, Any]]:
    """Default against tuned ns/op on each row's trace, in fresh processes (see held_out_validation)."""
    return [dict(default_ns=t["default_ns"], tuned_ns=t["tuned_ns"],
                 ns_change=t["tuned_ns"] / t["default_ns"] - 1 if t["default_ns"] else math.nan,
                 ns_verdict=t["verdict"], ns_mde=t["mde"], ns_processes=t["processes"])
            for t in _interleaved_time(spec, default, tuned, rows, processes, out_dir, progress)]


def write_best_toml(path: Path, strategy: str, config, note: str) -> None:
    lines = [f"# {note}", f"[{strategy}]"]
    for k, v in config.to_dict().items():
        lines.append(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
    atomic_write(path, "\n".join(lines) + "\n")


def study_record(study, spec: TuneSpec, validation: list[dict], best_configs: list) -> dict[str, Any]:
    """What the report's tuning section needs, as JSON."""
    import optuna

    trials = []
    for t in study.trials:
        trials.append(dict(number=t.number, state=t.state.name, values=t.values, params=t.params,
                           worker=t.user_attrs.get("worker"),
                           duration_s=t.duration.total_seconds() if t.duration else None))
    try:
        if len(study.directions) == 1 and len([t for t in study.trials if t.state.name == "COMPLETE"]) >= 4:
            importances = optuna.importance.get_param_importances(study)
        else:
            importances = {}
    except Exception as e:  # importance needs enough varied trials
        importances = {"_error": str(e)[:200]}
    return dict(study=study.study_name, strategy=spec.strategy, workloads=spec.workloads, objectives=spec.objectives,
                realizable=spec.realizable, scale={w: spec.scale_for(w) for w in spec.workloads}, procs=spec.procs, trials=trials,
                importances={k: float(v) for k, v in importances.items() if not k.startswith("_")},
                best=[json.loads(c.to_json()) for c in best_configs], validation=validation)
