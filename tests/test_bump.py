from alloclab import strategies
from alloclab.harness.runner import replay_trace
from alloclab.strategies._heap import DEFAULT_CHUNK
from alloclab.workloads import generate

from reference import reference_bump


def test_bump_addresses_equal_python_reference(arena_mb):
    mod = strategies.get("bump")
    cfg = mod.Config(region_kb=64)
    tr = generate("random", procs=3, seed=2, ops=5000, dist="mixed", live=100)
    r = replay_trace(mod, tr, cfg, arena_mb=arena_mb)
    assert r.status == "ok"
    addr_of = r.addr_of
    want = reference_bump(tr, 64 * 1024, DEFAULT_CHUNK, 3)
    assert {o: int(addr_of[o]) for o in want} == want
