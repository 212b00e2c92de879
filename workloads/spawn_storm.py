"""spawn-storm: a million short goroutines spawned in waves (Go's ``go f()`` in a loop).

Stands for: a fan-out server or a parallel map that starts one goroutine per
item, e.g. ``for _, x := range items { wg.Add(1); go work(x) }; wg.Wait()``.
Go's goroutines cost a 2 KiB stack and a G descriptor each; this workload is
dominated by them.

Goroutines: ``goroutines`` (x scale) in ``waves`` equal waves; main spawns a
wave on its P (runnext / local run queue, overflowing to the global queue),
waits for the wave to exit, then spawns the next. Idle Ps steal the spawned
goroutines, so their small objects are allocated and freed on every P while
descriptors and stacks are allocated on main's P and freed where the
goroutine exits.
Sizes: per goroutine one G descriptor (kind stack, 448 B) and one 2 KiB
stack (kind stack); with chance ``grow`` per step the stack doubles
(2 -> 4 -> 8 KiB, the old one freed: copystack); 1..``objects`` (uniform)
small objects of 8-256 B, log-uniform, half noscan.
Lifetimes: everything a goroutine allocates lives until it exits (a few
steps); nothing outlives its wave. Live memory peaks at about one wave of
goroutines: 10,000 x ~3 KiB = ~30 MB at scale 1.
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 1,000,000 goroutines, about 9.5M ops at scale 1.0.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "spawn-storm"
DESCRIPTION = "1M short goroutines spawned in waves: G descriptors, 2 KiB stacks and a few small objects each"


class Params(WorkloadParams):
    goroutines: int = param(1_000_000, lo=1, hi=100_000_000, doc="goroutines spawned in total (x scale)")
    waves: int = param(100, lo=1, hi=1_000_000, doc="spawn waves; main waits for each wave to exit before the next")
    objects: int = param(4, lo=1, hi=10_000, doc="most small objects a goroutine allocates (uniform 1..objects)")
    grow: float = share(0.05, "chance per step that a goroutine doubles its stack (2 -> 4 -> 8 KiB)")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    n = gosim.scaled(p.goroutines, scale)
    nw = min(p.waves, n)
    per, extra = divmod(n, nw)
    worker = GClass(bands=[Band(1.0, 8, 256, p_noscan=0.5)], work=(1, p.objects), p_grow=p.grow)
    plan = [Wave(0, per + (1 if i < extra else 0), wait=True) for i in range(nw)]
    return gosim.build_trace(NAME, p.to_dict(), [worker], plan, procs, seed, scale)
