"""freelist-specific tests: per-P cache bounds and batch transfers, central lists, check, OOM."""
from __future__ import annotations

import numpy as np
import pytest

from alloclab.harness.runner import run_cell
from alloclab.strategies import _counters as counters
from alloclab.strategies import _sizeclass_simple as sc
from alloclab.strategies import freelist as mod
from alloclab.strategies._config import ConfigError
from alloclab.strategies._heap import Heap
from alloclab.workloads import generate

from strategy_checks import check_large_objects_reuse_one_region, check_oom_returns_null_and_recovers, random_trace

X_MOVES, X_FLUSHES, X_SLABS, X_LARGE = (counters.EXTRA_BASE + i for i in range(4))
SMALL_CACHE = mod.Config(cache_capacity=8, batch=3)


serial_trace = random_trace(procs=2, seed=4, ops=30000, dist="mixed", live=2000, cross_p=0.2)
threads_trace = random_trace(procs=4, seed=9, ops=30000, dist="medium", live=1000, cross_p=0.3)


def _cached(st):
    return st.ccount[:, : sc.NCLASSES]


def test_config_validation():
    with pytest.raises(ConfigError, match=r"batch \(64\) must not exceed cache_capacity \(32\)"):
        mod.Config(cache_capacity=32, batch=64).validate()
    with pytest.raises(ConfigError, match="slab_kb"):
        mod.Config(slab_kb=8).validate()
    with pytest.raises(ConfigError, match="batch"):
        mod.Config.from_dict({"batch": 0})
    assert mod.Config.from_dict({"cache_capacity": 4, "batch": 4}).batch == 4


@pytest.mark.parametrize("config", [mod.Config(), mod.Config(per_p_cache=False)])
def test_reuse_after_free(config, arena_mb):
    st = mod.make_state(config, Heap(arena_mb << 20), 2)
    a = mod.alloc(st, 0, 40, 0)
    mod.free(st, 0, a, 40, 0)
    assert mod.alloc(st, 0, 48, 0) == a          # same class (48 B): LIFO reuse
    mod.free(st, 1, a, 48, 0)                     # a cross-P free lands in P1's cache (or the central list)
    assert mod.alloc(st, 1, 33, 0) == a
    assert mod.check(st) == []


def test_large_objects_reuse_one_region(arena_mb):
    check_large_objects_reuse_one_region(mod, 70_000, X_LARGE, arena_mb)


def test_cache_bounded_during_a_random_sequence(arena_mb):
    """Drive the kernels op by op and look at the caches after every op."""
    cfg = SMALL_CACHE
    st = mod.make_state(cfg, Heap(arena_mb << 20), 3)
    rng = np.random.default_rng(5)
    live: list[tuple[int, int]] = []
    peak = 0
    for i in range(4000):
        p = int(rng.integers(3))
        if live and rng.random() < 0.48:
            a, s = live.pop(int(rng.integers(len(live))))
            mod.free(st, p, a, s, 0)
        else:
            s = int(rng.choice([8, 16, 24, 100]))
            a = mod.alloc(st, p, s, 0)
            assert a >= 0 and a % 16 == 0
            live.append((a, s))
        assert 0 <= _cached(st).min() and _cached(st).max() <= cfg.cache_capacity
        peak = max(peak, int(_cached(st).max()))
    assert peak == cfg.cache_capacity        # the bound was reached, not just respected
    assert st.counters[:, X_FLUSHES].sum() > 0 and st.counters[:, counters.REFILLS].sum() > 0
    assert len({a for a, _ in live}) == len(live)
    assert mod.check(st) == []
    # in use == blocks ever carved minus free ones (central + cached), in bytes
    carved = st.cls[mod.CLS_CARVED::8] - st.cls[mod.CLS_COUNT::8] - _cached(st).sum(axis=0)
    assert (carved * st.class_size).sum() == st.counters[:, counters.IN_USE].sum() == sum(
        sc.CLASS_SIZES[sc.class_of_size(s)] for _, s in live)


