"""The ``alloclab`` command line.

Exit status: 0 ok, 1 a check or regression failed, 2 bad input (one line on
stderr naming the problem, no traceback, no partial output file).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tomllib
from pathlib import Path

from alloclab.harness.limits import DEFAULT_ARENA_MB, MAX_ARENA_MB, MAX_PROCS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
NO_PROGRESS_HELP = "no progress output (otherwise a bar on a terminal, a plain line every 10 s elsewhere)"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, unless the text already says it (or there is none to say:
    a flag, an option that is unset unless given); the epilog's examples keep their lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if not action.option_strings or "default" in text or unset or action.required:
            return text
        return f"{text} (default %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (not usage + error) and exit 2; help in the _Help format."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _bad(msg: str) -> "NoReturn":  # noqa: F821
    from alloclab.harness.errors import UsageError

    raise UsageError(msg)


def _kv(s: str):
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    return k.strip(), v.strip()


def _int_at_least(lo: int, what: str):
    """An argparse type: an integer >= ``lo``, refused with one line naming what was expected."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "an integer >= 0")


def _procs(s: str) -> int:
    v = _positive_int(s)
    if v > MAX_PROCS:
        raise argparse.ArgumentTypeError(f"procs {v} above the limit {MAX_PROCS}")
    return v


def _arena_mb(s: str) -> int:
    v = _positive_int(s)
    if v > MAX_ARENA_MB:
        raise argparse.ArgumentTypeError(f"arena {v} MiB above the limit {MAX_ARENA_MB} MiB")
    return v


