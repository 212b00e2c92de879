"""The noise floor in the open: ``alloclab noise`` and ``alloclab ab``.

``noise`` runs a suite with twice the processes, interleaved, and splits
them into two halves, even processes against odd ones: an A/A comparison of
identical code measured side by side. It prints, per cell, the spread
between processes (cv), how much of the variance lies between processes
rather than inside one (share_between), the smallest change the suite's
process count can detect, the A/A verdict (any "slower" or "faster" is a
false positive), and a plan of processes x repetitions per Kalibera & Jones
from the measured split and the measured cost of a process and of a
repetition. The two halves share every moment of the run, so drift between
runs is not in it: two separate runs with ``compare`` are the stricter
test, and the README says what they gave.

``ab`` is the one-line way to compare two configs or strategies properly:
both in every process, in ABBA order across processes, then the same test.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alloclab.harness import compare
from alloclab.harness import results as R
from alloclab.harness import rounds
from alloclab.harness import significance as sig


def split_halves(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Even processes against odd ones (they alternate forward and backward order, so
    each half has seen both orders when there are four or more processes)."""
    even = df[df["proc"] % 2 == 0].copy()
    odd = df[df["proc"] % 2 == 1].copy()
    return even, odd


def cost_per_process_s(run_dir: Path, df: pd.DataFrame) -> float:
    """What one cell costs a process beyond its timed repetitions (start-up share,
    trace load, warm-up), from rounds.json: (round wall - its reps' wall) / cells."""
    costs = rounds.round_costs(run_dir)
    if not costs:
        return math.nan
    per = []
    for c in costs:
        reps_s = df.loc[df["proc"] == c["round"], "wall_s"].sum()
        if c["cells"]:
            per.append(max(0.0, c["wall_s"] - reps_s) / c["cells"])
    return float(np.median(per)) if per else math.nan


def noise_table(run_dir: Path, target: float = 0.10) -> tuple[pd.DataFrame, dict[str, Any]]:
    df = R.load([run_dir])
    ok = df[df["status"] == "ok"]
    a, b = split_halves(ok)
    table, _, _ = compare.compare_frames(a, b)
    norm = compare.normalisable(ok)
    c_proc = cost_per_process_s(run_dir, ok)
    rows = []
    for _, t in table.iterrows():
        cid = t["cell_id"]
        g = ok[ok["cell_id"] == cid]
        split = sig.variance_split(compare.timing(g, norm), g["proc"].to_numpy())
        raw_split = sig.variance_split(g["ns_per_op"].to_numpy(), g["proc"].to_numpy())
        c_rep = float(g["wall_s"].median())
        k, r = sig.plan_repetitions(split, c_proc if math.isfinite(c_proc) else 1.0, c_rep, target=target)
        sigma_all = math.sqrt(split.between + split.within / max(split.reps, 1))
        half = split.processes // 2
        rows.append(dict(cell=t["cell"], raw_cv_pct=100 * math.sqrt(raw_split.between + raw_split.within),
                         cv_pct=100 * math.sqrt(split.between + split.within),
                         share_between=split.share_between, mde_pct=100 * sig.mde(sigma_all, half, half),
                         aa=t["verdict"], aa_ratio=t["ratio"], plan=f"{k}x{r}", strategy=cid.split("|", 1)[0]))
    out = pd.DataFrame(rows)
    by_strategy = out.groupby("strategy").agg(raw_cv_pct=("raw_cv_pct", "median"), cv_pct=("cv_pct", "median"),
                                              share_between=("share_between", "median"), cells=("cell", "count"))
    summary = dict(cells=len(out), false_positives=int((out["aa"] != "~").sum()),
                   processes=int(ok["proc"].nunique()), reps=int(ok.groupby(["cell_id", "proc"]).size().median()),
                   cost_per_process_s=c_proc, by_strategy=by_strategy, normalised=norm)
    return out, summary


def format_noise(out: pd.DataFrame, summary: dict[str, Any]) -> str:
    show = out.drop(columns=["strategy"]).assign(
        raw_cv_pct=out["raw_cv_pct"].map(lambda v: f"{v:.1f}"),
        cv_pct=out["cv_pct"].map(lambda v: f"{v:.1f}"),
        share_between=out["share_between"].map(lambda v: "-" if math.isnan(v) else f"{v:.2f}"),
        mde_pct=out["mde_pct"].map(lambda v: "-" if math.isinf(v) else f"{v:.1f}"),
        aa_ratio=out["aa_ratio"].map(lambda v: f"{v:.3f}"))
    with pd.option_context("display.max_rows", None, "display.width", 200):
        lines = [show.to_string(index=False), ""]
        bs = summary["by_strategy"]
        lines.append("variance split by strategy (median over its cells): raw_cv_pct = spread of one sample of "
                     "ns/op, cv_pct = of ns/op over the yardstick beside it (what the verdicts use), "
                     "share_between = part of that variance between processes")
        lines.append(bs.to_string(float_format=lambda v: f"{v:.2f}"))
    half = summary["processes"] // 2
    lines += ["", f"A/A: {summary['false_positives']} of {summary['cells']} cells flagged "
                  f"({half} against {half} processes x {summary['reps']} reps, interleaved; "
                  f"Benjamini-Hochberg q < {sig.ALPHA})",
              f"a process costs {summary['cost_per_process_s']:.2f} s per cell beyond its timed reps; "
              f"plan = processes x reps per process for a 10% minimum detectable change (Kalibera & Jones)"]
    return "\n".join(lines)


def ab_table(run_dir: Path, a_key, b_key):
    """Verdicts of B against A, per workload: ``a_key``/``b_key`` pick each side's rows."""
    df = R.load([run_dir])
    ok = df[df["status"] == "ok"]
    wl = sorted(set(zip(ok["workload"], ok["workload_json"], ok["procs"], ok["mode"])))
    sides, names = [], []
    for w, wj, p, m in wl:
        g = ok[(ok["workload"] == w) & (ok["workload_json"] == wj) & (ok["procs"] == p) & (ok["mode"] == m)]
        ga, gb = g[a_key(g)], g[b_key(g)]
        if ga.empty or gb.empty:
            continue
        sides.append((ga, gb))
        names.append(f"{w} P{p} {m}")
    vs = compare.side_verdicts(sides, paired=True)
    rows = [dict(workload=n, ratio=v.ratio, verdict=v.verdict, q=v.q, mde_pct=100 * v.mde, n=f"{v.n_old}/{v.n_new}")
            for n, v in zip(names, vs)]
    return pd.DataFrame(rows)
