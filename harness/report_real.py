"""The report's "real programs" section: the shape of each recorded trace beside the synthetic workloads.

``shape(trace)`` is one row of the trace-shape table: ops, peak live bytes, the
size distribution (median, p90, shares by band), the cross-P free share, the
lifetime distribution in ops between an object's alloc and its free, the share
never freed, and objects per goroutine (a recorded trace: allocations over the
goroutines its log names; a synthetic one: over the goroutines the simulator
spawned).

The section appears when a run holds ``real:`` workloads. Beside their traces
(loaded from the recording cache) it puts ``web`` and ``pipeline`` at
``SYNTHETIC_SCALE`` on the same P count, the pairs the synthetic-against-real
comparison in docs/findings.md reads.

``python -m alloclab.harness.report_real`` prints that comparison as a
markdown table (each synthetic workload beside the recording it stands for,
``PAIRS``), recording a program first when its trace is not cached.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from alloclab.harness.report import ReportInput, Section

SYNTHETIC = ("web", "pipeline")
PAIRS = (("real:go-httpserver", "web"), ("real:go-jsonpipeline", "pipeline"))   # recording, its synthetic peer
SYNTHETIC_SCALE = 0.05
BANDS = ((16, "<=16"), (128, "17-128"), (1024, "129-1K"), (32768, "1K-32K"))
TITLE = "Real programs: the shape of each trace"
NOTE = ("Traces recorded from the Go programs in workloads/programs/go (GODEBUG=allocfreetrace=1) and from "
        "C programs under the LD_PRELOAD recorder (sqlite3, python3, lua5.4, redis-server), beside the "
        "synthetic web and pipeline workloads on the same P count. Sizes of recorded Go traces are Go's size "
        "classes (the log prints the rounded size); their frees happen at sweep time on the sweeping "
        "goroutine, so lifetimes include the wait for the next GC and most frees run on P 0. The C "
        "programs' sizes are the requested ones and their frees the program's own free() calls (Lua's "
        "come from its collector). Lifetime is in ops between an object's alloc and its free; cross-P is "
        "the share of frees on another P (thread) than the alloc.")


def shape(tr, goroutines: int | None = None) -> dict:
    """One trace's shape (see the module docstring); ``goroutines``: for objects per goroutine."""
    alloc = tr.op == 0
    sizes = tr.size[alloc].astype(np.int64)
    s = tr.stats()
    nobj = tr.nobj
    at = np.full(nobj, -1, np.int64)
    idx = np.arange(len(tr), dtype=np.int64)
    at[tr.obj[alloc]] = idx[alloc]
    alloc_p = np.full(nobj, -1, np.int16)
    alloc_p[tr.obj[alloc]] = tr.p[alloc]
    fr = ~alloc
    life = idx[fr] - at[tr.obj[fr]]
    row = dict(ops=s["ops"], procs=tr.procs, allocs=s["allocs"], peak_live_kb=round(s["peak_live_bytes"] / 1024, 1),
               size_p50=float(np.median(sizes)) if len(sizes) else 0.0,
               size_p90=float(np.quantile(sizes, 0.9)) if len(sizes) else 0.0)
    lo = 0
    for hi, band in BANDS:
        row[f"share_{band}"] = round(float(((sizes > lo) & (sizes <= hi)).mean()), 3) if len(sizes) else 0.0
        lo = hi
    row["share_>32K"] = round(float((sizes > lo).mean()), 3) if len(sizes) else 0.0
    row["cross_p_free"] = round(float((alloc_p[tr.obj[fr]] != tr.p[fr]).mean()), 3) if fr.any() else 0.0
    for q in (0.5, 0.9, 0.99):
        row[f"life_p{int(q * 100)}"] = float(np.quantile(life, q)) if len(life) else float("nan")
    row["never_freed"] = round(1 - len(life) / max(1, s["allocs"]), 3)
    row["objects_per_goroutine"] = round(s["allocs"] / goroutines, 1) if goroutines else float("nan")
    return row


