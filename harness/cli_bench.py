"""``alloclab bench``, ``report`` and ``compare``."""
from __future__ import annotations

import sys
from pathlib import Path

from alloclab.harness.errors import UsageError

# ab pairs the two sides within each process; the signed-rank test's smallest p with n pairs
# is 2 / 2^n, so 5 processes can never give a verdict (0.0625) and 6 can (0.031)
AB_MIN_PROCESSES = 6


def add_commands(sub, parser_class) -> None:
    from alloclab.harness.cli import NO_PROGRESS_HELP, _positive_int

    s = sub.add_parser("bench", help="run a suite of cells into a results folder",
                       epilog="examples:\n  alloclab bench --suite quick --report   # what `make bench` runs\n"
                              "  alloclab bench --suite full --out results/full --resume   # complete an interrupted run")
    s.add_argument("--suite", default="quick",
                   help="quick (default), full, targets, scaling, real (traces recorded from real programs), latency "
                        "(tails and memory timelines), or a suite TOML file")
    s.add_argument("--reps", type=_positive_int,
                   help="timed repetitions per cell in each process, after its warm-up (default: the suite's, else 1)")
    s.add_argument("--processes", type=_positive_int,
                   help="fresh processes per cell; each is one sample for compare's significance test "
                        "(default: the suite's, else 5; 1 runs everything in this process and compare can only say ~)")
    s.add_argument("--no-interleave", dest="interleave", action="store_false",
                   help="run the cells in the same order in every process (default: forward, then backward, "
                        "so drift reaches every cell alike)")
    s.add_argument("--out", help="results folder (default results/<run-id>)")
    s.add_argument("--resume", action="store_true", help="complete an interrupted run folder (--out)")
    s.add_argument("--config", action="append", metavar="STRATEGY=FILE.toml",
                   help="use this config for a strategy in every cell, e.g. a tuned best.toml (repeatable; "
                        "default: the suite's configs)")
    s.add_argument("--check", action="store_true", help="verify every op (slow)")
    s.add_argument("--report", action="store_true", help="write the report afterwards and print its path")
    s.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("report", help="write index.html, report.md and summary.csv from run folders",
                       epilog="examples:\n  alloclab report results/<run-id>\n"
                              "  alloclab report results/<bench-run> results/<tune-run> -o report --baseline system")
    s.add_argument("runs", nargs="+", help="results folders")
    s.add_argument("-o", "--out", help="output folder (default: <first run>/report)")
    s.add_argument("--baseline", default="bump", help="strategy that times are quoted against")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("noise", help="an A/A of a suite: each cell's spread, what it can detect, false positives",
                       epilog="example: alloclab noise --suite quick --processes 6")
    s.add_argument("--suite", default="quick", help="suite name or TOML file (default quick)")
    s.add_argument("--processes", type=_positive_int, default=None,
                   help="processes per half (default: the suite's); the run uses twice as many, interleaved")
    s.add_argument("--reps", type=_positive_int, help="repetitions per process (default: the suite's)")
    s.add_argument("--out", help="results folder (default results/<run-id>-noise); kept, so it can be reported")
    s.add_argument("--from", dest="from_dir", metavar="RUN_DIR",
                   help="analyse this existing run folder instead of running (4 or more processes; default: run "
                        "the suite)")
    s.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    s.set_defaults(fn=cmd_noise)

    s = sub.add_parser("ab", help="compare two configs or strategies properly: interleaved (ABBA) processes, "
                                  "then a verdict per workload",
                       epilog="examples: alloclab ab go go:tuned.toml -w web --scale 0.05\n"
                              "          alloclab ab freelist bitmap -w random -w tiny --processes 8")
    s.add_argument("a", metavar="A", help="STRATEGY or STRATEGY:CONFIG.toml")
    s.add_argument("b", metavar="B", help="STRATEGY or STRATEGY:CONFIG.toml")
    s.add_argument("-w", "--workload", action="append", required=True, help="workload (repeatable)")
    s.add_argument("--scale", type=float, default=0.05, help="workload size factor (default 0.05)")
    s.add_argument("--procs", type=_positive_int, default=1, help="number of Ps (default 1)")
    s.add_argument("--mode", choices=("serial", "threads"), default="serial",
                   help="serial: one thread replays every P's ops in order; threads: one thread per P")
    s.add_argument("--processes", type=_positive_int, default=8, help=f"processes, each running A and B, one paired sample each ({AB_MIN_PROCESSES} or more; default 8)")
    s.add_argument("--reps", type=_positive_int, default=1, help="repetitions per process and side (default 1)")
    s.add_argument("--out", help="results folder (default results/<run-id>-ab)")
    s.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    s.set_defaults(fn=cmd_ab)

    s = sub.add_parser("compare", help="per-cell verdicts of NEW against OLD: slower, faster or ~ (cannot tell)",
                       epilog="examples:\n  alloclab compare results/<before> results/<after>\n"
                              "  alloclab compare results/<before> results/<after> --fail min:5%   # a CI gate")
    s.add_argument("old", help="the baseline results folder")
    s.add_argument("new", help="the results folder judged against it")
    s.add_argument("--fail", metavar="STAT:PCT", help="exit 1 when a cell is significantly slower and its STAT ratio exceeds 1 + PCT, "
                        "e.g. min:5%% or median:10%% (default: never fail)")
    s.set_defaults(fn=cmd_compare)


