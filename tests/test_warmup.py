"""The cold-start machinery: parallel warm-up of kernels, locked cache saves, one compile per type."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
from numba import njit
from numba.core import caching

from alloclab.harness import warmup
from alloclab.strategies._kernel import _one_per_type


def test_pack_puts_the_heaviest_job_alone_and_balances_the_rest():
    jobs = [warmup.Job("go"), *(warmup.Job(s) for s in ("bump", "naive", "bitmap", "freelist", "system"))]
    bins = warmup.pack(jobs, 2)
    assert len(bins) == 2
    assert [j.strategy for j in bins[0]] == ["go"]
    assert sorted(j.strategy for j in bins[1]) == ["bitmap", "bump", "freelist", "naive", "system"]
    # never more bins than jobs, and every job exactly once
    assert len(warmup.pack(jobs[:1], 8)) == 1
    assert sorted(j.strategy for b in warmup.pack(jobs, 3) for j in b) == sorted(j.strategy for j in jobs)


def test_pending_skips_external_strategies_and_finished_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    jobs = [warmup.Job("bump"), warmup.Job("bump", timed=True), warmup.Job("go-runtime")]
    assert warmup.pending(jobs) == jobs[:2]
    warmup._marker_dir().mkdir(parents=True)
    (warmup._marker_dir() / "bump").touch()
    assert warmup.pending(jobs) == [warmup.Job("bump", timed=True)]
    # another checkout's markers (same cache folder, kernels filed under other paths) do not count
    other = warmup._marker_dir().parent / "0123456789ab"
    other.mkdir()
    (other / "bump-timed").touch()
    assert warmup.pending(jobs) == [warmup.Job("bump", timed=True)]


def test_warmup_worker_compiles_into_the_cache_and_leaves_a_marker(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    code = ("import os, sys; from alloclab.strategies import _numba_cache; _numba_cache.configure();"
            "from alloclab.harness import warmup; w = warmup.start([warmup.Job('bump')], workers=2);"
            "w.wait(); print(sorted(os.listdir(warmup._marker_dir())))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['bump']"
    assert any(f.name.startswith("executor.replay-") and f.suffix == ".nbc" for f in cache.rglob("*.nbc"))


def test_concurrent_saves_into_one_index_both_survive(tmp_path, monkeypatch):
    """Two savers of one function's index (two processes compiling two specialisations): with the lock,
    each key maps to its own data file; unlocked, the slow index write below loses one of them."""
    from alloclab.strategies import _numba_cache

    _numba_cache._locked_saves()
    save_index = caching.IndexDataCacheFile._save_index

    def slow_save_index(self, overloads):
        time.sleep(0.2)  # widen the read-modify-write window
        save_index(self, overloads)

    monkeypatch.setattr(caching.IndexDataCacheFile, "_save_index", slow_save_index)
    files = [caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", "stamp") for _ in range(2)]
    ts = [threading.Thread(target=f.save, args=(key, key)) for f, key in zip(files, ("A", "B"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    fresh = caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", "stamp")
    assert fresh.load("A") == "A" and fresh.load("B") == "B"


# not cached (``kernel`` caches): a caller loaded from numba's cache never asks its callee to compile,
# and the count below would be 0 on a second run
@_one_per_type
@njit(nogil=True, _nrt=False)
def _scaled(x, k):
    return x * k


@njit(nogil=True, _nrt=False)
def _calls_with_constants(x, narrow):
    return _scaled(x, 2) + _scaled(x, 3) + _scaled(x, 5) + _scaled(narrow, 1) + _scaled(x, narrow)


def test_kernel_calls_compile_once_per_type():
    """Neither a constant argument nor a narrower signed integer in a kernel-to-kernel call makes a
    specialisation of its own (strategies/_kernel.py): three constants and an int16, one compile."""
    assert _calls_with_constants(np.int64(7), np.int16(-3)) == 70 - 3 - 21
    assert len(_scaled.signatures) == 1
