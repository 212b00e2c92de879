"""Fixtures and checks that several strategies' own test modules share.

Each check takes the strategy module and what differs between strategies
(a size on its large-object path, its counter column) and asserts the same
things for each; the test that calls it says which strategy and why.
"""
from __future__ import annotations

import pytest

from alloclab.strategies._heap import Heap
from alloclab.workloads import generate


def random_trace(**params):
    """A module-scoped fixture: ``generate("random", **params)``, built once per test module."""
    def trace():
        return generate("random", **params)
    return pytest.fixture(scope="module")(trace)


def check_large_objects_reuse_one_region(mod, size, large_counter, arena_mb):
    """One large object allocated and freed 50 times: the same address each time, one large allocation counted."""
    st = mod.make_state(mod.Config(), Heap(arena_mb << 20), 1)
    addrs = set()
    for _ in range(50):
        a = mod.alloc(st, 0, size, 0)
        addrs.add(a)
        mod.free(st, 0, a, size, 0)
    assert len(addrs) == 1 and st.counters[0, large_counter] == 1
    assert mod.check(st) == []


def check_oom_returns_null_and_recovers(mod, config, size, *, check_live=False):
    """Fill a 1 MiB heap with ``size``-byte objects: the next alloc returns -1, check still holds (no lock
    left held, accounting intact; with ``check_live`` every object is passed to check as live), and a free
    makes room for one again."""
    st = mod.make_state(config, Heap(1 << 20), 1)
    got = []
    while (a := mod.alloc(st, 0, size, 0)) >= 0:
        got.append(a)
    assert got and mod.alloc(st, 0, size, 0) == -1
    live = {"live": [(a, size) for a in got]} if check_live else {}
    assert mod.check(st, **live) == []
    mod.free(st, 0, got[-1], size, 0)
    assert mod.alloc(st, 0, size, 0) == got[-1]