def _scale(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not 0 < v <= 1000:
        raise argparse.ArgumentTypeError(f"scale {v} outside (0, 1000]")
    return v


def load_config(strategy: str, path: str | None):
    """A strategy's Config from defaults or a TOML file (top-level keys, or a [strategy] table)."""
    from alloclab import strategies

    mod = strategies.get(strategy)
    if path is None:
        return mod.Config().validate()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        _bad(f"{path}: no such config file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        _bad(f"{path}: not valid TOML ({e})")
    except OSError as e:
        _bad(f"{path}: cannot read config ({e.strerror})")
    if strategy in data and isinstance(data[strategy], dict):
        data = data[strategy]
    elif "strategy" in data and isinstance(data.get("config"), dict):
        if data["strategy"] != strategy:
            _bad(f"{path}: config is for strategy {data['strategy']!r}, not {strategy!r}")
        data = data["config"]
    from alloclab.strategies._config import ConfigError

    try:
        return mod.Config.from_dict(data)
    except ConfigError as e:
        _bad(f"{path}: {e}")
    except TypeError as e:
        _bad(f"{path}: {e}")


def _build_trace(args):
    from alloclab import workloads

    params = dict(args.param or [])
    if args.workload.startswith("trace:"):
        if params or args.ops:
            _bad("--param/--ops do not apply to a trace file")
        from alloclab.workloads.trace import load

        tr = load(args.workload[len("trace:"):])
        if getattr(args, "procs", None) and args.procs != tr.procs:
            _bad(f"--procs {args.procs} differs from the trace's procs {tr.procs}")
        return tr, {"file": args.workload[len('trace:'):], **tr.meta}
    mod = workloads.get(args.workload)
    if args.ops:
        if "ops" not in mod.Params.names():
            _bad(f"workload {args.workload!r} has no ops parameter; use --scale")
        params["ops"] = str(args.ops)
    try:
        typed = workloads.parse_params(mod, params)
    except ValueError as e:
        _bad(str(e))
    try:
        tr = workloads.generate(args.workload, procs=args.procs or 1, seed=args.seed, scale=args.scale, **typed)
    except ValueError as e:
        _bad(f"workload {args.workload}: {e}")
    return tr, {"scale": args.scale, **typed}


# ---------------------------------------------------------------- commands

def cmd_list(args) -> int:
    from alloclab import strategies, workloads

    print("strategies:")
    for n in strategies.names(include_unavailable=True):
        why = strategies.unavailable_reason(n)
        print(f"  {n:<12} {strategies.describe(n)}" + (f"  [unavailable: {why}]" if why else ""))
        if why:
            continue
        if args.verbose:
            for name, default, rng, doc in strategies.get(n).Config.describe():
                print(f"      {name} = {default!r} {rng}  {doc}")
    print("workloads:")
    for n in workloads.names():
        mod = workloads.get(n)
        print(f"  {n:<12} {mod.DESCRIPTION}")
        if args.verbose:
            for name, default, rng, doc in mod.Params.describe():
                print(f"      {name} = {default!r} {rng}  {doc}")
    print(f"  {'trace:FILE':<12} a saved trace (alloclab trace gen / import)")
    return EXIT_OK


def cmd_run(args) -> int:
    from alloclab import strategies
    from alloclab.harness import results as R
    from alloclab.harness import runner

    mod = strategies.get(args.strategy)
    config = load_config(args.strategy, args.config)
    d = strategies.descriptor(args.strategy)
    for probe in ("latency", "timeline"):
        if getattr(args, probe) and not d.records(probe):
            _bad(f"--{probe}: {args.strategy} replays traces itself and records no {probe}")
    if (args.latency or args.timeline) and args.check:
        _bad("--latency/--timeline do not combine with --check (a check's walk would be the tail measured)")
    if args.procs is None and not args.workload.startswith("trace:"):
        args.procs = 2 if args.mode == "threads" else 1
    tr, wparams = _build_trace(args)
    stats = tr.stats()
    store = None
    if args.out:
        try:
            store = R.ResultsStore(args.out, meta={"command": "run"})
        except OSError as e:
            _bad(str(e))
    run_id = Path(args.out).name if args.out else R.new_run_id("run")
    started = R.now_iso()
    pbar = None
    if not args.json and len(tr) * args.reps >= 2_000_000:
        from alloclab.harness.bench import Progress

        # a bar on a terminal; piped to a file, a plain line every 10 s
        pbar = Progress(len(tr) * args.reps, f"{args.strategy} x {args.workload}", unit="op")
        pbar.label(f"{args.reps} reps")
    rows = []
    try:
        res = runner.run_cell(args.strategy, config, tr, mode=args.mode, reps=args.reps, check=args.check,
                              arena_mb=args.arena_mb, progress=pbar.update if pbar else None)
    finally:
        if pbar:
            pbar.close()
    for rep, r in res:
        row = R.make_row(run_id=run_id, started_at=started, strategy=args.strategy, config=config,
                         workload=args.workload, workload_params=wparams, seed=args.seed, procs=tr.procs,
                         mode=args.mode, rep=rep, trace_stats=stats, result=r,
                         counters=runner.counters_dict(mod, r))
        rows.append(row)
        if args.json:
            print(json.dumps({k: v for k, v in row.items() if k not in ("counters_json",)} |
                             {"counters": json.loads(row["counters_json"])}, default=str), flush=True)
    if store is not None:
        store.append(rows)
    if not args.json:
        _print_run_summary(args, tr, rows)
    if (args.latency or args.timeline) and all(r["status"] == "ok" for r in rows):
        _run_probe(args, mod, config, tr, wparams, stats, store, run_id, started)
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        r = bad[0]
        kind = "error" if r["status"] == "oom" else r["status"].replace("_", " ")
        print(f"alloclab run: {kind}: {r['error']}", file=sys.stderr)
        # an arena too small is bad input (exit 2); a failed check is a failure (exit 1)
        return EXIT_BAD_INPUT if r["status"] == "oom" else EXIT_FAILED
    return EXIT_OK


def _run_probe(args, mod, config, tr, wparams, stats, store, run_id, started):
    """One latency/timeline repetition after the throughput ones (its time is not ns/op)."""
    from alloclab.harness import latency, runner, timeline
    from alloclab.harness import results as R

    inst = runner.Instrument(sample=args.sample if args.latency else 0,
                             timeline_every=(args.timeline_every or -1) if args.timeline else 0)
    [(_, r)] = runner.run_cell(args.strategy, config, tr, mode=args.mode, reps=1, arena_mb=args.arena_mb,
                               instrument=inst)
    if r.status != "ok":
        return
    if store is not None:
        row = R.make_row(run_id=run_id, started_at=started, strategy=args.strategy, config=config,
                         workload=args.workload, workload_params=wparams, seed=args.seed, procs=tr.procs,
                         mode=args.mode, rep=0, trace_stats=stats, result=r, counters=runner.counters_dict(mod, r))
        store.append_probe(row, r)
    if args.json:
        out = {}
        if "latency" in r.extra:
            h = r.extra["latency"]
            out["latency"] = {op: h.summary(i) | {"tail": h.tail(i)} for i, op in enumerate(latency.OPS)}
        if "timeline" in r.extra:
            out["timeline"] = r.extra["timeline"].iloc[-1].to_dict()
        print(json.dumps(out, default=float), flush=True)
        return
    if "latency" in r.extra:
        h = r.extra["latency"]
        every = "every op" if args.sample == 1 else f"1 op in {args.sample}"
        if "clock" in r.extra:   # an external peer's own clock (go-runtime: Go's monotonic clock)
            ck = r.extra["clock"]
            clock = f"its own clock in ns: {ck['read_ns']:.0f} ns a read, steps of {ck['step_ns']:.0f} ns"
        else:
            ghz, step = 1 / latency.ns_per_cycle(), latency.clock_step()
            clock = f"cycle counter at {ghz:.2f} GHz, in steps of {step} = {step / ghz:.1f} ns"
        print(f"  latency ({every}; histogram +-{latency.RELATIVE_ERROR:.1%}; {clock}):")
        for i in range(len(latency.OPS)):
            print(latency.summary_line(h, i))
    if "timeline" in r.extra:
        df = r.extra["timeline"]
        print(f"  memory over {len(tr):,} ops ({len(df)} samples):")
        print("\n".join(timeline.summary_lines(df)))


def _print_run_summary(args, tr, rows):
    ok = [r for r in rows if r["status"] == "ok"]
    s = tr.stats()
    print(f"{args.strategy} on {args.workload}: {s['ops']:,} ops ({s['allocs']:,} allocs), procs={tr.procs}, "
          f"mode={args.mode}, reps={len(rows)}{', checked' if args.check else ''}")
    if not ok:
        return
    ns = [r["ns_per_op"] for r in ok]
    r0 = ok[0]
    print(f"  ns/op        median {statistics.median(ns):8.2f}   min {min(ns):8.2f}   max {max(ns):8.2f}")
    print(f"  peak live    {r0['peak_live_bytes'] / 2**20:10.2f} MiB")
    print(f"  peak mapped  {r0['peak_mapped_bytes'] / 2**20:10.2f} MiB   overhead {r0['overhead']:.3f}x"
          f"   internal frag {r0['internal_frag']:.1%}" if r0["internal_frag"] == r0["internal_frag"] else
          f"  peak mapped  {r0['peak_mapped_bytes'] / 2**20:10.2f} MiB   overhead {r0['overhead']:.3f}x")
    print(f"  fast path    {r0['fast_path_rate']:.1%}   locks local/central/global "
          f"{r0['lock_local']:,}/{r0['lock_central']:,}/{r0['lock_global']:,}   contended {r0['contended']:,}")


def cmd_check(args) -> int:
    """Run every strategy (or the given ones) with --check on a small trace of a workload."""
    from alloclab import strategies
    from alloclab.harness import runner

    names = args.strategy or strategies.kernel_names()
    for n in names:
        strategies.get(n)
    args.param = args.param or []
    tr, _ = _build_trace(args)
    failed = 0
    for n in names:
        cfg = load_config(n, None)
        [(rep, r)] = runner.run_cell(n, cfg, tr, mode=args.mode, reps=1, check=True, arena_mb=args.arena_mb)
        line = f"{n:<10} {r.status}"
        if r.status != "ok":
            failed += 1
            line += f": {r.error}"
        print(line)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_trace(args) -> int:
    from alloclab.workloads import trace as T

    if args.trace_cmd == "gen":
        out = Path(args.output)
        if out.parent and not out.parent.exists():
            _bad(f"{out.parent}: output folder does not exist")
        tr, _ = _build_trace(args)
        try:
            T.save(tr, out)
        except OSError as e:
            _bad(f"{out}: cannot write ({e.strerror})")
        s = tr.stats()
        print(f"wrote {out}: {s['ops']:,} ops, {s['objects']:,} objects, procs={tr.procs}")
        return EXIT_OK
    if args.trace_cmd == "info":
        tr = T.load(args.file)
        info = trace_info(tr)
        if args.json:
            print(json.dumps(info, default=str))
        else:
            for k, v in info.items():
                if k == "size_histogram":
                    print("size histogram (bytes: allocs):")
                    for band, n in v.items():
                        print(f"  {band:>16}: {n:,}")
                else:
                    print(f"{k}: {v}")
        return EXIT_OK
    return EXIT_BAD_INPUT


def _trace_output(path: str) -> Path:
    out = Path(path)
    if out.parent and not out.parent.exists():
        _bad(f"{out.parent}: output folder does not exist")
    return out


def _save_imported(tr, report, out: Path) -> int:
    from alloclab.workloads import trace as T

    try:
        T.save(tr, out)
    except OSError as e:
        _bad(f"{out}: cannot write ({e.strerror})")
    for line in report.summary_lines():
        print(line)
    print(f"wrote {out}: {len(tr):,} ops, {tr.nobj:,} objects, procs={tr.procs}")
    return EXIT_OK


def cmd_trace_import(args) -> int:
    """alloclab trace import --format mtrace|valgrind|rec FILE -o OUT"""
    from alloclab.workloads import importers

    out = _trace_output(args.output)
    tr, report = importers.import_file(args.format, args.file, procs=args.procs)
    return _save_imported(tr, report, out)


def cmd_trace_record(args) -> int:
    """alloclab trace record -o OUT -- CMD ARGS..."""
    from alloclab.workloads import recorder

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _bad("no command to record: alloclab trace record -o OUT -- CMD ARGS...")
    out = _trace_output(args.output)
    tr, report = recorder.record(command, keep_dir=args.keep_log)
    status = report.extra.get("exit_status", 0)
    if status:
        print(f"note: {command[0]} exited with status {status}; the trace holds what it did until then",
              file=sys.stderr)
    return _save_imported(tr, report, out)


def trace_info(tr) -> dict:
    import numpy as np

    s = tr.stats()
    alloc = tr.op == 0
    sizes = tr.size[alloc]
    edges = [1, 9, 17, 33, 65, 129, 257, 513, 1025, 4097, 16385, 32769, 262145, 1 << 31]
    hist = {}
    counts, _ = np.histogram(sizes, bins=edges)
    for lo, hi, c in zip(edges[:-1], edges[1:], counts):
        if c:
            hist[f"{lo}-{hi - 1}"] = int(c)
    # cross-P frees: the free's P differs from the alloc's P
    alloc_p = np.full(tr.nobj, -1, np.int16)
    alloc_p[tr.obj[alloc]] = tr.p[alloc]
    fr = ~alloc
    cross = float((alloc_p[tr.obj[fr]] != tr.p[fr]).mean()) if fr.any() else 0.0
    kinds = {name: int((tr.kind[alloc] == k).sum()) for k, name in enumerate(("heap", "noscan", "stack"))}
    return dict(ops=s["ops"], allocs=s["allocs"], frees=s["frees"], objects=s["objects"], procs=tr.procs,
                peak_live_bytes=s["peak_live_bytes"], alloc_bytes=s["alloc_bytes"],
                live_at_end=s["allocs"] - s["frees"], cross_p_free_share=round(cross, 4), kinds=kinds,
                size_histogram=hist, meta=tr.meta)


def cmd_sizeclasses(args) -> int:
    try:
        from alloclab.strategies.go import sizeclasses as SC
    except ImportError as e:
        _bad(f"the go strategy is not available ({e})")
    config = load_config("go", args.config)
    table = SC.generate(config)
    sys.stdout.write(SC.format_table(table, csv=args.csv))
    return EXIT_OK


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="alloclab", description="Benchmark and tune memory-allocator strategies.",
                epilog="examples:\n  alloclab bench --suite quick --report   # what `make bench` runs\n"
                       "  alloclab doctor                         # what is installed, what is missing\n"
                       "`alloclab COMMAND --help` explains a command.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="strategies and workloads",
                       epilog="examples:\n  alloclab list\n  alloclab list -v   # with each config field's default and range")
    s.add_argument("-v", "--verbose", action="store_true", help="also list each config field and workload parameter")
    s.set_defaults(fn=cmd_list)

    def workload_args(s, default_ops=None):
        s.add_argument("-w", "--workload", required=True, help="workload name or trace:FILE")
        s.add_argument("--procs", type=_procs, default=None, help="number of Ps (default 1; 2 in threads mode)")
        s.add_argument("--ops", type=_nonneg_int, default=default_ops,
                       help="ops to generate, for workloads with an ops parameter (default: the workload's, "
                            "times --scale)")
        s.add_argument("--seed", type=_nonneg_int, default=0, help="the workload generator's random seed")
        s.add_argument("--scale", type=_scale, default=1.0,
                       help="workload size factor, 0 < SCALE <= 1000; 1.0 is the publishing size")
        s.add_argument("--param", "-P", type=_kv, action="append", metavar="KEY=VALUE",
                       help="set a workload parameter (repeatable; default: the workload's own values, which "
                            "`alloclab list -v` lists)")

    s = sub.add_parser("run", help="run one cell: a strategy on a workload",
                       epilog="examples:\n  alloclab run -s go -w web --scale 0.1\n"
                              "  alloclab run -s freelist -w larson --mode threads --procs 4 --reps 5 --json\n"
                              "  alloclab run -s go -w phase-shift --scale 0.1 --latency --timeline")
    s.add_argument("-s", "--strategy", required=True, help="strategy name (`alloclab list`)")
    workload_args(s)
    s.add_argument("--reps", type=_positive_int, default=3, help="timed repetitions, after one untimed warm-up")
    s.add_argument("--mode", choices=("serial", "threads"), default="serial",
                   help="serial: one thread replays every P's ops in order; threads: one thread per P")
    s.add_argument("--config", help="strategy config (TOML; default: the strategy's defaults)")
    s.add_argument("--check", action="store_true", help="verify every op and the strategy's invariants")
    s.add_argument("--json", action="store_true", help="one JSON object per repetition")
    s.add_argument("--arena-mb", type=_arena_mb, default=DEFAULT_ARENA_MB,
                   help=f"simulated address space (MiB, 1..{MAX_ARENA_MB})")
    s.add_argument("--out", help="also append the rows to this results folder (default: none)")
    s.add_argument("--latency", action="store_true",
                   help="after the timed repetitions, one more that times each alloc and free with the cycle "
                        "counter and prints p50..p99.9, max and what the slowest 0.1%% were doing (default: off)")
    s.add_argument("--sample", type=_positive_int, default=1, metavar="N",
                   help="with --latency, time 1 op in N, the same ops every run (default: 1, every op, so the "
                        "max is exact)")
    s.add_argument("--timeline", action="store_true",
                   help="record mapped, in-use and live bytes over the run and print them as sparklines "
                        "(default: off)")
    s.add_argument("--timeline-every", type=_positive_int, default=None, metavar="K",
                   help="with --timeline, a memory sample every K ops (default: the trace's ops / 1000)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("check", help="run strategies with --check on a workload",
                       epilog="examples:\n  alloclab check\n  alloclab check -s go -w web --mode threads")
    s.add_argument("-s", "--strategy", action="append", help="strategy (repeatable; default all)")
    s.add_argument("-w", "--workload", default="random", help="workload name or trace:FILE")
    s.add_argument("--procs", type=_procs, default=2, help="number of Ps")
    s.add_argument("--ops", type=_nonneg_int, default=None,
                   help="ops to generate, for workloads with an ops parameter (default: the workload's, times --scale)")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="the workload generator's random seed")
    s.add_argument("--scale", type=_scale, default=0.05, help="workload size factor, 0 < SCALE <= 1000")
    s.add_argument("--param", "-P", type=_kv, action="append", metavar="KEY=VALUE",
                   help="set a workload parameter (repeatable; default: the workload's own values)")
    s.add_argument("--mode", choices=("serial", "threads"), default="serial",
                   help="serial: one thread replays every P's ops in order; threads: one thread per P")
    s.add_argument("--arena-mb", type=_arena_mb, default=DEFAULT_ARENA_MB,
                   help=f"simulated address space (MiB, 1..{MAX_ARENA_MB})")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("trace", help="generate, inspect or import traces",
                       epilog="examples:\n  alloclab trace gen -w spawn-storm --scale 0.1 -o ss.parquet\n"
                              "  alloclab trace info ss.parquet")
    tsub = s.add_subparsers(dest="trace_cmd", required=True, parser_class=_Parser)
    g = tsub.add_parser("gen", help="generate a workload's trace into a Parquet file",
                        epilog="examples:\n  alloclab trace gen -w web --scale 0.1 -o web.parquet\n"
                               "  alloclab trace gen -w web --procs 4 --seed 7 -o web-p4.parquet")
    workload_args(g)
    g.add_argument("-o", "--output", required=True, help="the Parquet file to write")
    g.set_defaults(fn=cmd_trace)
    i = tsub.add_parser("info", help="summarise a trace file",
                        epilog="examples:\n  alloclab trace info web.parquet\n  alloclab trace info web.parquet --json")
    i.add_argument("file", help="a trace (Parquet) file")
    i.add_argument("--json", action="store_true", help="the summary as one JSON object")
    i.set_defaults(fn=cmd_trace)
    m = tsub.add_parser("import", help="import a real program's allocation log (glibc mtrace, valgrind "
                                       "--trace-malloc=yes, alloclab's recorder)",
                        epilog="examples:\n  alloclab trace import -f mtrace mtrace.log -o prog.parquet\n"
                               "  alloclab trace import -f valgrind vg.log -o prog.parquet\n"
                               "  GODEBUG=allocfreetrace=1 ./goprog 2> go.log; "
                               "alloclab trace import -f go-allocfreetrace --procs 4 go.log -o goprog.parquet")
    m.add_argument("--format", "-f", required=True, choices=("mtrace", "valgrind", "rec", "go-allocfreetrace"),
                   help="the log's format: glibc mtrace, valgrind --trace-malloc=yes, alloclab's recorder, or "
                        "a Go 1.19-1.21 program's stderr under GODEBUG=allocfreetrace=1")
    m.add_argument("--procs", type=_procs, default=None,
                   help="go-allocfreetrace only: Ps the goroutines are dealt to, round-robin in order of first "
                        "event (default 4)")
    m.add_argument("file", help="the allocation log")
    m.add_argument("-o", "--output", required=True, help="the Parquet trace file to write")
    m.set_defaults(fn=cmd_trace_import)
    r = tsub.add_parser("record", help="run a program under alloclab's LD_PRELOAD recorder and save its trace",
                        epilog="examples:\n  alloclab trace record -o ls.parquet -- ls -lR /usr/share\n"
                               "  alloclab trace record -o sort.parquet --keep-log logs -- sort /etc/services")
    r.add_argument("-o", "--output", required=True, help="the Parquet trace file to write")
    r.add_argument("--keep-log", metavar="DIR", help="also keep the raw recordings in DIR (default: deleted)")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    r.set_defaults(fn=cmd_trace_record)

    s = sub.add_parser("sizeclasses", help="print the go strategy's generated size-class table",
                       epilog="examples:\n  alloclab sizeclasses\n  alloclab sizeclasses --config go.toml --csv")
    s.add_argument("--config", help="go config (TOML) with size-class generator parameters (default: Go's)")
    s.add_argument("--csv", action="store_true", help="CSV with the columns of Go's table")
    s.set_defaults(fn=cmd_sizeclasses)

    s = sub.add_parser("doctor", help="what this machine has for alloclab: Go, Chromium, database drivers, "
                                      "the numba cache; what each missing piece disables",
                       epilog="examples:\n  alloclab doctor\n  XDG_CACHE_HOME=/tmp/c alloclab doctor   "
                              "# a cold numba cache")
    s.set_defaults(fn=cmd_doctor)

    _add_extra_commands(sub)
    return p


