"""naive: boundary tags, coalescing, splitting, growth, OOM, and random traces under check.

The unit tests drive the kernels directly on a fresh state and read the heap
back with ``walk_blocks`` (every block, by its header) and ``free_list``.
"""
from __future__ import annotations

import numpy as np
import pytest

from alloclab.harness.runner import run_cell
from alloclab.strategies import naive as mod
from alloclab.strategies._counters import (
    ALLOCS, CONTENDED, EXTRA_BASE, FAST_HITS, FREES, IN_USE, LOCK_GLOBAL, REFILLS,
)
from alloclab.strategies._heap import DEFAULT_ARENA_MB, Heap, heap_map
from alloclab.workloads import generate
from alloclab.workloads.trace import Trace

COAL = EXTRA_BASE + mod.EXTRA_COUNTERS.index("coalesces")
SPLITS = EXTRA_BASE + mod.EXTRA_COUNTERS.index("splits")
GROW_MERGES = EXTRA_BASE + mod.EXTRA_COUNTERS.index("grow_merges")


def fresh(config=None, arena_mb=DEFAULT_ARENA_MB, nprocs=1):
    return mod.make_state(config or mod.Config(), Heap(arena_mb << 20), nprocs)


def alloc(st, size, p=0):
    a = int(mod.alloc(st, p, size, 0))
    if a >= 0:
        st.arena64[a >> 3] = 0x5EED  # what the executor does: touch the first word
    return a


def free(st, a, size, p=0):
    mod.free(st, p, a, size, 0)


def blocks(st):
    """(address, size, state) for every block except the prologue: state 'free', 'used' or 'fence'."""
    out = []
    for b, size, bits in mod.walk_blocks(st)[1:]:
        state = "fence" if bits & mod.FENCE_BIT else "used" if bits & mod.ALLOC_BIT else "free"
        out.append((b, size, state))
    return out


def free_blocks(st):
    return [(b, s) for b, s, state in blocks(st) if state == "free"]


def block_of(a):
    return a - 8


def assert_ok(st):
    assert mod.check(st) == []


# ---------------------------------------------------------------- layout


