import numpy as np

from alloclab import strategies
from alloclab.harness import executor as ex
from alloclab.strategies._heap import DEFAULT_CHUNK, Heap
from alloclab.workloads import generate

from reference import reference_bump


def test_bump_addresses_equal_python_reference(arena_mb):
    mod = strategies.get("bump")
    cfg = mod.Config(region_kb=64)
    tr = generate("random", procs=3, seed=2, ops=5000, dist="mixed", live=100)
    heap = Heap(arena_mb << 20)
    st = mod.make_state(cfg, heap, 3)
    addr_of = np.full(tr.nobj, ex.UNPUBLISHED, np.int64)
    status = ex.replay(st, heap.arena64, tr.p, tr.op, tr.kind, tr.size, tr.obj, addr_of, 0, len(tr),
                       False, True, np.zeros(1, np.uint8), ex.SERIAL, -1, ex.new_stats(), np.zeros(1, np.int64))
    assert status == ex.OK
    want = reference_bump(tr, 64 * 1024, DEFAULT_CHUNK, 3)
    assert {o: int(addr_of[o]) for o in want} == want
