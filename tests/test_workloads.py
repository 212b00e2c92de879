"""Named goroutine workloads and the goroutine simulator (gosim): contract, determinism,
stated distributions, run-queue behaviour, and well-formed replay."""
import inspect

import numpy as np
import pytest

from alloclab import strategies, workloads
from alloclab.harness.runner import run_cell
from alloclab.workloads import generate, gosim

# small scales: every trace stays under ~50k ops
SMALL = {"spawn-storm": 0.004, "web": 0.004, "pipeline": 0.008, "larson": 0.004, "tiny": 0.005,
         "large-mix": 0.005, "phase-shift": 0.01}
NAMES = list(SMALL)
KIND_STACK = 2
_cache = {}


def gen(name, procs=4, seed=1, **params):
    key = (name, procs, seed, tuple(sorted(params.items())))
    if key not in _cache:
        _cache[key] = generate(name, procs=procs, seed=seed, scale=params.pop("scale", SMALL[name]), **params)
    return _cache[key]


def alloc_p(tr):
    """P that allocated each object."""
    out = np.full(tr.nobj, -1, np.int64)
    a = tr.op == 0
    out[tr.obj[a]] = tr.p[a]
    return out


def cross_p_share(tr):
    f = tr.op == 1
    return float((alloc_p(tr)[tr.obj[f]] != tr.p[f]).mean())


def objects_mask(tr):
    """allocations of ordinary (heap/noscan) objects."""
    return (tr.op == 0) & (tr.kind != KIND_STACK)


# ------------------------------------------------------------------ contract

def test_registry_lists_every_workload():
    assert set(NAMES) <= set(workloads.names())


@pytest.mark.parametrize("name", NAMES)
def test_module_contract(name):
    mod = workloads.get(name)
    assert mod.NAME == name
    assert mod.DESCRIPTION and "\n" not in mod.DESCRIPTION
    doc = mod.__doc__.lower()
    assert "sizes" in doc and "lifetime" in doc and "stands for" in doc
    sig = inspect.signature(mod.generate)
    assert list(sig.parameters)[:3] == ["procs", "seed", "scale"]
    assert sig.parameters["scale"].default == 1.0
    for k, default, rng, help_ in mod.Params.describe():
        assert isinstance(default, (int, float, str)) and help_ and rng, k
    # generate's defaults are the declared ones: a call without parameters records exactly them, in order
    params = gen(name).meta["params"]
    assert list(params.items()) == list(mod.Params().to_dict().items())


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_raise_one_line_value_error(name):
    mod = workloads.get(name)
    k = next(k for k, d, _, _ in mod.Params.describe() if isinstance(d, (int, float)))
    with pytest.raises(ValueError) as e:
        generate(name, scale=SMALL[name], **{k: -1})
    assert k in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        workloads.parse_params(mod, {"no_such_param": "1"})


@pytest.mark.parametrize("name", NAMES + ["random"])
def test_parse_params_types_and_names_the_range(name):
    # --param strings take their declared type; a value outside the declared range names the parameter and range
    mod = workloads.get(name)
    for k, default, rng, _ in mod.Params.describe():
        assert workloads.parse_params(mod, {k: str(default)}) == {k: default}, k
        with pytest.raises(ValueError) as e:
            workloads.parse_params(mod, {k: "-1" if isinstance(default, (int, float)) else "bogus"})
        assert k in str(e.value) and rng in str(e.value) and "\n" not in str(e.value), (k, str(e.value))


# ------------------------------------------------------------------ every workload

