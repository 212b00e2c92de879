"""Measure issue 15's overhead targets: what the latency and timeline probes add to ns/op.

    python tests/probe_overhead.py [--strategies go,freelist] [--ops 10000000] [--rounds 7]

For each strategy, on ``random`` (small sizes), one process runs rounds of
four repetitions in rotating order: no probe (the throughput kernel), every
op timed (``--sample 1``), 1 op in 16 timed, and a timeline row every
trace/1000 ops. Each repetition is one ``run_cell`` after a warm-up of its
own kernel. Prints best-of and median ns/op per mode and the overhead of
each against no probe (median of the per-round ratios: the rounds pair the
modes moments apart, as ``alloclab ab`` pairs processes).

Not a test (it needs a quiet machine); a script like stats_targets.py, whose
output goes into docs/ and the notes.
"""
from __future__ import annotations

import argparse
import statistics

from alloclab import strategies, workloads
from alloclab.harness import runner
from alloclab.harness.runner import Instrument

MODES = {"none": None, "every op": Instrument(sample=1), "1 in 16": Instrument(sample=16),
         "timeline": Instrument(timeline_every=-1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="go,freelist")
    ap.add_argument("--ops", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    tr = workloads.generate("random", procs=1, seed=1, ops=a.ops, dist="small")
    for name in a.strategies.split(","):
        cfg = strategies.resolve(name).load().Config()
        for inst in MODES.values():   # compile or load each kernel, fault the arena in
            runner.run_cell(name, cfg, tr, reps=1, instrument=inst)
        ns = {m: [] for m in MODES}
        order = list(MODES)
        for r in range(a.rounds):
            for m in order[r % len(order):] + order[:r % len(order)]:
                res = runner.run_cell(name, cfg, tr, reps=1, warmup=False, instrument=MODES[m])
                ns[m].append(1e9 * res[0][1].wall_s / len(tr))
        print(f"{name}, random, {len(tr):,} ops, {a.rounds} rounds")
        for m in MODES:
            ratios = [x / y for x, y in zip(ns[m], ns["none"])]
            print(f"  {m:9s} best {min(ns[m]):7.2f}  median {statistics.median(ns[m]):7.2f} ns/op"
                  + ("" if m == "none" else f"  overhead {100 * (statistics.median(ratios) - 1):+.1f}% "
                                            f"(best-of {100 * (min(ns[m]) / min(ns['none']) - 1):+.1f}%)"))


if __name__ == "__main__":
    main()
