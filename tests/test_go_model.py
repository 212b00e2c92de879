"""The go strategy's fidelity to Go's allocator: tiers, tiny allocator, spans, stacks, free Gs, GC pacing.

Every test replays a small hand-made or generated trace through the executor
(one compiled replay kernel for the whole module) and reads the final state
back with the column names of the tier files (go/mspan.py, go/mcache.py, ...).
"""
from __future__ import annotations

import numpy as np
import pytest

from alloclab.harness.runner import counters_dict, replay_trace, run_cell
from alloclab.strategies import _counters as counters
from alloclab.strategies import go as mod
from alloclab.strategies._heap import MAPPED
from alloclab.strategies.go import layout, mcache, mgc, mheap, mspan, stacks
from alloclab.workloads import generate
from alloclab.workloads.trace import make_trace

HEAP, NOSCAN, STACK = counters.KIND_HEAP, counters.KIND_NOSCAN, counters.KIND_STACK
ARENA_MB = 256
# Most tests below check where a free's slot goes at once: they run the eager variant ("Go's allocator
# without GC lag", gogc = 0) explicitly; the default (Go's GOGC = 100) defers frees to GC cycles.
EAGER = mod.Config(gogc=0)


def X(name):
    return counters.EXTRA_BASE + mod.EXTRA_COUNTERS.index(name)


class Ops:
    """Build a trace op by op: ``a = ops.alloc(size, kind, p)`` returns the object id; ``ops.free(a, p)``."""

    def __init__(self, procs=1):
        self.procs = procs
        self.rows = []
        self.info = {}

    def alloc(self, size, kind=HEAP, p=0):
        o = len(self.info)
        self.info[o] = (size, kind)
        self.rows.append((p, 0, kind, size, o))
        return o

    def free(self, o, p=0):
        size, kind = self.info[o]
        self.rows.append((p, 1, kind, size, o))

    def trace(self):
        cols = list(zip(*self.rows))
        return make_trace(np.array(cols[0]), np.array(cols[1]), np.array(cols[2]), np.array(cols[3]),
                          np.array(cols[4]), procs=self.procs)


