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
        "Timelines: a sample every 1/1000 of the trace and one at its end; threads mode samples each P's "
        "stream and merges the rows by op. go-runtime's are read through runtime/metrics inside goreplay. "
        "For system and the loaded allocators, mapped is what the library holds from the OS (its own "
        "figure, sampled between slices; serial mode only), floored by the bytes in use, as their peak "
        "is; memory the library kept from earlier runs in the process and reuses is not in it.")
POOLS = ("bitmap", "freelist")   # the article's memory pool, in order of preference
MALLOC = "system"
STATS = ("mean", "p50", "p99", "p99.9", "max")


def _labels(inp: ReportInput, side: pd.DataFrame) -> pd.Series:
    """Each side-table row's series label: its cell's label in the report, and, where one label has
    several cells on a workload (threads mode at 2 Ps beside serial at 4, say), their P count and
    mode, so that two cells are never merged into one line or one histogram."""
    lab = dict(zip(inp.df["cell_id"], inp.df["label"])) if "label" in inp.df.columns else {}
    out = side["cell_id"].map(lab).fillna(side["strategy"])
    if side.empty or not {"procs", "mode"} <= set(side.columns):
        return out
    cells = side.assign(_lab=out).drop_duplicates("cell_id")
    multi = cells.groupby(["_lab", "workload"])["cell_id"].transform("nunique") > 1
    suffix = dict(zip(cells["cell_id"], np.where(multi, " P" + cells["procs"].astype(str) + " " + cells["mode"], "")))
    return out + side["cell_id"].map(suffix)


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


def _colours(labels) -> dict:
    """One colour per strategy label, the same in every panel and figure of the section."""
    import matplotlib.pyplot as plt

    labels = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _ccdf_figure(hists) -> bytes:
    import matplotlib.pyplot as plt

    wls = sorted({w for _, w in hists})
    colour = _colours(lab for lab, _ in hists)
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls) + 1.6, 3.4), squeeze=False)
    for ax, wl in zip(axes[0], wls):
        for (lab, w), h in sorted(hists.items()):
            if w == wl:
                x, y = h.ccdf(0)
                keep = y > 0
                ax.step(x[keep], y[keep], where="post", label=lab, color=colour[lab], lw=1.1)
        ax.set(xscale="log", yscale="log", title=f"{wl}: alloc", xlabel="latency (ns)", ylabel="fraction slower")
        ax.axhline(1e-3, color="grey", lw=0.6, ls=":")   # the p99.9 line: the tail the causes explain
    _legend(fig, colour)
    return _fig_to_png(fig)


def _legend(fig, colour, extra=()) -> None:
    """One legend for the whole figure, right of the panels: a strategy per colour, then ``extra``
    (line style handles)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=1.6, label=lab) for lab, c in colour.items()] + list(extra)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()


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
    """Per workload, mapped bytes (top row: where fragmentation and GC lag show as steps) and
    in-use bytes (bottom row) over the run, one line per strategy, the trace's live bytes dotted."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    wls = sorted(set(tl["workload"]))
    colour = _colours(tl["label"])
    fig, axes = plt.subplots(2, len(wls), figsize=(4.2 * len(wls) + 1.6, 6.2), squeeze=False, sharex=True)
    for k, wl in enumerate(wls):
        g = tl[tl["workload"] == wl]
        top, bottom = axes[0][k], axes[1][k]
        live = None
        for lab, sr in g.groupby("label", sort=True):
            sr = sr[sr["rep"] == sr["rep"].min()].drop_duplicates("op").sort_values("op")
            x = sr["op"] / max(sr["op"].max(), 1)
            if sr["mapped"].notna().any():
                top.plot(x, sr["mapped"] / 2**20, color=colour[lab], lw=1.1)
            bottom.plot(x, sr["in_use"] / 2**20, color=colour[lab], lw=0.9)
            live = (x, sr["live"] / 2**20) if live is None else live
        for ax in (top, bottom):
            if live is not None:
                ax.plot(*live, color="black", lw=0.8, ls=":")
        top.set(title=wl, ylabel="mapped (MiB)")
        bottom.set(xlabel="fraction of the trace's ops", ylabel="in use (MiB)")
    _legend(fig, colour, [Line2D([], [], color="black", lw=0.8, ls=":", label="live (the trace's)")])
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
        figures.append(("memory-timeline", "Memory over the run: mapped (top) and in use (bottom) per strategy, "
                        "the trace's live bytes dotted", _timeline_figure(tl)))
    return Section(TITLE, NOTE, tuple(tables), tuple(figures))
