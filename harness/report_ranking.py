"""The report's ranking page: every strategy, models and real allocators together, against the best
real allocator on each workload.

The yardstick of a cell is the best *real* allocator that ran on the same workload, Ps and mode
(``REAL``: glibc's malloc, jemalloc, tcmalloc, mimalloc, the Go runtime; default configs only):
the fastest one for time, the one with the smallest peak mapped for memory (they may differ).
A model at 1.0 is as fast (or as lean) as the best allocator a program could link today; the
baseline of the rest of the report is one allocator, this page is the field. Memory compares
each side's own peak-mapped figure, whose meaning per peer docs/design.md states (and where it is
not comparable).

``with_best_real`` adds to the claims table, beside the article's pool-versus-malloc claim
(libc malloc against a memory pool), the same comparison against the best real allocator.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from alloclab.harness.report import Section

REAL = ("system", "jemalloc", "tcmalloc", "mimalloc", "go-runtime")
TITLE = "Ranking against the best real allocator"
NOTE = ("Every strategy on each workload against the best real allocator there (system = glibc, jemalloc, "
        "tcmalloc, mimalloc, go-runtime; default configs): time is median ns/op over the fastest real "
        "allocator's, memory is peak mapped over the leanest real allocator's. Below 1.0 beats every real "
        "allocator measured. The overview takes geometric means over the serial workloads.")
KEYS = ["wlabel", "mode", "procs"]


def ranking_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per cell that has a real allocator beside it: its time and memory over the best real's."""
    cols = ["workload", "mode", "procs", "rank", "label", "kind", "ns_per_op", "rel_time", "fastest_real",
            "peak_mapped_mb", "rel_memory", "leanest_real"]
    if summary.empty:
        return pd.DataFrame(columns=cols)
    s = summary.assign(real=summary["strategy"].isin(REAL) & (summary["label"] == summary["strategy"]))
    rows = []
    for (wl, mode, procs), g in s.groupby(KEYS, sort=True):
        reals = g[g["real"]]
        if reals.empty:
            continue
        fast = reals.loc[reals["ns_per_op"].idxmin()]
        mem = reals[reals["peak_mapped_mb"] > 0]
        lean = mem.loc[mem["peak_mapped_mb"].idxmin()] if not mem.empty else None
        for rank, (_, r) in enumerate(g.sort_values("ns_per_op").iterrows(), 1):
            rows.append(dict(workload=wl, mode=mode, procs=int(procs), rank=rank, label=r["label"],
                             kind="real" if r["real"] else ("real, tuned" if r["strategy"] in REAL else "model"),
                             ns_per_op=r["ns_per_op"], rel_time=r["ns_per_op"] / fast["ns_per_op"],
                             fastest_real=fast["label"], peak_mapped_mb=r["peak_mapped_mb"],
                             rel_memory=(r["peak_mapped_mb"] / lean["peak_mapped_mb"]) if lean is not None else np.nan,
                             leanest_real=lean["label"] if lean is not None else ""))
    return pd.DataFrame(rows, columns=cols)


