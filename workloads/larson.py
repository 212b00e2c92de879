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
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Live memory: threads x slots x mean size = 64 x 1000 x 504 B = ~32 MB at
scale 1. Default size: about 5.2M ops at scale 1.0.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import ConfigError, WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "larson"
DESCRIPTION = "Larson & Krishnan server simulation: random slot replacement, successors inherit the slots"


class Params(WorkloadParams):
    threads: int = param(64, lo=1, hi=1_000_000, doc="worker goroutines (each with its own slot table)")
    slots: int = param(1000, lo=1, hi=100_000_000, doc="slots (live objects) per worker (x scale, >= 16)")
    rounds: int = param(2000, lo=1, hi=1_000_000_000, doc="slot replacements per worker generation (x scale, >= 16)")
    gens: int = param(20, lo=1, hi=1_000_000,
                      doc="generations: a worker is replaced by a successor inheriting its slots gens-1 times")
    min_size: int = param(8, lo=1, hi=1 << 30, doc="smallest object (bytes)")
    max_size: int = param(1000, lo=1, hi=1 << 30, doc="largest object (bytes); sizes are uniform in between")
    noscan: float = share(0.5, "share of noscan objects")

    def _validate_combination(self):
        if self.max_size < self.min_size:
            raise ConfigError(f"max_size={self.max_size!r}: expected an integer in {self.min_size}..{1 << 30}")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    ns = gosim.scaled(p.slots, scale, lo=min(16, p.slots))
    nr = gosim.scaled(p.rounds, scale, lo=min(16, p.rounds))
    worker = GClass(bands=[Band(1.0, p.min_size, p.max_size, p_noscan=p.noscan, dist="uniform")], work=(nr, nr),
                    slots=ns, gens=p.gens, slice=max(8, nr // 4))
    plan = [Wave(0, p.threads, wait=True)]
    return gosim.build_trace(NAME, p.to_dict(), [worker], plan, procs, seed, scale)
