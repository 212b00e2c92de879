"""Run one cell: a strategy + config on a trace, in serial or threads mode.

A cell is measured ``reps`` times, each on a fresh state (fresh mapping over
the reused arena), after one untimed warm-up run on a prefix of the trace
that compiles or loads the kernels and faults in the arena's pages.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from types import ModuleType

import numpy as np

from alloclab import strategies
from alloclab.harness import executor as ex
from alloclab.strategies import _counters as counters
from alloclab.strategies._descriptor import Strategy
from alloclab.strategies._heap import DEFAULT_ARENA_MB, Heap
from alloclab.strategies._result import RunResult  # noqa: F401  (re-exported: harness callers import it from here)

# Serial replay runs in slices so that long runs stay interruptible and a
# strategy can sample memory (``sample_memory``) between them; a slice costs
# one Python->numba call (~5-20 us), < 0.1 ns/op at this length.
SLICE_OPS = 1 << 18
WARMUP_OPS = 20_000
MODES = ("serial", "threads")
# threads mode's coupling between Ps (executor stats), reported with the counters
PUBLISH_COUNTERS = {"deferred_frees": ex.STAT_DEFERRED, "publish_waits": ex.STAT_WAITS,
                    "publish_yields": ex.STAT_YIELDS}


@dataclasses.dataclass(frozen=True)
class Instrument:
    """What a latency/timeline repetition records: time 1 op in ``sample`` (0: no latency;
    harness/latency.py), a memory row every ``timeline_every`` ops (0: no timeline; -1: the
    default for the trace's length, harness/timeline.py)."""

    sample: int = 0
    timeline_every: int = 0

    def __bool__(self):
        return bool(self.sample or self.timeline_every)


def _probe(d, instrument, n, threads):
    from alloclab.harness import latency, timeline

    names = latency.strategy_counters(d)
    every = timeline.default_every(n) if instrument.timeline_every < 0 else instrument.timeline_every
    return ex.Probe(threads, sample_every=instrument.sample, tags=latency.tags_for(names),
                    tl_every=every, tl_rows=timeline.rows_needed(n, max(every, 1)), gc_col=timeline.gc_column(names))


def _split_by_p(trace, procs):
    """Per-P column sets (in logical order within each P) and each op's global index.

    Object ids are renumbered so that each P's allocations own a contiguous,
    cache-line-separated stretch of the shared address table: with the trace's
    ids (dense in global allocation order, so interleaved between Ps) every
    publish wrote a cache line the other Ps were writing too. Measured with
    freelist on independent random streams (8M ops) 2 Ps now run 2.0x one P.
    """
    alloc = np.flatnonzero(trace.op == 0)
    ap = trace.p[alloc]
    order = np.argsort(ap, kind="stable")
    counts = np.bincount(ap, minlength=procs)
    pad = 8  # int64 slots per cache line
    base = np.concatenate([[0], np.cumsum(counts + pad)[:-1]])
    new_id = np.empty(max(trace.nobj, 1), np.int64)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    new_id[trace.obj[alloc][order]] = base[ap[order]] + rank
    obj = new_id[trace.obj]
    out, where = [], []
    for p in range(procs):
        idx = np.flatnonzero(trace.p == p)
        out.append(tuple(np.ascontiguousarray(col[idx]) for col in (trace.p, trace.op, trace.kind, trace.size, obj)))
        where.append(idx)
    return out, where, int(base[-1] + counts[-1] + pad)


def replay_trace(strategy: str | Strategy | ModuleType, trace, config=None, *, mode="serial", check=False,
                 arena_mb=DEFAULT_ARENA_MB) -> RunResult:
    """Replay ``trace`` once on a fresh state of ``strategy`` (a name, a registered module, or a
    descriptor, which may be outside the registry) with ``config`` (default: the defaults), no
    warm-up: the one call tests and benchmarks use.

    The result keeps the final state (``.state``) and, in serial mode, each object's address
    (``.addr_of``); a failed replay is a result with its status, not an exception."""
    d = strategies.resolve(strategy)
    mod = d.load()
    return replay_once(d, mod.Config() if config is None else config, trace, trace.procs, mode=mode, check=check,
                       arena_mb=arena_mb)


def replay_once(strategy: str | Strategy | ModuleType, config, trace, procs, mode="serial", check=False,
                arena_mb=DEFAULT_ARENA_MB, stop=None, progress=None, instrument: Instrument | None = None) -> RunResult:
    """Replay ``trace`` (or its first ``stop`` ops) once on a fresh state. With ``instrument``, the
    timed replay: the result's ``extra`` has ``latency`` (a latency.Histogram) and/or ``timeline``
    (a DataFrame, timeline.COLUMNS)."""
    d = strategies.resolve(strategy)
    mod = d.load()
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose from {', '.join(MODES)}")
    heap = Heap(arena_mb << 20)
    n = len(trace) if stop is None else min(stop, len(trace))
    # Every buffer of the run is made before the strategy's state: ``system``
    # measures libc's heap from make_state on, and must not count ours.
    trace_cols = where = None
    n_ids = max(trace.nobj, 1)
    if mode == "threads":
        trace_cols, where, n_ids = _split_by_p(_prefix(trace, n) if stop is not None else trace, procs)
    probe = _probe(d, instrument, n, procs if mode == "threads" else 1) if instrument else None
    rp = ex.Replay(heap.arena, n_ids, procs=procs, threads=mode == "threads", check=check, align16=d.align16,
                   probe=probe)
    st = mod.make_state(config, heap, procs)
    if probe is not None:
        from alloclab.harness import timeline

        goal = timeline.heap_goal_word(d, st)
        if goal is not None:
            probe.goal_arr, probe.goal_idx = goal
    peak_op = trace.stats()["peak_op"] if stop is None else -1
    status, fail_op, fail_addr, in_use_peak = ex.OK, -1, -1, -1
    os_rows = None   # serial timeline of a memory outside the Heap: {op: the library's figure}
    per_p = []
    extra = {}
    if mode == "serial":
        cols = ex.columns(trace)
        wall = 0.0
        step = SLICE_OPS
        if probe is not None and probe.tl_every and d.samples_mapped:
            # a memory outside the Heap (libc's, a loaded allocator's) is sampled from here: slices
            # end where the timeline's rows fall, and the row at each slice's end takes the sample
            # (why such a run's latency is a replay of its own: _apart)
            step = probe.tl_every
            d.sample_memory(st)
            os_rows = {0: d.sampled_mapped(st)}
        for start in range(0, n, step):
            end = min(n, start + step)
            t0 = time.perf_counter()
            status = rp.run(st, cols, start, end, peak_op=peak_op)
            wall += time.perf_counter() - t0
            d.sample_memory(st)
            if os_rows is not None:
                os_rows[end] = d.sampled_mapped(st)
            if progress is not None:
                progress(end - start)
            if status != ex.OK:
                break
        stats = rp.stats[0]
        fail_op, fail_addr = int(stats[ex.STAT_FAIL_OP]), int(stats[ex.STAT_FAIL_ADDR])
        in_use_peak = int(stats[ex.STAT_IN_USE_AT_PEAK])
        per_p = [wall]
    else:
        results = [None] * procs
        times = [0.0] * procs
        barrier = threading.Barrier(procs + 1)

        def worker(p):
            cols = trace_cols[p]
            barrier.wait()
            t0 = time.perf_counter()
            results[p] = rp.run(st, cols, p=p)
            times[p] = time.perf_counter() - t0

        threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in range(procs)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        d.sample_memory(st)
        per_p = times
        # the harness's own coupling between Ps: frees that came before their alloc was published
        extra = {name: int(sum(r[col] for r in rp.stats)) for name, col in PUBLISH_COUNTERS.items()}
        for p in range(procs):
            if results[p] not in (ex.OK, ex.ABORTED):
                status = results[p]
                fail_op = int(where[p][rp.stats[p][ex.STAT_FAIL_OP]])  # the P's stream index -> trace index
                fail_addr = int(rp.stats[p][ex.STAT_FAIL_ADDR])
                break
        else:
            if any(r == ex.ABORTED for r in results):
                status = ex.ABORTED
        if progress is not None:
            progress(n)
    summed = st.counters.sum(axis=0)
    peak_mapped = d.peak_mapped_bytes(st, heap)
    if status == ex.OK:
        st_name, err = "ok", ""
    elif status == ex.OOM:
        st_name = "oom"
        err = (f"arena exhausted at op {fail_op}: {mod.NAME} asked to map {int(heap.meta[6])} bytes with "
               f"{heap.mapped_bytes >> 20} MiB of {arena_mb} MiB mapped (raise --arena-mb)")
    else:
        st_name = "check_failed"
        err = f"{ex.STATUS_TEXT[status]} at op {fail_op} (address {fail_addr})"
        if 0 <= fail_op < len(trace):
            err += (f": {'alloc' if trace.op[fail_op] == 0 else 'free'} of object {trace.obj[fail_op]}, "
                    f"{trace.size[fail_op]} B on P{trace.p[fail_op]}")
    if probe is not None and status == ex.OK:
        extra.update(_probe_results(d, probe, rp, trace, n, where, os_rows))
    return RunResult(st_name, err, wall, summed, per_p, peak_mapped, in_use_peak, extra=extra, state=st,
                     addr_of=rp.addr_of if mode == "serial" else None)


def _probe_results(d, probe, rp, trace, n, where, os_rows) -> dict:
    from alloclab.harness import latency, timeline

    out = {}
    if probe.sample_every:
        out["latency"] = latency.Histogram.from_probe(probe)
    if probe.tl_every:
        out["timeline"] = timeline.frame(probe, [int(s[ex.STAT_TL_ROWS]) for s in rp.stats],
                                         live=trace.live_bytes()[:n + 1], where=where,
                                         real_pointers=d.real_pointers, os_rows=os_rows)
    return out


def _prefix(trace, n):
    from alloclab.workloads.trace import Trace

    return Trace(trace.p[:n], trace.op[:n], trace.kind[:n], trace.size[:n], trace.obj[:n], trace.procs, trace.meta)


def run_cell(strategy: str, config, trace, *, mode="serial", reps=1, check=False, arena_mb=DEFAULT_ARENA_MB,
             warmup=True, progress=None, on_rep=None, yardstick=None, instrument: Instrument | None = None):
    """Measure a cell ``reps`` times; returns a list of ``(rep, RunResult)``.

    ``instrument``: latency/timeline repetitions (the timed replay, warm-up included) instead of
    throughput ones; their ``wall_s`` includes the probe's cost and is not a throughput figure.

    ``yardstick`` (harness/calibrate.py), when given, is timed right before and
    right after each repetition; their mean is the repetition's ``extra["ref_s"]``.
    """
    mod = strategies.get(strategy)
    d = strategies.descriptor(strategy)
    procs = trace.procs
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose from {', '.join(MODES)}")
    if d.is_external:
        # a real peer outside numba (the Go runtime): it replays the trace itself and
        # returns one RunResult per repetition, warm-up included on its side; latency/timeline
        # repetitions only for what it records itself (descriptor.external_probes)
        for probe, on in (("latency", instrument and instrument.sample), ("timeline", instrument and
                                                                         instrument.timeline_every)):
            if on and not d.records(probe):
                raise ValueError(f"{strategy} replays traces itself and records no {probe}")
        before = yardstick() if yardstick else None
        out = d.run_external(config, trace, mode=mode, reps=reps, check=check, progress=progress,
                             instrument=instrument or None)
        if yardstick:  # its repetitions run inside one Go process: one yardstick around them all
            ref = (before + yardstick()) / 2
            for _, r in out:
                r.extra["ref_s"] = ref
        if on_rep is not None:
            for rep, r in out:
                on_rep(rep, r)
        return out
    if warmup:
        # fault in as much arena as any strategy could map for this trace
        # (every byte ever allocated, rounded, plus slack for metadata)
        from alloclab.strategies._heap import get_arena, prefault

        prefault(get_arena(arena_mb << 20), int(trace.stats()["alloc_bytes"] * 1.25) + (64 << 20))
        # warm-up in the mode being measured, on a prefix (threads too: it starts the kernels' code paths)
        replay_once(d, config, trace, procs, mode=mode, check=False, arena_mb=arena_mb,
                    stop=min(len(trace), WARMUP_OPS), instrument=instrument)
    out = []
    for rep in range(reps):
        before = yardstick() if yardstick else None
        if _apart(d, instrument, mode):
            r = replay_once(d, config, trace, procs, mode=mode, arena_mb=arena_mb, progress=progress,
                            instrument=Instrument(sample=instrument.sample))
            if r.status == "ok":
                t = replay_once(d, config, trace, procs, mode=mode, arena_mb=arena_mb,
                                instrument=Instrument(timeline_every=instrument.timeline_every))
                if t.status == "ok":
                    r.extra["timeline"] = t.extra["timeline"]
        else:
            r = replay_once(d, config, trace, procs, mode=mode, check=check, arena_mb=arena_mb, progress=progress,
                            instrument=instrument)
        if yardstick:
            r.extra["ref_s"] = (before + yardstick()) / 2
        if check and r.status == "ok":
            errs = mod.check(r.state)
            if errs:
                r.status, r.error = "check_failed", f"{strategy}.check(): " + "; ".join(errs[:3])
        out.append((rep, r))
        if on_rep is not None:
            on_rep(rep, r)
        if r.status != "ok":
            break
    return out


def _apart(d, instrument, mode) -> bool:
    """Whether a latency-and-timeline repetition runs as two replays, one for each: a serial
    timeline of a memory sampled between slices (``samples_mapped``) cuts the run into a slice per
    row, and each slice's Python call and library read would leave the next ops' caches cold and
    their latencies in the tail (a row every 1/1000 of the trace is a thousand such ops)."""
    return bool(instrument and instrument.sample and instrument.timeline_every and mode == "serial"
                and d.samples_mapped)


def counters_dict(strategy: str | Strategy | ModuleType, result: RunResult) -> dict[str, int]:
    """The run's counters by name: the standard ones, the strategy's extras, and the harness's
    threads-mode coupling between Ps (PUBLISH_COUNTERS)."""
    c = result.counters
    d = {name: int(c[i]) for i, name in counters.STANDARD_NAMES.items()}
    for j, name in enumerate(strategies.resolve(strategy).extra_counters):
        d[name] = int(c[counters.EXTRA_BASE + j])
    for k in PUBLISH_COUNTERS:
        if k in result.extra:
            d[k] = int(result.extra[k])
    return d
