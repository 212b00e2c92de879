"""larson: Larson & Krishnan's server simulation, with goroutines for threads.

Stands for: a long-running server whose workers keep a table of live
objects and replace them at random (Larson & Krishnan, "Memory allocation
for long-running server applications", ISMM 1998; the ``larson`` benchmark
of Hoard and mimalloc-bench). Ownership migrates: a worker that finishes
its rounds is replaced by a new goroutine that inherits its table, and
goroutines are preempted and resume on other Ps, so objects are freed by
another P than the one that allocated them.

Goroutines: ``threads`` workers, each owning ``slots`` (x scale, at least 16)
slots. The first generation fills its slots, then every step frees the
object in a random slot and allocates a new one there, ``rounds`` (x scale,
at least 16) times; then the worker spawns its successor (which inherits the
slots, on the same P) and exits; ``gens`` generations in all; the last frees
its slots. Workers are preempted every rounds/4 steps (to the global run queue).
Sizes: uniform in ``min_size``..``max_size`` (Larson's 8..1000 B), noscan
with chance ``noscan``.
Lifetimes: an object lives until its slot is drawn again: geometric with
mean ``slots`` replacements of its worker (exponential-like, long tail).
Live memory: threads x slots x mean size = 64 x 1000 x 504 B = ~32 MB at
scale 1. Default size: about 5.2M ops at scale 1.0.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "larson"
DESCRIPTION = "Larson & Krishnan server simulation: random slot replacement, successors inherit the slots"
PARAMS = {
    "threads": (64, "worker goroutines (each with its own slot table)"),
    "slots": (1000, "slots (live objects) per worker (x scale, >= 16)"),
    "rounds": (2000, "slot replacements per worker generation (x scale, >= 16)"),
    "gens": (20, "generations: a worker is replaced by a successor inheriting its slots gens-1 times"),
    "min_size": (8, "smallest object (bytes)"),
    "max_size": (1000, "largest object (bytes); sizes are uniform in between"),
    "noscan": (0.5, "share of noscan objects"),
}


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, threads: int = 64, slots: int = 1000,
             rounds: int = 2000, gens: int = 20, min_size: int = 8, max_size: int = 1000, noscan: float = 0.5):
    gosim.check_int("threads", threads, 1, 1_000_000)
    gosim.check_int("slots", slots, 1, 100_000_000)
    gosim.check_int("rounds", rounds, 1, 1_000_000_000)
    gosim.check_int("gens", gens, 1, 1_000_000)
    gosim.check_int("min_size", min_size, 1, 1 << 30)
    gosim.check_int("max_size", max_size, min_size, 1 << 30)
    gosim.check_float("noscan", noscan)
    ns = gosim.scaled(slots, scale, lo=min(16, slots))
    nr = gosim.scaled(rounds, scale, lo=min(16, rounds))
    worker = GClass(bands=[Band(1.0, min_size, max_size, p_noscan=noscan, dist="uniform")], work=(nr, nr),
                    slots=ns, gens=gens, slice=max(8, nr // 4))
    plan = [Wave(0, threads, wait=True)]
    params = dict(threads=threads, slots=slots, rounds=rounds, gens=gens, min_size=min_size, max_size=max_size,
                  noscan=noscan)
    return gosim.build_trace(NAME, params, [worker], plan, procs, seed, scale)
