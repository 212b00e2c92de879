"""burst: goroutines that each allocate a burst of same-size objects and drop them on exit.

The worked example of docs/adding-a-workload.md: the smallest goroutine
workload, built on the gosim scheduler simulator.

Stands for: a worker pool whose jobs each build a fixed-size batch of
records, e.g. ``go func() { batch := make([]*Rec, n); ... }()`` per job.

Goroutines: ``goroutines`` (x scale) workers spawned by main, at most 64
alive; each runs ``objects`` steps and allocates one object per step.
Sizes: exactly ``size`` bytes, pointerful (kind heap), plus each worker's
G descriptor and 2 KiB stack.
Lifetimes: every object lives until its goroutine exits.
Parameters: ``alloclab list -v``.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "burst"
DESCRIPTION = "goroutines allocating a burst of same-size objects, freed when each exits"


class Params(WorkloadParams):
    goroutines: int = param(1000, lo=1, hi=10_000_000, doc="worker goroutines (x scale)")
    objects: int = param(8, lo=1, hi=100_000, doc="objects each worker allocates")
    size: int = param(64, lo=1, hi=1 << 20, doc="object size (bytes)")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    worker = GClass(bands=[Band(1.0, p.size, p.size, dist="uniform")], work=(p.objects, p.objects))
    plan = [Wave(0, gosim.scaled(p.goroutines, scale), max_live=64)]
    return gosim.build_trace(NAME, p.to_dict(), [worker], plan, procs, seed, scale)
