"""``alloclab tune``: search a strategy's config with Optuna, validate, write best.toml."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from alloclab.harness.errors import UsageError


def add_commands(sub, parser_class) -> None:
    from alloclab.harness.cli import NO_PROGRESS_HELP, _nonneg_int, _positive_int, _procs, _scale

    s = sub.add_parser("tune", help="search a strategy's parameters with Optuna",
                       epilog="examples:\n  alloclab tune -s go -w web --objective inuse --trials 200\n"
                              "  alloclab tune -s go -w web --objective inuse --realizable --trials 40"
                              "   # then validated on the real runtime\n"
                              "  ALLOCLAB_STORAGE=postgresql://user:pw@host/db alloclab tune -s go -w web --study shared"
                              "   # a shared study; the password never shows")
    s.add_argument("-s", "--strategy", required=True, help="strategy whose config is searched (`alloclab list -v`)")
    s.add_argument("-w", "--workloads", required=True, help="tuning workloads, comma-separated")
    s.add_argument("--objective", default="memory", help="memory (peak mapped / live), inuse (peak bytes in spans / live, finer), time, locks, "
                        "or several comma-separated (Pareto)")
    s.add_argument("--trials", type=_positive_int, default=50, help="trials to add to the study")
    s.add_argument("--timeout", type=_positive_int, help="stop adding trials after this many seconds (default: no limit)")
    s.add_argument("--storage", help="Optuna storage: SQLAlchemy URL, journal:PATH or PATH.log (default: the "
                                     "ALLOCLAB_STORAGE environment variable, else sqlite:///results/tuning.db); "
                                     "a password in the URL is shown and stored as ***")
    s.add_argument("--study", help="study name (default STRATEGY-WORKLOADS-OBJECTIVES); an existing study continues")
    s.add_argument("--workers", type=_positive_int, default=1, help="processes working on the study")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="first trace seed, and the sampler's seed")
    s.add_argument("--tune-seeds", type=_positive_int, default=1,
                   help="traces per workload a trial is scored on (seeds SEED..SEED+N-1; geometric mean)")
    s.add_argument("--time-processes", type=_positive_int, default=3,
                   help="time objective: fresh processes per trial, each timing the default and the trial config "
                        "(the objective is the trial's time relative to the default, per-process ratios; "
                        "1: an in-process median ns/op, cheaper and as noisy as the moment; default 3)")
    s.add_argument("--scale", type=_scale, help="workload scale for tuning (default: per workload, see tune.py)")
    s.add_argument("--procs", type=_procs, default=2, help="number of Ps in the tuning traces")
    s.add_argument("--fix", action="append", metavar="KEY=VALUE", help="hold a config field fixed (repeatable; default: "
                   "search every tunable field)")
    s.add_argument("--tune-all", action="store_true",
                   help="also search the tunable fields held at their defaults because they describe the machine "
                        "(go: heap_growth_kb); fields with tune=False are never searched")
    s.add_argument("--realizable", action="store_true",
                   help="go only: search only size-class tables the installed Go runtime can run (class 2 of 16 B, "
                        "8 KiB pages, 32 KiB max small size, 16-byte steps from 32 B, at most 127 classes) and hold "
                        "the model's other Go constants at Go's values, so go-runtime can run the result "
                        "(default: off, every tunable field)")
    s.add_argument("--out", help="write the best config here as TOML (default results/best-<study>.toml)")
    s.add_argument("--no-validate", action="store_true", help="skip the held-out validation")
    s.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    s.set_defaults(fn=cmd_tune)


def _parse_fix(items, strategy):
    import tomllib

    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--fix {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = tomllib.loads(f"x = {v.strip()}")["x"]
        except tomllib.TOMLDecodeError:
            out[k.strip()] = v.strip()
    return out


def cmd_tune(args) -> int:
    from alloclab import strategies
    from alloclab.harness import results as R
    from alloclab.harness import tune as T

    strategies.get(args.strategy)
    spec = T.TuneSpec(strategy=args.strategy, workloads=[w.strip() for w in args.workloads.split(",") if w.strip()],
                      objectives=[o.strip() for o in args.objective.split(",") if o.strip()], scale=args.scale,
                      procs=args.procs, seed=args.seed, n_seeds=args.tune_seeds, tune_all=args.tune_all,
                      fixed=_parse_fix(args.fix, args.strategy), realizable=args.realizable,
                      time_processes=args.time_processes)
    try:
        spec.validate()
    except T.TuneError as e:
        raise UsageError(str(e)) from None
    if not spec.workloads:
        raise UsageError("-w: name at least one workload")
    study_name = args.study or f"{spec.strategy}-{'+'.join(spec.workloads)}-{'+'.join(spec.objectives)}"
    storage = T.storage_url(args.storage)
    out_dir = Path("results") / R.new_run_id(f"tune-{study_name}".replace("/", "_"))
    best_path = Path(args.out) if args.out else Path("results") / f"best-{study_name}.toml"
    if args.out and not best_path.parent.exists():
        raise UsageError(f"{best_path.parent}: output folder does not exist")
    try:
        Path("results").mkdir(exist_ok=True)
    except OSError as e:
        raise UsageError(f"results: cannot create ({e.strerror})") from None
    try:
        T.open_storage(storage)
    except T.TuneError as e:
        raise UsageError(str(e)) from None
    print(f"tuning {spec.strategy} on {','.join(spec.workloads)} for {','.join(spec.objectives)}: "
          f"{args.trials} trials, {args.workers} worker(s), study {study_name!r} in {T.mask_url(storage)}", file=sys.stderr)
    t0 = time.time()
    try:
        # The default config first, so the study always holds the baseline point.
        study = T.create_study(spec, storage, study_name, args.seed)
        if not study.trials:
            study.enqueue_trial({k: v for k, v in strategies.get(spec.strategy).Config().to_dict().items()
                                 if k not in spec.fixed_fields()}, skip_if_exists=True)
        n_before = len(study.trials)
        study = T.run_study(spec, storage, study_name, args.trials, timeout=args.timeout, workers=args.workers,
                            seed=args.seed, progress=not args.no_progress)
    except T.TuneError as e:
        raise UsageError(str(e)) from None
    elapsed = time.time() - t0
    new = len(study.trials) - n_before
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    print(f"{new} trials in {elapsed:.1f} s ({new / elapsed * 60:.1f} trials/min); study has {len(done)} complete, "
          f"{len(pruned)} pruned", file=sys.stderr)
    best = T.best_trials(study)
    if not best:
        print("alloclab tune: no trial completed", file=sys.stderr)
        return 1
    mod = strategies.get(spec.strategy)
    configs = [mod.Config.from_dict(json.loads(t.user_attrs["config_json"])) for t in best[:5]]
    default_eval = T.evaluate(spec, mod.Config())
    print(f"\nbest of {len(done)} trials ({', '.join(spec.objectives)}):")
    for t, c in zip(best, configs):
        changed = {k: v for k, v in c.to_dict().items() if v != mod.Config().to_dict()[k]}
        print(f"  trial {t.number}: {t.values}  changes: {changed or 'none (the default)'}")
    if default_eval["status"] == "ok":
        print(f"  default config: {[round(default_eval['values'][o], 4) for o in spec.objectives]}")
    T.write_best_toml(best_path, spec.strategy, configs[0],
                      f"alloclab tune: study {study_name}, trial {best[0].number}, {','.join(spec.objectives)} = {best[0].values}")
    print(f"best config written to {best_path}")
    validation = []
    if not args.no_validate:
        print("\nheld-out validation (tuned vs default):")
        validation = T.held_out_validation(spec, configs[0], out_dir=out_dir / "validation-time",
                                           progress=True)
        _print_validation(validation)
    store = R.ResultsStore(out_dir, meta={"command": "tune", "study": study_name,
                                                 "storage": T.mask_url(storage)})
    _store_validation_rows(store, spec, mod, configs[0], validation)
    rec = T.study_record(study, spec, validation, configs)
    (out_dir / "tuning.json").write_text(json.dumps(rec, indent=1, default=str))
    print(f"tuning record and validation rows in {out_dir} (alloclab report {out_dir})")
    return 0


def _verdict(r) -> str:
    mde = "none" if r["ns_mde"] == float("inf") else f"{r['ns_mde']:.0%}"
    return f"{r['ns_verdict']}, {r['ns_processes']} processes a side, detectable {mde}"


def _print_validation(rows):
    ok = [r for r in rows if r.get("status") == "ok"]
    for r in rows:
        if r.get("status") != "ok":
            print(f"  {r['group']:<32} {r['workload']:<12} seed {r['seed']}: {r['status']}")
            continue
        print(f"  {r['group']:<32} {r['workload']:<12} seed {r['seed']:>5}: overhead {r['default_overhead']:.3f} -> "
              f"{r['tuned_overhead']:.3f} ({r['overhead_change']:+.1%}; floor {r['floor_overhead']:.3f}, "
              f"{r['floor_change']:+.1%} at most), in-use {r['default_inuse']:.3f} -> "
              f"{r['tuned_inuse']:.3f} ({r['inuse_change']:+.1%}), ns/op {r['default_ns']:.1f} -> "
              f"{r['tuned_ns']:.1f} ({r['ns_change']:+.1%}: {_verdict(r)})")
    _print_real_validation(rows)
    for group in ("tuning workload, held-out seed", "held-out workload"):
        g = [r for r in ok if r["group"] == group]
        if g:
            import statistics

            print(f"  median over {group}s: overhead {statistics.median(r['overhead_change'] for r in g):+.1%}, "
                  f"in-use {statistics.median(r['inuse_change'] for r in g):+.1%}, "
                  f"ns/op {statistics.median(r['ns_change'] for r in g):+.1%}")


def _print_real_validation(rows):
    """The real Go runtime's change beside the model's prediction, per held-out seed (tune._real_validation)."""
    import statistics

    real = [r for r in rows if "real_status" in r]
    if not real:
        return
    print("  the real Go runtime (go-runtime, default table -> tuned table, GC with the world stopped so that "
          "the peak repeats), beside the model's prediction:")
    for r in real:
        head = f"    {r['workload']:<12} seed {r['seed']:>5}: "
        if r["real_status"] != "ok":
            print(head + r["real_status"])
            continue
        print(head + f"peak in-use {r['real_default_inuse']:.3f} -> {r['real_tuned_inuse']:.3f} x live "
              f"(real {r['real_inuse_change']:+.1%}, model {r['inuse_change']:+.1%}, gap {r['inuse_gap_pp']:+.1f} pp), "
              f"ns/op {r['real_default_ns']:.1f} -> {r['real_tuned_ns']:.1f} "
              f"(real {r['real_ns_change']:+.1%}, model {r['ns_change']:+.1%})")
    ok = [r for r in real if r["real_status"] == "ok"]
    if ok:
        print(f"    median: in-use real {statistics.median(r['real_inuse_change'] for r in ok):+.1%}, model "
              f"{statistics.median(r['inuse_change'] for r in ok):+.1%}, |gap| "
              f"{statistics.median(abs(r['inuse_gap_pp']) for r in ok):.1f} pp; ns/op real "
              f"{statistics.median(r['real_ns_change'] for r in ok):+.1%}, model "
              f"{statistics.median(r['ns_change'] for r in ok):+.1%}")


def _store_validation_rows(store, spec, mod, tuned, validation):
    """Tuned and default configs on the tuning workloads as ordinary result rows, for the report."""
    from alloclab.harness import results as R
    from alloclab.harness import runner
    from alloclab.harness import tune as T

    rows = []
    started = R.now_iso()
    for w in spec.workloads:
        sd = T.HELD_OUT_SEEDS[0]
        tr = T.get_trace(w, spec.procs, sd, spec.scale_for(w))
        for cfg in (mod.Config(), tuned):
            for rep, r in runner.run_cell(spec.strategy, cfg, tr, reps=3, arena_mb=spec.arena_mb):
                rows.append(R.make_row(run_id=store.dir.name, started_at=started, strategy=spec.strategy, config=cfg,
                                       workload=w, workload_params={"scale": spec.scale_for(w)}, seed=sd,
                                       procs=spec.procs, mode="serial", rep=rep, trace_stats=tr.stats(), result=r,
                                       counters=runner.counters_dict(mod, r)))
    if rows:
        store.append(rows)
