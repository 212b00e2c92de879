"""Statistics for reports and compare: medians, bootstrap intervals, significance.

Timings on a shared machine are skewed and heavy-tailed, so every figure is a
median over repetitions and every interval a percentile bootstrap (no
normality assumed). A difference is called significant when the 95%
bootstrap interval of the ratio of medians excludes 1 — the same rule
pyperf's "significant" uses in spirit, without needing scipy.
"""
from __future__ import annotations

import numpy as np

N_BOOT = 2000
_RNG_SEED = 12345


def median_ci(x, n_boot: int = N_BOOT, alpha: float = 0.05) -> tuple[float, float, float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (np.nan, np.nan, np.nan)
    med = float(np.median(x))
    if len(x) == 1:
        return (med, med, med)
    rng = np.random.default_rng(_RNG_SEED)
    boots = np.median(rng.choice(x, size=(n_boot, len(x)), replace=True), axis=1)
    return (med, float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2)))


def ratio_ci(num, den, n_boot: int = N_BOOT, alpha: float = 0.05) -> tuple[float, float, float]:
    """Ratio of medians num/den with a bootstrap interval (resampling both sides)."""
    a = np.asarray(num, float)
    b = np.asarray(den, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0 or np.median(b) == 0:
        return (np.nan, np.nan, np.nan)
    r = float(np.median(a) / np.median(b))
    if len(a) == 1 and len(b) == 1:
        return (r, r, r)
    rng = np.random.default_rng(_RNG_SEED)
    ma = np.median(rng.choice(a, size=(n_boot, len(a)), replace=True), axis=1)
    mb = np.median(rng.choice(b, size=(n_boot, len(b)), replace=True), axis=1)
    rb = ma / mb
    return (r, float(np.quantile(rb, alpha / 2)), float(np.quantile(rb, 1 - alpha / 2)))


def significant(lo: float, hi: float) -> bool:
    return bool(np.isfinite(lo) and np.isfinite(hi) and (hi < 1.0 or lo > 1.0))


def geomean_ci(groups: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 1000, alpha: float = 0.05):
    """Geometric mean over cells of ratio-of-medians, with a bootstrap over each cell's reps."""
    groups = [(np.asarray(a, float), np.asarray(b, float)) for a, b in groups]
    groups = [(a[np.isfinite(a)], b[np.isfinite(b)]) for a, b in groups]
    groups = [(a, b) for a, b in groups if len(a) and len(b) and np.median(b) > 0 and np.median(a) > 0]
    if not groups:
        return (np.nan, np.nan, np.nan)
    point = float(np.exp(np.mean([np.log(np.median(a) / np.median(b)) for a, b in groups])))
    rng = np.random.default_rng(_RNG_SEED)
    logs = np.zeros(n_boot)
    for a, b in groups:
        ma = np.median(rng.choice(a, size=(n_boot, len(a)), replace=True), axis=1)
        mb = np.median(rng.choice(b, size=(n_boot, len(b)), replace=True), axis=1)
        logs += np.log(ma / mb)
    gm = np.exp(logs / len(groups))
    return (point, float(np.quantile(gm, alpha / 2)), float(np.quantile(gm, 1 - alpha / 2)))


def pareto_front(x, y) -> np.ndarray:
    """Indices of points not dominated (smaller is better on both axes), sorted by x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    order = np.lexsort((y, x))
    front, best_y = [], np.inf
    for i in order:
        if np.isfinite(x[i]) and np.isfinite(y[i]) and y[i] < best_y:
            front.append(i)
            best_y = y[i]
    return np.array(front, dtype=int)