def replay(trace, config=EAGER, arena_mb=ARENA_MB):
    """Serial checked replay (gogc = 0 unless ``config`` says otherwise); returns (state, addresses by object id)."""
    r = replay_trace("go", trace, config, check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    st = r.state
    assert mod.check(st) == []
    return st, r.addr_of


def ctr(st, col):
    return int(st.counters[:, col].sum())


# ------------------------------------------------------------------ tiny allocator

def test_tiny_objects_share_a_block_at_gos_offsets():
    ops = Ops()
    a, b, c = ops.alloc(5, NOSCAN), ops.alloc(5, NOSCAN), ops.alloc(4, NOSCAN)
    st, addr = replay(ops.trace())
    base = addr[a]
    assert base % 16 == 0
    assert (addr[b] - base, addr[c] - base) == (5, 12)   # 5 -> 5 (odd: no alignment), 4 -> aligned to 4
    assert ctr(st, X("tiny_blocks")) == 1 and ctr(st, X("tiny_allocs")) == 2
    assert ctr(st, counters.IN_USE) == 16                       # one block holds all three


def test_tiny_eight_byte_object_aligns_to_8_and_full_block_moves_on():
    ops = Ops()
    a, b = ops.alloc(5, NOSCAN), ops.alloc(8, NOSCAN)
    c = ops.alloc(12, NOSCAN)    # 4-aligned offset 16 does not fit: a new block
    d = ops.alloc(2, NOSCAN)     # Go keeps the block with more room: the new one (offset 12 < 16)
    st, addr = replay(ops.trace())
    assert addr[b] - addr[a] == 8
    assert addr[c] % 16 == 0 and addr[c] != addr[a]
    assert addr[d] == addr[c] + 12


def test_tiny_odd_sizes_take_go_offsets():
    ops = Ops()
    a, b = ops.alloc(3, NOSCAN), ops.alloc(9, NOSCAN)    # Go: odd sizes are not aligned, b at offset 3
    c, d = ops.alloc(2, NOSCAN), ops.alloc(2, NOSCAN)    # the block is full at 12 + 2 + 2 = 16
    st, addr = replay(ops.trace())
    assert addr[b] == addr[a] + 3
    assert addr[c] == addr[a] + 12 and addr[d] == addr[a] + 14


def test_tiny_block_freed_only_when_all_subobjects_and_the_cache_let_go():
    ops = Ops()
    objs = [ops.alloc(3, NOSCAN) for _ in range(5)]      # block 1: offsets 0,3,6,9,12 ; 15+3 > 16
    nxt = ops.alloc(3, NOSCAN)                            # block 2 becomes current (3 < 15)
    for o in objs:
        ops.free(o)
    st, addr = replay(ops.trace())
    assert addr[nxt] // 16 != addr[objs[0]] // 16
    blk = addr[objs[0]]
    assert st.tinyref[blk >> 4] == 0                      # block 1 free: no sub-object, no cache hold
    assert st.tinyref[addr[nxt] >> 4] == 3                # block 2: one sub-object (2) + the cache (1)
    assert ctr(st, counters.IN_USE) == 16


def test_tiny_off_and_heap_kind_skip_the_tiny_allocator():
    ops = Ops()
    a, b = ops.alloc(5, NOSCAN), ops.alloc(5, NOSCAN)
    c, d = ops.alloc(5, HEAP), ops.alloc(5, HEAP)         # pointerful: never tiny, class 1 (8 B)
    st, addr = replay(ops.trace(), mod.Config(gogc=0, tiny_size=0))
    assert addr[b] - addr[a] == 8 and abs(addr[d] - addr[c]) == 8
    assert ctr(st, X("tiny_blocks")) == 0


# ------------------------------------------------------------------ mcache / mcentral / mheap

def test_a_refill_takes_a_whole_span_and_next_free_fast_walks_it():
    t = mod.size_class_table(mod.Config())
    sc = t.size_to_class(48)
    nel = int(t.class_nelems[sc])                         # 170 objects of 48 B in one page
    ops = Ops()
    objs = [ops.alloc(48) for _ in range(nel + 1)]
    st, addr = replay(ops.trace())
    first = np.array([addr[o] for o in objs[:nel]])
    assert (np.diff(first) == 48).all() and first[0] % 8192 == 0   # one span, slot by slot
    assert addr[objs[nel]] // 8192 != first[0] // 8192             # the 171st needs a new span
    assert ctr(st, counters.REFILLS) == 2
    # slots 64 and 128 start new allocCache words: nextFree reloads them; the rest is nextFreeFast
    assert ctr(st, X("next_free")) == 2
    assert ctr(st, X("next_free_fast")) == nel - 1 - 2
    assert ctr(st, counters.LOCK_CENTRAL) == 2


def test_size_classes_round_each_allocation_like_go():
    t = mod.size_class_table(mod.Config())
    ops = Ops()
    sizes = [1, 8, 9, 17, 24, 33, 100, 500, 512, 1000, 1024, 1025, 5000, 20000, 32760]
    objs = [(s, ops.alloc(s, NOSCAN if s >= 16 else HEAP)) for s in sizes]
    st, addr = replay(ops.trace())
    want = sum(int(t.class_to_size[t.size_to_class(s)]) for s in sizes)
    assert ctr(st, counters.IN_USE) == want
    for s, o in objs:
        span = st.pagemap[addr[o] >> 13]
        assert st.spans[span, mspan.SPAN_ELEMSIZE] == t.class_to_size[t.size_to_class(s)]


def test_go_1_22_gives_pointerful_objects_above_512_the_malloc_header_and_1_19_does_not():
    ops = Ops()
    a = ops.alloc(600, HEAP)      # 608 with the header -> class 640
    b = ops.alloc(600, NOSCAN)    # no header -> class 640 too, but at the slot start
    c = ops.alloc(512, HEAP)      # 512 B fits heap bits in the span: no header
    d = ops.alloc(1020, HEAP)     # 1028 with the header -> class 1152; without it 1024
    st, addr = replay(ops.trace(), mod.Config(gogc=0, go_version="1.22"))
    assert addr[a] % 8192 % 640 == 8 and addr[b] % 8192 % 640 == 0 and addr[c] % 512 == 0   # 640 B: one page
    st2, addr2 = replay(ops.trace(), mod.Config(gogc=0, go_version="1.19"))
    assert addr2[a] % 8192 % 640 == 0
    assert ctr(st, counters.IN_USE) - ctr(st2, counters.IN_USE) == 1152 - 1024   # the figure the version moves


def test_malloc_header_is_derived_from_go_version():
    assert mod.Config(go_version="1.22").malloc_header and not mod.Config(go_version="1.21").malloc_header
    assert mod.Config.from_dict({"go_version": "1.22", "malloc_header": True}).malloc_header
    with pytest.raises(mod.ConfigError, match="contradicts go_version 1.19"):
        mod.Config.from_dict({"go_version": "1.19", "malloc_header": True})


def test_freed_span_returns_its_pages_to_the_heap():
    ops = Ops()
    nel = 128                                             # class 64 B: 128 per page
    objs = [ops.alloc(64) for _ in range(nel + 1)]        # the first span fills and is uncached (full list)
    for o in objs[:nel]:
        ops.free(o)                                       # uncached span: 4 full batches of 32 sweep them
    st, addr = replay(ops.trace())
    assert ctr(st, X("spans_returned")) == 1 and ctr(st, X("free_batches")) == 4
    s0 = addr[objs[0]] >> 13
    assert st.spans[s0, mspan.SPAN_STATE] == mspan.MSPAN_DEAD and st.pagemap[s0] == -1
    assert ctr(st, counters.IN_USE) == 64


def test_frees_into_uncached_spans_are_swept_in_batches_under_one_lock():
    nel = 128                                             # class 64 B: 128 per page
    ops = Ops()
    objs = [ops.alloc(64) for _ in range(nel + 1)]        # span 1 fills and goes to the full list
    for o in objs[:3]:
        ops.free(o)
    st, addr = replay(ops.trace(), mod.Config(gogc=0, free_batch=4))
    s = addr[objs[0]] >> 13
    locks = ctr(st, counters.LOCK_CENTRAL)
    assert st.spans[s, mspan.SPAN_ALLOCCOUNT] == nel          # three frees wait in the P's batch
    assert ctr(st, X("batched_frees")) == 3 and ctr(st, X("free_batches")) == 0
    assert ctr(st, counters.IN_USE) == (nel + 1 - 3) * 64        # ... but are dead for IN_USE (check() agrees)
    ops.free(objs[3])                                     # the fourth fills the batch: one lock hold sweeps 4
    st, addr = replay(ops.trace(), mod.Config(gogc=0, free_batch=4))
    assert st.spans[s, mspan.SPAN_ALLOCCOUNT] == nel - 4 and ctr(st, X("free_batches")) == 1
    assert ctr(st, counters.LOCK_CENTRAL) == locks + 1
    assert st.spans[s, mspan.SPAN_LIST] == st.spans[s, mspan.SPAN_SPANCLASS]   # moved from full to partial[spc]
    st1, _ = replay(ops.trace(), mod.Config(gogc=0, free_batch=1))  # free_batch 1: a lock per free, as before batching
    assert ctr(st1, counters.LOCK_CENTRAL) == locks + 4 and st1.spans[s, mspan.SPAN_ALLOCCOUNT] == nel - 4


def test_batched_frees_are_reclaimed_before_the_heap_grows():
    """Frees waiting in a batch must not make the heap map more (mheap.reclaim before grow)."""
    ops = Ops()
    big = [ops.alloc(16384, NOSCAN) for _ in range(255)]  # 255 two-page spans: ~4 MiB, the first growth step
    for o in big:
        ops.free(o)                                       # the last span stays cached; 254 go into batches
    for _ in range(200):
        ops.alloc(8192, NOSCAN)                           # another class: its refills do not sweep those batches
    peaks = {}
    for fb in (1, 1024):
        st, _ = replay(ops.trace(), mod.Config(gogc=0, free_batch=fb))
        peaks[fb] = int(st.meta[MAPPED])
        assert ctr(st, X("heap_grows")) == 1, fb
    assert peaks[1] == peaks[1024] == 4 << 20


def test_frees_into_a_cached_span_wait_for_its_sweep():
    ops = Ops()
    objs = [ops.alloc(64) for _ in range(10)]
    for o in objs[:5]:
        ops.free(o)
    st, addr = replay(ops.trace())
    s = addr[objs[0]] >> 13
    assert st.spans[s, mspan.SPAN_OWNER] == 0
    assert st.spans[s, mspan.SPAN_ALLOCCOUNT] == 10           # Go: allocCount drops only when swept
    assert bin(int(st.freed[s * st.cfg[layout.CFG_ALLOCBITS_WORDS]])).count("1") == 5
    # now fill the span: the refill sweeps it and the 5 freed slots come back
    more = [ops.alloc(64) for _ in range(128 - 10 + 5)]
    st, addr = replay(ops.trace())
    assert addr[more[-1]] >> 13 == s and ctr(st, counters.REFILLS) == 2
    assert sorted(addr[o] for o in more[-5:]) == sorted(addr[o] for o in objs[:5])


def test_large_objects_get_dedicated_page_spans():
    ops = Ops()
    a = ops.alloc(40000)                                  # 5 pages
    b = ops.alloc(32769, NOSCAN)                          # just above max small: large, 5 pages
    c = ops.alloc(32761, HEAP)                            # 32761 + header > 32768: large too (Go >= 1.22), 4 pages
    ops.free(a)
    st, addr = replay(ops.trace(), mod.Config(gogc=0, go_version="1.22"))
    assert ctr(st, X("large_allocs")) == 3 and ctr(st, X("spans_returned")) == 1
    for o, npages in ((b, 5), (c, 4)):
        s = addr[o] >> 13
        assert addr[o] % 8192 == 0 and st.spans[s, mspan.SPAN_STATE] == mspan.MSPAN_LARGE
        assert st.spans[s, mspan.SPAN_NPAGES] == npages
    assert ctr(st, counters.IN_USE) == (5 + 4) * 8192


def test_page_cache_serves_small_spans_without_the_heap_lock():
    ops = Ops()
    for size in (8, 16, 32, 48, 64, 80, 96, 112):
        ops.alloc(size)
    st, _ = replay(ops.trace())
    # the first span finds an empty heap: grow under the heap lock; the cache then takes pages 1-63
    assert ctr(st, X("page_cache_hits")) == 7 and ctr(st, X("page_cache_refills")) == 1
    assert ctr(st, X("heap_grows")) == 1
    assert int(st.mcu[0, mheap.PP_PCACHE_CACHE]).bit_count() == 63 - 7
    st2, _ = replay(ops.trace(), mod.Config(gogc=0, page_cache_pages=0))
    assert ctr(st2, X("page_cache_hits")) == 0
    assert ctr(st2, counters.LOCK_GLOBAL) > ctr(st, counters.LOCK_GLOBAL)


def test_heap_grows_in_4_mib_steps():
    ops = Ops()
    objs = [ops.alloc(1 << 20, NOSCAN) for _ in range(5)]
    st, addr = replay(ops.trace())
    assert st.meta[0] == 8 << 20 and ctr(st, X("heap_grows")) == 2


def test_out_of_memory_is_a_status_not_a_crash():
    ops = Ops()
    for _ in range(40):
        ops.alloc(1 << 20)
    [(rep, r)] = run_cell("go", EAGER, ops.trace(), warmup=False, arena_mb=16)
    assert r.status == "oom"
    assert mod.check(r.state) == []


# ------------------------------------------------------------------ stacks and G descriptors

def test_stack_orders_and_cache_refill_to_16k():
    ops = Ops()
    a = ops.alloc(4096, STACK)       # order 1: refill 16 KiB = 4 stacks, hand one out
    b = ops.alloc(8192, STACK)       # order 2: 2 stacks
    c = ops.alloc(16384, STACK)      # order 3: 1 stack
    d = ops.alloc(32768, STACK)      # >= 32 KiB: a dedicated span
    e = ops.alloc(3000, STACK)       # rounded up to 4096: from the order-1 cache
    st, addr = replay(ops.trace())
    assert [int(st.mc[0, mcache.MCACHE_STACKCACHE_SIZE + o]) for o in range(4)] == [0, 16384 - 8192, 16384 - 8192, 0]
    assert ctr(st, X("stack_cache_refills")) == 3 and ctr(st, X("stack_cache_hits")) == 1
    s = addr[d] >> 13
    assert st.spans[s, mspan.SPAN_STATE] == mspan.MSPAN_STACK_LARGE and st.spans[s, mspan.SPAN_NPAGES] == 4
    s = st.pagemap[addr[a] >> 13]
    assert st.spans[s, mspan.SPAN_STATE] == mspan.MSPAN_STACK_POOL and st.spans[s, mspan.SPAN_NPAGES] == 4
    # the pool hands out its highest stacks first (Go carves its manualFreeList upwards) and the refill
    # pushes each onto the cache list: the cache's head is the 4th stack taken, at 16 KiB into the span
    assert addr[a] == s * 8192 + 4 * 4096 and st.pagemap[addr[e] >> 13] == s
    assert ctr(st, counters.IN_USE) == 4096 + 8192 + 16384 + 32768 + 4096


def test_stack_cache_releases_to_16k_above_32k():
    ops = Ops()
    objs = [ops.alloc(4096, STACK) for _ in range(12)]
    for o in objs:
        ops.free(o)
    st, _ = replay(ops.trace())
    # frees push the cache from 0 to 32 KiB (8 stacks); the 9th finds it full: release to 16 KiB, then push
    assert ctr(st, X("stack_cache_releases")) == 1
    assert int(st.mc[0, mcache.MCACHE_STACKCACHE_SIZE + 1]) == 16384 + 4 * 4096


def test_free_g_lists_move_batches_like_gfput_and_gfget():
    ops = Ops(procs=2)
    gs = [ops.alloc(440, STACK, p=0) for _ in range(70)]
    for g in gs:
        ops.free(g, p=0)
    st, _ = replay(ops.trace())
    # at 64 free Gs, P0 moves Gs to the global list until fewer than 32 remain (33 moved), then 6 more arrive
    assert int(st.mc[0, stacks.PP_GFREE_N]) == 31 + 6 and int(st.gl[stacks.SCHED_GFREE_N]) == 33
    assert ctr(st, X("gfree_moves")) == 33
    again = [ops.alloc(440, STACK, p=1) for _ in range(3)]
    st, addr = replay(ops.trace())
    # P1's list is empty: it takes a batch of 32 from the global list and reuses one
    assert int(st.mc[1, stacks.PP_GFREE_N]) == 32 - 3 and int(st.gl[stacks.SCHED_GFREE_N]) == 1
    assert ctr(st, X("gfree_reuse")) == 3 and ctr(st, X("gfree_moves")) == 33 + 32
    assert {addr[g] for g in again} <= {addr[g] for g in gs}


def test_a_reused_g_brings_its_starting_stack():
    ops = Ops()
    g1, s1 = ops.alloc(440, STACK), ops.alloc(2048, STACK)
    ops.free(s1)
    ops.free(g1)                       # the stack waits (orphan), then rides on the dead G
    g2, s2 = ops.alloc(440, STACK), ops.alloc(2048, STACK)
    ops.free(g2)
    ops.free(s2)                       # this time the G goes first: the stack attaches to it
    g3, s3 = ops.alloc(440, STACK), ops.alloc(2048, STACK)
    st, addr = replay(ops.trace())
    assert addr[g1] == addr[g2] == addr[g3] and addr[s1] == addr[s2] == addr[s3]
    assert ctr(st, X("g_stack_reuse")) == 2 and ctr(st, X("gfree_reuse")) == 2
    assert ctr(st, X("stack_cache_refills")) == 1


# ------------------------------------------------------------------ whole traces

@pytest.fixture(scope="module")
def threads_trace():
    return generate("random", procs=4, seed=3, ops=30000, dist="small", live=2000, cross_p=0.3)


@pytest.mark.parametrize("gogc", [0, 100])
def test_threads_mode_cross_p_frees_keep_invariants(threads_trace, gogc):
    [(rep, r)] = run_cell("go", mod.Config(gogc=gogc, gc_min_heap_kb=256), threads_trace, mode="threads",
                          check=True, warmup=False, arena_mb=ARENA_MB)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[counters.IN_USE] == 0     # a tiny block held only by an mcache counts no bytes
    s = threads_trace.stats()
    assert r.counters[counters.ALLOCS] == s["allocs"] and r.counters[counters.FREES] == s["frees"]


def test_threads_mode_mixed_sizes_and_stacks():
    tr = generate("random", procs=4, seed=9, ops=20000, dist="mixed", live=500, cross_p=0.3)
    [(rep, r)] = run_cell("go", mod.Config(), tr, mode="threads", check=True, warmup=False, arena_mb=ARENA_MB)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    ops = Ops(procs=4)
    rng = np.random.default_rng(1)
    live = []
    for i in range(4000):
        p = int(rng.integers(4))
        if live and rng.random() < 0.5:
            g, s = live.pop(int(rng.integers(len(live))))
            q = int(rng.integers(4))
            ops.free(s, q)
            ops.free(g, q)
        else:
            live.append((ops.alloc(440, STACK, p), ops.alloc(int(rng.choice([2048, 2048, 8192, 65536])), STACK, p)))
    [(rep, r)] = run_cell("go", mod.Config(), ops.trace(), mode="threads", check=True, warmup=False,
                          arena_mb=ARENA_MB)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []


def test_serial_runs_are_deterministic_and_mostly_fast_path():
    tr = generate("random", procs=2, seed=4, ops=40000, dist="small", live=1000, cross_p=0.2)
    res = [run_cell("go", mod.Config(), tr, warmup=False, arena_mb=ARENA_MB, check=True)[0][1] for _ in range(2)]
    assert all(r.status == "ok" for r in res)
    assert np.array_equal(res[0].counters, res[1].counters)
    c = counters_dict(mod, res[0])
    small = c["allocs"] - c["tiny_allocs"]
    assert c["next_free_fast"] / small > 0.85
    assert c["fast_hits"] / c["allocs"] > 0.9
    assert c["in_use"] == 0


def test_gogc_defers_frees_to_gc_cycles():
    tr = generate("random", procs=1, seed=2, ops=40000, dist="medium", live=2000)
    r0 = run_cell("go", EAGER, tr, warmup=False, arena_mb=ARENA_MB, check=True)[0][1]
    r1 = run_cell("go", mod.Config(gogc=100, gc_min_heap_kb=512), tr, warmup=False, arena_mb=ARENA_MB,
                  check=True)[0][1]
    assert r0.status == r1.status == "ok", (r0.error, r1.error)
    c0, c1 = counters_dict(mod, r0), counters_dict(mod, r1)
    assert c0["gc_cycles"] == 0 and c1["gc_cycles"] >= 2
    assert r1.peak_mapped_bytes >= r0.peak_mapped_bytes
    st = r1.state
    assert st.gl[mheap.MHEAP_SWEEPGEN] == 2 * c1["gc_cycles"]
    assert st.gl[mgc.GC_HEAP_GOAL] >= 512 * 1024


def test_defaults_are_gos_gogc_100_and_the_installed_toolchains_version():
    from alloclab.strategies import go_runtime

    cfg = mod.Config()
    assert cfg.gogc == 100 and cfg.gc_min_heap_kb == 4096
    go = go_runtime._go()
    want = mod.installed_go_version(go_runtime.go_version(go) if go else None)
    assert cfg.go_version == want and (want == mod.GO_VERSIONS[-1] or go is not None)
    assert mod.installed_go_version("go1.19.8") == "1.19" and mod.installed_go_version("go1.99") == mod.GO_VERSIONS[-1]
    assert mod.installed_go_version(None) == mod.GO_VERSIONS[-1]
    assert cfg.config_hash() == mod.Config().config_hash()


def test_go_1_18_counts_stacks_towards_the_heap_goal_and_1_17_does_not():
    # 8 MiB of live goroutine stacks and 1 MiB of live heap, then heap churn: the goal after the first cycle
    # is marked + (marked + stacks) from Go 1.18, marked x 2 before (both at least 4 MiB)
    ops = Ops()
    for _ in range(128):
        ops.alloc(65536, STACK)
    for _ in range(1024):
        ops.alloc(1024, HEAP)
    for _ in range(12000):
        ops.free(ops.alloc(1024, HEAP))
    tr = ops.trace()
    goals = {}
    for v in ("1.17", "1.19"):
        r = run_cell("go", mod.Config(go_version=v), tr, warmup=False, arena_mb=ARENA_MB, check=True)[0][1]
        assert r.status == "ok", r.error
        goals[v] = (int(r.state.gl[mgc.GC_HEAP_GOAL]), int(r.state.gl[mgc.GC_HEAP_MARKED]),
                    counters_dict(mod, r)["gc_cycles"])
    (g17, m17, n17), (g19, m19, n19) = goals["1.17"], goals["1.19"]
    assert n17 > n19 >= 1                                     # a lower goal: more cycles
    assert g17 == max(2 * m17, 4 << 20)
    assert g19 == m19 + m19 + 128 * 65536 and g19 > g17


# ------------------------------------------------------------------ the pacer's trigger and the concurrent mark
def _gc(st):
    return {k: int(st.gl[getattr(mgc, "GC_" + k.upper())])
            for k in ("heap_live", "heap_marked", "heap_goal", "trigger", "mark_end", "marking", "unmarked")}


@pytest.mark.parametrize("version,lo,hi", [("1.19", 45 / 64, 61 / 64), ("1.17", 0.6, 0.95)])
def test_the_trigger_lies_in_gos_bounds_and_the_mark_ends_at_the_goal(version, lo, hi):
    tr = generate("random", procs=1, seed=5, ops=60000, dist="medium", live=3000)
    r = run_cell("go", mod.Config(go_version=version, gc_min_heap_kb=256), tr, warmup=False, arena_mb=ARENA_MB,
                 check=True)[0][1]
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    g = _gc(r.state)
    assert counters_dict(mod, r)["gc_cycles"] >= 3
    way = (g["trigger"] - g["heap_marked"]) / (g["heap_goal"] - g["heap_marked"])
    assert lo - 0.01 <= way <= lo + 0.01 and way <= hi      # trigger()'s lower bound (mgc.py: why)
    if g["marking"]:
        assert g["mark_end"] == g["heap_goal"]                # gc_mark_end_pct = 100: Go's pacer aims at the goal
    # before any cycle: no runway yet, so trigger() clamps to its upper bound, 61/64 of the goal
    ops = Ops()
    ops.alloc(64)
    fresh = _gc(replay(ops.trace(), mod.Config(gc_min_heap_kb=256))[0])
    assert fresh["trigger"] == 256 * 1024 // 64 * 61 and fresh["marking"] == 0


def test_an_earlier_mark_end_means_more_cycles():
    tr = generate("random", procs=1, seed=5, ops=60000, dist="medium", live=3000)
    n = {}
    for pct in (100, 20):
        r = run_cell("go", mod.Config(gc_min_heap_kb=256, gc_mark_end_pct=pct), tr, warmup=False,
                     arena_mb=ARENA_MB, check=True)[0][1]
        assert r.status == "ok" and mod.check(r.state) == [], r.error
        n[pct] = counters_dict(mod, r)["gc_cycles"]
    assert n[20] > n[100]


def test_an_object_freed_during_the_mark_is_floating_garbage_until_the_next_cycle():
    # 1 KiB objects: 8 to a one-page span, and each refill adds a span's 8 KiB to heapLive. With a 64 KiB
    # goal the mark starts at the 8th refill (heapLive 64 KiB >= trigger 61/64 x 64 KiB) and terminates
    # at the 9th (72 KiB >= mark end = goal).
    cfg = mod.Config(gc_min_heap_kb=64)
    ops = Ops()
    objs = [ops.alloc(1024) for _ in range(56)]
    ops.free(objs[0])                                          # dead before the mark: this cycle reclaims it
    objs += [ops.alloc(1024) for _ in range(8)]                # the 8th refill starts the mark
    st, addr = replay(ops.trace(), cfg)
    g = _gc(st)
    assert g["marking"] == 1 and ctr(st, X("gc_cycles")) == 0 and g["unmarked"] == 1024
    ops.free(objs[1])                                          # freed during the mark: floating garbage
    objs.append(ops.alloc(1024))                               # the 9th refill terminates the mark
    st, addr = replay(ops.trace(), cfg)
    g = _gc(st)
    assert g["marking"] == 0 and ctr(st, X("gc_cycles")) == 1
    assert g["heap_marked"] == 9 * 8192 - 1024                 # obj 1 was live at mark start: it counts
    s = addr[objs[0]] >> 13
    W, half = int(st.cfg[layout.CFG_ALLOCBITS_WORDS]), st.freed.shape[0] // 2
    slot0, slot1 = ((addr[objs[i]] - s * 8192) // 1024 for i in (0, 1))
    assert not (int(st.allocbits[s * W]) >> slot0) & 1        # reclaimed by this cycle's sweep
    assert (int(st.allocbits[s * W]) >> slot1) & 1             # survived it: still allocated ...
    assert (int(st.freed[s * W]) >> slot1) & 1 and st.freed[half + s * W] == 0   # ... freed, not yet unmarked
    assert g["heap_goal"] == 2 * g["heap_marked"] and g["trigger"] == g["heap_marked"] + g["heap_marked"] // 64 * 45
    # run on to the next cycle: its mark start unmarks obj 1 and its sweep reclaims it
    n = len(objs)
    while ctr(st, X("gc_cycles")) < 2:
        objs += [ops.alloc(1024) for _ in range(64)]
        st, addr = replay(ops.trace(), cfg)
    assert st.freed[s * W] == 0 and st.freed[half + s * W] == 0   # swept: no freed or unmarked bit left
    assert not (int(st.allocbits[s * W]) >> slot1) & 1 or addr[objs[1]] in [addr[o] for o in objs[n:]]
