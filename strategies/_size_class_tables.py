"""Per-class rows of the size-class tables, for the report's worst-case waste plot.

A strategy whose descriptor names one of these as its ``size_classes`` hook
gets its table drawn. Columns as in Go's sizeclasses.go comment table
(``go.sizeclasses.CSV_COLUMNS``); ``max_waste_pct`` is the waste of the worst
request a class serves (one byte above the class below), in percent.
"""
from __future__ import annotations


def simple(config) -> list[dict]:
    """``bitmap`` and ``freelist``: ``_sizeclass_simple``'s classes (the same for every config).

    No span columns: a pool's or slab's length is a tunable of each strategy, and
    bitmap's pools hold whole blocks (no tail waste)."""
    from alloclab.strategies._sizeclass_simple import CLASS_SIZES

    rows, prev = [], 0
    for c, size in enumerate(int(s) for s in CLASS_SIZES):
        rows.append({"class": c, "bytes_per_obj": size, "max_waste_pct": float(f"{100 * (size - prev - 1) / size:.2f}"),
                     "min_align": size & -size})
        prev = size
    return rows


def go(config) -> list[dict]:
    """``go``: the table its Config generates (mksizeclasses.go's, by default)."""
    from alloclab.strategies.go import sizeclasses

    # the waste column rounded as go_sizeclasses.csv writes it
    return [dict(zip(sizeclasses.CSV_COLUMNS, (*row[:5], float(f"{row[5]:.2f}"), row[6])))
            for row in sizeclasses.generate(config).rows()]
