"""``alloclab compare OLD NEW``: per-cell verdicts that survive an A/A test.

Cells are matched by ``cell_id`` (strategy, config, workload and parameters,
seed, procs, mode). Each side's samples are its process-level values (the
median of each process's repetitions: significance.py says why), compared
with a Mann-Whitney U test, the p-values adjusted across all the matched
cells with Benjamini-Hochberg. A cell's verdict is "slower", "faster" or "~"
(cannot tell), printed with the smallest change it could have detected at
the samples taken. ``--fail STAT:PCT`` fails only on a cell that is
"slower" *and* whose STAT ratio exceeds 1 + PCT/100: noise alone never
fails a build, and neither does a real change too small to matter.

A reference strategy (bump, whose replay is the harness's own loop) is
reported apart as drift: it did not change between the runs, so how far it
moved is how far the machine moved.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alloclab.harness import results as R
from alloclab.harness import significance as sig

_STAT = {"min": np.min, "median": np.median, "mean": np.mean}
REFERENCE = "bump"


def normalisable(*frames: pd.DataFrame) -> bool:
    """Whether every row carries its yardstick (harness/calibrate.py)."""
    return all("ref_ns" in f.columns and len(f) and bool(np.isfinite(f["ref_ns"]).all()) for f in frames)


def timing(g: pd.DataFrame, normalised: bool) -> np.ndarray:
    """A repetition's time, divided by the yardstick timed beside it when ``normalised``:
    the machine's moment cancels, the code's change does not."""
    t = g["ns_per_op"].to_numpy(float)
    return t / g["ref_ns"].to_numpy(float) if normalised else t


def samples(g: pd.DataFrame, normalised: bool) -> np.ndarray:
    """One cell's process-level samples: the median of each process's (normalised) times."""
    return sig.process_samples(timing(g, normalised), g["proc"].to_numpy())


def side_verdicts(sides, alpha: float = sig.ALPHA, paired: bool = False) -> list[sig.Verdict]:
    """Verdicts of B against A for each (rows of A, rows of B) pair, adjusted across the pairs;
    normalised by the yardstick where both sides of a pair carry it.

    ``paired``: both sides ran in the same processes (one run, interleaved: ``alloclab ab``),
    so each process gives one B/A ratio and the signed-rank test is used on the processes
    both sides have (significance.paired_verdicts). Two separate runs are never paired: their
    process 0s have nothing in common."""
    pairs = []
    for ga, gb in sides:
        norm = normalisable(ga, gb)
        if paired:
            sa = pd.Series(samples(ga, norm), index=np.unique(ga["proc"].to_numpy()))
            sb = pd.Series(samples(gb, norm), index=np.unique(gb["proc"].to_numpy()))
            both = sa.index.intersection(sb.index)
            pairs.append((sa[both].to_numpy(), sb[both].to_numpy()))
        else:
            pairs.append((samples(ga, norm), samples(gb, norm)))
    return sig.paired_verdicts(pairs, alpha=alpha) if paired else sig.verdicts(pairs, alpha=alpha)


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, stat: str = "median", fail_pct: float | None = None,
                   alpha: float = sig.ALPHA):
    """(table DataFrame, regressions, notes) for two results frames."""
    a, b = a[a["status"] == "ok"], b[b["status"] == "ok"]
    common = sorted(set(a["cell_id"]) & set(b["cell_id"]))
    if not common:
        raise ValueError("the two runs have no cells in common")
    f = _STAT[stat]
    norm = normalisable(a[a["cell_id"].isin(common)], b[b["cell_id"].isin(common)])
    verdicts = side_verdicts([(a[a["cell_id"] == cid], b[b["cell_id"] == cid]) for cid in common], alpha=alpha)
    rows, regressions, drift = [], [], []
    for cid, v in zip(common, verdicts):
        strat, _, wl, wj, seed, procs, mode = cid.split("|", 6)
        name = f"{strat} x {wl} P{procs} {mode}"
        ga, gb = a[a["cell_id"] == cid], b[b["cell_id"] == cid]
        xs, ys = ga["ns_per_op"].to_numpy(), gb["ns_per_op"].to_numpy()
        raw = float(f(ys) / f(xs))
        # the ratio the verdict and the threshold speak of: of yardstick-normalised times when every row has one
        ratio = float(f(timing(gb, norm)) / f(timing(ga, norm))) if norm else raw
        rows.append(dict(cell=name, cell_id=cid, old_ns=float(f(xs)), new_ns=float(f(ys)), raw_ratio=raw, ratio=ratio,
                         verdict=v.verdict,
                         p=v.p, q=v.q, mde_pct=100 * v.mde, cv_pct=100 * v.cv, n=f"{v.n_old}/{v.n_new}",
                         significant=v.significant))
        if strat == REFERENCE:
            drift.append(v.ratio)
        if fail_pct is not None and v.verdict == "slower" and ratio > 1 + fail_pct / 100:
            regressions.append(f"{name}: {ratio:.3f}x ({stat}), slower (q = {v.q:.3g}, "
                               f"{v.n_old} vs {v.n_new} processes)")
    notes = [("times normalised by the yardstick timed beside each repetition (harness/calibrate.py): ratio is of "
              "normalised times, raw_ratio of plain ns/op") if norm else
             "no yardstick in these runs: verdicts on plain ns/op, which carry the machine's moment"]
    n_min = min(min(v.n_old, v.n_new) for v in verdicts)
    if n_min < 5:
        notes.append(f"only {n_min} process-level sample(s) on a side: cells with fewer than 4 a side can only say ~ "
                     f"(run bench with --processes 5 or more)")
    if drift:
        notes.append(f"reference drift ({REFERENCE}, unchanged code): median ratio {np.median(drift):.3f} over "
                     f"{len(drift)} cell(s)")
    only = len(set(a["cell_id"]) ^ set(b["cell_id"]))
    if only:
        notes.append(f"{only} cell(s) in only one of the runs were skipped")
    return pd.DataFrame(rows), regressions, notes


def format_table(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.3f}"
        return str(v)

    show = df.drop(columns=["significant", "cell_id"])
    show = show.assign(p=show["p"].map(lambda v: f"{v:.3g}"), q=show["q"].map(lambda v: f"{v:.3g}"),
                       mde_pct=show["mde_pct"].map(lambda v: "-" if math.isinf(v) else f"{v:.1f}"),
                       cv_pct=show["cv_pct"].map(lambda v: "-" if math.isnan(v) else f"{v:.1f}"))
    with pd.option_context("display.max_rows", None, "display.width", 200):
        return show.to_string(index=False, float_format=fmt)


def compare_runs(old: Path, new: Path, stat: str = "median", fail_pct: float | None = None):
    """(printable table, regressions) for two run folders."""
    df, regressions, notes = compare_frames(R.load([old]), R.load([new]), stat=stat, fail_pct=fail_pct)
    flagged = int(df["significant"].sum())
    lines = [format_table(df), "",
             f"{flagged} of {len(df)} cells differ (Mann-Whitney U on process-level samples, "
             f"Benjamini-Hochberg q < {sig.ALPHA}); mde_pct: the smallest change each cell could detect "
             f"(80% power); ~: cannot tell"]
    lines += [f"({n})" for n in notes]
    return "\n".join(lines), regressions
