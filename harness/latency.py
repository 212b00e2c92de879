"""Per-op latency: the clock's calibration, the histogram, its percentiles and the tail's causes.

The timed replay (``executor.replay`` with a ``Probe``) reads the CPU's cycle counter
around each sampled alloc and free, in the kernel, and adds the difference to
a log-linear histogram in cycles (``executor.HIST_*``): exact below 64
cycles, then 64 buckets per power of two, so a bucket is at most 1/64 of its
lower bound wide and a value read back as its bucket's midpoint is within
1/128 (0.8%) of the true one (``RELATIVE_ERROR``, the conservative bound, is
what tests hold it to). Histograms add: Ps, repetitions and runs merge by
summing counts (across processes, through ``to_rows``/``from_rows``, whose
values are already in ns).

Cycles become ns with a calibration taken when the process first needs it:
the counter against ``time.perf_counter_ns`` over ``CALIBRATE_S``. On x86
the counter ticks at a constant rate whatever the core's clock does.

What an op costs to time: two counter reads, a sum of the tag counters and
one bucket; docs/latency.md has the figures. The time measured includes the
executor's first write to the object (a program touches what it allocates). The counter's own step bounds
the resolution (``clock_step``): one tick on Intel, but AMD Zen parts advance
it in steps at 100 MHz (10 ns), so there an op reads as 0, 10, 20 ... ns.

Sampling (``--sample N``): 1 op in N by a hash of its index, so the same ops
are timed on every run and the sample does not alias with the workload's own
periods. The default is every op (N = 1): latency runs are repetitions of
their own, so their overhead never reaches ``ns_per_op``, and only with every
op timed are the max and the worst-case table exact.

Tail causes: the strategy's counters that mark a slow path
(``CAUSE_COUNTERS``, by the names the strategies declare) are kept as a
snapshot, retaken before a timed op whenever an untimed one ran since; after
the op their sum is compared with the snapshot's, and an op that moved it is
tagged with the first counter that moved, in the priority order of
``CAUSES`` (a GC cycle that also grew the heap is a GC cycle). No strategy
changes: the counters already say which path ran. An op that moved none is
"fast" (0); ``tail`` reports the tag mix of the ops above a quantile.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from alloclab.harness import executor as ex
from alloclab.strategies import _counters as C

# causes, highest priority first; index = the histogram's cause axis (0 = no slow path seen)
CAUSES = ("fast", "gc", "heap grow", "span alloc", "coalescing", "lock contention", "refill")
assert len(CAUSES) <= ex.LAT_CAUSES
CAUSE_INDEX = {name: i for i, name in enumerate(CAUSES)}
# counter name (standard or a strategy's EXTRA_COUNTERS) -> the slow path it marks. Only counters
# that move on a slow path: go's tiny_blocks is not one (a new 16 B tiny block is an ordinary small
# alloc from the mcache, nextFreeFast; when it needs a refill, ``refills`` says so); tagging it
# "span alloc" called ordinary allocs slow (docs/latency.md)
CAUSE_COUNTERS = {
    "gc_cycles": "gc",
    "heap_grows": "heap grow", "slabs": "heap grow", "pools": "heap grow", "large_maps": "heap grow",
    "grow_merges": "heap grow",
    "page_cache_hits": "span alloc", "page_cache_refills": "span alloc", "large_allocs": "span alloc",
    "spans_returned": "span alloc",
    "coalesces": "coalescing",
    "contended": "lock contention", "spins": "lock contention",
    "refills": "refill", "flushes": "refill", "free_batches": "refill", "stack_cache_refills": "refill",
    "stack_cache_releases": "refill", "gfree_moves": "refill",
}
OPS = ("alloc", "free")
QUANTILES = (0.5, 0.9, 0.99, 0.999)
TAIL_Q = 0.999                 # the tail whose causes are reported: the top 0.1%
RELATIVE_ERROR = 1 / ex.HIST_SUB
CALIBRATE_S = 0.02
DEFAULT_SAMPLE = 1


def tags_for(counter_names: dict[int, str]) -> list[tuple[int, int]]:
    """(counter column, cause index) pairs for a strategy's counters ({column: name}), highest
    priority first: what ``executor.Probe`` takes."""
    pairs = [(col, CAUSE_INDEX[CAUSE_COUNTERS[n]]) for col, n in counter_names.items() if n in CAUSE_COUNTERS]
    return sorted(pairs, key=lambda cp: (cp[1], cp[0]))


def strategy_counters(descriptor) -> dict[int, str]:
    """A kernel strategy's counter columns by name: the standard ones and its declared extras."""
    out = dict(C.STANDARD_NAMES)
    out.update({C.EXTRA_BASE + j: n for j, n in enumerate(descriptor.extra_counters)})
    return out


