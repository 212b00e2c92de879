"""random: independent allocations with random sizes around a target live set.

Sizes: drawn log-uniformly from [min_size, max_size] (the size distributions
``small`` 8-256 B, ``medium`` 8-4096 B, ``mixed`` 8-32768 B, ``large``
32 KiB-1 MiB, or ``fixed`` = min_size), so every power-of-two band gets the
same share of allocations, as in most measured heaps.
Lifetimes: the live set first fills to ``live`` objects; afterwards each op
is an alloc or a free of a uniformly chosen live object with equal
probability while the live count stays within [live/2, 3*live/2] (so a
lifetime is roughly geometric with mean ``live`` ops). The trace ends by
freeing every remaining object, so allocs == frees.
Ps: each alloc runs on a uniformly chosen P; its free on the same P, or with
probability ``cross_p`` on another one.
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 1,000,000 ops at scale 1.0 (``ops`` overrides it).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alloclab.workloads._params import ConfigError, WorkloadParams, param, share
from alloclab.workloads.trace import make_trace

NAME = "random"
DESCRIPTION = "random sizes from a chosen distribution around a target live set (for tests and micro-benchmarks)"
DISTS = {"small": (8, 256), "medium": (8, 4096), "mixed": (8, 32768), "large": (32768, 1 << 20), "fixed": (None, None)}
KINDS = {"heap": 0, "noscan": 1, "mixed": 2}


class Params(WorkloadParams):
    ops: int = param(0, lo=0, hi=2_000_000_000, doc="total ops incl. the final drain (0 = 1,000,000 x scale)")
    dist: str = param("small", choices=tuple(DISTS), doc="size distribution (the module docstring gives their ranges)")
    min_size: int = param(0, lo=0, hi=1 << 30, doc="smallest size (0 = the distribution's)")
    max_size: int = param(0, lo=0, hi=1 << 30, doc="largest size (0 = the distribution's)")
    live: int = param(10000, lo=1, hi=2_000_000_000, doc="target number of live objects")
    cross_p: float = share(0.0, "share of frees performed on another P")
    kind: str = param("mixed", choices=tuple(KINDS), doc="object kind (mixed: half heap, half noscan)")

    def sizes(self) -> tuple[int, int]:
        """(smallest, largest) size: min_size and max_size, or the distribution's where they are 0."""
        lo, hi = DISTS[self.dist]
        lo = self.min_size or lo
        return lo, self.max_size or hi or lo

    def _validate_combination(self):
        lo, hi = self.sizes()
        if lo is None:
            raise ConfigError("dist=fixed needs min_size")
        if not (1 <= lo <= hi <= 1 << 30):
            raise ConfigError(f"sizes must satisfy 1 <= min_size <= max_size <= 1 GiB (got {lo}..{hi})")


@njit(cache=True)
def _gen(nops, nprocs, live_target, lo, hi, cross_p, kind_mode, seed):
    np.random.seed(seed)
    cap = nops
    p = np.empty(cap, np.int16)
    op = np.empty(cap, np.int8)
    kind = np.empty(cap, np.int8)
    size = np.empty(cap, np.int32)
    obj = np.empty(cap, np.int64)
    nobj_cap = nops
    osize = np.empty(nobj_cap, np.int32)
    okind = np.empty(nobj_cap, np.int8)
    op_p = np.empty(nobj_cap, np.int16)
    live = np.empty(nobj_cap, np.int64)   # dense array of live object ids
    nlive = 0
    nobj = 0
    i = 0
    llo = np.log(lo)
    lhi = np.log(hi + 1)
    while i < nops:
        remaining = nops - i
        must_drain = nlive >= remaining
        if must_drain:
            do_alloc = False
        elif nlive < live_target and nobj < live_target:
            do_alloc = True
        elif nlive < live_target // 2 + 1:
            do_alloc = True
        elif nlive > live_target + live_target // 2:
            do_alloc = False
        else:
            do_alloc = np.random.random() < 0.5
        if nlive == 0:
            do_alloc = True
        if do_alloc:
            s = int(np.exp(llo + (lhi - llo) * np.random.random()))
            s = min(max(s, lo), hi)
            o = nobj
            nobj += 1
            pp = np.random.randint(0, nprocs)
            if kind_mode == 2:
                k = np.random.randint(0, 2)
            else:
                k = kind_mode
            osize[o] = s
            okind[o] = k
            op_p[o] = pp
            live[nlive] = o
            nlive += 1
            p[i] = pp
            op[i] = 0
            kind[i] = k
            size[i] = s
            obj[i] = o
        else:
            j = np.random.randint(0, nlive)
            o = live[j]
            nlive -= 1
            live[j] = live[nlive]
            pp = op_p[o]
            if nprocs > 1 and np.random.random() < cross_p:
                pp = (pp + 1 + np.random.randint(0, nprocs - 1)) % nprocs
            p[i] = pp
            op[i] = 1
            kind[i] = okind[o]
            size[i] = osize[o]
            obj[i] = o
        i += 1
    return p, op, kind, size, obj


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    lo, hi = p.sizes()
    nops = int(p.ops or round(1_000_000 * scale))
    if nops < 2 or nops > 2_000_000_000:
        raise ValueError(f"ops {nops} outside 2..2e9")
    cols = _gen(nops, procs, p.live, lo, hi, p.cross_p, KINDS[p.kind], seed)
    # the trace records the resolved op count and sizes
    params = dict(p.to_dict(), ops=nops, min_size=lo, max_size=hi)
    return make_trace(*cols, procs=procs, meta=dict(generator=NAME, params=params, seed=seed, scale=scale),
                      validate=False)
