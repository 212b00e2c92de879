"""Comparison reports: index.html (self-contained), report.md and summary.csv.

Figures (seaborn): ns/op relative to the baseline with 95% intervals; memory
overhead; throughput against the number of Ps (threads mode); ns/op against
overhead with the Pareto front; per-size-class waste of the tables in use;
a strategies x workloads heatmap of relative time. Tables: per-cell medians
with intervals, geometric means with bootstrap intervals and significance,
and "The article's claims" measured with the harness.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alloclab.harness import results as R
from alloclab.harness.atomic_file import atomic_write
from alloclab.harness import significance as sig
from alloclab.harness import stats as S

CELL = ["strategy", "config_hash", "workload", "workload_json", "procs", "mode"]

# The quantitative claims of the article alloclab grew from (/work/shared/seed/go-memory-pool-article.zh.txt, on Go's
# allocator and memory pools) and how alloclab measures each. The 2.3 table (原生new 120 ops/ms, 280 MB vs
# 对象池+TLA 480 ops/ms, 95 MB) sits in the Go section on sync.Pool for tiny objects under 64 B: its "native new"
# is Go's GC'd allocator, so it is judged against the go model (default: Go's GOGC) and the real runtime, on the
# tiny-object workload. The 4.1 table (原生 malloc 1.8 us vs 内存池 0.6 us) is the article's C section: libc malloc.
@dataclass(frozen=True)
class Claim:
    id: str
    section: str               # where in the article it comes from
    claim: str
    article: str               # the article's figures
    article_ratio: float | None
    sides: tuple               # (strategy a, strategy b or None): a's figure over b's
    metric: str
    workloads: tuple = ()      # preferred workloads first (else WORKLOAD_PREFERENCE)
    optional: bool = False     # left out of the table when a side is not in the runs (the real runtime)


_TABLE_2_3 = "2.3 tiny objects (Go section: sync.Pool vs new)"
CLAIMS = [
    Claim("throughput", _TABLE_2_3, "An object pool with thread-local caches (pool+TLA) does 480 ops/ms where "
          "native `new` does 120", "480 vs 120 ops/ms", 4.0, ("freelist", "go"), "throughput", ("tiny", "random")),
    Claim("throughput-real", _TABLE_2_3, "... the same against the real Go runtime's `new`", "480 vs 120 ops/ms",
          4.0, ("freelist", "go-runtime"), "throughput", ("tiny", "random"), optional=True),
    Claim("memory", _TABLE_2_3, "... and uses 95 MB where native `new` uses 280 MB", "280 vs 95 MB", 280 / 95,
          ("go", "freelist"), "memory", ("tiny", "random")),
    Claim("memory-real", _TABLE_2_3, "... the same against the real Go runtime", "280 vs 95 MB", 280 / 95,
          ("go-runtime", "freelist"), "memory", ("tiny", "random"), optional=True),
    Claim("latency", "4.1 high concurrency (C section: memory pool vs malloc)", "A memory pool's average "
          "allocation latency is 0.6 us against malloc's 1.8 us", "1.8 vs 0.6 us", 3.0, ("system", "bitmap"),
          "latency"),
    Claim("mcache", "1 and 2.4 (Go section: mcache)", "mcache hit rate is extremely high: most allocations never "
          "touch a shared tier", "'extremely high'", None, ("go", None), "hit_rate"),
]
# what a strategy stands for in the claims (the side's role in the article's comparison)
_ROLE = {"freelist": "pool+TLA", "go": "Go's new: go model, default GOGC", "go-runtime": "Go's new: real runtime",
         "system": "libc malloc", "bitmap": "bitmap MemoryPool"}
# Named variants: a config that differs from the default only in these keys gets this name as its label.
NAMED_VARIANTS = {("go", "gogc", 0): "without GC lag"}
WORKLOAD_PREFERENCE = ["web", "random", "larson", "pipeline", "tiny", "spawn-storm"]


def _config_label(strategy: str, config_json: str) -> str:
    """``strategy`` for its default config, else ``strategy[key=value,...]`` naming what differs; a named
    variant is shown by its name (``go[without GC lag]``: Go's allocator with gogc = 0)."""
    from alloclab import strategies

    try:
        default = strategies.get(strategy).Config().to_dict()
        cfg = json.loads(config_json)
    except Exception:
        return strategy
    diff = [(k, v) for k, v in sorted(cfg.items()) if k in default and default[k] != v and not isinstance(v, list)]
    if not diff:
        return strategy if all(default.get(k) == v for k, v in cfg.items()) else f"{strategy}[tuned]"
    named = [NAMED_VARIANTS[(strategy, k, v)] for k, v in diff if (strategy, k, v) in NAMED_VARIANTS]
    text = ",".join(named + [f"{k}={v}" for k, v in diff if (strategy, k, v) not in NAMED_VARIANTS])
    return f"{strategy}[{text if len(text) <= 28 else text[:25] + '...'}]"


def _label(df: pd.DataFrame) -> pd.Series:
    """The strategy, with what differs from its default config where it does."""
    pairs = df[["strategy", "config_json"]].drop_duplicates()
    names = {(s, c): _config_label(s, c) for s, c in pairs.itertuples(index=False)}
    return pd.Series([names[(s, c)] for s, c in zip(df["strategy"], df["config_json"])], index=df.index)


def _workload_label(df: pd.DataFrame) -> pd.Series:
    """The workload name, plus its parameters where one workload ran with several."""
    n = df.groupby("workload")["workload_json"].transform("nunique")

    def short(j):
        try:
            d = json.loads(j)
        except ValueError:
            return j
        return ",".join(f"{k}={v}" for k, v in sorted(d.items()) if k not in ("file",))

    return df["workload"].where(n == 1, df["workload"] + "(" + df["workload_json"].map(short) + ")")


def summarise(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per cell: medians, intervals and the ratio to the baseline on the same workload/procs/mode.

    A cell's samples are its process-level values (the median of each process's
    repetitions; significance.py says why). ``significant`` is the verdict of a
    Mann-Whitney U test against the baseline's cell, Benjamini-Hochberg-adjusted
    across the report's cells, the rule ``alloclab compare`` uses; ``cv_pct`` is
    the spread between processes and ``mde_pct`` the smallest change against the
    baseline that the cell can detect.
    """
    from alloclab.harness import compare

    ok = df[df["status"] == "ok"].copy()
    if "proc" not in ok.columns:
        ok["proc"] = 0
    norm = compare.normalisable(ok)
    rows = []
    for key, g in ok.groupby(CELL + ["label", "wlabel"], sort=False):
        samples = sig.process_samples(g["ns_per_op"].to_numpy(), g["proc"].to_numpy())
        tested = compare.samples(g, norm)
        med, lo, hi = S.median_ci(samples)
        rows.append(dict(zip(CELL + ["label", "wlabel"], key), reps=len(g), processes=len(samples), ns_per_op=med,
                         ns_lo=lo, ns_hi=hi,
                         ops_per_ms=1e6 / med if med else np.nan,
                         overhead=float(g["overhead"].median()), peak_mapped_mb=g["peak_mapped_bytes"].median() / 2**20,
                         peak_live_mb=g["peak_live_bytes"].median() / 2**20,
                         internal_frag=float(g["internal_frag"].median()),
                         fast_path_rate=float(g["fast_path_rate"].median()),
                         locks_per_kop=float(((g["lock_central"] + g["lock_global"]) / g["ops"] * 1000).median()),
                         contended=int(g["contended"].median()), _samples=samples, _tested=tested))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ratios, pairs, tested = [], [], []
    for i, r in out.iterrows():
        b = out[(out["strategy"] == baseline) & (out["workload"] == r["workload"]) &
                (out["workload_json"] == r["workload_json"]) & (out["procs"] == r["procs"]) & (out["mode"] == r["mode"])]
        if r["label"] == baseline:
            ratios.append((1.0, 1.0, 1.0))
        elif b.empty:
            ratios.append((np.nan, np.nan, np.nan))
        else:
            ratios.append(S.ratio_ci(r["_samples"], b.iloc[0]["_samples"]))
            pairs.append((b.iloc[0]["_tested"], r["_tested"]))
            tested.append(i)
    out["rel_time"], out["rel_lo"], out["rel_hi"] = zip(*ratios)
    out["significant"] = False
    out["cv_pct"] = [100 * sig.log_sigma(s) for s in out["_tested"]]
    out["mde_pct"] = np.nan
    for i, v in zip(tested, sig.verdicts(pairs)):
        out.loc[i, "significant"] = v.significant
        out.loc[i, "mde_pct"] = 100 * v.mde
    return out


def geomeans(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    ser = summary[summary["mode"] == "serial"]
    rows = []
    for lab, g in ser.groupby("label"):
        groups = []
        for _, r in g.iterrows():
            b = ser[(ser["strategy"] == baseline) & (ser["workload"] == r["workload"]) &
                    (ser["workload_json"] == r["workload_json"]) & (ser["procs"] == r["procs"])]
            if not b.empty:
                groups.append((r["_samples"], b.iloc[0]["_samples"]))
        gm, lo, hi = S.geomean_ci(groups) if lab != baseline else (1.0, 1.0, 1.0)
        ov = g["overhead"].replace([np.inf], np.nan).dropna()
        rows.append(dict(label=lab, workloads=len(groups), geomean_rel_time=gm, lo=lo, hi=hi,
                         significant=S.significant(lo, hi) if lab != baseline else False,
                         geomean_overhead=float(np.exp(np.log(ov[ov > 0]).mean())) if len(ov) else np.nan))
    cols = ["label", "workloads", "geomean_rel_time", "lo", "hi", "significant", "geomean_overhead"]
    return pd.DataFrame(rows, columns=cols).sort_values("geomean_rel_time")


def scaling_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Threads mode: throughput at N Ps over throughput at 1 P, per strategy and workload.

    speed-up = median ns/op at 1 P / median ns/op at N Ps, with a bootstrap
    interval over both cells' repetitions; efficiency = speed-up / N. Each
    P replays its own stream of the same trace, so the work is the same.
    best_speedup = fastest repetition at 1 P / fastest at N Ps: on a shared
    or virtual machine a repetition can only be slowed by its neighbours, and
    one P can run in two modes far apart (docs/findings.md, "Bimodal
    repetitions"), which moves the median-based figure by as much.
    """
    cols = ["label", "workload", "procs", "ns_per_op", "speedup", "lo", "hi", "best_speedup", "efficiency",
            "locks_per_kop", "contended"]
    thr = summary[summary["mode"] == "threads"]
    rows = []
    for (lab, wl), g in thr.groupby(["label", "wlabel"], sort=True):
        one = g[g["procs"] == 1]
        if one.empty:
            continue
        base = one.iloc[0]["_samples"]
        for _, r in g.sort_values("procs").iterrows():
            sp, lo, hi = S.ratio_ci(base, r["_samples"])
            best = float(np.min(base) / np.min(r["_samples"]))
            rows.append(dict(label=lab, workload=wl, procs=int(r["procs"]), ns_per_op=r["ns_per_op"], speedup=sp, lo=lo,
                             hi=hi, best_speedup=best, efficiency=sp / r["procs"], locks_per_kop=r["locks_per_kop"],
                             contended=r["contended"]))
    return pd.DataFrame(rows, columns=cols)


def claims_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of CLAIMS, judged on serial cells of each side's default config (the go model as Go
    runs: GOGC = 100, not its variant without GC lag); an optional claim whose side is absent is left out."""
    ser = summary[(summary["mode"] == "serial") & (summary["label"] == summary["strategy"])]
    present = set(ser["strategy"])
    rows = []
    for c in CLAIMS:
        a, b = c.sides
        if c.optional and not {a, b} <= present | {None}:
            continue
        found = None
        for w in list(c.workloads) + WORKLOAD_PREFERENCE + sorted(set(ser["workload"])):
            ca = ser[(ser["strategy"] == a) & (ser["workload"] == w)]
            cb = ser[(ser["strategy"] == b) & (ser["workload"] == w)] if b else ca
            if not ca.empty and not cb.empty:
                found = (w, ca.iloc[0], cb.iloc[0])
                break
        base = dict(id=c.id, section=c.section, claim=c.claim, article=c.article, article_ratio=c.article_ratio)
        if found is None:
            rows.append(dict(base, compared="(not measured in these runs)", measured="", measured_ratio=np.nan,
                             verdict="not measured"))
            continue
        w, ra, rb = found
        if c.metric == "throughput":
            measured = f"{ra['ops_per_ms']:.0f} vs {rb['ops_per_ms']:.0f} ops/ms"
            ratio = ra["ops_per_ms"] / rb["ops_per_ms"]
            cmp_ = f"{a} ({_ROLE[a]}) vs {b} ({_ROLE[b]}), {w}, serial"
        elif c.metric == "memory":
            measured = f"{ra['peak_mapped_mb']:.1f} vs {rb['peak_mapped_mb']:.1f} MB peak mapped"
            ratio = ra["peak_mapped_mb"] / rb["peak_mapped_mb"]
            cmp_ = f"{a} ({_ROLE[a]}) vs {b} ({_ROLE[b]}), {w}"
        elif c.metric == "latency":
            measured = f"{ra['ns_per_op'] / 1000:.3f} vs {rb['ns_per_op'] / 1000:.3f} us per op (alloc or free)"
            ratio = ra["ns_per_op"] / rb["ns_per_op"]
            cmp_ = f"{a} ({_ROLE[a]}) vs {b} ({_ROLE[b]}), {w}, serial"
        else:
            measured = f"{ra['fast_path_rate']:.2%} of allocations served by nextFreeFast / tiny without a lock"
            ratio = ra["fast_path_rate"]
            cmp_ = f"{a} model (default GOGC), {w}"
        if c.article_ratio is None:
            verdict = "holds" if ratio >= 0.9 else "does not hold"
        elif not np.isfinite(ratio):
            verdict = "not measured"
        elif ratio >= c.article_ratio * 0.75:
            verdict = "holds (ratio at least 3/4 of the article's)"
        elif ratio > 1:
            verdict = "direction holds, smaller effect"
        else:
            verdict = "does not hold"
        rows.append(dict(base, compared=cmp_, measured=measured, measured_ratio=ratio, verdict=verdict))
    return pd.DataFrame(rows, columns=["id", "section", "claim", "article", "article_ratio", "compared", "measured",
                                       "measured_ratio", "verdict"])


# ----------------------------------------------------------------- figures

def _fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_figures(summary: pd.DataFrame, df: pd.DataFrame, baseline: str) -> list[tuple[str, str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    figs = []
    ser = summary[summary["mode"] == "serial"].copy()
    order = sorted(ser["label"].unique())
    if not ser.empty and ser["rel_time"].notna().any():
        d = ser.dropna(subset=["rel_time"])
        fig, ax = plt.subplots(figsize=(max(7, 1.3 * d["wlabel"].nunique() * 1.2), 4.8))
        sns.barplot(data=d, x="wlabel", y="rel_time", hue="label", hue_order=order, ax=ax, errorbar=None)
        # 95% bootstrap intervals from the summary (seaborn's own would resample medians of medians)
        for cont, lab in zip(ax.containers, order):
            sub = d[d["label"] == lab].set_index("wlabel")
            for bar, wl in zip(cont, [t.get_text() for t in ax.get_xticklabels()]):
                if wl in sub.index and np.isfinite(bar.get_height()):
                    r = sub.loc[wl]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    x = bar.get_x() + bar.get_width() / 2
                    ax.plot([x, x], [r["rel_lo"], r["rel_hi"]], color="black", lw=1)
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.set_ylabel(f"ns/op relative to {baseline} (log)")
        ax.set_xlabel("workload")
        ax.set_title(f"Time per op relative to {baseline}, median with 95% bootstrap interval (serial)")
        ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
        figs.append(("rel_time", "Time per op relative to the baseline", _fig_to_png(fig)))
    if not ser.empty:
        d = ser[np.isfinite(ser["overhead"])]
        fig, ax = plt.subplots(figsize=(max(7, 1.3 * d["wlabel"].nunique() * 1.2), 4.5))
        sns.barplot(data=d, x="wlabel", y="overhead", hue="label", hue_order=order, ax=ax, errorbar=None)
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_ylabel("peak mapped / peak live (log)")
        ax.set_xlabel("workload")
        ax.set_title("Memory overhead per workload (serial)")
        ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
        figs.append(("overhead", "Memory overhead", _fig_to_png(fig)))
    thr = summary[summary["mode"] == "threads"].copy()
    if not thr.empty:
        thr["mops_per_s"] = 1e3 / thr["ns_per_op"]
        g = sns.relplot(data=thr, x="procs", y="mops_per_s", hue="label", col="wlabel", kind="line", marker="o", col_wrap=min(3, thr["wlabel"].nunique()),
                        height=3.8, aspect=1.2, facet_kws=dict(sharey=False))
        g.set_axis_labels("Ps (OS threads)", "throughput (M ops/s)")
        g.figure.suptitle(f"Threads mode: throughput against Ps ({os.cpu_count()} cores on this machine)", y=1.03)
        figs.append(("scaling", "Throughput against the number of Ps", _fig_to_png(g.figure)))
    if not ser.empty and ser["rel_time"].notna().any():
        agg = ser.dropna(subset=["rel_time"]).groupby("label").agg(
            rel_time=("rel_time", lambda x: float(np.exp(np.log(x).mean()))),
            overhead=("overhead", lambda x: float(np.exp(np.log(x[x > 0]).mean())) if (x > 0).any() else np.nan)).reset_index()
        fig, ax = plt.subplots(figsize=(7, 5))
        sns.scatterplot(data=agg, x="rel_time", y="overhead", hue="label", s=90, ax=ax, legend=False)
        for _, r in agg.iterrows():
            ax.annotate(r["label"], (r["rel_time"], r["overhead"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        front = S.pareto_front(agg["rel_time"], agg["overhead"])
        if len(front):
            f = agg.iloc[front]
            ax.plot(f["rel_time"], f["overhead"], "r--", lw=1.2, label="Pareto front")
            ax.legend()
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"geomean ns/op relative to {baseline} (log)")
        ax.set_ylabel("geomean memory overhead (log)")
        ax.set_title("Speed against memory: lower left is better")
        figs.append(("pareto", "Time against overhead with the Pareto front", _fig_to_png(fig)))
    waste = sizeclass_waste(df)
    if not waste.empty:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        sns.lineplot(data=waste, x="bytes_per_obj", y="max_waste_pct", hue="table", marker=".", ax=ax)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("size class (bytes per object, log)")
        ax.set_ylabel("worst-case waste (%)")
        ax.set_title("Per-size-class waste of the size-class tables in use")
        figs.append(("sizeclass_waste", "Per-size-class waste", _fig_to_png(fig)))
    if not ser.empty and ser["rel_time"].notna().any():
        piv = ser.pivot_table(index="label", columns="wlabel", values="rel_time", aggfunc="first")
        fig, ax = plt.subplots(figsize=(1.2 * piv.shape[1] + 3, 0.5 * piv.shape[0] + 2))
        # colours symmetric about 0 (= the baseline) through vmin/vmax: seaborn's center= recolours its
        # colormap with the set_bad matplotlib is deprecating, a warning on every report
        span = float(np.nanmax(np.abs(np.log2(piv.to_numpy(dtype=float))))) or 1.0
        sns.heatmap(np.log2(piv), annot=piv.round(2), fmt="", cmap="RdYlGn_r", vmin=-span, vmax=span, ax=ax,
                    cbar_kws={"label": f"log2(ns/op / {baseline})"})
        ax.set_title(f"Relative time, strategies x workloads (vs {baseline})")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=30)
        figs.append(("heatmap", "Strategies x workloads heatmap", _fig_to_png(fig)))
    return figs


def sizeclass_waste(df: pd.DataFrame) -> pd.DataFrame:
    """Worst-case waste per class for every distinct size-class table in the runs."""
    frames = []
    seen = set()
    for strat, cfg_json in df[["strategy", "config_json"]].drop_duplicates().itertuples(index=False):
        key = (strat, cfg_json)
        if key in seen:
            continue
        seen.add(key)
        try:
            table = _table_for(strat, json.loads(cfg_json))
        except Exception:  # a strategy without a table, or one from an older version
            table = None
        if table is not None:
            t = table.copy()
            n_same = len([k for k in seen if k[0] == strat])
            t["table"] = strat if n_same == 1 else f"{strat}[{hashlib.sha1(cfg_json.encode()).hexdigest()[:6]}]"
            frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _table_for(strategy: str, cfg: dict):
    """The strategy's size-class table (its descriptor's ``size_classes`` hook), or None."""
    from alloclab import strategies

    d = strategies.descriptor(strategy)
    rows = d.size_classes(d.load().Config.from_dict(cfg))
    return None if rows is None else pd.DataFrame(rows)


# ----------------------------------------------------------------- writing

def _fmt(x, digits=2):
    if isinstance(x, (float, np.floating)):
        return "" if not np.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _cells_table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = ["label", "wlabel", "procs", "mode", "processes", "reps", "ns_per_op", "ns_lo", "ns_hi", "rel_time", "rel_lo",
            "rel_hi", "significant", "cv_pct", "mde_pct", "ops_per_ms", "overhead", "peak_mapped_mb", "internal_frag", "fast_path_rate",
            "locks_per_kop", "contended"]
    return summary[cols].sort_values(["mode", "wlabel", "procs", "ns_per_op"]).rename(columns={"wlabel": "workload"})


def tuning_records(run_dirs: list[Path]) -> list[dict]:
    recs = []
    for d in run_dirs:
        p = Path(d) / "tuning.json"
        if p.is_file():
            try:
                recs.append(json.loads(p.read_text()))
            except ValueError:
                pass
    return recs


def tuning_figures(rec: dict) -> list[tuple[str, str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    figs = []
    name = rec["study"]
    done = [t for t in rec["trials"] if t["state"] == "COMPLETE" and t["values"]]
    if not done:
        return figs
    objs = rec["objectives"]
    if len(objs) == 1:
        x = [t["number"] for t in done]
        y = [t["values"][0] for t in done]
        fig, ax = plt.subplots(figsize=(7.5, 4))
        ax.scatter(x, y, s=14, alpha=0.6, label="trial")
        ax.plot(x, np.minimum.accumulate(y), "r-", lw=1.5, label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(objs[0])
        ax.set_title(f"Optimisation history: {name}")
        ax.legend()
        figs.append((f"tune_history_{_slug(name)}", f"Tuning {name}: optimisation history", _fig_to_png(fig)))
    else:
        xs = np.array([t["values"][0] for t in done])
        ys = np.array([t["values"][1] for t in done])
        front = S.pareto_front(xs, ys)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter(xs, ys, s=14, alpha=0.5, label="trial")
        ax.plot(xs[front], ys[front], "r.--", label="Pareto front")
        ax.set_xlabel(objs[0])
        ax.set_ylabel(objs[1])
        ax.set_title(f"Pareto front: {name}")
        ax.legend()
        figs.append((f"tune_pareto_{_slug(name)}", f"Tuning {name}: Pareto front", _fig_to_png(fig)))
    imp = rec.get("importances") or {}
    if imp:
        d = pd.DataFrame(sorted(imp.items(), key=lambda kv: -kv[1])[:15], columns=["parameter", "importance"])
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(d) + 1.5))
        sns.barplot(data=d, y="parameter", x="importance", ax=ax, color="#4c72b0")
        ax.set_title(f"Parameter importances (fANOVA): {name}")
        figs.append((f"tune_importance_{_slug(name)}", f"Tuning {name}: parameter importances", _fig_to_png(fig)))
    return figs


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s)[:60]


def tuning_tables(rec: dict) -> list[tuple[str, pd.DataFrame]]:
    out = []
    v = pd.DataFrame(rec.get("validation") or [])
    if not v.empty and "overhead_change" in v:
        v = v[v["status"] == "ok"]
        out.append((f"Tuned vs default on held-out data: {rec['study']}", v[[
            "group", "workload", "seed", "default_overhead", "tuned_overhead", "overhead_change",
            *[c for c in ("floor_overhead", "floor_change", "default_inuse", "tuned_inuse", "inuse_change") if c in v],
            "default_ns", "tuned_ns", "ns_change", *[c for c in ("ns_verdict", "ns_mde") if c in v]]]))
        g = v.groupby("group")[[c for c in ("overhead_change", "inuse_change", "ns_change") if c in v]].median().reset_index()
        g.columns = ["group"] + [{"overhead_change": "median overhead change", "inuse_change": "median in-use change",
                                  "ns_change": "median ns/op change"}[c] for c in g.columns[1:]]
        out.append((f"Generalisation: {rec['study']}", g))
        if "real_status" in v:   # go with a toolchain: the real runtime ran both tables (tune._real_validation)
            r = v[v["real_status"] == "ok"]
            if not r.empty:
                out.append((f"Model-predicted vs real Go runtime change, held-out seeds: {rec['study']}", r[[
                    "workload", "seed", "inuse_change", "real_inuse_change", "inuse_gap_pp", "ns_change",
                    "real_ns_change", "real_default_inuse", "real_tuned_inuse"]].rename(columns={
                        "inuse_change": "model in-use change", "real_inuse_change": "real in-use change",
                        "inuse_gap_pp": "gap (pp)", "ns_change": "model ns/op change",
                        "real_ns_change": "real ns/op change", "real_default_inuse": "real default in-use/live",
                        "real_tuned_inuse": "real tuned in-use/live"})))
    if rec.get("best"):
        from alloclab import strategies

        default = strategies.get(rec["strategy"]).Config().to_dict()
        changed = [(k, default.get(k), v) for k, v in rec["best"][0].items() if default.get(k) != v]
        out.append((f"Best config vs default: {rec['study']}",
                    pd.DataFrame(changed or [("(none)", "", "")], columns=["field", "default", "tuned"])))
    return out


@dataclass(frozen=True)
class Section:
    """One section of the report after the headline tables: a heading, a note under it, tables and figures.

    Sections that other modules own (fidelity, peers' ranking, latency, timelines) are built by the
    functions in ``SECTIONS``; each takes a ``ReportInput`` and returns a Section, or None when the runs
    hold nothing for it."""
    title: str
    note: str = ""
    tables: tuple = ()    # (title, DataFrame) pairs
    figures: tuple = ()   # (slug, title, png bytes) triples


@dataclass(frozen=True)
class ReportInput:
    """What a section builder reads: the loaded rows (with label and wlabel), the per-cell summary, the run
    folders (for tables kept beside the rows) and the baseline strategy."""
    df: pd.DataFrame
    summary: pd.DataFrame
    run_dirs: tuple
    baseline: str


def _scaling_section(inp: ReportInput) -> Section | None:
    scaling = scaling_table(inp.summary)
    if scaling.empty:
        return None
    return Section(SCALING_TITLE, SCALING_NOTE, (("Speed-up per strategy and workload", scaling),))


def _tuning_section(inp: ReportInput) -> Section | None:
    recs = tuning_records(list(inp.run_dirs))
    tables = tuple(t for rec in recs for t in tuning_tables(rec))
    figures = tuple(f for rec in recs for f in tuning_figures(rec))
    return Section("Tuning", "", tables, figures) if tables or figures else None


def _lazy(module: str, name: str = "section"):
    """A builder that lives in another module (which imports this one for Section), imported when called."""
    def builder(inp: ReportInput) -> Section | None:
        import importlib
        return getattr(importlib.import_module(module), name)(inp)
    builder.__qualname__ = f"{module}.{name}"
    return builder


# Section builders, in the order their sections appear (after the claims, geometric means and figures of
# cells; before the table of every cell). A section owned by another module is listed as
# _lazy("alloclab.harness.report_<x>"), that module's ``section(inp)``.
SECTIONS: list = [_scaling_section, _tuning_section, _lazy("alloclab.harness.report_ranking"),
                  _lazy("alloclab.harness.report_fidelity"),
                  _lazy("alloclab.harness.report_latency"),
                  _lazy("alloclab.harness.report_real")]


def register_section(builder, *, before=None) -> None:
    """Add a section builder (ReportInput -> Section | None), at the end or before another builder."""
    if builder in SECTIONS:
        return
    SECTIONS.insert(SECTIONS.index(before) if before in SECTIONS else len(SECTIONS), builder)


def build_sections(inp: ReportInput) -> list[Section]:
    return [s for s in (b(inp) for b in SECTIONS) if s is not None]


@dataclass(frozen=True)
class Written:
    """What write_report made: the report's index.html, and its answer in a few lines for the terminal."""
    index: Path
    terminal: str


def terminal_summary(gm: pd.DataFrame, claims: pd.DataFrame, baseline: str) -> str:
    """The claims' verdicts and the geometric means, as plain text (about 15 lines for the quick suite)."""
    lines = ["The article's claims (measured; verdict):"]
    idw = max([len(str(x)) for x in claims["id"]] + [10])
    for (_, c), ratio in zip(claims.iterrows(), _claims_view(claims)["measured_ratio"]):
        measured = (c["measured"] if ratio in c["measured"] else f"{c['measured']} ({ratio})") if c["measured"] else "-"
        lines.append(f"  {c['id']:<{idw}} {measured}; {c['verdict']}")
    lines.append(f"Geometric means over workloads, serial (time relative to {baseline}, 95% interval; "
                 "* = differs from 1; overhead = peak mapped / peak live):")
    width = max([len(str(x)) for x in gm["label"]] + [5])
    for _, g in gm.iterrows():
        interval = f"({g['lo']:.2f}..{g['hi']:.2f})" if np.isfinite(g["lo"]) and g["label"] != baseline else ""
        rel = f"{g['geomean_rel_time']:.2f}" if np.isfinite(g["geomean_rel_time"]) else "-"
        ov = f"{g['geomean_overhead']:.2f}x" if np.isfinite(g["geomean_overhead"]) else "-"
        lines.append(f"  {g['label']:<{width}}  time {rel:>5} {interval:<15}{'*' if g['significant'] else ' '}  "
                     f"overhead {ov}")
    return "\n".join(lines)


def write_report(run_dirs: list[Path], out: Path, baseline: str = "bump") -> Written:
    df = R.load(run_dirs)
    if df.empty:
        raise ValueError(f"no result rows in {', '.join(map(str, run_dirs))}")
    df["label"] = _label(df)
    df["wlabel"] = _workload_label(df)
    summary = summarise(df, baseline)
    if summary.empty:
        raise ValueError("no successful cells to report on")
    if baseline not in set(summary["strategy"]):
        baseline_note = f"(baseline {baseline!r} is not in these runs: relative figures are empty)"
    else:
        baseline_note = ""
    gm = geomeans(summary, baseline)
    claims = claims_table(summary)
    from alloclab.harness.report_ranking import with_best_real   # pool vs malloc, and vs the best real malloc
    claims = with_best_real(claims, summary)
    figs = make_figures(summary, df, baseline)
    sections = build_sections(ReportInput(df, summary, tuple(Path(d) for d in run_dirs), baseline))
    failed = df[df["status"] != "ok"][["strategy", "workload", "procs", "mode", "status", "error"]].drop_duplicates()
    metas = []
    for d in run_dirs:
        try:
            metas.append(json.loads((Path(d) / "meta.json").read_text()))
        except (OSError, ValueError):
            metas.append({"folder": str(d)})
    out.mkdir(parents=True, exist_ok=True)
    cells = _cells_table(summary)
    atomic_write(out / "summary.csv", cells.to_csv(index=False))
    _write_md(out, cells, gm, claims, figs, metas, failed, baseline, baseline_note, sections)
    index = out / "index.html"
    atomic_write(index, _html(cells, gm, claims, figs, metas, failed, baseline, baseline_note, sections))
    return Written(index, terminal_summary(gm, claims, baseline))


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _claims_view(claims: pd.DataFrame) -> pd.DataFrame:
    c = claims.copy()
    c["article_ratio"] = c["article_ratio"].map(lambda x: "" if x is None or not np.isfinite(x) else f"{x:.2f}x")
    c["measured_ratio"] = [("" if not np.isfinite(v) else (f"{v:.2%}" if "mcache" in cl else f"{v:.2f}x"))
                           for v, cl in zip(claims["measured_ratio"], claims["claim"])]
    c = c.drop(columns=["id"])
    return c


SCALING_TITLE = "Threads mode: speed-up over 1 P"
SCALING_NOTE = ("speed-up = ns/op at 1 P / ns/op at N Ps (medians; lo..hi a 95% bootstrap interval); "
                "best_speedup = the same with each side's fastest repetition; efficiency = speed-up / N. "
                "Past the machine's core count the Ps share cores.")


def _md_figure(out, heading, slug, title, png) -> str:
    """A figure's section: the PNG written next to report.md, the heading and the image link."""
    (out / f"{slug}.png").write_bytes(png)
    return f"\n{heading} {title}\n\n![{title}]({slug}.png)\n"


def _write_md(out, cells, gm, claims, figs, metas, failed, baseline, note, sections=()):
    parts = [f"# alloclab report\n\nBaseline: `{baseline}` {note}\n"]
    parts.append("## Machine and commit\n")
    for m in metas:
        parts.append(f"- run `{m.get('suite', m.get('command', ''))}` created {m.get('created_at', '')}: "
                     f"{m.get('cpu_model', '')}, {m.get('cores', '')} cores, host {m.get('host', '')}, "
                     f"commit {m.get('git_commit', '')}, alloclab {m.get('alloclab_version', '')}, numba {m.get('numba_version', '')}")
    parts.append("\n## The article's claims\n")
    parts.append(_md_table(_claims_view(claims)))
    parts.append("\n## Geometric means over workloads (serial)\n")
    parts.append(_md_table(gm))
    parts += [_md_figure(out, "##", *f) for f in figs]
    for sec in sections:
        parts.append(f"\n## {sec.title}\n" + (f"\n{sec.note}\n" if sec.note else ""))
        parts += [f"\n### {title}\n\n" + _md_table(t) for title, t in sec.tables]
        parts += [_md_figure(out, "###", *f) for f in sec.figures]
    parts.append("\n## Every cell\n")
    parts.append(_md_table(cells))
    if not failed.empty:
        parts.append("\n## Failed cells\n")
        parts.append(_md_table(failed))
    atomic_write(out / "report.md", "\n".join(parts) + "\n")


def _html_table(df: pd.DataFrame) -> str:
    h = ["<table><thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr></thead><tbody>"]
    for _, r in df.iterrows():
        h.append("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in df.columns) + "</tr>")
    h.append("</tbody></table>")
    return "\n".join(h)


def _html_figure(tag, slug, title, png) -> str:
    """A figure's section: the heading and the PNG inlined as a data URL (the page stands alone)."""
    b64 = base64.b64encode(png).decode()
    return f"<{tag}>{html.escape(title)}</{tag}><img id='fig-{slug}' alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>"


def _html(cells, gm, claims, figs, metas, failed, baseline, note, sections=()) -> str:
    css = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
           "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
           "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}"
           ".meta{color:#555;font-size:13px}h2{border-bottom:1px solid #ddd;padding-bottom:4px}")
    body = [f"<h1>alloclab report</h1><p>Baseline: <code>{html.escape(baseline)}</code> {html.escape(note)}. "
            "Each cell's samples come from separate processes (the median of each process's repetitions); "
            "times are medians of those with 95% bootstrap intervals. A cell differs significantly from the "
            "baseline when a Mann-Whitney U test on the process-level samples says so after Benjamini-Hochberg "
            "adjustment across the cells (q &lt; 0.05), the rule of <code>alloclab compare</code>; cv_pct is the "
            "spread between processes and mde_pct the smallest change the cell can detect (80% power).</p>"]
    body.append("<h2>Machine and commit</h2><ul class='meta'>")
    for m in metas:
        body.append("<li>" + html.escape(
            f"run {m.get('suite', m.get('command', ''))} created {m.get('created_at', '')}: {m.get('cpu_model', '')}, "
            f"{m.get('cores', '')} cores, host {m.get('host', '')}, commit {m.get('git_commit', '')}, "
            f"alloclab {m.get('alloclab_version', '')}, numba {m.get('numba_version', '')}, python {m.get('python', '')}") + "</li>")
    body.append("</ul>")
    body.append("<h2>The article's claims</h2>" + _html_table(_claims_view(claims)))
    body.append("<h2>Geometric means over workloads (serial)</h2>" + _html_table(gm))
    body += [_html_figure("h2", *f) for f in figs]
    for sec in sections:
        body.append(f"<h2>{html.escape(sec.title)}</h2>" + (f"<p>{html.escape(sec.note)}</p>" if sec.note else ""))
        body += [f"<h3>{html.escape(title)}</h3>" + _html_table(t) for title, t in sec.tables]
        body += [_html_figure("h3", *f) for f in sec.figures]
    body.append("<h2>Every cell</h2>" + _html_table(cells))
    if not failed.empty:
        body.append("<h2>Failed cells</h2>" + _html_table(failed))
    # After load, the page records how many of its figures decoded: the screenshot test reads it.
    script = ("<script>window.addEventListener('load',function(){var im=document.images,n=0;"
              "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)n++;}"
              "document.body.setAttribute('data-images-ok',n+'/'+im.length);});</script>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>alloclab report</title><style>{css}</style></head>"
            f"<body>{''.join(body)}{script}</body></html>")
