"""Is B faster than A? Verdicts that survive an A/A test.

Where the noise is. On a shared machine the spread of a timing lives between
processes and between moments (placement of the arena and of the process's
own memory, page faults, frequency, neighbours), not between repetitions
inside one process: three in-process repetitions give intervals far narrower
than the spread a second run of the same code shows. So the unit of a sample
here is one *process*: the median of its in-process repetitions. In-process
repetitions only make each process's value steadier; they never count as
independent samples (Kalibera & Jones, "Rigorous Benchmarking in Reasonable
Time", ISMM 2013: repeat at the level where the variance enters).

The test. Mann-Whitney U, two-sided, on the process-level samples of the
two sides, as benchstat does: it assumes no distribution (timings are skewed
and heavy-tailed), it is exact for the few samples a benchmark can afford
(the null distribution is counted, not approximated, up to 400 pairs), and
it cannot be fooled by one outlier process. Its price is a floor: with n and
m samples the smallest two-sided p it can give is 2 / C(n+m, n), so 3
against 3 can never reach 0.05, and a cell says "~" however large the change.
A hierarchical bootstrap would give a p below that floor, but with five
processes a side it resamples five values and its p is not to be trusted.

Many cells. A comparison tests every cell at once. At 5% each, 45 cells of
identical code flag two on average, so p-values are adjusted across the
cells of one comparison with Benjamini-Hochberg (false discovery rate). When
nothing changed (the A/A case) it keeps the chance of any flag at the
nominal level; when one strategy changed in many cells it keeps the power
Holm (family-wise) would lose: Holm needs the smallest p below alpha/m,
which 6 against 6 samples cannot reach for m >= 22. Holm is there for
callers that need family-wise control.

What a cell can detect. For each cell the minimum detectable effect (MDE)
is the smallest change in the median that the test would call at the
samples taken, with power 80% at the per-cell level alpha, from the cell's
measured spread between processes (sigma of log time), for a shift of a
normal in log time; the power curve of the exact test is simulated once per
(n, m) rather than taken from Noether's formula, which is off by 0.1 in
power at 8 samples a side. A cell whose MDE is 20% can tell a 20% change from noise four times in five
and cannot tell 5% at all; the report prints it beside every verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
POWER = 0.8
_EXACT_MAX_PAIRS = 400          # n*m up to which the U distribution is counted exactly
_NORMAL = NormalDist()


@lru_cache(maxsize=256)
def _u_counts(n: int, m: int) -> np.ndarray:
    """counts[u] = number of rankings of n x's among m y's with U = u (no ties).

    The recurrence adds the largest observation: it is an x (it beats all m
    y's, U grows by m) or a y (U unchanged), so f(n, m) = f(n-1, m) << m + f(n, m-1).
    """
    f = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                f[i][j] = np.ones(1, dtype=np.float64)
                continue
            a = f[i - 1][j]
            b = f[i][j - 1]
            out = np.zeros(i * j + 1)
            out[j:j + len(a)] += a
            out[:len(b)] += b
            f[i][j] = out
    return f[n][m]


def mann_whitney(x, y, exact: bool | None = None) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of x against y: (U of x, p-value).

    U counts the pairs (xi, yj) with xi > yj (ties count a half). Exact when
    n*m <= 400 and there are no ties; otherwise the normal approximation with
    tie correction and continuity correction. ``exact`` forces either.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return (math.nan, 1.0)
    both = np.concatenate([x, y])
    ranks = _midranks(both)
    u = float(ranks[:n].sum() - n * (n + 1) / 2)
    ties = len(np.unique(both)) < len(both)
    if exact if exact is not None else (n * m <= _EXACT_MAX_PAIRS and not ties):
        counts = _u_counts(n, m)
        total = counts.sum()
        k = int(round(u))
        lo = counts[:k + 1].sum() / total          # P(U <= u)
        hi = counts[k:].sum() / total              # P(U >= u)
        return (u, float(min(1.0, 2 * min(lo, hi))))
    mu = n * m / 2
    _, t = np.unique(both, return_counts=True)
    N = n + m
    var = n * m / 12 * ((N + 1) - float((t ** 3 - t).sum()) / (N * (N - 1)))
    if var <= 0:
        return (u, 1.0)
    z = (abs(u - mu) - 0.5) / math.sqrt(var)
    return (u, float(min(1.0, 2 * (1 - _NORMAL.cdf(max(z, 0.0))))))


def _midranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact U test can give with n and m samples."""
    if n == 0 or m == 0:
        return 1.0
    return min(1.0, 2 / math.comb(n + m, n))


def _adjust_sorted(p, adjust) -> np.ndarray:
    """``adjust`` applied to the p-values in ascending order, capped at 1, returned in the input's order."""
    p = np.asarray(p, float)
    if len(p) == 0:
        return p
    order = np.argsort(p)
    out = np.empty(len(p))
    out[order] = np.minimum(adjust(p[order]), 1.0)
    return out


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input's order."""
    def step_up(sp):
        q = sp * len(sp) / np.arange(1, len(sp) + 1)
        return np.minimum.accumulate(q[::-1])[::-1]
    return _adjust_sorted(p, step_up)


def holm_adjust(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    return _adjust_sorted(p, lambda sp: np.maximum.accumulate(sp * (len(sp) - np.arange(len(sp)))))


ADJUST = {"bh": bh_adjust, "holm": holm_adjust, "none": lambda p: np.asarray(p, float)}


def log_sigma(*samples) -> float:
    """Pooled standard deviation of log(value) within each sample set: the
    spread between processes, which sets what a cell can detect."""
    ss, dof = 0.0, 0
    for s in samples:
        s = np.log(np.asarray(s, float))
        s = s[np.isfinite(s)]
        if len(s) > 1:
            ss += float(((s - s.mean()) ** 2).sum())
            dof += len(s) - 1
    return math.sqrt(ss / dof) if dof else math.nan


def mde(sigma: float, n: int, m: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable change (a fraction: 0.1 = 10%) of the median time.

    The smallest shift in log time that the U test detects with probability
    ``power`` at level ``alpha`` with n and m process-level samples whose log
    spread is ``sigma``; inf when the samples cannot reach ``alpha`` at all
    (see ``min_p``) or the spread is unknown.
    """
    if n < 2 or m < 2 or not math.isfinite(sigma):
        return math.inf
    d = _detectable_shift(n, m, alpha, power)
    return math.exp(d * sigma) - 1 if math.isfinite(d) else math.inf


_MDE_DRAWS = 4000
_MDE_SEED = 20131021


@lru_cache(maxsize=256)
def _detectable_shift(n: int, m: int, alpha: float, power: float) -> float:
    """The shift of a normal, in units of its sigma, that the U test rejects with
    probability ``power``: found by bisection on simulated samples (common random
    numbers, fixed seed, so it is deterministic). Simulated rather than taken from
    Noether's formula, which assumes the null variance of U and so misstates the
    power at the few samples a benchmark has (by 0.1 at 8 against 8); the exact
    test's discreteness is included this way too."""
    if min_p(n, m) > alpha:
        return math.inf
    draws = max(500, min(_MDE_DRAWS, int(4e7 // (n * m))))
    rng = np.random.default_rng(_MDE_SEED)
    x = rng.standard_normal((draws, n))
    y0 = rng.standard_normal((draws, m))
    p_of_u = _two_sided_p_table(n, m)

    def rejected(d: float) -> float:
        u = (x[:, :, None] > (y0 + d)[:, None, :]).sum(axis=(1, 2))
        return float(np.mean(p_of_u[u] < alpha))

    return _shift_for_power(rejected, power)


def _shift_for_power(rejected, power: float) -> float:
    """The smallest shift d with rejected(d) >= power (rejected grows with d): doubling, then
    bisection; inf past 64 sigma."""
    lo, hi = 0.0, 1.0
    while rejected(hi) < power:
        hi *= 2
        if hi > 64:
            return math.inf
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejected(mid) < power else (lo, mid)
    return hi


def _two_sided_p_table(n: int, m: int) -> np.ndarray:
    """p[u] for u = 0..n*m with no ties, as ``mann_whitney`` computes it."""
    us = np.arange(n * m + 1)
    if n * m <= _EXACT_MAX_PAIRS:
        c = _u_counts(n, m)
        cdf = np.cumsum(c) / c.sum()
        sf = np.cumsum(c[::-1])[::-1] / c.sum()
        return np.minimum(1.0, 2 * np.minimum(cdf, sf))
    N = n + m
    z = (np.abs(us - n * m / 2) - 0.5) / math.sqrt(n * m * (N + 1) / 12)
    return np.array([min(1.0, 2 * (1 - _NORMAL.cdf(max(float(v), 0.0)))) for v in z])


@dataclass(frozen=True)
class Verdict:
    ratio: float       # median(new) / median(old)
    p: float           # the cell's own U-test p-value
    q: float           # adjusted across the comparison's cells
    verdict: str       # "faster", "slower" or "~" (cannot tell)
    mde: float         # minimum detectable change at these samples (fraction; inf: none)
    cv: float          # spread between processes (sigma of log time, ~ coefficient of variation)
    n_old: int
    n_new: int

    @property
    def significant(self) -> bool:
        return self.verdict != "~"


def verdicts(pairs, alpha: float = ALPHA, adjust: str = "bh") -> list[Verdict]:
    """One verdict per (old samples, new samples) pair, p-values adjusted across all pairs.

    Samples are process-level values (lower is better, e.g. ns/op); a cell is
    "slower" when its adjusted p is below ``alpha`` and its median went up.
    """
    pairs = [(np.asarray(a, float), np.asarray(b, float)) for a, b in pairs]
    pairs = [(a[np.isfinite(a)], b[np.isfinite(b)]) for a, b in pairs]
    ps = [mann_whitney(b, a)[1] for a, b in pairs]
    qs = ADJUST[adjust](ps) if ps else []
    out = []
    for (a, b), p, q in zip(pairs, ps, qs):
        ratio = float(np.median(b) / np.median(a)) if len(a) and len(b) and np.median(a) > 0 else math.nan
        sig = q < alpha and math.isfinite(ratio) and ratio != 1.0
        v = ("slower" if ratio > 1 else "faster") if sig else "~"
        s = log_sigma(a, b)
        out.append(Verdict(ratio, float(p), float(q), v, mde(s, len(a), len(b), alpha), s, len(a), len(b)))
    return out


# ---------------------------------------------------------------- paired: A and B in the same processes

@lru_cache(maxsize=256)
def _w_counts_of(ranks2: tuple[int, ...]) -> np.ndarray:
    """counts[k] = number of sign assignments whose positive ranks sum to k / 2, for the
    doubled ranks ``ranks2`` (midranks of tied |d| are halves: doubled, they are integers)."""
    c = np.zeros(sum(ranks2) + 1)
    c[0] = 1
    for r in ranks2:
        c[r:] = c[r:] + c[:len(c) - r].copy()
    return c


def _w_counts(n: int) -> np.ndarray:
    """counts[w] = number of sign assignments to ranks 1..n whose positive ranks sum to w."""
    return _w_counts_of(tuple(range(2, 2 * n + 1, 2)))[::2]


def signed_rank(d) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test that the differences ``d`` are centred on 0: (W+, p).

    Zero differences are dropped (Wilcoxon's rule). Always exact: the 2^n sign
    assignments are counted, over midranks when some |d| tie (the few pairs a
    benchmark has make the normal approximation too generous: 5 pairs, all one
    way, would pass at 5% under it).
    """
    d = np.asarray(d, float)
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) == 0:
        return (math.nan, 1.0)
    ranks2 = np.rint(2 * _midranks(np.abs(d))).astype(np.int64)
    c = _w_counts_of(tuple(sorted(int(r) for r in ranks2)))
    k = int(ranks2[d > 0].sum())
    lo, hi = c[:k + 1].sum() / c.sum(), c[k:].sum() / c.sum()
    return (k / 2, float(min(1.0, 2 * min(lo, hi))))


def min_p_paired(n: int) -> float:
    """The smallest two-sided p the exact signed-rank test can give with n pairs: 2 / 2^n
    (5 pairs: 0.0625, which can never be significant; 6 pairs: 0.031)."""
    return 1.0 if n == 0 else min(1.0, 2 / 2 ** n)


@lru_cache(maxsize=64)
def _detectable_shift_paired(n: int, alpha: float, power: float) -> float:
    """As ``_detectable_shift``, for the signed-rank test on n normal paired
    differences: the shift, in units of their sigma, rejected with ``power``."""
    if min_p_paired(n) > alpha:
        return math.inf
    rng = np.random.default_rng(_MDE_SEED)
    z = rng.standard_normal((_MDE_DRAWS, n))
    c = _w_counts(n)
    cdf, sf = np.cumsum(c) / c.sum(), np.cumsum(c[::-1])[::-1] / c.sum()
    p_of_w = np.minimum(1.0, 2 * np.minimum(cdf, sf))

    def rejected(s: float) -> float:
        x = z + s
        r = np.argsort(np.argsort(np.abs(x), axis=1), axis=1) + 1
        w = (r * (x > 0)).sum(axis=1)
        return float(np.mean(p_of_w[w] < alpha))

    return _shift_for_power(rejected, power)


def mde_paired(sigma_diff: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable change (fraction) of a paired comparison of n processes whose
    per-process log(B/A) has spread ``sigma_diff``; inf when n pairs cannot reach ``alpha``."""
    if n < 2 or not math.isfinite(sigma_diff):
        return math.inf
    d = _detectable_shift_paired(n, alpha, power)
    return math.exp(d * sigma_diff) - 1 if math.isfinite(d) else math.inf


def paired_verdicts(pairs, alpha: float = ALPHA, adjust: str = "bh") -> list[Verdict]:
    """One verdict per (old, new) pair of *matched* process-level samples: old[i] and new[i]
    were measured in the same process, moments apart (``alloclab ab``: both sides in every
    process, ABBA). The test is on the per-process log ratios log(new[i] / old[i]).

    Why paired. The noise here is the machine's moment and the process's placement, both
    shared by the two sides of one process: whole processes run 1.4-2x slower than others
    (docs/statistics.md), which an unpaired test must count as spread but which cancels in a
    ratio taken within the process. So the signed-rank test on the ratios detects changes an
    order of magnitude smaller than the U test on the same samples. Its price is its own
    floor: n pairs give p >= 2 / 2^n, so a paired comparison needs 6 or more processes.
    ``ratio`` is the median of the per-process ratios; ``cv`` the spread of their logs.
    """
    out_pairs = []
    for a, b in pairs:
        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) != len(b):
            raise ValueError(f"paired samples need one old and one new value per process ({len(a)} against {len(b)})")
        keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        out_pairs.append(np.log(b[keep] / a[keep]))
    ps = [signed_rank(d)[1] for d in out_pairs]
    qs = ADJUST[adjust](ps) if ps else []
    out = []
    for d, p, q in zip(out_pairs, ps, qs):
        ratio = float(math.exp(np.median(d))) if len(d) else math.nan
        sig = q < alpha and math.isfinite(ratio) and ratio != 1.0
        v = ("slower" if ratio > 1 else "faster") if sig else "~"
        s = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
        out.append(Verdict(ratio, float(p), float(q), v, mde_paired(s, len(d), alpha), s, len(d), len(d)))
    return out


def process_samples(values, groups) -> np.ndarray:
    """Process-level samples: the median of each group's (process's) values, in group order."""
    values = np.asarray(values, float)
    groups = np.asarray(groups)
    return np.array([np.median(values[groups == g]) for g in np.unique(groups)])


# ---------------------------------------------------------------- the variance split, and how many of each

@dataclass(frozen=True)
class VarianceSplit:
    """Log-time variance of one cell split by level (one-way random effects):
    ``between`` = variance of the process means that is not explained by the
    repetitions inside them; ``within`` = variance of repetitions in a process."""
    between: float
    within: float
    processes: int
    reps: int

    @property
    def share_between(self) -> float:
        tot = self.between + self.within
        return self.between / tot if tot > 0 else math.nan


def variance_split(values, procs) -> VarianceSplit:
    """Split log(values) into between-process and within-process variance
    (ANOVA estimators; the between part is clamped at 0)."""
    v = np.log(np.asarray(values, float))
    g = np.asarray(procs)
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    groups = [v[g == k] for k in np.unique(g)]
    groups = [x for x in groups if len(x)]
    k = len(groups)
    n = sum(len(x) for x in groups)
    if k == 0:
        return VarianceSplit(math.nan, math.nan, 0, 0)
    r = n / k
    grand = v.mean()
    ss_within = sum(float(((x - x.mean()) ** 2).sum()) for x in groups)
    ss_between = sum(len(x) * (x.mean() - grand) ** 2 for x in groups)
    ms_within = ss_within / (n - k) if n > k else math.nan
    ms_between = ss_between / (k - 1) if k > 1 else math.nan
    within = ms_within if math.isfinite(ms_within) else 0.0
    between = max(0.0, (ms_between - within) / r) if math.isfinite(ms_between) else math.nan
    return VarianceSplit(float(between), float(within), k, int(round(r)))


def plan_repetitions(split: VarianceSplit, cost_process_s: float, cost_rep_s: float,
                     target: float = 0.10, max_reps: int = 10, max_processes: int = 30) -> tuple[int, int]:
    """(processes, reps per process) for a cell, after Kalibera & Jones (ISMM 2013).

    Reps per process: r = sqrt((c_process / c_rep) * (within / between)), the
    count that buys the most precision per second when a process costs
    c_process (start-up, warm-up) and a repetition c_rep; 1 when the between-
    process part dominates, as it does here. Processes: the fewest that make
    the minimum detectable change of an A/B of two such runs at most ``target``.
    """
    if not (math.isfinite(split.between) and math.isfinite(split.within)):
        return (max_processes, 1)
    if split.between <= 0:
        r = max_reps
    else:
        r = math.sqrt(max(cost_process_s, 1e-9) / max(cost_rep_s, 1e-9) * split.within / split.between)
    r = int(min(max_reps, max(1, round(r))))
    sigma = math.sqrt(split.between + split.within / r)
    for k in range(3, max_processes + 1):
        if mde(sigma, k, k) <= target:
            return (k, r)
    return (max_processes, r)
