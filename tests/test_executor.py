"""The executor's check mode catches every kind of allocator bug, and replays deterministically."""
import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.runner import replay_trace, run_cell
from teststrategies import faulty
from alloclab.workloads import generate


@pytest.fixture(scope="module")
def tr():
    return generate("random", procs=1, seed=1, ops=400, dist="small", live=50)


@pytest.mark.parametrize("mode,status_text", [
    (1, "overlaps a live object"), (2, "misaligned"), (3, "outside mapped memory"), (4, "id overwritten"),
])
def test_check_mode_catches(tr, mode, status_text, arena_mb):
    r = replay_trace(faulty.DESCRIPTOR, tr, faulty.Config(mode=mode), check=True, arena_mb=arena_mb)
    assert r.status == "check_failed"
    assert status_text in r.error


def test_correct_strategy_passes(tr, arena_mb):
    r = replay_trace(faulty.DESCRIPTOR, tr, faulty.Config(mode=0), check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error


def test_serial_is_deterministic(arena_mb):
    tr = generate("random", procs=3, seed=9, ops=20000, dist="medium", cross_p=0.2)
    for name in strategies.kernel_names():
        if strategies.unavailable_reason(name):
            continue
        mod = strategies.get(name)
        a = run_cell(name, mod.Config(), tr, reps=2, warmup=False, arena_mb=arena_mb)
        b = run_cell(name, mod.Config(), tr, reps=1, warmup=False, arena_mb=arena_mb)
        c0, c1, c2 = a[0][1].counters, a[1][1].counters, b[0][1].counters
        assert np.array_equal(c0, c1) and np.array_equal(c0, c2), name
        # the real allocators' mapped figures are their libraries' own (process-wide, with
        # thread caches and decay timers): exact for the arena strategies only
        if not strategies.descriptor(name).real_pointers:
            assert a[0][1].peak_mapped_bytes == b[0][1].peak_mapped_bytes, name


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


def test_threads_mode_defers_frees_until_published(arena_mb, monkeypatch):
    """A free that arrives before its alloc is published is put aside, not waited on; a full ring waits
    for its oldest entry; the end of the stream drains the ring. Driven by hand: P1's stream frees three
    objects whose addresses a second thread publishes 0.2 s later, through a ring of two slots."""
    import threading
    import time

    from alloclab.harness import executor as ex
    from alloclab.strategies._heap import Heap
    from alloclab.workloads.trace import Trace

    mod = strategies.get("freelist")
    heap = Heap(arena_mb << 20)
    st = mod.make_state(mod.Config(), heap, 2)
    n = 3
    i64 = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    alloc = Trace(np.zeros(n, np.int16), np.zeros(n, np.int8), np.zeros(n, np.int8), np.full(n, 64, np.int32),
                  np.arange(n, dtype=np.int64), 2, {})
    serial = ex.Replay(heap.arena, n, check=True)
    assert serial.run(st, ex.columns(alloc)) == ex.OK
    published = serial.addr_of
    threads = ex.Replay(heap.arena, n, procs=2, threads=True, pending_cap=2)   # P0 has not published yet
    addr_of, stats = threads.addr_of, threads.stats[1]
    out = []
    worker = threading.Thread(target=lambda: out.append(threads.run(
        st, (np.ones(n, np.int16), np.ones(n, np.int8), np.zeros(n, np.int8), np.full(n, 64, np.int32),
             i64([2, 0, 1])), p=1)))
    worker.start()
    time.sleep(0.2)
    assert worker.is_alive()                            # the third free found the ring full and waits
    for obj in range(n):
        addr_of[obj] = published[obj]
    worker.join(10)
    assert out == [ex.OK]
    # two frees put aside; the third waited for the oldest (object 2, published last), and by then
    # its own object's address had arrived, so it was done in place
    assert stats[ex.STAT_DEFERRED] == 2 and stats[ex.STAT_WAITS] >= 1
    assert int(st.counters[1, 1]) == 3                  # FREES on P1: every deferred free was done
    assert mod.check(st) == []


def test_threads_mode_with_a_tiny_ring_stays_correct(arena_mb, monkeypatch):
    """Oversubscribed (6 Ps on this machine's cores) with a ring of 2: many full-ring waits, still checked."""
    from alloclab.harness import executor as ex

    monkeypatch.setattr(ex, "PENDING_CAP", 2)
    tr = generate("random", procs=6, seed=4, ops=30000, dist="small", cross_p=0.5)
    [(_, r)] = run_cell("freelist", strategies.get("freelist").Config(), tr, mode="threads", check=True,
                        warmup=False, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    s = tr.stats()
    assert r.counters[0] == s["allocs"] and r.counters[1] == s["frees"]
    assert r.extra["publish_waits"] <= r.extra["deferred_frees"]
