import os
import sys
from pathlib import Path

import pytest

# Small arenas keep check-mode shadows and fresh mappings cheap in unit tests.
TEST_ARENA_MB = 256

# The test session is an entry point: it sets numba's cache folder before any kernel module is
# imported. Its folder is its own (numba-tests-<hash of the sources and of tests/teststrategies>):
# the executor's cache index there lists the test-only strategies' State types, which only a
# process that can import tests/teststrategies may load. Subprocesses the tests start inherit the
# folder and, through PYTHONPATH, the import.
_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join([str(_TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from alloclab.strategies import _numba_cache  # noqa: E402

_numba_cache.configure("tests", extra_dirs=[_TESTS / "teststrategies"])

from alloclab import strategies  # noqa: E402
from alloclab.strategies._descriptor import Strategy  # noqa: E402

# docs/adding-a-strategy.md's worked example: one module and one registry line, and the shared
# suites (tests/test_strategy_contract.py and every test parametrised by kernel_names()) run it.
POW2 = strategies.register(Strategy("pow2", "teststrategies.pow2", "power-of-two classes, a LIFO free list per class and P"))
# the statistics tests' injected slowdown (tests/test_noise.py); not part of the contract suites
DELAYED = Strategy("delayed", "teststrategies.delayed", "bump with a fixed busy delay per op (test-only)")


def pytest_configure(config):
    """jemalloc needs static TLS that glibc grants only at process start: the session re-executes
    itself once with it, as the alloclab command does, so the tests see the strategies a user's
    command sees. pytest already captures the output at this point: stop that first, or the new
    process would write into the old one's capture files."""
    from alloclab.strategies import _real_malloc

    if _real_malloc.STATIC_TLS_TUNABLE in os.environ.get("GLIBC_TUNABLES", ""):
        return
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    _real_malloc.ensure_static_tls()


@pytest.fixture(scope="session")
def arena_mb():
    return TEST_ARENA_MB


# A long session (make test) compiles every kernel strategy's replay before the first test, in
# parallel worker processes (harness/warmup.py), instead of one after another inside the tests
# that first use them. A short session (one file) compiles only what it runs, where it runs it.
WARMUP_MIN_TESTS = 150


def pytest_collection_finish(session):
    if len(session.items) < WARMUP_MIN_TESTS or os.environ.get("ALLOCLAB_TEST_WARMUP") == "0":
        return
    from alloclab.harness import warmup

    w = warmup.start([warmup.Job(s) for s in strategies.kernel_names()])
    if w is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(warmup.describe(w))
        took = w.wait()
        if reporter is not None:
            reporter.write_line(f"kernels compiled in {took:.0f} s")
