"""The suite every strategy must pass (one test body, parametrised over the registry)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from alloclab import strategies
from alloclab.harness.runner import replay_once, replay_trace, run_cell
from alloclab.strategies import _counters as counters
from alloclab.workloads import generate
from alloclab.workloads.trace import make_trace

from reference import replay_addresses
from strategy_checks import random_trace

NAMES = strategies.kernel_names()
REUSING = [n for n in NAMES if n not in ("bump",)]
# the real allocators: process pointers, their own memory figures (no arena to map or to check against)
REAL = ("system", "jemalloc", "tcmalloc", "mimalloc")


small_trace = random_trace(procs=2, seed=7, ops=6000, dist="medium", live=300, cross_p=0.2)
threads_trace = random_trace(procs=4, seed=3, ops=8000, dist="small", live=200, cross_p=0.3)


# Reuse at once is eager freeing: go's default (Go's GOGC = 100) reuses a slot only after a GC cycle, so the
# reuse test runs go's variant without GC lag.
EAGER = {"go": {"gogc": 0}}


def _run(name, trace, arena_mb, config=None, **kw):
    mod = strategies.get(name)
    [(rep, r)] = run_cell(name, mod.Config(**(config or {})), trace, warmup=False, arena_mb=arena_mb, **kw)
    return mod, r


@pytest.mark.parametrize("name", NAMES)
def test_contract_surface(name):
    mod = strategies.get(name)
    for attr in ("NAME", "DESCRIPTION", "EXTRA_COUNTERS", "Config", "State", "make_state", "alloc", "free", "check"):
        assert hasattr(mod, attr), f"{name} lacks {attr}"
    assert mod.NAME == name
    cfg = mod.Config()
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cfg)[0].name, 1)
    assert cfg.validate() is cfg
    for f in ("counters", "meta", "arena"):
        assert f in mod.State._fields
    assert len(mod.EXTRA_COUNTERS) <= counters.NCOUNTERS - counters.EXTRA_BASE
    for fname, default, rng, doc in mod.Config.describe():
        assert doc, f"{name}.Config.{fname} has no doc saying what it trades"


def test_every_state_type_has_its_own_name(arena_mb):
    """numba names a compiled specialisation by its argument types' names: two strategies whose States
    print the same (a class name and field types in common) got one machine-code symbol, and the second
    ran the first's kernels (jemalloc called tcmalloc's functions and crashed)."""
    from numba import typeof

    from alloclab.strategies._heap import Heap

    seen = {}
    for name in NAMES:
        if strategies.unavailable_reason(name):
            continue
        mod = strategies.get(name)
        st = mod.make_state(mod.Config(), Heap(64 << 20), 1)
        key = str(typeof(st))
        assert key not in seen, f"{name}'s State types as {seen.get(key)}'s: {key[:80]}"
        seen[key] = name


@pytest.mark.parametrize("name", NAMES)
def test_random_trace_checked_serial(name, small_trace, arena_mb):
    mod, r = _run(name, small_trace, arena_mb, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    s = small_trace.stats()
    assert r.counters[counters.ALLOCS] == s["allocs"] and r.counters[counters.FREES] == s["frees"]
    # everything was freed: nothing may still count as in use
    assert r.counters[counters.IN_USE] == 0


@pytest.mark.parametrize("name", NAMES)
def test_threads_mode_checked(name, threads_trace, arena_mb):
    mod, r = _run(name, threads_trace, arena_mb, check=True, mode="threads")
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    s = threads_trace.stats()
    assert r.counters[counters.ALLOCS] == s["allocs"] and r.counters[counters.FREES] == s["frees"]


def _pairs_trace(n, size, kind=0):
    """alloc/free the same size n times: a reusing allocator must not grow."""
    op = np.tile(np.array([0, 1], np.int8), n)
    obj = np.repeat(np.arange(n, dtype=np.int64), 2)
    return make_trace(np.zeros(2 * n, np.int16), op, np.full(2 * n, kind, np.int8),
                      np.full(2 * n, size, np.int32), obj, procs=1)


@pytest.mark.parametrize("name", [n for n in REUSING if n not in REAL])
@pytest.mark.parametrize("size", [48, 4096, 40000])
def test_reuse_after_free(name, size, arena_mb):
    """n alloc/free pairs of one size map exactly what the first pair mapped (the one
    span, chunk, slab, pool or growth step the strategy takes to hold one such object):
    every later alloc reuses the block just freed. n is large enough that the n objects
    could not fit in that mapping twice over, so a strategy that does not reuse fails."""
    _, first = _run(name, _pairs_trace(1, size), arena_mb, EAGER.get(name), check=True)
    assert first.status == "ok", first.error
    unit = first.peak_mapped_bytes
    n = max(3000, 4 * unit // size + 1)
    assert n * size > 2 * unit
    _, r = _run(name, _pairs_trace(n, size), arena_mb, EAGER.get(name), check=True)
    assert r.status == "ok", r.error
    assert r.peak_mapped_bytes == unit, (n, r.peak_mapped_bytes, unit)


@pytest.mark.parametrize("name", NAMES)
def test_accounting_with_live_objects(name, arena_mb):
    tr = generate("random", procs=2, seed=11, ops=4000, dist="small", live=500)
    # cut the trace before its drain so objects stay live at the end
    n = 2500
    cut = make_trace(tr.p[:n], tr.op[:n], tr.kind[:n], tr.size[:n], tr.obj[:n], procs=2)
    mod, r = _run(name, cut, arena_mb, check=True)
    assert r.status == "ok", r.error
    allocs, frees = int((cut.op == 0).sum()), int((cut.op == 1).sum())
    assert r.counters[counters.ALLOCS] - r.counters[counters.FREES] == allocs - frees
    live_bytes = int(cut.size[cut.op == 0].astype(np.int64).sum() - cut.size[cut.op == 1].astype(np.int64).sum())
    in_use = int(r.counters[counters.IN_USE])
    assert in_use >= live_bytes, (in_use, live_bytes)   # in use >= live
    assert r.peak_mapped_bytes >= in_use                 # mapped >= in use
    assert mod.check(r.state) == []


@pytest.mark.parametrize("name", [n for n in NAMES if n not in REAL])
def test_addresses_agree_with_python_reference(name, arena_mb):
    """The executor's shadow-map check and a slow interval-list check agree: no overlaps."""
    tr = generate("random", procs=2, seed=5, ops=3000, dist="medium", live=200, cross_p=0.5)
    mod = strategies.get(name)
    r = replay_once(mod, mod.Config(), tr, 2, check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    # recover the addresses: re-run recording them with the executor's addr table
    again = replay_trace(name, tr, arena_mb=arena_mb)
    assert again.status == "ok"
    replay_addresses(tr, again.addr_of.tolist())


# ------------------------------------------------------------- hypothesis

@hs.composite
def op_sequences(draw):
    """Random op sequences: allocs of 1..70000 B of any kind on P0..P2, frees of random live objects."""
    n = draw(hs.integers(1, 120))
    p, op, kind, size, obj = [], [], [], [], []
    live: list[tuple[int, int, int]] = []
    nobj = 0
    for _ in range(n):
        if live and draw(hs.booleans()):
            i = draw(hs.integers(0, len(live) - 1))
            o, s, k = live.pop(i)
            p.append(draw(hs.integers(0, 2))); op.append(1); kind.append(k); size.append(s); obj.append(o)
        else:
            s = draw(hs.one_of(hs.integers(1, 64), hs.integers(65, 4096), hs.integers(4097, 70000)))
            k = draw(hs.integers(0, 2))
            if k == 2:
                s = draw(hs.sampled_from([448, 2048, 4096, 8192, 16384, 32768]))
            p.append(draw(hs.integers(0, 2))); op.append(0); kind.append(k); size.append(s); obj.append(nobj)
            live.append((nobj, s, k))
            nobj += 1
    return make_trace(np.array(p), np.array(op), np.array(kind), np.array(size), np.array(obj), procs=3)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(trace=op_sequences())
def test_check_holds_after_random_sequences(name, trace, arena_mb):
    mod = strategies.get(name)
    r = replay_once(mod, mod.Config(), trace, 3, check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []


# ------------------------------------------------------------- the registry

def test_a_registered_strategy_joins_the_suite(arena_mb):
    """One registry line is all it takes: tests/conftest.py registers the guide's example
    (tests/teststrategies/pow2.py, docs/adding-a-strategy.md) and every test above runs it."""
    assert "pow2" in NAMES and "pow2" in REUSING and "pow2" in strategies.names()
    r = replay_trace("pow2", _pairs_trace(100, 48), check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert r.counters[counters.EXTRA_BASE] == 99     # "reuses": every alloc after the first


@pytest.mark.parametrize("name", strategies.names(include_unavailable=True))
def test_descriptor_declares_every_hook_its_module_has(name):
    """Hooks are declared, never probed: a declared hook resolves, an undeclared one does not exist."""
    from alloclab.strategies._descriptor import Hooks

    d = strategies.descriptor(name)
    mod = d.load()
    for f in dataclasses.fields(Hooks):
        if getattr(d.hooks, f.name):
            assert callable(d.hook(f.name)), (name, f.name)
        else:
            assert not hasattr(mod, f.name), f"{name}.{f.name} exists, but its registry line does not declare it"
    assert d.is_external == (d.kind == "external") and (not d.is_external or d.requires)
    assert d.align16 is bool(mod.ALIGN16) and d.real_pointers is (name in REAL)
