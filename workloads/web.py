"""web: an HTTP server, one goroutine per request, with a long-lived cache.

Stands for: a net/http handler that parses a request, builds small structs,
strings and maps, reads into KiB buffers, writes a response and returns;
a process-wide cache (sessions, templates, a LRU of results) keeps a few
objects of each request.

Goroutines: ``requests`` (x scale) request goroutines spawned by an accept
loop (main) that blocks while ``conns`` requests are in flight. A request
lives ``objects``/2 .. 3*``objects``/2 steps (uniform) and allocates one
object per step; with chance ``block`` per step it blocks (I/O) and resumes
through the global run queue, possibly on another P.
Sizes: a share ``small`` of 16-256 B objects (log-uniform, 30% noscan: structs,
strings, small maps); the rest KiB buffers of 1-16 KiB (log-uniform, 90%
noscan: []byte). Stacks grow with chance ``grow`` per step (2 -> 4 -> 8 KiB).
Lifetimes: per step the newest live object of the request is freed with
chance ``temp_free`` (temporaries); what the request still holds is freed
when it returns (request-scoped). A share ``cache_share`` of objects goes to
the cache (``cache_entries`` x scale entries; a full cache evicts a random
entry, the rest is freed at the end): long-lived, freed on another P than
the one that allocated it. A share ``handoff`` is sent through a channel to
a goroutine on another P (a response writer) and freed there.
Default size: 100,000 requests, about 8.5M ops at scale 1.0; live memory
~ conns x ~12 KiB + cache ~30 MB (~40 MB).
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "web"
DESCRIPTION = "one goroutine per request: many 16-256 B objects, KiB buffers, a long-lived cache"
PARAMS = {
    "requests": (100_000, "requests (goroutines) served (x scale)"),
    "conns": (512, "requests in flight at most (the accept loop blocks above it)"),
    "objects": (40, "mean allocations per request (uniform objects/2..3*objects/2)"),
    "small": (0.9, "share of 16-256 B objects; the rest are 1-16 KiB buffers"),
    "temp_free": (0.3, "chance per step to free the request's newest live object"),
    "cache_share": (0.02, "share of objects kept in the long-lived cache"),
    "cache_entries": (50_000, "cache capacity in objects (x scale); a full cache evicts at random"),
    "handoff": (0.02, "share of objects handed to a goroutine on another P through a channel"),
    "grow": (0.05, "chance per step that a request doubles its stack (2 -> 4 -> 8 KiB)"),
    "block": (0.05, "chance per step that a request blocks and resumes via the global run queue"),
}


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, requests: int = 100_000, conns: int = 512,
             objects: int = 40, small: float = 0.9, temp_free: float = 0.3, cache_share: float = 0.02,
             cache_entries: int = 50_000, handoff: float = 0.02, grow: float = 0.05, block: float = 0.05):
    gosim.check_int("requests", requests, 1, 100_000_000)
    gosim.check_int("conns", conns, 1, 10_000_000)
    gosim.check_int("objects", objects, 1, 100_000)
    gosim.check_float("small", small)
    gosim.check_float("temp_free", temp_free)
    gosim.check_float("cache_share", cache_share)
    gosim.check_int("cache_entries", cache_entries, 1, 100_000_000)
    gosim.check_float("handoff", handoff)
    if cache_share + handoff > 1.0:
        raise ValueError(f"cache_share + handoff = {cache_share + handoff} exceeds 1")
    gosim.check_float("grow", grow)
    gosim.check_float("block", block)
    bands = [Band(small, 16, 256, p_noscan=0.3), Band(1.0 - small, 1024, 16384, p_noscan=0.9)]
    if small >= 1.0:
        bands = bands[:1]
    elif small <= 0.0:
        bands = bands[1:]
    request = GClass(bands=bands, work=gosim.spread(objects), p_free=temp_free, p_cache=cache_share,
                     p_handoff=handoff, recv=1, p_grow=grow, p_yield=block, slice=10_000)
    plan = [Wave(0, gosim.scaled(requests, scale), wait=True, max_live=conns)]
    params = dict(requests=requests, conns=conns, objects=objects, small=small, temp_free=temp_free,
                  cache_share=cache_share, cache_entries=cache_entries, handoff=handoff, grow=grow, block=block)
    return gosim.build_trace(NAME, params, [request], plan, procs, seed, scale,
                             cache_cap=gosim.scaled(cache_entries, scale, lo=16))
