"""pipeline: producer and consumer stages joined by channels; consumers free what producers allocate.

Stands for: a Go pipeline (``producer -> chan *Msg -> consumer``), e.g. a
log shipper or an ETL stage: one goroutine decodes records into messages,
another on a different P encodes and drops them.

Goroutines: ``items`` (x scale) messages made by producers of ``batch``/2 ..
3*``batch``/2 messages each (uniform), spawned alternately with consumers by
main, at most ``stages`` goroutines alive at once. A producer step allocates
one message and sends it on the channel of another P (every P has one,
``chan_cap`` deep; a full channel is tried on the next P, and if all are full
the producer keeps the message and frees it when it exits). A consumer step
receives up to 2 messages from its own P's channel and frees them: the free
happens on another P than the allocation (cross-P frees, the case the
article's mcentral/sweeping discussion is about). With one P, producer and
consumer share it.
Sizes: messages are 16-256 B structs (log-uniform, heap) or, with share
``payload``, 1-8 KiB payload buffers (log-uniform, noscan). Consumers also
make 8-64 B noscan temporaries (chance 0.5 per step: a decoder's small
strings and numbers), most freed at once.
Sizes set against a recorded JSON encode/decode pipeline (issue 14; the
synthetic-against-real table in docs/findings.md): messages were 32-512 B
and temporaries 16-64 B at chance 0.25, a median of 137 B against the
recording's 32 B (a third of its allocations at 16 B and below: the records'
fields and the decoder's strings). The payload share stays: the buffers are
the pipeline's bytes. The cross-P share stays near the recording's (0.66
against 0.64, from 0.79: the extra temporaries die on their own P).
Lifetimes: a message lives from its send until a consumer on the target P
receives it (queueing delay: up to ``chan_cap`` messages per P); messages
left in channels at the end are freed on the channel's P. Stacks grow
rarely (chance 0.01 per step).
Parameters, their ranges and defaults: ``alloclab list -v`` (declared in ``Params``).
Default size: 2,000,000 messages, about 6M ops at scale 1.0; live memory is
bounded by the channels: procs x chan_cap x ~1 KiB.
"""
from __future__ import annotations

from alloclab.workloads import gosim
from alloclab.workloads._params import WorkloadParams, param, share
from alloclab.workloads.gosim import Band, GClass, Wave

NAME = "pipeline"
DESCRIPTION = "producers allocate messages, consumers on other Ps free them (cross-P frees through channels)"


class Params(WorkloadParams):
    items: int = param(2_000_000, lo=1, hi=1_000_000_000, doc="messages sent through the pipeline (x scale)")
    batch: int = param(256, lo=1, hi=10_000_000,
                       doc="mean messages per producer goroutine (uniform batch/2..3*batch/2)")
    payload: float = share(0.25, "share of messages that are 1-8 KiB payload buffers (else 16-256 B structs)")
    stages: int = param(32, lo=2, hi=10_000_000, doc="producer and consumer goroutines alive at most")
    chan_cap: int = param(1024, lo=1, hi=1 << 24, doc="channel capacity per P (messages)")


def generate(procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    p = Params.of(params)
    n = gosim.scaled(p.items, scale)
    b = min(p.batch, n)
    bands = [Band(1.0 - p.payload, 16, 256, p_noscan=0.0), Band(p.payload, 1024, 8192, p_noscan=1.0)]
    producer = GClass(bands=bands, work=gosim.spread(b), p_handoff=1.0, p_grow=0.01)
    # a consumer lives as long as a producer and can drain twice as fast
    consumer = GClass(bands=[Band(1.0, 8, 64, p_noscan=1.0)], work=gosim.spread(b), p_alloc=0.5, p_free=0.8,
                      recv=2, p_grow=0.01)
    producers = -(-n // b)
    plan = [Wave((0, 1), 2 * producers, wait=True, max_live=p.stages)]
    return gosim.build_trace(NAME, p.to_dict(), [producer, consumer], plan, procs, seed, scale,
                             inbox_cap=p.chan_cap)
