"""The executor's check mode catches every kind of allocator bug, and replays deterministically."""
import numpy as np
import pytest

from alloclab.strategies import _faulty as evil
from alloclab import strategies
from alloclab.harness.runner import replay_once, run_cell
from alloclab.workloads import generate


@pytest.fixture(scope="module")
def tr():
    return generate("random", procs=1, seed=1, ops=400, dist="small", live=50)


@pytest.mark.parametrize("mode,status_text", [
    (1, "overlaps a live object"), (2, "misaligned"), (3, "outside mapped memory"), (4, "id overwritten"),
])
def test_check_mode_catches(tr, mode, status_text, arena_mb):
    r = replay_once(evil, evil.Config(mode=mode), tr, 1, check=True, arena_mb=arena_mb)
    assert r.status == "check_failed"
    assert status_text in r.error


def test_correct_strategy_passes(tr, arena_mb):
    r = replay_once(evil, evil.Config(mode=0), tr, 1, check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error


def test_serial_is_deterministic(arena_mb):
    tr = generate("random", procs=3, seed=9, ops=20000, dist="medium", cross_p=0.2)
    for name in strategies.kernel_names():
        if name == "system":
            continue
        mod = strategies.get(name)
        a = run_cell(name, mod.Config(), tr, reps=2, warmup=False, arena_mb=arena_mb)
        b = run_cell(name, mod.Config(), tr, reps=1, warmup=False, arena_mb=arena_mb)
        c0, c1, c2 = a[0][1].counters, a[1][1].counters, b[0][1].counters
        assert np.array_equal(c0, c1) and np.array_equal(c0, c2), name
        assert a[0][1].peak_mapped_bytes == b[0][1].peak_mapped_bytes


def test_oom_is_a_result_not_a_crash():
    tr = generate("random", procs=1, seed=1, ops=2000, dist="large", live=100)
    [(rep, r)] = run_cell("bump", strategies.get("bump").Config(), tr, arena_mb=4, warmup=False)
    assert r.status == "oom"
    assert "arena exhausted" in r.error and "--arena-mb" in r.error


def test_generator_is_deterministic():
    a = generate("random", procs=4, seed=5, ops=5000, cross_p=0.5)
    b = generate("random", procs=4, seed=5, ops=5000, cross_p=0.5)
    c = generate("random", procs=4, seed=6, ops=5000, cross_p=0.5)
    for col in ("p", "op", "kind", "size", "obj"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert not np.array_equal(a.size, c.size)
    a.validate()
    assert a.stats()["allocs"] == a.stats()["frees"]