_NS_PER_CYCLE: float | None = None


@njit(cache=True)
def _steps(out):
    prev = ex.cycle_counter()
    k = 0
    while k < out.shape[0]:
        c = ex.cycle_counter()
        if c != prev:
            out[k] = c - prev
            k += 1
        prev = c


def clock_step() -> int:
    """How far the cycle counter usually advances between two reads that differ (its resolution, in ticks)."""
    out = np.zeros(4096, np.int64)
    _steps(out)
    return int(np.median(out))


def ns_per_cycle() -> float:
    """ns per tick of the cycle counter, measured once per process against perf_counter_ns."""
    global _NS_PER_CYCLE
    if _NS_PER_CYCLE is None:
        ex.read_cycles()  # compiled before the clock starts
        best = None
        for _ in range(3):
            t0, c0 = time.perf_counter_ns(), ex.read_cycles()
            while time.perf_counter_ns() - t0 < CALIBRATE_S * 1e9:
                pass
            t1, c1 = time.perf_counter_ns(), ex.read_cycles()
            r = (t1 - t0) / max(c1 - c0, 1)
            best = r if best is None else min(best, r)
        _NS_PER_CYCLE = best
    return _NS_PER_CYCLE


def bucket_of(v) -> np.ndarray:
    """numpy mirror of ``executor.hist_bucket`` (cycles -> bucket index)."""
    v = np.maximum(np.asarray(v, np.int64), 0)
    m = sum(((v >> b) > 0).astype(np.int64) for b in range(1, 63))   # the msb, exactly
    shift = np.maximum(m - ex.HIST_SUB_BITS, 0)
    idx = (shift + 1) * ex.HIST_SUB + (v >> shift) - ex.HIST_SUB
    idx = np.where(v < ex.HIST_SUB, v, idx)
    return np.where(m > ex.HIST_MAX_MSB, ex.HIST_BUCKETS - 1, idx)


