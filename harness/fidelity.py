"""``alloclab fidelity``: the go model against the real Go runtime, on the same traces.

For each workload (and mode) one trace is generated and replayed by the
``go`` model (its default config: Go's GOGC = 100 and the installed
toolchain's Go version) and by ``go-runtime`` (goreplay on that toolchain).
Each side answers the same questions:

    GC cycles        model: modelled cycles (counter gc_cycles); real: NumGC during the rep
    peak in-use      model: peak bytes in spans (go.peak_inuse_bytes: HeapInuse + StackInuse);
                     real: peak HeapInuse + StackInuse above the rep's baseline (goreplay's stacks are
                     parked goroutines' stacks)
    peak held        model: peak mapped (4 MiB growth steps); real: peak HeapSys - HeapReleased + StackInuse
                     above baseline
    allocations per size class
                     of the trace's heap and noscan objects up to the last class MemStats.BySize
                     lists; model: each allocation's class by the model's tables, tiny blocks (its
                     tiny_blocks counter) in the tiny class; real: BySize mallocs (goreplay runs the
                     stack-kind objects as goroutines: only the runtime's new Gs reach BySize, as the
                     model's malg Gs, which neither side's count here separates out)
    ns/op            the replay's wall time per op (model: numba kernel; real: a Go program)

and the table gives model / real for each. Rows are kept as results (one per
side and repetition, in a run folder like bench's) with two extra columns,
``fidelity_peak_inuse_bytes`` and ``fidelity_by_class_json``, which
harness/report_fidelity.py reads for the report's fidelity section.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL, REAL = "go", "go-runtime"
DEFAULT_SCALE = 0.3
DEFAULT_PROCS = 2
# (key, heading): the figures compared, in the table's order
METRICS = (("gc_cycles", "GC cycles"), ("peak_inuse_mb", "peak in-use MiB"), ("peak_held_mb", "peak held MiB"),
           ("ns_per_op", "ns/op"))
INUSE_COL, BYCLASS_COL = "fidelity_peak_inuse_bytes", "fidelity_by_class_json"


class FidelityError(ValueError):
    """Fidelity cannot run here (one line)."""


def unavailable_reason() -> str | None:
    """Why the real side cannot run (no toolchain, a failed build), else None."""
    from alloclab import strategies

    return strategies.unavailable_reason(REAL)


# ---------------------------------------------------------------- allocations per size class

def _classes_of(sizes: np.ndarray, table) -> np.ndarray:
    """The size class of each small size (0 for sizes above the largest class)."""
    u, inv = np.unique(sizes, return_inverse=True)
    top = int(table.class_to_size[-1])
    cls = np.array([table.size_to_class(int(s)) if 0 < s <= top else 0 for s in u], np.int64)
    return cls[inv]


def _histogram(classes: np.ndarray, table) -> dict[int, int]:
    counts = np.bincount(classes, minlength=table.nclasses)
    return {int(table.class_to_size[c]): int(counts[c]) for c in range(1, table.nclasses) if counts[c]}


def model_by_class(trace, config, tiny_blocks: int) -> dict[int, int]:
    """Allocations of the trace's heap and noscan objects per size class (class size -> count), as the
    model's mallocgc makes them: pointerful objects above 512 B grow by the malloc header where the Go
    version has one; noscan objects under the tiny size go into tiny blocks, counted once per block."""
    from alloclab.strategies import _counters as K
    from alloclab.strategies import go

    table = go.size_class_table(config)
    a = trace.op == 0
    kind, size = trace.kind[a], trace.size[a].astype(np.int64)
    heap, noscan = kind == K.KIND_HEAP, kind == K.KIND_NOSCAN
    size = np.where(heap & (size > 512) & config.malloc_header, size + 8, size)
    tiny = noscan & (size < config.tiny_size)
    pick = (heap | noscan) & ~tiny
    out = _histogram(_classes_of(size[pick], table), table)
    if tiny_blocks:
        t = int(table.class_to_size[table.size_to_class(config.tiny_size)])
        out[t] = out.get(t, 0) + int(tiny_blocks)
    return out


def real_by_class(trace, by_size: list[dict], config) -> dict[int, int]:
    """goreplay's MemStats.BySize mallocs per class size (the trace's stack-kind objects are goroutines
    there, not heap objects)."""
    # every listed class, zeros included: the largest key is the last class BySize lists
    return {int(b["size"]): int(b["mallocs"]) for b in by_size if int(b["size"]) > 0}


def class_match(model: dict[int, int], real: dict[int, int]) -> tuple[int, int, int]:
    """(classes whose counts are equal, classes compared, largest difference) over the classes either side
    used, up to the largest class the real side lists (MemStats.BySize stops before Go's last classes)."""
    top = max(real) if real else 0
    sizes = sorted(s for s in set(model) | set(real) if s <= top and (model.get(s, 0) or real.get(s, 0)))
    diffs = [abs(model.get(s, 0) - real.get(s, 0)) for s in sizes]
    return sum(d == 0 for d in diffs), len(sizes), max(diffs, default=0)


# ---------------------------------------------------------------- running both sides

@dataclass
class Side:
    rows: list = field(default_factory=list)   # result rows, one per repetition

    def ok(self) -> list:
        return [r for r in self.rows if r["status"] == "ok"]


def _run_side(strategy, config, trace, *, mode, reps, wname, wparams, seed, run_id, started, progress) -> Side:
    from alloclab import strategies
    from alloclab.harness import results as R
    from alloclab.harness import runner
    from alloclab.strategies import go

    mod = strategies.get(strategy)
    stats = trace.stats()
    side = Side()
    for rep, r in runner.run_cell(strategy, config, trace, mode=mode, reps=reps, progress=progress):
        counters = runner.counters_dict(mod, r)
        row = R.make_row(run_id=run_id, started_at=started, strategy=strategy, config=config, workload=wname,
                         workload_params=wparams, seed=seed, procs=trace.procs, mode=mode, rep=rep,
                         trace_stats=stats, result=r, counters=counters)
        if r.status == "ok" and strategy == MODEL:
            row[INUSE_COL] = float(go.peak_inuse_bytes(r.state))
            by = model_by_class(trace, config, counters.get("tiny_blocks", 0))
        elif r.status == "ok":
            row[INUSE_COL] = float(r.in_use_at_peak)
            by = real_by_class(trace, r.extra.get("by_size", []), go.Config())
        else:
            row[INUSE_COL], by = float("nan"), {}
        row[BYCLASS_COL] = json.dumps({str(k): v for k, v in sorted(by.items())})
        side.rows.append(row)
    return side


def figures(row: dict) -> dict[str, float]:
    """The compared figures of one result row (METRICS keys)."""
    c = json.loads(row["counters_json"])
    return dict(gc_cycles=float(c.get("gc_cycles", 0)), peak_inuse_mb=row[INUSE_COL] / 2**20,
                peak_held_mb=row["peak_mapped_bytes"] / 2**20, ns_per_op=row["ns_per_op"])


def compare_rows(model_rows: list[dict], real_rows: list[dict]) -> dict:
    """One table line: each metric's median over repetitions on each side and their ratio, and the size
    classes matched (of the first repetition on each side: the trace, hence the counts, repeat)."""
    out = {}
    for key, _ in METRICS:
        m = statistics.median(figures(r)[key] for r in model_rows)
        g = statistics.median(figures(r)[key] for r in real_rows)
        out[key] = (m, g, m / g if g else float("nan"))
    bm = {int(k): v for k, v in json.loads(model_rows[0][BYCLASS_COL]).items()}
    br = {int(k): v for k, v in json.loads(real_rows[0][BYCLASS_COL]).items()}
    out["classes"] = class_match(bm, br)
    return out


def run(workloads: list[str], *, scale: float, reps: int, procs: int, threads: bool, seed: int, out: Path,
        progress: bool, model_config=None) -> list[dict]:
    """Run every (workload, mode) on both sides into the results folder ``out``; the table's lines.
    ``model_config``: the go model's config (default: its defaults, Go's)."""
    from alloclab import workloads as W
    from alloclab.harness import results as R
    from alloclab.harness.bench import Progress
    from alloclab.strategies import go, go_runtime

    why = unavailable_reason()
    if why is not None:
        raise FidelityError(f"the real Go runtime cannot run: {why}")
    store = R.ResultsStore(out, meta={"command": "fidelity", "scale": scale, "reps": reps, "procs": procs})
    run_id, started = out.name, R.now_iso()
    modes = [("serial", 1)] + ([("threads", procs)] if threads else [])
    traces = []
    for w in workloads:
        for mode, p in modes:
            traces.append((w, mode, W.generate(w, procs=p, seed=seed, scale=scale)))
    total = sum(len(t) for *_, t in traces) * reps * 2
    bar = Progress(total, "fidelity", enabled=progress and sys.stderr.isatty(), unit="op")
    lines = []
    try:
        for w, mode, tr in traces:
            sides = {}
            for strategy, config in ((MODEL, model_config or go.Config()), (REAL, go_runtime.Config())):
                bar.label(f"{strategy} x {w} {mode}")
                sides[strategy] = _run_side(strategy, config, tr, mode=mode, reps=reps, wname=w,
                                            wparams={"scale": scale}, seed=seed, run_id=run_id, started=started,
                                            progress=bar.update)
                store.append(sides[strategy].rows)
            m, g = sides[MODEL].ok(), sides[REAL].ok()
            line = dict(workload=w, mode=mode, procs=tr.procs, ops=len(tr))
            if m and g:
                line.update(compare_rows(m, g))
            else:
                bad = next(r for r in sides[MODEL].rows + sides[REAL].rows if r["status"] != "ok")
                line["error"] = f"{bad['strategy']}: {bad['status']}: {bad['error']}"
            lines.append(line)
    finally:
        bar.close()
    return lines


def format_table(lines: list[dict]) -> str:
    """The table as plain text: per workload and mode, model | real | model/real for each metric."""
    head = f"{'workload':<12} {'mode':<9}" + "".join(f" {h:>26}" for _, h in METRICS) + f" {'size classes equal':>19}"
    sub = " " * 22 + "".join(f" {'model':>8} {'real':>8} {'ratio':>8}" for _ in METRICS)
    out = [head, sub]
    for ln in lines:
        mode = ln["mode"] if ln["mode"] == "serial" else f"{ln['mode']}/{ln['procs']}"
        if "error" in ln:
            out.append(f"{ln['workload']:<12} {mode:<9} {ln['error']}")
            continue
        cells = "".join(f" {_num(ln[k][0]):>8} {_num(ln[k][1]):>8} {ln[k][2]:>8.2f}" for k, _ in METRICS)
        eq, n, worst = ln["classes"]
        out.append(f"{ln['workload']:<12} {mode:<9}{cells} {f'{eq}/{n} (max diff {worst})':>19}")
    return "\n".join(out)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


# ---------------------------------------------------------------- the command

def add_commands(sub, parser_class) -> None:
    from alloclab.harness.cli import NO_PROGRESS_HELP, _nonneg_int, _positive_int, _procs, _scale

    s = sub.add_parser("fidelity", help="the go model against the real Go runtime on the same traces: GC cycles, "
                                        "peak in-use, peak held, allocations per size class, ns/op",
                       epilog="examples:\n  alloclab fidelity   # every workload, serial and threads at 2 Ps\n"
                              "  alloclab fidelity -w web -w larson --scale 1.0 --reps 3 --no-threads")
    s.add_argument("-w", "--workload", action="append",
                   help="workload (repeatable; default: every named workload)")
    s.add_argument("--scale", type=_scale, default=DEFAULT_SCALE,
                   help=f"workload size factor, 0 < SCALE <= 1000 (default {DEFAULT_SCALE})")
    s.add_argument("--reps", type=_positive_int, default=1,
                   help="timed repetitions per side, after one untimed warm-up; the table shows medians (default 1)")
    s.add_argument("--threads", action=argparse.BooleanOptionalAction, default=True,
                   help="also run threads mode at --procs Ps; --no-threads: serial only")
    s.add_argument("--procs", type=_procs, default=DEFAULT_PROCS, help=f"Ps in threads mode (default {DEFAULT_PROCS})")
    s.add_argument("--config", metavar="FILE.toml",
                   help="the go model's config, e.g. gogc = 0 for Go's allocator without GC lag (default: go's "
                        "defaults, which are Go's); the real runtime always runs at GOGC = 100")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="the workload generator's random seed (default 0)")
    s.add_argument("--out", help="results folder (default results/<run-id>-fidelity); `alloclab report` shows it")
    s.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    s.set_defaults(fn=cmd_fidelity)


def cmd_fidelity(args) -> int:
    from alloclab import workloads as W
    from alloclab.harness import results as R
    from alloclab.harness.cli import load_config
    from alloclab.harness.errors import UsageError

    names = args.workload or W.names()
    model_config = load_config(MODEL, args.config)
    for w in names:
        W.get(w)   # an unknown name is bad input before anything runs
    out = Path(args.out) if args.out else Path("results") / R.new_run_id("fidelity")
    try:
        lines = run(names, scale=args.scale, reps=args.reps, procs=args.procs, threads=args.threads,
                    seed=args.seed, out=out, progress=not args.no_progress, model_config=model_config)
    except FidelityError as e:
        raise UsageError(str(e)) from None
    from alloclab.harness.report import _config_label

    print(f"{_config_label(MODEL, model_config.to_json())} (go model) / go-runtime, same trace, scale {args.scale}, "
          f"{args.reps} rep(s), medians; ratio = model / real")
    print(format_table(lines))
    print(f"rows in {out} (alloclab report {out})")
    return 1 if any("error" in ln for ln in lines) else 0