@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_seed_dependent(name):
    a = gen(name, seed=3)
    b = generate(name, procs=4, seed=3, scale=SMALL[name])
    c = generate(name, procs=4, seed=4, scale=SMALL[name])
    for col in ("p", "op", "kind", "size", "obj"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert len(a) != len(c) or any(not np.array_equal(getattr(a, col), getattr(c, col)) for col in ("p", "size", "obj"))


@pytest.mark.parametrize("name", NAMES)
def test_valid_small_and_all_freed(name):
    tr = gen(name)
    tr.validate()
    s = tr.stats()
    assert 1000 < s["ops"] <= 60_000, s["ops"]
    assert s["allocs"] == s["frees"]
    assert tr.meta["generator"] == name and tr.meta["seed"] == 1 and tr.meta["scale"] == SMALL[name]
    assert set(tr.meta["params"]) == set(workloads.get(name).Params.names())
    assert tr.meta["sim"]["error"] == 0
    # every workload runs goroutines: descriptors and 2 KiB stacks, as many of each
    desc = (tr.op == 0) & (tr.kind == KIND_STACK) & (tr.size == gosim.G_DESC_BYTES)
    assert desc.sum() == tr.meta["sim"]["spawns"] > 0
    assert ((tr.op == 0) & (tr.kind == KIND_STACK) & (tr.size == 2048)).sum() == desc.sum()


@pytest.mark.parametrize("name", NAMES)
def test_replays_with_check_on_bump(name, arena_mb):
    tr = gen(name)
    mod = strategies.get("bump")
    [(rep, r)] = run_cell("bump", mod.Config(), tr, check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert r.counters[0] == tr.stats()["allocs"] and r.counters[1] == tr.stats()["frees"]


@pytest.mark.parametrize("name", ["web", "pipeline", "larson"])
def test_replays_in_threads_mode(name, arena_mb):
    # cross-P frees wait for the allocating P to publish the address: the trace's order must allow it
    tr = gen(name)
    [(rep, r)] = run_cell("bump", strategies.get("bump").Config(), tr, mode="threads", check=True, arena_mb=arena_mb)
    assert r.status == "ok", r.error
    assert r.counters[0] == tr.stats()["allocs"]


@pytest.mark.parametrize("name", NAMES)
def test_scale_scales(name):
    # larson's slots and rounds have a floor of 16: compare above it, with fewer workers
    lo, extra = (0.02, {"threads": 8}) if name == "larson" else (SMALL[name] / 2, {})
    small = gen(name, procs=2, scale=lo, **extra)
    big = gen(name, procs=2, scale=2 * lo, **extra)
    assert 1.5 < len(big) / len(small) < 2.5


# ------------------------------------------------------------------ stated distributions

def test_web_sizes_and_cache():
    tr = gen("web")
    m = objects_mask(tr)
    sz = tr.size[m]
    small = ((sz >= 8) & (sz <= 256)).mean()
    assert abs(small - 0.95) < 0.03, small
    assert np.all(((sz >= 8) & (sz <= 256)) | ((sz >= 1024) & (sz <= 16384)))
    # request-scoped objects die with their goroutine; the cache keeps some past the last request
    last_exit = np.flatnonzero((tr.op == 1) & (tr.kind == KIND_STACK))[-1]
    late = tr.op[last_exit + 1:] == 1
    cache_cap = gosim.scaled(50_000, SMALL["web"], lo=16)
    assert late.all() and 0 < late.sum() <= cache_cap + tr.meta["sim"]["drained"]
    assert 0.2 < cross_p_share(tr) < 0.8


def test_tiny_is_tiny_noscan():
    tr = gen("tiny")
    m = objects_mask(tr)
    assert m.sum() > 5000
    assert tr.size[m].min() == 1 and tr.size[m].max() == 15
    assert np.all(tr.kind[m] == 1)
    counts = np.bincount(tr.size[m], minlength=16)[1:]
    assert counts.min() > 0.6 * counts.mean()      # uniform over 1..15


def test_large_mix_has_large_objects():
    tr = gen("large-mix")
    sz = tr.size[objects_mask(tr)]
    large = (sz > 32 * 1024).mean()
    assert 0.02 < large < 0.07, large
    assert sz.max() <= 1 << 20 and sz.max() > 256 * 1024
    assert ((sz > 1024) & (sz <= 32768)).mean() > 0.1


def test_pipeline_consumers_free_on_other_ps():
    tr = gen("pipeline")
    assert cross_p_share(tr) > 0.6
    sim = tr.meta["sim"]
    assert sim["handoffs"] > 0.9 * gosim.scaled(2_000_000, SMALL["pipeline"])
    # with one P, the same messages go through the channel of that P
    one = gen("pipeline", procs=1)
    assert one.meta["sim"]["handoffs"] > 0 and cross_p_share(one) == 0.0


def test_larson_keeps_slots_live_and_migrates():
    tr = gen("larson")
    m = tr.kind != KIND_STACK
    live = np.cumsum(np.where(tr.op[m] == 0, 1, -1))
    threads = 64
    slots = gosim.scaled(1000, SMALL["larson"], lo=16)
    assert live.max() == threads * slots              # every slot filled, then 1-for-1 replacement
    sz = tr.size[objects_mask(tr)]
    assert sz.min() >= 8 and sz.max() <= 1000
    assert tr.meta["sim"]["spawns"] == threads * 20   # successors inherit the slots, 20 generations
    assert cross_p_share(tr) > 0.05


def test_phase_shift_frees_90_percent_then_changes_size():
    tr = gen("phase-shift")
    m = objects_mask(tr)
    assert set(np.unique(tr.size[m])) == {64, 256}
    first_b = np.flatnonzero(m & (tr.size == 256))[0]
    n1 = (m[:first_b] & (tr.size[:first_b] == 64)).sum()
    freed = ((tr.op[:first_b] == 1) & (tr.size[:first_b] == 64)).sum()
    assert abs(freed / n1 - 0.9) < 0.01
    assert abs((m & (tr.size == 256)).sum() * 256 - n1 * 64) <= 1000 * 256


def test_spawn_storm_goroutines():
    tr = gen("spawn-storm")
    n = gosim.scaled(1_000_000, SMALL["spawn-storm"])
    st = tr.kind == KIND_STACK
    desc = st & (tr.size < 2048)
    assert (desc & (tr.op == 0)).sum() == n and (desc & (tr.op == 1)).sum() == n
    assert (st & (tr.size >= 2048) & (tr.op == 0)).sum() >= n
    objs = objects_mask(tr)
    per_g = objs.sum() / n
    assert 2.0 < per_g < 3.0                           # uniform 1..4 objects
    assert tr.size[objs].min() >= 8 and tr.size[objs].max() <= 256


def test_stack_growth_doubles_and_frees_old_stack():
    tr = gen("spawn-storm", grow=0.6)
    st_alloc = np.flatnonzero((tr.op == 0) & (tr.kind == KIND_STACK) & (tr.size >= 2048))
    sizes = tr.size[st_alloc]
    assert set(np.unique(sizes)) == {2048, 4096, 8192}
    grown = st_alloc[sizes > 2048]
    # copystack: the doubled stack is allocated, then the old one freed, on the same P
    nxt = grown + 1
    assert np.all(tr.op[nxt] == 1) and np.all(tr.kind[nxt] == KIND_STACK)
    assert np.all(tr.size[nxt] * 2 == tr.size[grown]) and np.all(tr.p[nxt] == tr.p[grown])
    assert tr.meta["sim"]["stack_grows"] == len(grown)


# ------------------------------------------------------------------ run queues

def test_work_stealing_spreads_one_spawner():
    # one wave: main spawns every goroutine on its P; the others only get work by stealing
    tr = gen("spawn-storm", waves=1)
    desc = (tr.op == 0) & (tr.kind == KIND_STACK) & (tr.size < 2048)
    assert set(np.unique(tr.p[desc])) == {0}
    objs = objects_mask(tr)
    per_p = np.bincount(tr.p[objs], minlength=4)
    # main keeps P0 busy spawning, so the other Ps run most goroutines; P0 runs what is left in its queue
    assert np.all(per_p > 0) and per_p[1:].min() > 0.2 * per_p.sum(), per_p
    sim = tr.meta["sim"]
    assert sim["steals"] > 0 and sim["stolen"] >= sim["steals"]
    assert sim["runq_overflows"] > 0                  # a 256-deep local queue spilled to the global queue
    assert sim["global_gets"] > 0


def test_one_p_runs_everything_through_its_queues():
    tr = gen("spawn-storm", procs=1, waves=1)
    sim = tr.meta["sim"]
    assert np.all(tr.p == 0)
    assert sim["steals"] == 0 and sim["runq_overflows"] > 0 and sim["global_gets"] > 0
    assert sim["max_live_g"] == gosim.scaled(1_000_000, SMALL["spawn-storm"])


def test_conns_bounds_live_goroutines():
    tr = gen("web", conns=16)
    assert tr.meta["sim"]["max_live_g"] == 16 and tr.meta["sim"]["parks"] > 0


# ------------------------------------------------------------------ engine

def test_gosim_rejects_bad_classes():
    band = [gosim.Band(1.0, 16, 64)]
    with pytest.raises(ValueError, match="p_free"):
        gosim.simulate([gosim.GClass(bands=band, p_free=1.5)], [gosim.Wave(0, 1)], 1, 0)
    with pytest.raises(ValueError, match="max_stack"):
        gosim.simulate([gosim.GClass(bands=band, max_stack=3000)], [gosim.Wave(0, 1)], 1, 0)
    with pytest.raises(ValueError, match="cache_cap"):
        gosim.simulate([gosim.GClass(bands=band, p_cache=0.5)], [gosim.Wave(0, 1)], 1, 0)
    with pytest.raises(ValueError, match="class index"):
        gosim.simulate([gosim.GClass(bands=band)], [gosim.Wave(1, 1)], 1, 0)


def test_gosim_handoff_and_preemption():
    producer = gosim.GClass(bands=[gosim.Band(1.0, 32, 32)], work=(50, 50), p_handoff=1.0, slice=10)
    consumer = gosim.GClass(bands=[gosim.Band(1.0, 16, 16)], work=(50, 50), p_alloc=0.0, recv=4)
    cols, stats = gosim.simulate([producer, consumer], [gosim.Wave((0, 1), 40, max_live=8)], 3, 7, inbox_cap=64)
    tr = gosim.make_trace(*cols, procs=3)
    assert stats["handoffs"] + stats["handoff_fallbacks"] == 20 * 50
    assert stats["preempts"] > 0
    m = (tr.kind != KIND_STACK)
    assert set(np.unique(tr.size[m])) == {32}        # consumers only free
    assert cross_p_share(tr) > 0.3
