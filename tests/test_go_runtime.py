"""go-runtime: the real Go runtime as a peer (strategies/go_runtime/goreplay), and its availability."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.cli import main
from alloclab.harness.runner import counters_dict, run_cell
from alloclab.strategies import go_runtime as G
from alloclab.strategies._config import ConfigError
from alloclab.strategies import _counters as K
from alloclab.strategies._counters import ALLOCS, FREES
from alloclab.workloads import generate
from alloclab.workloads.trace import make_trace

WHY = G.unavailable_reason()
needs_go = pytest.mark.skipif(WHY is not None, reason=f"go-runtime unavailable: {WHY}")


@pytest.fixture(scope="module")
def web():
    return generate("web", procs=2, scale=0.002)


MIN_HEAP = 4 << 20   # Go's heapminimum at GOGC=100 (mgcpacer.go), scaled by GOGC/100


def _gc_cycle_bounds(tr, gogc):
    """The GC cycles a replay of ``tr`` must see at ``gogc``, from what it allocates.

    A cycle starts once the heap has grown from the last cycle's live heap toward the
    goal, max(MIN_HEAP x gogc/100, live x (1 + gogc/100)), and the pacer triggers it at
    no less than 0.7 of that growth. So cycles come at least a quarter of the smallest
    goal of allocation apart (hi), and at most twice the largest goal apart (lo); the
    live heap is at most the trace's peak live bytes plus goreplay's slot table (8 B a
    slot: the peak live object count) and 1 MiB of its own.
    """
    s = tr.stats()
    g = gogc / 100
    goal_min = MIN_HEAP * g
    goal_max = max(MIN_HEAP * g, (s["peak_live_bytes"] + 8 * G.assign_slots(tr)[1] + (1 << 20)) * (1 + g))
    return int(s["alloc_bytes"] // (2 * goal_max)), int(s["alloc_bytes"] * 4 // goal_min)


def _sane(tr, res, procs):
    s = tr.stats()
    assert res.status == "ok", res.error
    assert int(res.counters[ALLOCS]) == s["allocs"] and int(res.counters[FREES]) == s["frees"]
    ns = res.wall_s * 1e9 / len(tr)
    assert 1 < ns < 1e6, ns
    assert len(res.per_p_wall_s) == procs and all(t > 0 for t in res.per_p_wall_s)
    # the heap held at the peak, above the rep's baseline, holds the peak live bytes (sampled: allow
    # what 4096 ops of allocation could add between two samples) and is not absurdly large
    assert 0.5 * s["peak_live_bytes"] <= res.peak_mapped_bytes < 64 * s["peak_live_bytes"] + (64 << 20)
    assert res.in_use_at_peak > 0
    c = counters_dict(G, res)
    assert c["heap_sys_peak"] >= c["heap_inuse_peak"] >= c["heap_alloc_peak"] > 0
    assert c["sys_peak"] >= c["heap_sys_peak"]
    lo, hi = _gc_cycle_bounds(tr, G.Config().gogc)
    assert lo <= c["gc_cycles"] <= hi, (c["gc_cycles"], lo, hi)
    assert res.extra["go_version"].startswith("go") and res.extra["samples"] >= 1


@needs_go
@pytest.mark.parametrize("mode", ["serial", "threads"])
def test_replays_web(web, mode):
    out = run_cell("go-runtime", G.Config(), web, mode=mode, reps=2, check=True)
    assert [rep for rep, _ in out] == [0, 1]
    for _, res in out:
        _sane(web, res, 1 if mode == "serial" else 2)
        assert res.extra["gomaxprocs"] == (1 if mode == "serial" else 2)


def _pairs(n, size):
    """alloc/free of one ``size`` n times on one P: n x size bytes allocated, one object live."""
    op = np.tile(np.array([0, 1], np.int8), n)
    obj = np.repeat(np.arange(n, dtype=np.int64), 2)
    return make_trace(np.zeros(2 * n, np.int16), op, np.zeros(2 * n, np.int8), np.full(2 * n, size, np.int32),
                      obj, procs=1)


@needs_go
def test_gc_cycles_follow_from_the_bytes_allocated():
    """64 MiB through a one-object heap at GOGC=100 is 16 minimum heap goals: several
    cycles; 256 KiB never reaches the first goal: none."""
    big, tiny = _pairs(16384, 4096), _pairs(64, 4096)
    lo, hi = _gc_cycle_bounds(big, 100)
    assert lo >= 4
    [(_, r)] = run_cell("go-runtime", G.Config(gogc=100), big, reps=1)
    cycles = counters_dict(G, r)["gc_cycles"]
    assert lo <= cycles <= hi, (cycles, lo, hi)
    assert _gc_cycle_bounds(tiny, 100) == (0, 0)
    [(_, r)] = run_cell("go-runtime", G.Config(gogc=100), tiny, reps=1)
    assert counters_dict(G, r)["gc_cycles"] == 0


def _heap_inuse(r) -> int:
    """Peak HeapInuse above the baseline: stacks left out (in_use_at_peak includes StackInuse, and
    HeapHeld the free pages stack spans give back)."""
    return r.extra["peak"]["HeapInuse"] - r.extra["base"]["HeapInuse"]


@needs_go
def test_gogc_trades_memory_for_collections(web):
    [(_, off)] = run_cell("go-runtime", G.Config(gogc=-1), web, reps=1)
    [(_, tight)] = run_cell("go-runtime", G.Config(gogc=25), web, reps=1)
    c_off, c_tight = counters_dict(G, off), counters_dict(G, tight)
    assert c_off["gc_cycles"] == 0 and c_tight["gc_cycles"] > 0
    # with the collector off every heap byte allocated stays: the heap ends near the trace's allocated
    # heap and noscan bytes (its stacks are goroutines' stacks, freed when they exit, GC or not)
    heap_bytes = int(web.size[(web.op == 0) & (web.kind != K.KIND_STACK)].sum())
    assert _heap_inuse(off) > 0.8 * heap_bytes
    # at scale 0.002 the heap part is small (2.6 MB allocated, half of it live at its peak): a
    # collector at GOGC=25 still keeps clearly less than all of it
    assert _heap_inuse(tight) < 0.75 * _heap_inuse(off)
    with pytest.raises(ConfigError):
        G.Config(gogc=-2).validate()


@needs_go
def test_cli_run_json(capsys):
    assert main(["run", "-s", "go-runtime", "-w", "web", "--scale", "0.002", "--procs", "2", "--mode", "threads",
                 "--reps", "1", "--check", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["status"] == "ok" and row["strategy"] == "go-runtime" and row["ns_per_op"] > 0
    assert row["peak_mapped_bytes"] > 0 and "gc_cycles" in row["counters"]


@needs_go
def test_goreplay_refuses_bad_files(tmp_path, web):
    exe = G.binary_path()
    f = tmp_path / "t.bin"
    G.write_trace(web, f)
    raw = f.read_bytes()
    for blob, msg in ((b"ALCGOTR1", "shorter than"), (b"XXXXXXXX" + raw[8:], "bad magic"),
                      (raw[: len(raw) - 100], "truncated")):
        f.write_bytes(blob)
        res = subprocess.run([str(exe), "-trace", str(f)], capture_output=True, text=True)
        assert res.returncode == 2 and msg in res.stderr and res.stderr.count("\n") == 1, res.stderr
    bad = bytearray(raw)
    bad[64] = 0x7f    # p of op 0 = 127 >= procs
    f.write_bytes(bytes(bad))
    res = subprocess.run([str(exe), "-trace", str(f)], capture_output=True, text=True)
    assert res.returncode == 2 and "out of range" in res.stderr


@needs_go
def test_build_failure_is_a_reason(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.go").write_text("package main\nfunc main() { undefined_thing() }\n")
    (src / "go.mod").write_text("module broken\n\ngo 1.19\n")
    monkeypatch.setattr(G, "SOURCE_DIR", src)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert G.unavailable_reason() is None          # not built yet: nothing known against it
    with pytest.raises(G.GoRuntimeError, match="go build of goreplay failed.*undefined"):
        G.binary_path()
    why = G.unavailable_reason()
    assert why is not None and "go build of goreplay failed" in why and "delete" in why


def test_unavailable_without_go(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert G.unavailable_reason() == "no Go toolchain (apt-get install golang-go)"
    assert "go-runtime" not in strategies.names() and "go-runtime" in strategies.names(include_unavailable=True)
    assert "go-runtime" not in strategies.kernel_names()
    with pytest.raises(strategies.UnavailableStrategy, match="no Go toolchain"):
        strategies.get("go-runtime")


def test_list_shows_unavailable_without_go(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "alloclab.harness.cli", "list"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("go-runtime"))
    assert "[unavailable: no Go toolchain (apt-get install golang-go)]" in line


def test_not_in_kernel_suite():
    """External: no State/alloc/free, so the shared numba suite must not see it."""
    assert not hasattr(G, "alloc") and not hasattr(G, "make_state") and G.check(None) == []
    assert G.NAME == "go-runtime" and G.DESCRIPTION == strategies.describe("go-runtime")
    assert len(G.EXTRA_COUNTERS) == 11 and G.Config().gogc == 100


def _batches(n, sizes, kinds, batch, procs=1, seed=0):
    """n objects of random ``sizes`` and ``kinds``, allocated ``batch`` at a time and freed in a
    shuffled order before the next batch (peak live objects: ``batch``); ops on random Ps."""
    rng = np.random.default_rng(seed)
    size = rng.choice(np.asarray(sizes, np.int32), n)
    kind = rng.choice(np.asarray(kinds, np.int8), n)
    op, obj = [], []
    for b in range(0, n, batch):
        ids = np.arange(b, min(n, b + batch))
        op += [0] * len(ids) + [1] * len(ids)
        obj += list(ids) + list(rng.permutation(ids))
    obj = np.asarray(obj, np.int64)
    return make_trace(rng.integers(0, procs, len(obj)).astype(np.int16), np.asarray(op, np.int8), kind[obj],
                      size[obj], obj, procs=procs)


@pytest.mark.parametrize("mode", ["serial", "threads"])
def test_slots_hold_one_live_object_each(mode):
    """The writer's slot table: serial needs exactly the peak live object count; in threads mode a
    slot changes P only through a free (the freeing P reuses it), and no slot ever holds two live
    objects."""
    tr = _batches(5000, [16], [1], batch=100, procs=3, seed=1)
    slot, nslots = G.assign_slots(tr, mode)
    assert slot.dtype == np.int32 and len(slot) == len(tr)
    if mode == "serial":
        assert nslots == 100
    else:
        assert 100 <= nslots < tr.nobj
    holder = np.full(nslots, -1, np.int64)     # object in the slot now
    freed_by = np.full(nslots, -1, np.int64)   # P that last freed the slot
    for i in range(len(tr)):
        s, o = slot[i], tr.obj[i]
        if tr.op[i] == 0:
            assert holder[s] == -1
            if mode == "threads" and freed_by[s] >= 0:
                assert freed_by[s] == tr.p[i]
            holder[s] = o
        else:
            assert holder[s] == o
            holder[s], freed_by[s] = -1, tr.p[i]
    empty = make_trace(*(np.zeros(0, t) for t in (np.int16, np.int8, np.int8, np.int32, np.int64)), procs=1)
    s, n = G.assign_slots(empty, mode)
    assert len(s) == 0 and n == 0


@needs_go
def test_one_live_object_keeps_the_heap_small():
    """A million alloc/free pairs of one 64-B object: goreplay's slot table has one slot and its
    20 MB of trace columns are mapped, not Go heap, so the peak in-use is the garbage Go lets
    pile up between cycles and nothing of goreplay's. Not under 1 MiB: Go 1.19 triggers a cycle
    no sooner than sweepMinHeapDistance (1 MiB, src/runtime/mgc.go) above the live heap
    (sweepDistMinTrigger in mgcpacer.go), so at a low GOGC (heap minimum 4 MiB x GOGC/100) the
    floor is that 1 MiB plus partly used spans. An id-indexed slot table would add 8 MB."""
    tr = _pairs(1_000_000, 64)
    [(_, r)] = run_cell("go-runtime", G.Config(gogc=5), tr, reps=1)
    c = counters_dict(G, r)
    assert r.status == "ok" and c["slots"] == 1 and c["gc_cycles"] >= 20
    assert 0 < r.in_use_at_peak < 1536 << 10, r.in_use_at_peak
    assert c["heap_inuse_peak"] < 2 << 20, c["heap_inuse_peak"]     # raw: with the runtime's own heap
    assert r.peak_mapped_bytes < 2 << 20, r.peak_mapped_bytes


def _expected_by_size(tr, class_sizes):
    """Per BySize class, the trace's allocs that Go puts there, and the allocs its tiny allocator
    takes (noscan under 16 B: a tiny-block hit, or a new block counted in the 16-B class).
    goreplay allocates kind 0 as 8-B words, kind 1 as bytes; kind 2 (stacks) are goroutines, whose
    only heap allocation is the runtime's G when no free one exists (not counted here)."""
    a = (tr.op == 0) & (tr.kind != 2)
    size, kind = tr.size[a].astype(np.int64), tr.kind[a]
    go_size = np.where(kind == 0, (size + 7) // 8 * 8, size)
    tiny = (kind != 0) & (go_size < 16)
    small = ~tiny & (go_size <= class_sizes[-1])
    cls = np.searchsorted(class_sizes, go_size[small], side="left")
    return np.bincount(cls, minlength=len(class_sizes)), int(tiny.sum())


@needs_go
@pytest.mark.parametrize("mode", ["serial", "threads"])
def test_allocations_per_size_class(mode):
    """BySize deltas are the trace's allocations, class for class: Mallocs = the trace's allocs in
    the class plus goreplay's own few; the 16-B class and the tiny count share the tiny-eligible
    allocs; Frees (after a sweeping GC) = the same objects, all freed here. Sizes above
    BySize[60].Size (19072 B in Go 1.19) are not in BySize."""
    sizes = [1, 7, 8, 12, 15, 16, 17, 24, 100, 1000, 1024, 5000, 19072, 19073, 32768, 40000]
    tr = _batches(20000, sizes, [0, 1, 2], batch=500, procs=2, seed=2)
    [(_, r)] = run_cell("go-runtime", G.Config(), tr, mode=mode, reps=1, check=True)
    assert r.status == "ok", r.error
    by = r.extra["by_size"]
    class_sizes = np.array([k["size"] for k in by])
    mallocs = np.array([k["mallocs"] for k in by])
    frees = np.array([k["frees"] for k in by])
    assert len(by) == 61 and class_sizes[0] == 0 and class_sizes[1] == 8 and np.all(np.diff(class_sizes) > 0)
    want, tiny = _expected_by_size(tr, class_sizes)
    c16 = int(np.searchsorted(class_sizes, 16))
    own = 64    # goreplay's allocations during a rep: samplers, and in threads mode its goroutines
    got = mallocs.copy()
    got[c16] += r.extra["tiny_allocs"]
    want[c16] += tiny
    # stack objects are goroutines: the runtime's new Gs (when no free G is left) and the sudogs of
    # their channel waits land in two classes (416 and 96 B in Go 1.19); sudogs are cached per P
    # and centrally, and the central cache is dropped at each GC, so up to one per parked goroutine
    # per cycle (and the start)
    c = counters_dict(G, r)
    excess = got - want
    runtime_classes = np.argsort(excess)[-2:]
    assert np.all(excess >= 0), excess
    assert np.all(excess[runtime_classes] <= own + (c["gc_cycles"] + 2) * c["stack_goroutines_peak"]), excess
    assert np.all(np.delete(excess, runtime_classes) <= own), excess
    assert 0 < r.extra["tiny_allocs"] < tiny      # hits in a current block, and new blocks
    nontiny = (np.arange(len(by)) != c16) & ~np.isin(np.arange(len(by)), runtime_classes)
    assert np.all(frees[nontiny] >= want[nontiny]) and np.all(frees[nontiny] - want[nontiny] <= own)
    assert c["bysize_mallocs"] == int(mallocs.sum()) and c["tiny_allocs"] == r.extra["tiny_allocs"]
    big = int(((tr.op == 0) & (tr.kind != 2) & (tr.size > class_sizes[-1])).sum())
    assert r.extra["go_mallocs"] >= c["bysize_mallocs"] + c["tiny_allocs"] + big


def _stacks_only(sizes, per, pad=8192):
    """``per`` stack objects of each size, all live at once, then freed; between, ``pad`` alloc/free
    pairs of one 16-B noscan object so that goreplay's sampler (every 4096 ops) reads the peak."""
    n = per * len(sizes)
    sz = np.repeat(np.asarray(sizes, np.int32), per)
    obj = np.concatenate([np.arange(n), n + np.repeat(np.arange(pad), 2), np.arange(n)])
    op = np.concatenate([np.zeros(n), np.tile([0, 1], pad), np.ones(n)]).astype(np.int8)
    kind = np.concatenate([np.full(n, K.KIND_STACK), np.full(2 * pad, K.KIND_NOSCAN),
                           np.full(n, K.KIND_STACK)]).astype(np.int8)
    size = np.concatenate([sz, np.full(2 * pad, 16, np.int32), sz])
    return make_trace(np.zeros(len(op), np.int16), op, kind, size, obj, procs=1), int(sz.sum())


@needs_go
def test_stack_objects_are_goroutine_stacks():
    """Stack objects are parked goroutines' stacks: StackInuse rises by about the traced bytes (Go's
    power-of-two stacks; the stacks each goroutine grew through stay cached, a few %), the heap by
    little (the runtime's Gs and goreplay's holders are made before the baseline), and every
    goroutine is released by the end of the rep (check mode)."""
    sizes = [2048, 4096, 8192, 16384, 32768, 65536]
    tr, traced = _stacks_only(sizes, per=100)
    [(_, r)] = run_cell("go-runtime", G.Config(), tr, reps=1, check=True)
    assert r.status == "ok", r.error
    c = counters_dict(G, r)
    stack_rise = r.extra["peak"]["StackInuse"] - r.extra["base"]["StackInuse"]
    assert traced <= stack_rise < 1.1 * traced, (stack_rise, traced)
    assert c["stack_inuse_peak"] == r.extra["peak"]["StackInuse"]
    heap_rise = r.extra["peak"]["HeapInuse"] - r.extra["base"]["HeapInuse"]
    assert heap_rise < 0.05 * traced, heap_rise
    # peak in-use and held are the model's: heap and stack spans together
    assert traced <= r.in_use_at_peak < 1.15 * traced
    assert r.extra["peak"]["Held"] >= r.extra["peak"]["InUse"]   # raw: held >= in use at every sample
    assert c["stack_goroutines_peak"] == len(sizes) * 100
    assert c["goroutines_leaked"] == 0 and r.extra["stack_goroutines_end"] == 0


@needs_go
@pytest.mark.parametrize("mode", ["serial", "threads"])
def test_stack_goroutines_live_at_the_end_are_released(mode):
    """A trace that leaves stacks live: goreplay releases them after the rep and counts none left."""
    tr, _ = _stacks_only([2048, 8192], per=50, pad=100)
    keep = len(tr) - 30                    # the last 30 frees are cut: 30 stacks live at the end
    cut = make_trace(tr.p[:keep], tr.op[:keep], tr.kind[:keep], tr.size[:keep], tr.obj[:keep], procs=1,
                     validate=False)
    if mode == "threads":
        p = (np.arange(keep) % 2).astype(np.int16)
        cut = make_trace(p, cut.op, cut.kind, cut.size, cut.obj, procs=2, validate=False)
    out = run_cell("go-runtime", G.Config(), cut, mode=mode, reps=2, check=True)
    assert [r.status for _, r in out] == ["ok", "ok"], [r.error for _, r in out]
    for _, r in out:
        assert r.extra["stack_goroutines_end"] == 30 and r.extra["goroutines_leaked"] == 0
