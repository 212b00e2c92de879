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
Default size: 1,000,000 ops at scale 1.0 (``ops`` overrides it).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alloclab.workloads.trace import make_trace

NAME = "random"
DESCRIPTION = "random sizes from a chosen distribution around a target live set (for tests and micro-benchmarks)"
DISTS = {"small": (8, 256), "medium": (8, 4096), "mixed": (8, 32768), "large": (32768, 1 << 20), "fixed": (None, None)}
PARAMS = {
    "ops": (0, "total ops incl. the final drain (0 = 1,000,000 x scale)"),
    "dist": ("small", "size distribution: " + ", ".join(DISTS)),
    "min_size": (0, "smallest size (0 = the distribution's)"),
    "max_size": (0, "largest size (0 = the distribution's)"),
    "live": (10000, "target number of live objects"),
    "cross_p": (0.0, "share of frees performed on another P"),
    "kind": ("mixed", "object kind: heap, noscan or mixed (half each)"),
}


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


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, ops: int = 0, dist: str = "small",
             min_size: int = 0, max_size: int = 0, live: int = 10000, cross_p: float = 0.0,
             kind: str = "mixed"):
    if dist not in DISTS:
        raise ValueError(f"dist {dist!r}: choose from {', '.join(DISTS)}")
    lo, hi = DISTS[dist]
    lo = min_size or lo
    hi = max_size or hi or lo
    if lo is None:
        raise ValueError("dist=fixed needs min_size")
    if not (1 <= lo <= hi <= 1 << 30):
        raise ValueError(f"sizes must satisfy 1 <= min_size <= max_size <= 1 GiB (got {lo}..{hi})")
    nops = int(ops or round(1_000_000 * scale))
    if nops < 2 or nops > 2_000_000_000:
        raise ValueError(f"ops {nops} outside 2..2e9")
    if live < 1:
        raise ValueError("live must be >= 1")
    if not 0.0 <= cross_p <= 1.0:
        raise ValueError("cross_p must be within [0, 1]")
    kinds = {"heap": 0, "noscan": 1, "mixed": 2}
    if kind not in kinds:
        raise ValueError(f"kind {kind!r}: choose from heap, noscan, mixed")
    cols = _gen(nops, procs, live, lo, hi, cross_p, kinds[kind], seed)
    params = dict(ops=nops, dist=dist, min_size=lo, max_size=hi, live=live, cross_p=cross_p, kind=kind)
    return make_trace(*cols, procs=procs, meta=dict(generator=NAME, params=params, seed=seed, scale=scale),
                      validate=False)
