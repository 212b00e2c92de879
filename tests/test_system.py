"""system: libc malloc/free from numba kernels, replayed under the executor."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.runner import replay_once, run_cell
from alloclab.strategies._config import ConfigError
from alloclab.strategies._counters import ALLOCS, FREES, IN_USE
from alloclab.strategies._heap import Heap
from alloclab.workloads import generate

mod = strategies.get("system")


@pytest.fixture(scope="module")
def heap():
    return Heap(1 << 20)  # unused by the strategy; the state only carries its words


def test_contract():
    assert mod.NAME == "system" and mod.ALIGN16 is True
    assert mod.EXTRA_COUNTERS == ("live_blocks",)
    assert mod.MIN_USABLE >= 8
    assert mod.GLIBC_CHUNKS  # this machine's libc is glibc: own mmap'ed blocks are counted per op
    with pytest.raises(ConfigError):
        mod.Config(m_mmap_threshold=12345).validate()
    with pytest.raises(ConfigError):
        mod.Config(m_arena_max=-1).validate()


@pytest.mark.parametrize("dist", ["small", "medium", "mixed"])
def test_serial_random_check(dist):
    tr = generate("random", procs=2, seed=3, ops=20_000, dist=dist, live=500, cross_p=0.3)
    [(_, r)] = run_cell("system", mod.Config(), tr, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    c = r.counters
    assert c[ALLOCS] == c[FREES] == tr.stats()["allocs"]
    assert c[IN_USE] == 0 and r.state.counters[:, mod.LIVE_BLOCKS].sum() == 0
    # the floor under the sampled figure: never below what was really handed out
    assert r.peak_mapped_bytes >= tr.stats()["peak_live_bytes"]
    assert r.peak_mapped_bytes >= r.in_use_at_peak > 0


def test_threads_random_check():
    tr = generate("random", procs=4, seed=5, ops=40_000, dist="medium", live=1000, cross_p=0.3)
    [(_, r)] = run_cell("system", mod.Config(), tr, mode="threads", check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[ALLOCS] == r.counters[FREES] == tr.stats()["allocs"]
    # cross-P frees drive single rows negative; only the sum is meaningful
    assert r.state.counters[:, IN_USE].sum() == 0
    st = r.state
    # batched publication: with 4 Ps the in-use peak is an upper bound within 4 x 4 KiB
    assert st.tot[mod.BATCH] == mod.PUBLISH_BATCH and st.tot[mod.SHARED] == 1
    assert r.peak_mapped_bytes >= tr.stats()["peak_live_bytes"]


def test_in_use_covers_live_bytes_mid_trace():
    tr = generate("random", procs=1, seed=7, ops=6000, dist="mixed", live=800)
    stop = 3000
    r = replay_once(mod, mod.Config(), tr, tr.procs, check=True, stop=stop)  # leaves ~800 blocks live (leaked)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    op, obj, size = tr.op[:stop], tr.obj[:stop], tr.size[:stop].astype(np.int64)
    freed = set(obj[op == 1].tolist())
    live = [(o, s) for o, s, k in zip(obj, size, op) if k == 0 and o not in freed]
    live_bytes = sum(s for _, s in live)
    st = r.state
    assert st.counters[:, mod.LIVE_BLOCKS].sum() == len(live) > 0
    assert st.counters[:, IN_USE].sum() >= live_bytes
    assert st.counters[:, IN_USE].sum() >= mod.MIN_USABLE * len(live)
    # one P: the published total is exact and is what peak_mapped_bytes floors on
    assert st.tot[mod.TOT_IN_USE] == st.counters[:, IN_USE].sum() <= mod.peak_mapped_bytes(st)


def test_direct_alloc_free_align_and_null(heap):
    st = mod.make_state(mod.Config(), heap, 1)
    addrs = []
    for size in (1, 7, 8, 15, 16, 24, 100, 1000, 4096, 65536):
        a = mod.alloc(st, 0, size, 0)
        assert a > 0
        if size >= 16:
            assert a % 16 == 0
        addrs.append((a, size))
    assert len({a for a, _ in addrs}) == len(addrs)
    held = st.counters[0, IN_USE]
    assert held >= sum(s for _, s in addrs)
    # NULL from malloc is -1 and changes nothing
    assert mod.alloc(st, 0, 1 << 62, 0) == -1
    assert st.counters[0, IN_USE] == held and st.counters[0, mod.LIVE_BLOCKS] == len(addrs)
    # free ignores the size argument (the shared suite passes the allocation's)
    for a, _ in addrs:
        mod.free(st, 0, a, 0, 0)
    assert st.counters[0, IN_USE] == 0 and st.counters[0, mod.LIVE_BLOCKS] == 0
    st.counters[0, ALLOCS] = st.counters[0, FREES] = len(addrs)
    assert mod.check(st) == []


def test_check_catches_inconsistency(heap):
    st = mod.make_state(mod.Config(), heap, 2)
    a = mod.alloc(st, 0, 64, 0)
    st.counters[0, ALLOCS] = 1
    assert mod.check(st) == []
    st.counters[1, mod.LIVE_BLOCKS] += 1  # a block the executor never handed out
    assert any("live blocks" in e for e in mod.check(st))
    st.counters[1, mod.LIVE_BLOCKS] -= 1
    st.counters[1, IN_USE] -= 10_000  # in use below zero and out of step with the total
    errs = mod.check(st)
    assert any("negative" in e for e in errs) and any("published" in e for e in errs)
    st.counters[1, IN_USE] += 10_000
    mod.free(st, 1, a, 64, 0)  # cross-P free
    st.counters[1, FREES] = 1
    assert mod.check(st) == []


_LARGE_BLOCKS = textwrap.dedent("""
    import json
    from alloclab.strategies import _numba_cache
    _numba_cache.configure()
    from alloclab import strategies
    from alloclab.harness.runner import replay_once, run_cell
    from alloclab.strategies._counters import IN_USE
    from alloclab.workloads import generate
    mod = strategies.get("system")
    tr = generate("random", procs=1, seed=9, ops=600, dist="large", live=40)
    cfg = mod.Config(m_mmap_threshold=65536)
    r = replay_once(mod, cfg, tr, 1, check=True, stop=300)  # blocks live at the sample (leaked)
    st = r.state
    out = dict(status=r.status, error=r.error, errs=mod.check(st), samples=int(st.mem[mod.SAMPLES]),
               mmap=int(st.tot[mod.TOT_MMAP]), peak_os=int(st.mem[mod.PEAK_OS]), peak=int(r.peak_mapped_bytes),
               in_use=int(st.counters[:, IN_USE].sum()), live_peak=int(tr.stats()["peak_live_bytes"]))
    [(_, r)] = run_cell("system", cfg, tr, check=True)
    out.update(status2=r.status, errs2=mod.check(r.state), mmap2=int(r.state.tot[mod.TOT_MMAP]),
               peak_mmap2=int(r.state.tot[mod.PEAK_MMAP]), peak2=int(r.peak_mapped_bytes))
    print(json.dumps(out))