def _tuned_configs(items):
    from alloclab.harness.cli import load_config

    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--config {item!r}: expected STRATEGY=FILE.toml")
        name, path = item.split("=", 1)
        out[name] = load_config(name, path)
    return out


def cmd_bench(args) -> int:
    from alloclab.harness import bench, results

    try:
        suite = bench.load_suite(args.suite, reps=args.reps, config_override=_tuned_configs(args.config),
                                 processes=args.processes)
    except bench.SuiteError as e:
        raise UsageError(str(e)) from None
    for why in suite.skipped:
        print(f"alloclab bench: skipping {why}", file=sys.stderr)
    if args.resume and not args.out:
        raise UsageError("--resume needs --out RUN_DIR (the folder to complete)")
    out = Path(args.out) if args.out else Path("results") / results.new_run_id(suite.name)
    if args.resume and not out.is_dir():
        raise UsageError(f"--resume: {out} does not exist")
    try:
        results.ResultsStore(out, meta={"suite": suite.name, "suite_source": suite.source,
                                        "description": suite.description, "reps": suite.reps,
                                        "processes": suite.processes, "pilot": suite.pilot})
    except OSError as e:
        raise UsageError(str(e)) from None
    try:
        print(f"suite {suite.name}: {len(suite.cells)} cells x {suite.processes} processes x {suite.reps} reps "
              f"-> {out}", file=sys.stderr)
        summary = bench.run_suite(suite, out, resume=args.resume, progress=not args.no_progress,
                                  check=args.check, interleave=args.interleave)
    except bench.SuiteError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(str(e)) from None
    print(f"{summary['ran']} cell runs ({summary['cells']} cells x {summary['processes']} processes; "
          f"{summary['skipped']} already done, {summary['failed']} failed); results in {out}")
    if args.report:
        from alloclab.harness import report

        written = report.write_report([out], out / "report", baseline="bump")
        print(f"\n{written.terminal}\nreport: {written.index.resolve()}")
    return 0


def cmd_report(args) -> int:
    from alloclab.harness import report

    for r in args.runs:
        if not Path(r).is_dir():
            raise UsageError(f"{r}: not a results folder")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    try:
        written = report.write_report([Path(r) for r in args.runs], out, baseline=args.baseline)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    print(f"{written.terminal}\nreport: {written.index.resolve()}")
    return 0


def cmd_compare(args) -> int:
    from alloclab.harness import compare

    stat, pct = "median", None
    if args.fail:
        try:
            stat, p = args.fail.split(":")
            pct = float(p.rstrip("%"))
            if stat not in ("min", "median", "mean") or pct < 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"--fail {args.fail!r}: expected min|median|mean:PCT, e.g. min:5%") from None
    try:
        table, regressions = compare.compare_runs(Path(args.old), Path(args.new), stat=stat, fail_pct=pct)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    print(table)
    if regressions:
        print(f"{len(regressions)} cell(s) regressed by more than {pct}% ({stat}):", file=sys.stderr)
        for r in regressions:
            print(f"  {r}", file=sys.stderr)
        return 1
    return 0


