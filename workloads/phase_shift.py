"""phase-shift: fill the heap with one size, free 90% at random, then allocate another size.

Stands for: a program whose working set changes shape — load a big table of
one record type, drop most of it, then build a different structure (a cache
rebuilt with a new layout, a parser moving from tokens to AST nodes).
Size-segregated allocators keep the 10% survivors scattered over spans of
the first size class that the second size cannot reuse: external
fragmentation, measured as mapped / live bytes after the shift.

Goroutines: phase 1 spawns objects/``per_goroutine`` fillers (rounded up),
each allocating ``per_goroutine`` objects of ``first_size`` B into a
program-wide table; main waits, then frees a share ``free_share`` of the
table chosen uniformly at random (on main's P, so mostly cross-P frees),
then phase 2 fillers allocate objects of ``second_size`` B totalling the
same bytes as phase 1; at the end main frees the table.
Sizes: exactly ``first_size`` then exactly ``second_size`` (kind ``kind``),
plus each filler's G descriptor and 2 KiB stack.
Lifetimes: phase-1 objects live until the random purge (90%) or the end
(10%); phase-2 objects live until the end.
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 1,000,000 objects of 64 B, then 250,000 of 256 B: about
2.5M ops at scale 1.0; live memory peaks near 70 MB.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "phase-shift"
DESCRIPTION = "fill with one size, free 90% at random, allocate another size: external fragmentation"
KINDS = {"heap": 0.0, "noscan": 1.0}


class Params(WorkloadParams):
    objects: int = param(1_000_000, lo=1, hi=1_000_000_000, doc="objects allocated in phase 1 (x scale)")
    first_size: int = param(64, lo=1, hi=1 << 30, doc="object size of phase 1 (bytes)")
    second_size: int = param(256, lo=1, hi=1 << 30,
                             doc="object size of phase 2 (bytes); phase 2 allocates as many bytes as phase 1")
    free_share: float = share(0.9, "share of phase-1 objects freed at random between the phases")
    per_goroutine: int = param(1000, lo=1, hi=1_000_000_000, doc="objects each filler goroutine allocates")
    kind: str = param("heap", choices=tuple(KINDS), doc="object kind of both phases' objects")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    n1 = gosim.scaled(p.objects, scale)
    n2 = max(1, n1 * p.first_size // p.second_size)
    per = min(p.per_goroutine, n1)
    g1, g2 = -(-n1 // per), -(-n2 // per)
    noscan = KINDS[p.kind]
    first = GClass(bands=[Band(1.0, p.first_size, p.first_size, p_noscan=noscan, dist="uniform")], work=(per, per),
                   p_cache=1.0)
    second = GClass(bands=[Band(1.0, p.second_size, p.second_size, p_noscan=noscan, dist="uniform")],
                    work=(per, per), p_cache=1.0)
    plan = [Wave(0, g1, wait=True), Wave(1, g2, wait=True, evict=p.free_share)]
    return gosim.build_trace(NAME, p.to_dict(), [first, second], plan, procs, seed, scale,
                             cache_cap=g1 * per + g2 * per)