def cmd_doctor(args) -> int:
    from alloclab.harness import doctor

    print(doctor.report())
    return EXIT_OK   # it reports; a missing piece is not an error


def _add_extra_commands(sub) -> None:
    """Commands living in their own modules (bench, report, compare, tune), when present."""
    import importlib

    for modname in ("alloclab.harness.cli_bench", "alloclab.harness.cli_tune", "alloclab.harness.fidelity"):
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue
            raise
        mod.add_commands(sub, _Parser)


def quiet_compile_warnings() -> None:
    """Silence numba's NumbaIRAssumptionWarning, in every process that may compile a kernel.

    numba's pedantic SSA check flags phi variables of inlined overloads (the dispatch's free path) while
    compiling; the compiled code is right (every strategy's reference-model test covers it), and the warning,
    which asks the reader to report a numba bug, reads as alloclab being broken. Only that class: any other
    warning still shows. (pyproject's pytest filterwarnings does the same for the tests.)"""
    import warnings

    from numba.core.errors import NumbaIRAssumptionWarning

    warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)


def main(argv=None) -> int:
    from alloclab.strategies import _numba_cache, _real_malloc

    _real_malloc.ensure_static_tls(enabled=argv is None)   # jemalloc's static TLS: re-executes once, at start
    _numba_cache.configure()   # before any kernel module is imported: numba reads it at decoration
    quiet_compile_warnings()
    from alloclab.harness.errors import UsageError
    from alloclab.strategies import UnavailableStrategy, UnknownStrategy
    from alloclab.strategies._config import ConfigError
    from alloclab.workloads import UnknownWorkload
    from alloclab.workloads.trace import TraceError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (UsageError, ConfigError, TraceError, UnknownStrategy, UnavailableStrategy, UnknownWorkload) as e:
        print(f"alloclab {args.cmd}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:
        print(f"alloclab {args.cmd}: error: {e.filename or e}: not found" if e.filename else f"alloclab {args.cmd}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PermissionError as e:
        print(f"alloclab {args.cmd}: error: {e.filename}: permission denied", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(f"alloclab {args.cmd}: error: out of host memory (lower --arena-mb or the workload's scale)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"alloclab {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