def bucket_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Each bucket's [low, high) in cycles."""
    i = np.arange(ex.HIST_BUCKETS, dtype=np.int64)
    shift = np.maximum(i // ex.HIST_SUB - 1, 0)
    low = np.where(i < ex.HIST_SUB, i, (i % ex.HIST_SUB + ex.HIST_SUB) << shift)
    return low, low + (np.int64(1) << shift)


class Histogram:
    """Latency counts by op (alloc, free), cause and value, in ns (each bucket's midpoint)."""

    def __init__(self, values_ns: np.ndarray, counts: np.ndarray, max_ns: np.ndarray):
        self.values_ns = values_ns   # (nvalues,) ascending
        self.counts = counts         # (2, ncauses, nvalues)
        self.max_ns = max_ns         # (2,) the exact largest op seen (NaN if none)

    @classmethod
    def from_probe(cls, probe, ns_cycle: float | None = None) -> "Histogram":
        """The sum of a Probe's per-thread histograms, in ns."""
        ns_cycle = ns_per_cycle() if ns_cycle is None else ns_cycle
        return cls.from_buckets(np.sum(probe.hist, axis=0), np.max([m[:2] for m in probe.lat_max], axis=0),
                                ns_cycle)

    @classmethod
    def from_buckets(cls, counts: np.ndarray, max_ticks, ns_per_tick: float) -> "Histogram":
        """From counts in this layout's buckets, (2, LAT_CAUSES, HIST_BUCKETS), of a clock whose tick is
        ``ns_per_tick`` (the cycle counter's calibration; 1.0 for a clock in ns, as goreplay's), and
        each op kind's largest value in ticks."""
        low, high = bucket_bounds()
        used = counts.sum(axis=(0, 1)) > 0
        mx = np.asarray(max_ticks, float)[:2] * ns_per_tick
        mx[counts.sum(axis=(1, 2)) == 0] = np.nan
        return cls(((low + high - 1) / 2 * ns_per_tick)[used], counts[:, :, used], mx)

    def merge(self, other: "Histogram") -> "Histogram":
        vals = np.union1d(self.values_ns, other.values_ns)
        counts = np.zeros((2, ex.LAT_CAUSES, len(vals)), np.int64)
        for h in (self, other):
            counts[:, :, np.searchsorted(vals, h.values_ns)] += h.counts
        return Histogram(vals, counts, np.fmax(self.max_ns, other.max_ns))

    def count(self, op: int) -> int:
        return int(self.counts[op].sum())

    def mean(self, op: int) -> float:
        c = self.counts[op].sum(axis=0)
        return float((c * self.values_ns).sum() / c.sum()) if c.sum() else float("nan")

    def quantile(self, op: int, q: float) -> float:
        c = self.counts[op].sum(axis=0)
        n = c.sum()
        if n == 0:
            return float("nan")
        # the smallest value with at least q of the ops at or below it (numpy's "inverted_cdf"),
        # read as its bucket's midpoint, but never above the exact max: the slowest op can sit
        # in the lower half of the top bucket, and a p99.9 above the max reads as nonsense
        k = np.searchsorted(np.cumsum(c), q * n, side="left")
        v = float(self.values_ns[min(k, len(c) - 1)])
        mx = float(self.max_ns[op])
        return min(v, mx) if mx == mx else v

    def summary(self, op: int) -> dict[str, float]:
        """p50, p90, p99, p99.9, max (ns) and count of one op kind."""
        out = {f"p{_qname(q)}": self.quantile(op, q) for q in QUANTILES}
        out["max"] = float(self.max_ns[op])
        out["count"] = self.count(op)
        return out

    def tail(self, op: int, q: float = TAIL_Q) -> dict[str, int]:
        """Ops at or above the q-quantile's bucket, by cause."""
        thr = self.quantile(op, q)
        if thr != thr:
            return {}
        sel = self.values_ns >= thr
        by = self.counts[op][:, sel].sum(axis=1)
        return {CAUSES[k]: int(by[k]) for k in range(len(CAUSES)) if by[k]}

    def ccdf(self, op: int) -> tuple[np.ndarray, np.ndarray]:
        """(value ns, fraction of ops above it), for a log-log plot."""
        c = self.counts[op].sum(axis=0)
        n = max(int(c.sum()), 1)
        keep = c > 0
        return self.values_ns[keep], 1 - np.cumsum(c[keep]) / n

    def to_rows(self, **keys) -> list[dict]:
        """Sparse rows (op, cause, value_ns, count) for the results store's latency table."""
        rows = []
        for op in range(2):
            for cause in range(len(CAUSES)):
                nz = np.flatnonzero(self.counts[op, cause])
                rows += [dict(keys, op=OPS[op], cause=CAUSES[cause], value_ns=float(self.values_ns[j]),
                              count=int(self.counts[op, cause, j])) for j in nz]
            rows.append(dict(keys, op=OPS[op], cause="max", value_ns=float(self.max_ns[op]), count=0))
        return rows

    @classmethod
    def from_rows(cls, df) -> "Histogram":
        """The merged histogram of a latency table's rows (any number of runs and reps)."""
        body = df[df["cause"] != "max"]
        vals = np.unique(body["value_ns"].to_numpy(float))
        counts = np.zeros((2, ex.LAT_CAUSES, len(vals)), np.int64)
        op = body["op"].map({o: i for i, o in enumerate(OPS)}).to_numpy()
        cause = body["cause"].map(CAUSE_INDEX).to_numpy()
        np.add.at(counts, (op, cause, np.searchsorted(vals, body["value_ns"].to_numpy(float))),
                  body["count"].to_numpy(np.int64))
        mx = np.full(2, np.nan)
        for i, o in enumerate(OPS):
            m = df.loc[(df["cause"] == "max") & (df["op"] == o), "value_ns"]
            if len(m):
                mx[i] = float(m.max())
        return cls(vals, counts, mx)


def _qname(q: float) -> str:
    s = f"{q * 100:.1f}".rstrip("0").rstrip(".")
    return s


def summary_line(h: Histogram, op: int) -> str:
    s = h.summary(op)
    if not s["count"]:
        return f"  {OPS[op]:<6} (no ops timed)"
    ns = "  ".join(f"{k} {_fmt_ns(s[k])}" for k in ("p50", "p90", "p99", "p99.9", "max"))
    tail = h.tail(op)
    n = sum(tail.values()) or 1
    mix = ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(tail.items(), key=lambda kv: -kv[1]))
    return f"  {OPS[op]:<6} {ns}  ({s['count']:,} timed)\n         top 0.1%: {mix}"


def _fmt_ns(v: float) -> str:
    if v != v:
        return "-"
    return f"{v:.0f} ns" if v < 10_000 else f"{v / 1000:.1f} us"
