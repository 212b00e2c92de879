"""The report's latency and memory-over-time section (the runs' latency and timeline side tables).

Tables: percentiles per strategy, workload and op; the worst case (max and
p99.9); what the slowest 0.1% of ops were doing (harness/latency.py's tags);
and the article's latency claim (malloc 1.8 us against a pool's 0.6 us)
judged on the distributions as well as the mean. Figures: latency CCDFs per
workload (log-log, one line per strategy), the tail's composition, and memory
timelines per workload (in-use solid, mapped dashed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from alloclab.harness import results as R
from alloclab.harness.latency import CAUSES, OPS, Histogram
from alloclab.harness.report import CLAIMS, ReportInput, Section, _fig_to_png

TITLE = "Latency distributions and memory over time"
NOTE = ("One extra repetition per cell (bench's `latency = true` / `timeline = true`, or `alloclab run --latency "
        "--timeline`), apart from the timed ones: ns/op never includes the probe. Each alloc and free is timed with "
        "the CPU's cycle counter inside the kernel (within 1.6% by the histogram; the counter's own step, 10 ns "
        "on AMD Zen, 1 cycle on Intel, is the resolution); "
        "an op includes the first write to the object. The tail's causes are the strategies' own counters moving "
        "across the op; 'fast' = no slow-path counter moved (a cache miss, an interrupt, or a path without a "
        "counter). go-runtime's ops are timed inside goreplay with Go's monotonic clock on the same 1-in-N sample "
        "(its cost per read and step: docs/go-fidelity.md), and its only tag is 'gc' (a GC cycle in progress at "
        "the op's start or end): the runtime's other slow paths are not visible from outside it. "
        "Timelines: a sample every 1/1000 of the trace and one at its end (go-runtime's: serial mode, read "
        "through runtime/metrics inside goreplay).")
POOLS = ("bitmap", "freelist")   # the article's memory pool, in order of preference
MALLOC = "system"
STATS = ("mean", "p50", "p99", "p99.9", "max")


def _labels(inp: ReportInput, side: pd.DataFrame) -> pd.Series:
    lab = dict(zip(inp.df["cell_id"], inp.df["label"])) if "label" in inp.df.columns else {}
    return side["cell_id"].map(lab).fillna(side["strategy"])


def histograms(inp: ReportInput) -> dict[tuple[str, str], Histogram]:
    """(label, workload) -> the merged histogram of every run and repetition."""
    lat = R.load_table(inp.run_dirs, "latency")
    if lat.empty:
        return {}
    lat = lat.assign(label=_labels(inp, lat))
    return {k: Histogram.from_rows(g) for k, g in lat.groupby(["label", "workload"], sort=True)}


def percentile_table(hists) -> pd.DataFrame:
    rows = []
    for (lab, wl), h in hists.items():
        for i, op in enumerate(OPS):
            s = h.summary(i)
            if s["count"]:
                rows.append(dict(strategy=lab, workload=wl, op=op, mean=h.mean(i), **s))
    return pd.DataFrame(rows)


def worst_case_table(pct: pd.DataFrame) -> pd.DataFrame:
    if pct.empty:
        return pct
    t = pct.pivot_table(index=["workload", "strategy"], columns="op", values=["p99.9", "max"])
    t.columns = [f"{op} {stat} (ns)" for stat, op in t.columns]
    return t.reset_index()


def tail_table(hists) -> pd.DataFrame:
    rows = []
    for (lab, wl), h in hists.items():
        for i, op in enumerate(OPS):
            tail = h.tail(i)
            n = sum(tail.values())
            if n:
                rows.append(dict(strategy=lab, workload=wl, op=op, ops=n,
                                 tagged=1 - tail.get("fast", 0) / n, **{c: tail.get(c, 0) / n for c in CAUSES}))
    return pd.DataFrame(rows)


def claim_table(hists) -> pd.DataFrame:
    """The latency claim per workload: malloc's alloc latency over the pool's, at the mean and each percentile."""
    claim = next(c for c in CLAIMS if c.id == "latency")
    rows = []
    for wl in sorted({w for _, w in hists}):
        pool = next((p for p in POOLS if (p, wl) in hists), None)
        if pool is None or (MALLOC, wl) not in hists:
            continue
        hm, hp = hists[(MALLOC, wl)], hists[(pool, wl)]
        sm, sp = hm.summary(0) | {"mean": hm.mean(0)}, hp.summary(0) | {"mean": hp.mean(0)}
        for stat in STATS:
            ratio = sm[stat] / sp[stat] if sp[stat] else float("nan")
            rows.append(dict(workload=wl, pool=pool, statistic=stat, malloc_ns=sm[stat], pool_ns=sp[stat],
                             ratio=ratio, article_ratio=claim.article_ratio, verdict=_verdict(ratio, claim.article_ratio)))
    return pd.DataFrame(rows)


def _verdict(ratio: float, article: float) -> str:
    # the rule of the report's claims table
    if not np.isfinite(ratio):
        return "not measured"
    if ratio >= article * 0.75:
        return "holds"
    return "direction holds, smaller effect" if ratio > 1 else "does not hold"


def _ccdf_figure(hists) -> bytes:
    import matplotlib.pyplot as plt

    wls = sorted({w for _, w in hists})
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls), 3.4), squeeze=False)
    for ax, wl in zip(axes[0], wls):
        for (lab, w), h in hists.items():
            if w == wl:
                x, y = h.ccdf(0)
                keep = y > 0
                ax.step(x[keep], y[keep], where="post", label=lab)
        ax.set(xscale="log", yscale="log", title=f"{wl}: alloc", xlabel="latency (ns)", ylabel="fraction slower")
        ax.axhline(1e-3, color="grey", lw=0.6, ls=":")
        ax.legend(fontsize=7)
    return _fig_to_png(fig)


def _tail_figure(tail: pd.DataFrame) -> bytes:
    import matplotlib.pyplot as plt

    t = tail[tail["op"] == "alloc"]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(t) + 2), 3.4))
    x = np.arange(len(t))
    bottom = np.zeros(len(t))
    for c in CAUSES:
        ax.bar(x, t[c].to_numpy(), bottom=bottom, label=c)
        bottom += t[c].to_numpy()
    ax.set_xticks(x, [f"{s}\n{w}" for s, w in zip(t["strategy"], t["workload"])], fontsize=7, rotation=45, ha="right")
    ax.set(ylabel="share of the slowest 0.1% of allocs", ylim=(0, 1))
    ax.legend(fontsize=7, bbox_to_anchor=(1, 1), loc="upper left")
    return _fig_to_png(fig)


def _timeline_figure(tl: pd.DataFrame) -> bytes:
    import matplotlib.pyplot as plt

    wls = sorted(set(tl["workload"]))
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls), 3.4), squeeze=False)
    for ax, wl in zip(axes[0], wls):
        g = tl[tl["workload"] == wl]
        for i, (lab, s) in enumerate(g.groupby("label", sort=True)):
            s = s[s["rep"] == s["rep"].min()].drop_duplicates("op").sort_values("op")
            x = s["op"] / max(s["op"].max(), 1)
            line, = ax.plot(x, s["in_use"] / 2**20, label=f"{lab} in use")
            if s["mapped"].notna().any():
                ax.plot(x, s["mapped"] / 2**20, ls="--", color=line.get_color(), label=f"{lab} mapped")
            if i == 0:
                ax.plot(x, s["live"] / 2**20, color="black", lw=0.8, ls=":", label="live")
        ax.set(title=wl, xlabel="fraction of the trace's ops", ylabel="MiB")
        ax.legend(fontsize=6)
    return _fig_to_png(fig)


def section(inp: ReportInput) -> Section | None:
    hists = histograms(inp)
    tl = R.load_table(inp.run_dirs, "timeline")
    if not hists and tl.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    tables, figures = [], []
    if hists:
        pct = percentile_table(hists)
        tail = tail_table(hists)
        tables += [("Latency per op (ns): mean, percentiles, max and ops timed", pct),
                   ("Worst case: p99.9 and max per strategy and workload (ns)", worst_case_table(pct)),
                   ("What the slowest 0.1% of ops were doing (share by slow path; tagged = not 'fast')", tail)]
        claim = claim_table(hists)
        if not claim.empty:
            tables.append(("The latency claim (malloc 1.8 us vs a pool's 0.6 us) on the distributions: "
                           "malloc's alloc latency over the pool's", claim))
        figures += [("latency-ccdf", "Alloc latency CCDF per workload (log-log)", _ccdf_figure(hists))]
        if not tail.empty:
            figures.append(("latency-tail", "The slowest 0.1% of allocs by slow path", _tail_figure(tail)))
    if not tl.empty:
        tl = tl.assign(label=_labels(inp, tl))
        figures.append(("memory-timeline", "Memory over the run: in use (solid), mapped (dashed), live (dotted)",
                        _timeline_figure(tl)))
    return Section(TITLE, NOTE, tuple(tables), tuple(figures))