""")


def test_large_blocks_mapped_bytes():
    """Several MB of blocks past a 64 KiB mmap threshold: libc's figure sees them. In a process of
    its own: in a long test session glibc's heap holds big free chunks from earlier tests, and a
    large request served from those is not a mapping of its own (it was a flaky failure)."""
    import json

    out = subprocess.run([sys.executable, "-c", _LARGE_BLOCKS], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["live_peak"] > 4 << 20
    assert d["status"] == "ok", d["error"]
    assert d["errs"] == [] and d["samples"] == 1
    assert d["mmap"] > 4 << 20  # blocks of 64 KiB and more are mappings of their own
    assert d["peak_os"] >= d["mmap"]
    assert d["peak"] >= d["in_use"]
    assert d["status2"] == "ok" and d["errs2"] == []
    assert d["mmap2"] == 0 < d["peak_mmap2"]
    assert d["peak2"] >= d["live_peak"] > 0


@pytest.mark.parametrize("thr", [c for c in mod.Config.__dataclass_fields__["m_mmap_threshold"].metadata["choices"]])
def test_every_mmap_threshold_choice_is_accepted(thr, heap):
    st = mod.make_state(mod.Config(m_mmap_threshold=thr), heap, 1)
    assert st.settings[1] == thr
    mod.make_state(mod.Config(), heap, 1)


_PROBE = textwrap.dedent("""
    from alloclab import strategies
    from alloclab.strategies._counters import IN_USE
    from alloclab.strategies._heap import Heap
    m = strategies.get("system")
    st = m.make_state(m.Config(), Heap(1 << 20), 1)
    a = m.alloc(st, 0, 100, 0)
    m.free(st, 0, a, 100, 0)
    assert a > 0 and st.counters[0, IN_USE] == 0
""")


def test_kernels_load_from_numba_cache_in_a_new_process(tmp_path):
    """libc is linked by name, so the cached kernels hold no address and load in a fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_DEBUG_CACHE="1")
    outs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(p.stdout + p.stderr)
    first, second = outs
    assert "data saved to" in first and "system.alloc" in first
    loaded = [ln for ln in second.splitlines() if "data loaded from" in ln]
    assert any("system.alloc" in ln for ln in loaded) and any("system.free" in ln for ln in loaded), second[-2000:]
    assert "data saved to" not in second  # nothing recompiled
