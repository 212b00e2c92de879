"""``alloclab compare OLD NEW``: per-cell time ratios with significance.

Cells are matched by ``cell_id`` (strategy, config, workload and parameters,
seed, procs, mode). A cell regresses when NEW/OLD of the chosen statistic
exceeds 1 + threshold *and* the 95% bootstrap interval of the ratio of
medians excludes 1, so noise alone does not fail a build.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alloclab.harness import results as R
from alloclab.harness import stats as S

_STAT = {"min": np.min, "median": np.median, "mean": np.mean}


def compare_runs(old: Path, new: Path, stat: str = "median", fail_pct: float | None = None):
    a = R.load([old])
    b = R.load([new])
    a, b = a[a["status"] == "ok"], b[b["status"] == "ok"]
    common = sorted(set(a["cell_id"]) & set(b["cell_id"]))
    if not common:
        raise ValueError(f"{old} and {new} have no cells in common")
    rows, regressions = [], []
    f = _STAT[stat]
    for cid in common:
        x = a.loc[a["cell_id"] == cid, "ns_per_op"].to_numpy()
        y = b.loc[b["cell_id"] == cid, "ns_per_op"].to_numpy()
        r, lo, hi = S.ratio_ci(y, x)
        ratio = float(f(y) / f(x))
        sig = S.significant(lo, hi)
        strat, _, wl, wj, seed, procs, mode = cid.split("|", 6)
        name = f"{strat} x {wl} P{procs} {mode}"
        rows.append(dict(cell=name, old_ns=float(f(x)), new_ns=float(f(y)), ratio=ratio, ci=f"[{lo:.3f}, {hi:.3f}]",
                         significant=sig))
        if fail_pct is not None and ratio > 1 + fail_pct / 100 and sig:
            regressions.append(f"{name}: {ratio:.3f}x ({stat}), 95% interval {lo:.3f}-{hi:.3f}")
    df = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 160):
        table = df.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    only = len(set(a["cell_id"]) ^ set(b["cell_id"]))
    if only:
        table += f"\n({only} cell(s) in only one of the runs were skipped)"
    return table, regressions
