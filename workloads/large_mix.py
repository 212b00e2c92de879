"""large-mix: small, medium and large objects, including objects over 32 KiB (Go's large-object path).

Stands for: a service that mostly allocates small structs but also reads
files and builds images or big slices: the objects above 32 KiB that Go
allocates as dedicated spans straight from the heap (``largeAlloc``),
mixed with size-classed ones.

Goroutines: ``goroutines`` (x scale) workers, at most ``workers`` alive; each
lives ``objects``/2 .. 3*``objects``/2 steps (uniform) and allocates one
object per step; stacks grow with chance 0.05 per step.
Sizes: log-uniform within three bands: 16-1024 B (heap 70%, noscan 30%),
share ``medium`` of 1-32 KiB (noscan 70%), share ``large`` of 32 KiB-1 MiB
(noscan 90%; log-uniform, so sizes just over 32 KiB are as common as those
near 1 MiB).
Lifetimes: per step the newest live object is freed with chance
``temp_free`` (big buffers tend to be short-lived); the rest live until the
goroutine exits; a share 0.005 is kept in a long-lived cache (2,000 x scale
entries, random eviction, freed at the end); a share 0.02 is handed to a
goroutine on another P and freed there.
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 40,000 goroutines, about 4.3M ops at scale 1.0; live memory
peaks near 50 MB (mean object ~13 KiB).
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "large-mix"
DESCRIPTION = "small, medium and large (32 KiB-1 MiB) objects: size classes and the large-object path"


class Params(WorkloadParams):
    goroutines: int = param(40_000, lo=1, hi=100_000_000, doc="worker goroutines (x scale)")
    workers: int = param(64, lo=1, hi=1_000_000, doc="goroutines alive at most")
    objects: int = param(50, lo=1, hi=1_000_000, doc="mean allocations per goroutine (uniform objects/2..3*objects/2)")
    medium: float = share(0.16, "share of 1-32 KiB objects")
    large: float = share(0.04, "share of 32 KiB-1 MiB objects")
    temp_free: float = share(0.5, "chance per step to free the goroutine's newest live object")

    def _validate_combination(self):
        self._shares_of_one("medium", "large")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    bands = [Band(1.0 - p.medium - p.large, 16, 1024, p_noscan=0.3), Band(p.medium, 1025, 32768, p_noscan=0.7),
             Band(p.large, 32769, 1 << 20, p_noscan=0.9)]
    worker = GClass(bands=bands, work=gosim.spread(p.objects), p_free=p.temp_free, p_cache=0.005, p_handoff=0.02,
                    recv=1, p_grow=0.05, p_yield=0.02, slice=10_000)
    plan = [Wave(0, gosim.scaled(p.goroutines, scale), wait=True, max_live=p.workers)]
    return gosim.build_trace(NAME, p.to_dict(), [worker], plan, procs, seed, scale,
                             cache_cap=gosim.scaled(2000, scale, lo=16))