@pytest.mark.parametrize("config", [mod.Config(), SMALL_CACHE, mod.Config(cache_capacity=1, batch=1),
                                    mod.Config(per_p_cache=False), mod.Config(slab_kb=1024)])
def test_random_trace_checked_serial(config, serial_trace, arena_mb):
    [(_, r)] = run_cell("freelist", config, serial_trace, check=True, warmup=False, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[counters.IN_USE] == 0
    cap = config.cache_capacity if config.per_p_cache else 0
    assert _cached(r.state).max() <= cap
    if config.per_p_cache:
        assert r.counters[counters.FAST_HITS] + r.counters[counters.REFILLS] == r.counters[counters.ALLOCS]
        # every transfer moves at most a batch, and refills + flushes are the only central lock holds
        assert r.counters[X_MOVES] <= config.batch * (r.counters[counters.REFILLS] + r.counters[X_FLUSHES])
        assert r.counters[counters.LOCK_CENTRAL] == r.counters[counters.REFILLS] + r.counters[X_FLUSHES]
    else:
        assert r.counters[counters.FAST_HITS] == 0
        assert r.counters[counters.LOCK_CENTRAL] == r.counters[counters.ALLOCS] + r.counters[counters.FREES]


@pytest.mark.parametrize("config", [mod.Config(), SMALL_CACHE, mod.Config(per_p_cache=False)])
def test_threads_mode_checked(config, threads_trace, arena_mb):
    [(_, r)] = run_cell("freelist", config, threads_trace, mode="threads", check=True, warmup=False,
                        arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert _cached(r.state).max() <= (config.cache_capacity if config.per_p_cache else 0)
    assert r.counters[counters.ALLOCS] == threads_trace.stats()["allocs"]


def test_per_p_cache_takes_fewer_locks(serial_trace, arena_mb):
    [(_, cached)] = run_cell("freelist", mod.Config(), serial_trace, warmup=False, arena_mb=arena_mb)
    [(_, plain)] = run_cell("freelist", mod.Config(per_p_cache=False), serial_trace, warmup=False, arena_mb=arena_mb)
    assert cached.counters[counters.LOCK_CENTRAL] * 10 < plain.counters[counters.LOCK_CENTRAL]
    assert cached.counters[counters.FAST_HITS] > 0.9 * cached.counters[counters.ALLOCS]


def test_check_catches_a_cycle_and_a_duplicate(arena_mb):
    st = mod.make_state(mod.Config(per_p_cache=False), Heap(arena_mb << 20), 1)
    blocks = [mod.alloc(st, 0, 64, 0) for _ in range(4)]
    for a in blocks:
        mod.free(st, 0, a, 64, 0)
    assert mod.check(st) == []
    c = sc.class_of_size(64)
    head = int(st.cls[c * 8 + mod.CLS_HEAD])
    st.arena64[head >> 3] = head                     # the head now points at itself
    assert any("central list" in e for e in mod.check(st))

    st = mod.make_state(mod.Config(), Heap(arena_mb << 20), 2)
    a = mod.alloc(st, 0, 64, 0)
    mod.free(st, 0, a, 64, 0)
    st.cache[1, c, 0] = a                            # the same block cached on two Ps
    st.ccount[1, c] = 1
    assert any("listed twice" in e for e in mod.check(st))


def test_oom_with_a_small_arena():
    tr = generate("random", procs=1, seed=1, ops=20000, dist="mixed", live=5000)
    [(_, r)] = run_cell("freelist", mod.Config(), tr, check=True, warmup=False, arena_mb=1)
    assert r.status == "oom", (r.status, r.error)


@pytest.mark.parametrize("config", [mod.Config(), mod.Config(per_p_cache=False)])
def test_oom_returns_null_and_recovers(config):
    check_oom_returns_null_and_recovers(mod, config, 3000)
