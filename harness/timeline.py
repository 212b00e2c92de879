"""Memory over time: mapped, in-use and live bytes every K ops of logical time.

``executor.replay`` given a timeline's buffers runs its loop in chunks of K
ops and writes a row between chunks, and one at the end of the stream, so a
timeline ends at the run's final counters. It is the throughput kernel itself
(no compile of its own) and costs nothing per op. Columns:

    op          ops done before the row (logical time; the last row: the trace's length)
    mapped      the heap's mapped bytes; for strategies on real pointers (``system`` and the
                loaded allocators, whose memory is the library's) the bytes it holds from the
                OS, sampled by the runner between slices that end at the rows, floored by the
                row's in-use bytes as their peak is (serial mode; NaN in threads mode)
    in_use      bytes the strategy holds for live objects (its IN_USE counters)
    live        bytes of the trace's live objects at that op (the trace's own running sum,
                computed here: no run changes it)
    gc_cycles   the strategy's GC cycles so far (its ``gc_cycles`` counter; 0 if none)
    heap_goal   go's heap goal (0 for strategies without one)

Threads mode: each P writes rows at its own stream's multiples of K; the
rows are put on the trace's op index and merged (per-P in-use and GC cycles
carried forward and summed, mapped and the goal are heap-wide; live is the
trace's at the merged op). A serial timeline is deterministic: the same
trace and config give the same rows.

What ``every`` trades: a row costs a few loads and stores (a sum over the Ps'
counter rows in serial mode) and a return to the chunk loop every K ops; the
default, 1/1000 of the trace, keeps that far below 1% and still shows a
phase change.
"""
from __future__ import annotations

import numpy as np

from alloclab.harness import executor as ex

COLUMNS = ("op", "mapped", "in_use", "live", "gc_cycles", "heap_goal")
POINTS = 1000            # rows a default timeline has
SPARK = " ▁▂▃▄▅▆▇█"


def default_every(ops: int) -> int:
    return max(1, ops // POINTS)


def rows_needed(ops: int, every: int) -> int:
    return ops // every + 2


def heap_goal_word(d, state):
    """(array, index) of the strategy's heap goal word, or None. Only go keeps one (its GC
    pacer's goal, a word of ``state.gl``); a strategy with another word adds a line here."""
    if d.name == "go":
        from alloclab.strategies.go.mgc import GC_HEAP_GOAL

        return state.gl, GC_HEAP_GOAL
    return None


def gc_column(counter_names: dict[int, str]) -> int:
    """The counter column of a strategy's GC cycles (its ``gc_cycles`` extra), or -1."""
    return next((col for col, n in counter_names.items() if n == "gc_cycles"), -1)


def frame(probe, written, *, live, where=None, real_pointers: bool = False, os_rows=None):
    """The probe's timeline as a DataFrame (COLUMNS), serial or merged over Ps. ``written``: the
    rows each thread wrote (its stats row's ``STAT_TL_ROWS``); ``live``: ``Trace.live_bytes``
    up to the ops replayed; ``where``: threads mode, each P's stream index -> trace op index.
    With ``real_pointers`` the Heap's mapped bytes mean nothing: ``mapped`` is ``os_rows``'
    sample at the row's op ({op: bytes}, the runner's, serial mode) or NaN."""
    import pandas as pd

    ops = len(live) - 1
    per_p = []
    for p, tl in enumerate(probe.timeline):
        rows = tl[:int(written[p])]
        df = pd.DataFrame({"op": rows[:, ex.TL_OP], "mapped": rows[:, ex.TL_MAPPED],
                           "in_use": rows[:, ex.TL_IN_USE], "gc_cycles": rows[:, ex.TL_GC],
                           "heap_goal": rows[:, ex.TL_GOAL]})
        if where is not None:
            w = where[p]
            local = df["op"].to_numpy()
            df["op"] = np.where(local >= len(w), ops, w[np.minimum(local, max(len(w) - 1, 0))] if len(w) else ops)
        per_p.append(df)
    out = per_p[0] if where is None or len(per_p) == 1 else _merge(per_p)
    out["live"] = live[out["op"].to_numpy()]
    out = out[list(COLUMNS)].astype({c: "int64" for c in COLUMNS})
    if real_pointers:
        # floored by the row's in-use bytes, as the strategy's peak is (peak_mapped_bytes): memory
        # the library kept from earlier runs and reuses is not in its growth since the baseline
        sampled = out["op"].map(os_rows or {}).astype(float)
        out["mapped"] = np.fmax(sampled, out["in_use"].where(sampled.notna()))
    return out.reset_index(drop=True)


def _merge(per_p):
    import pandas as pd

    grid = np.unique(np.concatenate([d["op"].to_numpy() for d in per_p]))
    out = pd.DataFrame({"op": grid})
    for col, how in (("in_use", "sum"), ("gc_cycles", "sum"), ("mapped", "max"), ("heap_goal", "max")):
        parts = [d.drop_duplicates("op", keep="last").set_index("op")[col].reindex(grid).ffill().fillna(0)
                 for d in per_p]
        stacked = np.vstack([s.to_numpy() for s in parts])
        out[col] = stacked.sum(axis=0) if how == "sum" else stacked.max(axis=0)
    return out


def sparkline(values, width: int = 60) -> str:
    """A text sparkline of ``values`` (resampled to ``width`` columns, max per column)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return ""
    cols = np.array_split(v, min(width, len(v)))
    m = np.array([c.max() for c in cols])
    hi = m.max()
    if hi <= 0:
        return SPARK[1] * len(m)
    return "".join(SPARK[1 + int(round(x / hi * (len(SPARK) - 2)))] for x in m)


def summary_lines(df) -> list[str]:
    """One sparkline per memory column, with its peak and final value."""
    out = []
    for col in ("mapped", "in_use", "live"):
        s = df[col]
        if s.isna().all():
            continue
        out.append(f"  {col:<7} {sparkline(s)}  peak {s.max() / 2**20:8.2f} MiB  end {s.iloc[-1] / 2**20:8.2f} MiB")
    if df["gc_cycles"].iloc[-1] > 0:
        out.append(f"  gc      {int(df['gc_cycles'].iloc[-1])} cycles; heap goal at the end "
                   f"{df['heap_goal'].iloc[-1] / 2**20:.2f} MiB")
    return out
