"""The report's fidelity section: the go model against the real Go runtime (rows of `alloclab fidelity`).

A table with one line per workload and mode (each figure's model and real
medians and their ratio, and how many size classes' allocation counts are
equal), and a log-log figure of model against real for every figure, on the
y = x line: a point on the line is a figure the model gets right.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from alloclab.harness.fidelity import BYCLASS_COL, INUSE_COL, METRICS, MODEL, REAL, compare_rows
from alloclab.harness.report import ReportInput, Section, _config_label, _fig_to_png

TITLE = "Fidelity: the go model against the real Go runtime"
NOTE = ("Same trace on both sides (`alloclab fidelity`); model = `go` with its default config (Go's GOGC = 100, the "
        "installed toolchain's Go version), real = `go-runtime`. Peak in-use: model HeapInuse + StackInuse, real "
        "HeapInuse above the baseline; peak held: model peak mapped, real HeapSys - HeapReleased above the "
        "baseline. Size classes: allocations of the trace's heap and noscan objects per class, equal counts of "
        "the classes either side used. Medians over repetitions; ratio = model / real.")


def fidelity_lines(df: pd.DataFrame) -> list[dict]:
    """Table lines from result rows: pairs of go and go-runtime rows of one trace (workload, parameters,
    seed, procs, mode) that carry the fidelity columns."""
    if INUSE_COL not in df.columns or BYCLASS_COL not in df.columns:
        return []
    rows = df[df["strategy"].isin([MODEL, REAL]) & df[INUSE_COL].notna() & (df["status"] == "ok")]
    lines = []
    for key, g in rows.groupby(["workload", "workload_json", "seed", "procs", "mode"], sort=False):
        r = g[g["strategy"] == REAL].to_dict("records")
        for cfg, m in g[g["strategy"] == MODEL].groupby("config_json", sort=False):
            if r:
                lines.append(dict(workload=key[0], mode=key[4], procs=int(key[3]), model=_config_label(MODEL, cfg),
                                  scale=json.loads(key[1]).get("scale"), **compare_rows(m.to_dict("records"), r)))
    return lines


def _table(lines: list[dict]) -> pd.DataFrame:
    out = []
    for ln in lines:
        row = dict(workload=ln["workload"], mode=ln["mode"] if ln["mode"] == "serial" else f"threads/{ln['procs']}",
                   scale=ln["scale"], model=ln["model"])
        for key, head in METRICS:
            m, g, ratio = ln[key]
            row[f"{head} model"], row[f"{head} real"], row[f"{head} ratio"] = m, g, ratio
        eq, n, worst = ln["classes"]
        row["size classes equal"] = f"{eq}/{n}" + (f" (max diff {worst})" if worst else "")
        out.append(row)
    return pd.DataFrame(out)


def _figure(lines: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    lo, hi = np.inf, 0.0
    markers = {"serial": "o", "threads": "^"}
    shown = MODEL if any(ln["model"] == MODEL for ln in lines) else lines[0]["model"]   # one model config
    for i, (key, head) in enumerate(METRICS):
        for mode, mk in markers.items():
            pts = [(ln[key][1], ln[key][0]) for ln in lines
                   if ln["mode"] == mode and ln["model"] == shown and ln[key][0] > 0 and ln[key][1] > 0]
            if not pts:
                continue
            x, y = np.array(pts).T
            lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
            ax.scatter(x, y, marker=mk, color=f"C{i}", label=f"{head} ({mode})", alpha=0.8)
    if hi > 0:
        ax.plot([lo / 1.5, hi * 1.5], [lo / 1.5, hi * 1.5], color="0.4", lw=1, ls="--", label="y = x")
        for f in (0.8, 1.25):
            ax.plot([lo / 1.5, hi * 1.5], [f * lo / 1.5, f * hi * 1.5], color="0.75", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("real Go runtime (go-runtime)")
    ax.set_ylabel(f"model ({shown}; other configs are in the table only)")
    ax.set_title("model against real, same traces (dotted: 0.8x and 1.25x)")
    ax.legend(fontsize=7, loc="upper left")
    return _fig_to_png(fig)


def section(inp: ReportInput) -> Section | None:
    lines = fidelity_lines(inp.df)
    if not lines:
        return None
    return Section(TITLE, NOTE, tables=(("Model / real, per workload", _table(lines)),),
                   figures=(("fidelity", "Model against real (log-log, y = x)", _figure(lines)),))