def overview(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, serial workloads: geometric means of rel_time and rel_memory, and where it ranks first."""
    cols = ["label", "kind", "workloads", "geomean_rel_time", "geomean_rel_memory", "fastest_on"]
    ser = table[table["mode"] == "serial"]
    rows = []
    for lab, g in ser.groupby("label"):
        mem = g["rel_memory"][g["rel_memory"] > 0]
        rows.append(dict(label=lab, kind=g["kind"].iloc[0], workloads=len(g),
                         geomean_rel_time=float(np.exp(np.log(g["rel_time"]).mean())),
                         geomean_rel_memory=float(np.exp(np.log(mem).mean())) if len(mem) else np.nan,
                         fastest_on=", ".join(sorted(g.loc[g["rank"] == 1, "workload"]))))
    return pd.DataFrame(rows, columns=cols).sort_values("geomean_rel_time").reset_index(drop=True)


def ranking_figure(table: pd.DataFrame) -> bytes | None:
    """Two heatmaps, strategies x serial workloads: time and memory over the best real allocator (log2 colours)."""
    ser = table[table["mode"] == "serial"]
    if ser.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from alloclab.harness.report import _fig_to_png

    order = overview(table)["label"].tolist()
    panels = [(v, t) for v, t in (("rel_time", "time / fastest real"), ("rel_memory", "peak mapped / leanest real"))
              if ser[v].notna().any()]
    nw = ser["workload"].nunique()
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * (1.1 * nw + 3), 0.45 * len(order) + 2),
                             squeeze=False)
    for ax, (value, title) in zip(axes[0], panels):
        piv = ser.pivot_table(index="label", columns="workload", values=value, aggfunc="first").reindex(order)
        logs = np.log2(piv.to_numpy(dtype=float))
        span = float(np.nanmax(np.abs(logs))) if np.isfinite(logs).any() else 1.0
        sns.heatmap(np.log2(piv), annot=piv.round(2), fmt="", cmap="RdYlGn_r", vmin=-(span or 1), vmax=span or 1,
                    ax=ax, cbar_kws={"label": "log2 ratio"})
        ax.set_title(title)
        ax.set_xlabel("workload (serial)")
        ax.set_ylabel("")
    fig.suptitle("Against the best real allocator per workload (1.0 = as good as the best; green beats it)")
    return _fig_to_png(fig)


def section(inp) -> Section | None:
    table = ranking_table(inp.summary)
    if table.empty:
        return None
    png = ranking_figure(table)
    figures = (("ranking", "Time and memory against the best real allocator", png),) if png else ()
    return Section(TITLE, NOTE, (("Overview (serial workloads, geometric means)", overview(table)),
                                 ("Every cell, ranked by time within its workload", table)), figures)


def with_best_real(claims: pd.DataFrame, summary: pd.DataFrame, claim_id: str = "latency",
                   pool: str = "bitmap") -> pd.DataFrame:
    """The claims table with, after the pool-versus-malloc claim ``claim_id``, a row judging the same claim
    against the fastest real allocator on the workload that claim used (when one other than glibc ran there)."""
    if claims.empty or claim_id not in set(claims["id"]):
        return claims
    i = int(np.flatnonzero(claims["id"].to_numpy() == claim_id)[0])
    row = claims.iloc[i]
    ser = summary[(summary["mode"] == "serial") & (summary["label"] == summary["strategy"])]
    wl = next((w for w in ser["workload"].unique() if f", {w}," in str(row["compared"])), None)
    here = ser[ser["workload"] == wl]
    reals = here[here["strategy"].isin([r for r in REAL if r != "go-runtime"])]
    pools = here[here["strategy"] == pool]
    if wl is None or pools.empty or set(reals["strategy"]) <= {"system"}:
        return claims
    best = reals.loc[reals["ns_per_op"].idxmin()]
    p = pools.iloc[0]
    ratio = best["ns_per_op"] / p["ns_per_op"]
    art = row["article_ratio"]
    if ratio >= art * 0.75:
        verdict = "holds (ratio at least 3/4 of the article's)"
    elif ratio > 1:
        verdict = "direction holds, smaller effect"
    else:
        verdict = "does not hold"
    new = dict(row.to_dict(), id=f"{claim_id}-best-real", claim="... the same against the best real malloc measured",
               compared=f"{best['strategy']} (fastest real malloc) vs {pool} (bitmap MemoryPool), {wl}, serial",
               measured=f"{best['ns_per_op'] / 1000:.3f} vs {p['ns_per_op'] / 1000:.3f} us per op (alloc or free)",
               measured_ratio=ratio, verdict=verdict)
    return pd.concat([claims.iloc[:i + 1], pd.DataFrame([new]), claims.iloc[i + 1:]], ignore_index=True)