def _run_into(suite, args, kind: str, what: str) -> Path:
    """Run ``suite`` into --out (or a new results/<run-id>-KIND), saying what and where first."""
    from alloclab.harness import bench, results

    run = Path(args.out) if args.out else Path("results") / results.new_run_id(f"{suite.name}-{kind}"
                                                                               if kind != suite.name else kind)
    print(f"{what} -> {run}", file=sys.stderr)
    try:
        bench.run_suite(suite, run, progress=not args.no_progress)
    except (bench.SuiteError, OSError) as e:
        raise UsageError(str(e)) from None
    return run


def cmd_noise(args) -> int:
    from alloclab.harness import bench, noise

    if args.from_dir:
        run = Path(args.from_dir)
        if not run.is_dir():
            raise UsageError(f"--from {run}: not a results folder")
    else:
        try:
            suite = bench.load_suite(args.suite, reps=args.reps, processes=args.processes)
        except bench.SuiteError as e:
            raise UsageError(str(e)) from None
        suite.processes *= 2
        run = _run_into(suite, args, "noise", f"noise: {len(suite.cells)} cells x {suite.processes} processes "
                                              f"(two interleaved halves) x {suite.reps} reps")
    try:
        table, summary = noise.noise_table(run)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if summary["processes"] < 4:
        raise UsageError(f"{run}: {summary['processes']} process(es); an A/A split needs 4 or more")
    print(noise.format_noise(table, summary))
    return 0


def _ab_side(spec: str):
    from alloclab import strategies
    from alloclab.harness.cli import load_config

    name, _, cfg = spec.partition(":")
    try:
        mod = strategies.get(name)
    except (strategies.UnknownStrategy, strategies.UnavailableStrategy) as e:
        raise UsageError(str(e)) from None
    return name, (load_config(name, cfg) if cfg else mod.Config())


def cmd_ab(args) -> int:
    from alloclab import workloads
    from alloclab.harness import bench, noise
    from alloclab.harness import significance as sig

    (sa, ca), (sb, cb) = _ab_side(args.a), _ab_side(args.b)
    if sa == sb and ca == cb:
        raise UsageError(f"A and B are the same ({args.a}); that is an A/A test: use alloclab noise")
    for w in args.workload:
        try:
            workloads.get(w)
        except workloads.UnknownWorkload as e:
            raise UsageError(str(e)) from None
    if not 0 < args.scale <= 1000:
        raise UsageError(f"--scale {args.scale}: outside (0, 1000]")
    if args.processes < AB_MIN_PROCESSES:
        raise UsageError(f"--processes {args.processes}: a paired verdict needs {AB_MIN_PROCESSES} or more "
                         f"(with {args.processes} the signed-rank test's smallest p is "
                         f"{sig.min_p_paired(args.processes):.3g}, never below {sig.ALPHA})")
    suite = bench.Suite(name="ab", description=f"{args.a} against {args.b}", reps=args.reps, seed=1,
                        arena_mb=bench.DEFAULT_ARENA_MB, processes=args.processes)
    for w in args.workload:
        for s, c in ((sa, ca), (sb, cb)):
            suite.cells.append(bench.Cell(s, c, w, {"scale": args.scale}, args.procs, args.mode, 1))
    run = _run_into(suite, args, "ab", f"ab: {args.a} against {args.b} on {', '.join(args.workload)}: "
                                       f"{args.processes} processes x {args.reps} reps, ABBA")
    ha, hb = ca.config_hash(), cb.config_hash()
    table = noise.ab_table(run, lambda g: (g["strategy"] == sa) & (g["config_hash"] == ha),
                           lambda g: (g["strategy"] == sb) & (g["config_hash"] == hb))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"(ratio: median over processes of B/A within the process; verdict from the Wilcoxon signed-rank test "
          f"on those ratios, Benjamini-Hochberg across workloads; mde_pct: the smallest change detectable here; "
          f"A = {args.a}, B = {args.b})")
    return 0
