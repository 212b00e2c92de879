"""tiny: goroutines making 1-15 B pointer-free objects (Go's tiny-allocator case).

Stands for: code that allocates many tiny noscan values — short strings,
small []byte, boxed ints and bools escaping to the heap — the objects Go
combines into 16-byte blocks with its tiny allocator (malloc.go, "Tiny
allocator"). A workload for checking what that combining saves.

Goroutines: ``goroutines`` (x scale) workers spawned by main, at most 256
alive; each lives ``objects``/2 .. 3*``objects``/2 steps (uniform) and
allocates one object per step; stacks grow with chance 0.02 per step.
Sizes: uniform in 1..15 B, all noscan (kind 1).
Lifetimes: per step the newest live object is freed with chance
``temp_free``; the rest live until the goroutine exits; a share
``cache_share`` is interned in a long-lived table (``cache_entries`` x
scale entries, random eviction when full, the rest freed at the end); a
share 0.05 is handed to a goroutine on another P and freed there.
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 30,000 goroutines, about 6.3M ops at scale 1.0; live memory
is small (< 2 MB of objects plus stacks).
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "tiny"
DESCRIPTION = "1-15 B noscan objects: strings, small byte slices, boxed scalars (the tiny-allocator case)"


class Params(WorkloadParams):
    goroutines: int = param(30_000, lo=1, hi=100_000_000, doc="worker goroutines (x scale)")
    objects: int = param(100, lo=1, hi=1_000_000, doc="mean allocations per goroutine (uniform objects/2..3*objects/2)")
    temp_free: float = share(0.3, "chance per step to free the goroutine's newest live object")
    cache_share: float = share(0.02, "share of objects kept in the long-lived table", hi=0.95)
    cache_entries: int = param(100_000, lo=1, hi=100_000_000, doc="long-lived table capacity (x scale)")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    worker = GClass(bands=[Band(1.0, 1, 15, p_noscan=1.0, dist="uniform")], work=gosim.spread(p.objects),
                    p_free=p.temp_free, p_cache=p.cache_share, p_handoff=0.05, recv=1, p_grow=0.02, p_yield=0.02,
                    slice=10_000)
    plan = [Wave(0, gosim.scaled(p.goroutines, scale), wait=True, max_live=256)]
    return gosim.build_trace(NAME, p.to_dict(), [worker], plan, procs, seed, scale,
                             cache_cap=gosim.scaled(p.cache_entries, scale, lo=16))
