"""``alloclab bench``, ``report`` and ``compare``."""
from __future__ import annotations

import sys
from pathlib import Path

from alloclab.harness.errors import UsageError


def add_commands(sub, parser_class) -> None:
    from alloclab.harness.cli import _positive_int

    s = sub.add_parser("bench", help="run a suite of cells into a results folder")
    s.add_argument("--suite", default="quick", help="quick, full, targets, scaling, or a suite TOML file")
    s.add_argument("--reps", type=_positive_int, help="repetitions per cell (overrides the suite)")
    s.add_argument("--out", help="results folder (default results/<run-id>)")
    s.add_argument("--resume", action="store_true", help="complete an interrupted run folder (--out)")
    s.add_argument("--config", action="append", metavar="STRATEGY=FILE.toml",
                   help="use this config for a strategy in every cell (e.g. a tuned best.toml)")
    s.add_argument("--check", action="store_true", help="verify every op (slow)")
    s.add_argument("--report", action="store_true", help="write the report afterwards and print its path")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("report", help="write index.html, report.md and summary.csv from run folders")
    s.add_argument("runs", nargs="+", help="results folders")
    s.add_argument("-o", "--out", help="output folder (default: <first run>/report)")
    s.add_argument("--baseline", default="bump", help="strategy that times are quoted against")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("compare", help="per-cell ratios of NEW against OLD with significance")
    s.add_argument("old")
    s.add_argument("new")
    s.add_argument("--fail", metavar="STAT:PCT", help="exit 1 when a cell regresses beyond this, e.g. min:5%% or median:10%%")
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
        suite = bench.load_suite(args.suite, reps=args.reps, config_override=_tuned_configs(args.config))
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
                                        "description": suite.description, "reps": suite.reps})
    except OSError as e:
        raise UsageError(str(e)) from None
    try:
        print(f"suite {suite.name}: {len(suite.cells)} cells x {suite.reps} reps -> {out}", file=sys.stderr)
        summary = bench.run_suite(suite, out, resume=args.resume, progress=not args.no_progress,
                                  check=args.check)
    except bench.SuiteError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(str(e)) from None
    print(f"{summary['ran']} cells run ({summary['skipped']} already done, {summary['failed']} failed); results in {out}")
    if args.report:
        from alloclab.harness import report

        index = report.write_report([out], out / "report", baseline="bump")
        print(f"report: {index.resolve()}")
    return 0


def cmd_report(args) -> int:
    from alloclab.harness import report

    for r in args.runs:
        if not Path(r).is_dir():
            raise UsageError(f"{r}: not a results folder")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    try:
        index = report.write_report([Path(r) for r in args.runs], out, baseline=args.baseline)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    print(f"report: {index.resolve()}")
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