def test_alignment_and_block_sizes():
    st = fresh()
    for size in (1, 7, 8, 15, 16, 17, 24, 33, 100, 4095, 4096, 70_000):
        a = alloc(st, size)
        assert a % 16 == 0
        s = int(st.arena64[block_of(a) >> 3]) & mod.SIZE_MASK
        assert s == max((size + 16 + 15) // 16 * 16, 32)
        assert s - 16 >= size  # the payload fits between header and footer
    assert_ok(st)


def test_in_use_is_block_bytes():
    st = fresh()
    a = alloc(st, 100)   # block 128
    b = alloc(st, 1)     # block 32
    assert st.counters[:, IN_USE].sum() == 128 + 32
    free(st, a, 100)
    assert st.counters[:, IN_USE].sum() == 32
    free(st, b, 1)
    assert st.counters[:, IN_USE].sum() == 0
    assert st.counters[0, FAST_HITS] == 0
    assert st.counters[0, LOCK_GLOBAL] == 4
    assert_ok(st)


# ---------------------------------------------------------------- coalescing


def test_free_a_and_c_then_b_coalesces_into_one_block():
    st = fresh()
    g1 = alloc(st, 64)
    a, b, c = alloc(st, 64), alloc(st, 64), alloc(st, 64)
    g2 = alloc(st, 64)  # guards: a and c have allocated outer neighbours
    assert g1 < a < b < c < g2
    top = free_blocks(st)
    assert len(top) == 1  # the rest of the first region, above g2
    free(st, a, 64)
    free(st, c, 64)
    fb = free_blocks(st)
    assert [x for x, _ in fb] == [block_of(a), block_of(c), top[0][0]]
    assert mod.free_list(st, 10) == [x for x, _ in fb]   # address-ordered list
    assert st.counters[0, COAL] == 0
    assert_ok(st)
    free(st, b, 64)
    fb = free_blocks(st)
    assert fb[:1] == [(block_of(a), 3 * 80)]  # a + b + c, 80 B each
    assert len(fb) == 2
    assert st.counters[0, COAL] == 2
    assert_ok(st)
    # and freeing the guards leaves one free block spanning the whole heap
    free(st, g1, 64)
    free(st, g2, 64)
    fb = free_blocks(st)
    assert len(fb) == 1 and len(blocks(st)) == 1
    assert fb[0][1] == int(st.heap[mod.H_OWNED]) - mod.HEAP_OVERHEAD
    assert_ok(st)


def test_free_before_free_neighbour_takes_its_list_place():
    st = fresh()
    a, b, c = alloc(st, 200), alloc(st, 200), alloc(st, 200)
    free(st, b, 200)
    free(st, a, 200)  # next neighbour b is free: a takes over b's list position
    fb = free_blocks(st)
    assert fb[0] == (block_of(a), 2 * 224)
    assert mod.free_list(st, 10) == [x for x, _ in fb]
    assert_ok(st)
    free(st, c, 200)  # merges with a+b below and the free top above
    assert len(free_blocks(st)) == 1
    assert_ok(st)


# ---------------------------------------------------------------- reuse and split


@pytest.mark.parametrize("size", [8, 100, 5000, 1 << 20])
def test_reuse_after_free_same_address(size):
    st = fresh()
    before = alloc(st, 32)
    a = alloc(st, size)
    after = alloc(st, 32)
    free(st, a, size)
    assert alloc(st, size) == a
    assert_ok(st)
    free(st, before, 32)
    free(st, after, 32)
    free(st, a, size)
    assert len(blocks(st)) == 1
    assert_ok(st)


def test_split_front_and_remainder_keeps_list_place():
    st = fresh()
    big = alloc(st, 4000)          # block 4016
    guard = alloc(st, 16)
    free(st, big, 4000)
    splits0 = int(st.counters[0, SPLITS])
    small = alloc(st, 100)         # first fit: the freed 4016 block, split
    assert small == big            # the front is handed out
    assert st.counters[0, SPLITS] == splits0 + 1
    fb = free_blocks(st)
    assert fb[0] == (block_of(big) + 128, 4016 - 128)
    assert mod.free_list(st, 10) == [x for x, _ in fb]
    assert_ok(st)
    free(st, small, 100)
    free(st, guard, 16)
    assert len(blocks(st)) == 1
    assert_ok(st)


def test_min_block_leaves_small_remainder_unsplit():
    st = fresh(mod.Config(min_block=256))
    hole = alloc(st, 400)          # block 416
    guard = alloc(st, 16)
    free(st, hole, 400)
    a = alloc(st, 250)             # block 272: remainder 144 < 256 -> whole block
    assert a == hole
    assert int(st.arena64[block_of(a) >> 3]) & mod.SIZE_MASK == 416
    assert st.counters[:, IN_USE].sum() == 416 + 32
    assert_ok(st)
    free(st, a, 250)
    free(st, guard, 16)
    assert_ok(st)


def test_first_fit_takes_lowest_fitting_block():
    st = fresh()
    xs = [alloc(st, 300) for _ in range(6)]
    for i in (1, 3, 5):
        free(st, xs[i], 300)
    assert alloc(st, 300) == xs[1]
    assert alloc(st, 300) == xs[3]
    assert_ok(st)


# ---------------------------------------------------------------- growth, large, OOM


def test_large_objects_and_growth_merges_with_free_top():
    st = fresh(mod.Config(grow_kb=64))
    a = alloc(st, 1000)
    top_before = free_blocks(st)[-1]
    big = alloc(st, (1 << 20) + 1)
    assert big == top_before[0] + 8  # the grown space merged with the free top block
    assert st.counters[0, GROW_MERGES] == 1
    huge = alloc(st, 3 << 20)
    assert huge % 16 == 0 and huge + (3 << 20) <= st.meta[0]
    assert_ok(st)
    for x, s in ((a, 1000), (big, (1 << 20) + 1), (huge, 3 << 20)):
        free(st, x, s)
    assert len(blocks(st)) == 1
    assert_ok(st)


def test_non_contiguous_region_is_fenced():
    st = fresh(mod.Config(grow_kb=64))
    a = alloc(st, 1000)
    foreign = int(heap_map(st.meta, 65536))  # someone else maps right after our heap
    assert foreign == st.heap[mod.H_END]
    b = alloc(st, 100_000)                   # no fit: grows past the foreign region
    assert b > foreign + 65536
    assert st.heap[mod.H_GAP] == 65536
    assert [s for _, _, s in blocks(st)].count("fence") == 1
    assert_ok(st)
    free(st, a, 1000)
    free(st, b, 100_000)
    assert_ok(st)


def test_oom_returns_minus_one_and_heap_stays_valid():
    st = fresh(mod.Config(grow_kb=65536), arena_mb=1)  # a 64 MiB step cannot fit: falls back to the need
    a = alloc(st, 1000)
    assert a >= 0
    assert alloc(st, 2 << 20) == -1
    assert st.locks[0] == 0
    assert_ok(st)
    b = alloc(st, 500_000)
    assert b >= 0 and b + 500_000 <= (1 << 20)
    assert alloc(st, 600_000) == -1
    assert_ok(st)
    free(st, b, 500_000)
    assert alloc(st, 600_000) >= 0  # the freed space merged with the top plus a small growth fits
    assert_ok(st)


def test_oom_status_from_run_cell():
    tr = generate("random", procs=1, seed=3, ops=200, dist="large", live=20)
    [(_, r)] = run_cell("naive", mod.Config(), tr, check=True, arena_mb=1)
    assert r.status == "oom", r.error
    assert mod.check(r.state) == []


# ---------------------------------------------------------------- check() catches breakage


def test_check_detects_corruption():
    st = fresh()
    a, b, c = alloc(st, 64), alloc(st, 64), alloc(st, 64)
    free(st, a, 64)
    assert_ok(st)
    w = st.arena64
    # a footer that disagrees with its header
    foot = (block_of(b) + 80 - 8) >> 3
    saved = w[foot]
    w[foot] = 96 | mod.ALLOC_BIT
    assert any("footer" in e for e in mod.check(st))
    w[foot] = saved
    # a block marked free without coalescing or listing it
    mod._set_tags(w, block_of(b), 80, 0)
    errs = mod.check(st)
    assert any("adjacent" in e for e in errs) and any("free list" in e for e in errs)
    mod._set_tags(w, block_of(b), 80, mod.ALLOC_BIT)
    assert_ok(st)
    # in-use accounting
    st.counters[0, IN_USE] += 16
    assert any("IN_USE" in e for e in mod.check(st))
    st.counters[0, IN_USE] -= 16
    assert_ok(st)


# ---------------------------------------------------------------- random traces under check


@pytest.mark.parametrize("dist,live", [("small", 2000), ("medium", 2000), ("mixed", 1000), ("large", 40)])
def test_random_serial_check(dist, live):
    tr = generate("random", procs=2, seed=7, ops=20_000, dist=dist, live=live)
    [(_, r)] = run_cell("naive", mod.Config(), tr, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    c = r.counters
    assert c[ALLOCS] == c[FREES] == tr.stats()["allocs"]
    assert c[FAST_HITS] == 0
    assert c[LOCK_GLOBAL] == c[ALLOCS] + c[FREES]
    assert c[IN_USE] == 0
    assert c[COAL] > 0 and c[SPLITS] > 0
    # everything freed: one free block spans the whole heap
    assert len(blocks(r.state)) == 1


@pytest.mark.parametrize("config", [mod.Config(grow_kb=64, min_block=96), mod.Config(grow_kb=4096, min_block=32)])
def test_random_serial_configs_deterministic(config):
    tr = generate("random", procs=2, seed=11, ops=20_000, dist="medium", live=1500)
    [(_, r1)] = run_cell("naive", config, tr, check=True)
    [(_, r2)] = run_cell("naive", config, tr, check=False, warmup=False)
    assert r1.status == r2.status == "ok", r1.error
    assert np.array_equal(r1.counters, r2.counters)
    assert r1.peak_mapped_bytes == r2.peak_mapped_bytes


@pytest.mark.parametrize("dist", ["small", "mixed"])
def test_random_threads_check(dist):
    tr = generate("random", procs=4, seed=5, ops=20_000, dist=dist, live=1000, cross_p=0.3)
    [(_, r)] = run_cell("naive", mod.Config(), tr, mode="threads", check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    c = r.counters
    assert c[LOCK_GLOBAL] == c[ALLOCS] + c[FREES] == len(tr)
    assert c[IN_USE] == 0 and c[FAST_HITS] == 0
    assert c[CONTENDED] >= 0 and c[REFILLS] >= 1
    assert len(blocks(r.state)) == 1


def prefix(tr, n):
    """The first n ops: objects still live at the end leave a fragmented heap for check() to walk."""
    return Trace(tr.p[:n], tr.op[:n], tr.kind[:n], tr.size[:n], tr.obj[:n], tr.procs, tr.meta)


@pytest.mark.parametrize("mode,procs", [("serial", 2), ("threads", 4)])
def test_random_fragmented_heap_check(mode, procs):
    tr = prefix(generate("random", procs=procs, seed=9, ops=20_000, dist="medium", live=1500, cross_p=0.3), 12_000)
    [(_, r)] = run_cell("naive", mod.Config(), tr, mode=mode, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    live = tr.stats()["allocs"] - tr.stats()["frees"]
    used = [b for b in blocks(r.state) if b[2] == "used"]
    assert len(used) == live
    assert len(free_blocks(r.state)) > 50  # holes between live objects: the list order is really tested
