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
Default size: 1,000,000 objects of 64 B, then 250,000 of 256 B: about
2.5M ops at scale 1.0; live memory peaks near 70 MB.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "phase-shift"
DESCRIPTION = "fill with one size, free 90% at random, allocate another size: external fragmentation"
PARAMS = {
    "objects": (1_000_000, "objects allocated in phase 1 (x scale)"),
    "first_size": (64, "object size of phase 1 (bytes)"),
    "second_size": (256, "object size of phase 2 (bytes); phase 2 allocates as many bytes as phase 1"),
    "free_share": (0.9, "share of phase-1 objects freed at random between the phases"),
    "per_goroutine": (1000, "objects each filler goroutine allocates"),
    "kind": ("heap", "object kind: heap or noscan"),
}
KINDS = {"heap": 0.0, "noscan": 1.0}


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, objects: int = 1_000_000, first_size: int = 64,
             second_size: int = 256, free_share: float = 0.9, per_goroutine: int = 1000, kind: str = "heap"):
    gosim.check_int("objects", objects, 1, 1_000_000_000)
    gosim.check_int("first_size", first_size, 1, 1 << 30)
    gosim.check_int("second_size", second_size, 1, 1 << 30)
    gosim.check_float("free_share", free_share)
    gosim.check_int("per_goroutine", per_goroutine, 1, 1_000_000_000)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: choose from heap, noscan")
    n1 = gosim.scaled(objects, scale)
    n2 = max(1, n1 * first_size // second_size)
    per = min(per_goroutine, n1)
    g1, g2 = -(-n1 // per), -(-n2 // per)
    first = GClass(bands=[Band(1.0, first_size, first_size, p_noscan=KINDS[kind], dist="uniform")], work=(per, per),
                   p_cache=1.0)
    second = GClass(bands=[Band(1.0, second_size, second_size, p_noscan=KINDS[kind], dist="uniform")],
                    work=(per, per), p_cache=1.0)
    plan = [Wave(0, g1, wait=True), Wave(1, g2, wait=True, evict=free_share)]
    params = dict(objects=objects, first_size=first_size, second_size=second_size, free_share=free_share,
                  per_goroutine=per_goroutine, kind=kind)
    return gosim.build_trace(NAME, params, [first, second], plan, procs, seed, scale,
                             cache_cap=g1 * per + g2 * per)
