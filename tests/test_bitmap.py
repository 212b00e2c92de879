"""bitmap-specific tests: bit semantics, ctz vs the article's linear scan, pools, OOM."""
from __future__ import annotations

import numpy as np
import pytest

from alloclab.harness.runner import replay_trace, run_cell
from alloclab.strategies import _counters as counters
from alloclab.strategies import _sizeclass_simple as sc
from alloclab.strategies import bitmap as mod
from alloclab.strategies._config import ConfigError
from alloclab.strategies._heap import Heap
from alloclab.workloads import generate

from strategy_checks import check_large_objects_reuse_one_region, check_oom_returns_null_and_recovers, random_trace

X_WORDS, X_POOLS, X_LARGE = (counters.EXTRA_BASE + i for i in range(3))


serial_trace = random_trace(procs=2, seed=4, ops=30000, dist="mixed", live=2000, cross_p=0.2)
threads_trace = random_trace(procs=4, seed=9, ops=30000, dist="medium", live=1000, cross_p=0.3)


def _addresses(trace, config, arena_mb):
    """obj -> address for a serial replay (the executor's own address table)."""
    r = replay_trace(mod, trace, config, arena_mb=arena_mb)
    assert r.status == "ok"
    return r.addr_of, r.state


def _popcounts(st):
    npools, nw = int(st.gl[mod.GL_NPOOLS]), int(st.cfg[mod.CFG_NWORDS])
    words = st.bits[: npools * nw].reshape(npools, nw)
    return np.array([sum(bin(int(w) & (2**64 - 1)).count("1") for w in row) for row in words])


def test_config_validation():
    with pytest.raises(ConfigError, match="blocks_per_pool"):
        mod.Config(blocks_per_pool=100).validate()
    with pytest.raises(ConfigError, match="linear_scan"):
        mod.Config.from_dict({"linear_scan": 1})
    with pytest.raises(ConfigError, match="unknown"):
        mod.Config.from_dict({"blocks": 64})
    assert mod.Config.from_dict({"blocks_per_pool": 4096}).blocks_per_pool == 4096


def test_size_classes():
    s = sc.CLASS_SIZES
    assert s[0] == 16 and s[-1] == sc.MAX_SMALL and np.all(s % 16 == 0) and np.all(np.diff(s) > 0)
    assert list(s[:16]) == list(range(16, 257, 16))
    steps = s[16:-1] / s[15:-2]   # the last step is clamped to MAX_SMALL
    assert steps.max() < 1.17 and steps.min() >= 1.125   # ~12.5% geometric steps, rounded up to 16
    for size in list(range(1, 600)) + [32767, 32768]:
        c = sc.class_of_size(size)
        assert s[c] >= size and (c == 0 or s[c - 1] < size)
    assert sc.class_of_size(32769) == -1


def test_reuse_after_free_and_bits(arena_mb):
    st = mod.make_state(mod.Config(), Heap(arena_mb << 20), 1)
    a = mod.alloc(st, 0, 100, 0)
    assert not mod.block_is_free(st, a, 100)
    b = mod.alloc(st, 0, 100, 0)
    assert b == a + 112          # the next (lowest) block of the 112 B class
    mod.free(st, 0, a, 100, 0)
    assert mod.block_is_free(st, a, 100)
    assert mod.alloc(st, 0, 100, 0) == a   # the lowest free block again
    assert mod.check(st, live=[(a, 100), (b, 100)]) == []
    # a live object whose bit says free is an error check must report
    mod.free(st, 0, b, 100, 0)
    assert any("marked free" in e for e in mod.check(st, live=[(b, 100)]))


def test_large_objects_reuse_one_region(arena_mb):
    check_large_objects_reuse_one_region(mod, 100_000, X_LARGE, arena_mb)


def _drive(st, rng, n, live, sizes):
    for _ in range(n):
        if live and rng.random() < 0.45:
            a, s = live.pop(int(rng.integers(len(live))))
            mod.free(st, int(rng.integers(2)), a, s, 0)
        else:
            s = int(rng.choice(sizes))
            a = mod.alloc(st, int(rng.integers(2)), s, 0)
            assert a >= 0
            live.append((a, s))


@pytest.mark.parametrize("bpp", [64, 256])
def test_free_count_equals_free_bits_with_live_objects(bpp, arena_mb):
    st = mod.make_state(mod.Config(blocks_per_pool=bpp), Heap(arena_mb << 20), 2)
    rng = np.random.default_rng(bpp)
    live: list[tuple[int, int]] = []
    _drive(st, rng, 3000, live, [8, 16, 24, 100, 700, 5000])
    npools = int(st.gl[mod.GL_NPOOLS])
    assert npools == st.counters[:, X_POOLS].sum() > 1
    nfree = st.pools[:npools, mod.P_NFREE]
    assert np.array_equal(_popcounts(st), nfree)                  # 1 bits == free blocks
    sizes = st.class_size[st.pool_class[:npools]]
    assert ((bpp - nfree) * sizes).sum() == st.counters[:, counters.IN_USE].sum()
    for a, s in live:
        assert not mod.block_is_free(st, a, s)
    assert mod.check(st, live=live) == []
    # corrupt one pool's free count: check must notice
    st.pools[0, mod.P_NFREE] += 1
    assert any("nfree" in e for e in mod.check(st))


def test_linear_scan_gives_the_same_addresses(serial_trace, arena_mb):
    ctz, st1 = _addresses(serial_trace, mod.Config(), arena_mb)
    lin, st2 = _addresses(serial_trace, mod.Config(linear_scan=True), arena_mb)
    assert np.array_equal(ctz, lin)
    # the article's scan reads a byte per block, ctz a word per 64 blocks
    assert st2.counters[:, X_WORDS].sum() > 5 * st1.counters[:, X_WORDS].sum()
    assert mod.check(st1) == [] and mod.check(st2) == []


@pytest.mark.parametrize("config", [mod.Config(), mod.Config(linear_scan=True), mod.Config(blocks_per_pool=512)])
def test_random_trace_checked_serial(config, serial_trace, arena_mb):
    [(_, r)] = run_cell("bitmap", config, serial_trace, check=True, warmup=False, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[counters.IN_USE] == 0
    assert r.counters[counters.FAST_HITS] == 0       # every small op takes its class lock
    assert r.counters[counters.LOCK_CENTRAL] == r.counters[counters.ALLOCS] + r.counters[counters.FREES]


@pytest.mark.parametrize("config", [mod.Config(), mod.Config(linear_scan=True)])
def test_threads_mode_checked(config, threads_trace, arena_mb):
    [(_, r)] = run_cell("bitmap", config, threads_trace, mode="threads", check=True, warmup=False,
                        arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[counters.ALLOCS] == threads_trace.stats()["allocs"]


def test_large_trace_checked(arena_mb):
    tr = generate("random", procs=2, seed=2, ops=3000, dist="large", live=50, cross_p=0.3)
    [(_, r)] = run_cell("bitmap", mod.Config(), tr, check=True, warmup=False, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []


def test_oom_with_a_small_arena():
    tr = generate("random", procs=1, seed=1, ops=20000, dist="mixed", live=5000)
    [(_, r)] = run_cell("bitmap", mod.Config(), tr, check=True, warmup=False, arena_mb=1)
    assert r.status == "oom", (r.status, r.error)


def test_oom_returns_null_and_recovers():
    check_oom_returns_null_and_recovers(mod, mod.Config(), 4000, check_live=True)