def goroutines_of(tr) -> int | None:
    """Goroutines behind a trace: a recording's log names them, the simulator counts its spawns."""
    if "goroutines" in tr.meta:
        return int(tr.meta["goroutines"])
    spawns = (tr.meta.get("sim") or {}).get("spawns")
    return int(spawns) if spawns else None


def shape_table(traces: dict) -> pd.DataFrame:
    """{name: trace} -> the trace-shape table, one row per trace."""
    rows = [dict(trace=name, **shape(tr, goroutines_of(tr))) for name, tr in traces.items()]
    return pd.DataFrame(rows)


def traces_for(real_workloads, procs: int = 4) -> dict:
    """The recorded traces that are in the cache (none is recorded here) and the synthetic pairs."""
    from alloclab import workloads
    from alloclab.harness import real_programs
    from alloclab.workloads import trace as T

    out = {}
    for name in real_workloads:
        try:
            path = real_programs.trace_path(name)
        except ValueError:
            continue
        if path.is_file():
            out[name] = T.load(path)
    for name in SYNTHETIC:
        out[f"{name} (scale {SYNTHETIC_SCALE})"] = workloads.generate(name, procs=procs, seed=1, scale=SYNTHETIC_SCALE)
    return out


def section(inp: ReportInput) -> Section | None:
    if inp.df.empty or "workload" not in inp.df:
        return None
    real = sorted(w for w in inp.df["workload"].unique() if str(w).startswith("real:"))
    if not real:
        return None
    traces = traces_for(real)
    if not any(k.startswith("real:") for k in traces):
        return None
    return Section(TITLE, NOTE, tables=(("Trace shapes", shape_table(traces)),))


def _fmt_row(name: str, r: dict) -> str:
    mib = r["peak_live_kb"] / 1024
    per_g = r["objects_per_goroutine"]
    per_g = "-" if per_g != per_g else f"{per_g:,.0f}"     # nan: a C program has threads, not goroutines
    return (f"| {name} | {r['allocs']:,} | {mib:.1f} MiB | {r['size_p50']:,.0f} / {r['size_p90']:,.0f} | "
            f"{r['share_<=16']:.0%} | {r['cross_p_free']:.2f} | {r['life_p50']:,.0f} / {r['life_p90']:,.0f} | "
            f"{r['never_freed']:.0%} | {per_g} |")


def comparison_markdown(traces: dict) -> str:
    """{name: trace} -> the synthetic-against-real table (markdown), rows in the given order."""
    head = ("| trace | allocs | peak live | size p50 / p90 (B) | allocs <= 16 B | cross-P frees | "
            "lifetime p50 / p90 (ops) | never freed | objects per goroutine |\n|" + "---|" * 9)
    return "\n".join([head] + [_fmt_row(n, shape(tr, goroutines_of(tr))) for n, tr in traces.items()])


def main(argv=None) -> int:
    import argparse
    import sys

    from alloclab import workloads
    from alloclab.harness import real_programs

    ap = argparse.ArgumentParser(
        prog="python -m alloclab.harness.report_real",
        description="Print each synthetic workload beside the recorded program it stands for "
                    "(web: go-httpserver, pipeline: go-jsonpipeline) as a markdown table of trace shapes.",
        epilog="example: python -m alloclab.harness.report_real --scale 0.05 --procs 4")
    ap.add_argument("--scale", type=float, default=SYNTHETIC_SCALE,
                    help=f"scale of the synthetic workloads (default {SYNTHETIC_SCALE})")
    ap.add_argument("--procs", type=int, default=4,
                    help="Ps of the synthetic workloads (default 4, the recordings' GOMAXPROCS)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the synthetic workloads (default 1)")
    a = ap.parse_args(argv)
    if not (a.scale > 0) or a.procs < 1:
        print("error: --scale must be > 0 and --procs >= 1", file=sys.stderr)
        return 2
    traces = {}
    for real, synth in PAIRS:
        try:
            traces[real] = real_programs.trace(real, log=lambda line: print(line, file=sys.stderr))
        except real_programs.RecordingError as e:
            print(str(e), file=sys.stderr)
        traces[synth] = workloads.generate(synth, procs=a.procs, seed=a.seed, scale=a.scale)
    print(comparison_markdown(traces))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
