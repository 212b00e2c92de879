"""Measure issue 15's overhead targets: what the latency and timeline probes add to ns/op.

    python tests/probe_overhead.py [--strategies go,freelist] [--ops 10000000] [--processes 3] [--rounds 5]
                                   [--modes none,timeline]

For each strategy, on ``random`` (small sizes), ``--processes`` fresh
processes one after another each run ``--rounds`` rounds of the modes in
rotating order: no probe (the throughput kernel), every op timed
(``--sample 1``), 1 op in 16 timed, 1 in 1,000, and a timeline row every
trace/1000 ops. Each repetition is one ``run_cell`` after a warm-up of its
own kernel. A process's overhead for a mode is the median of its rounds'
ratios to the no-probe repetition (the rounds pair the modes moments apart,
as ``alloclab ab`` pairs processes); the figure printed is the median over
processes, with each process's beside it, the median of every round's ratio
pooled over the processes, and best-of (the mode's fastest repetition
anywhere over the no-probe one's). ``--modes`` runs a subset (``none`` is
always run): ``--modes timeline --rounds 9`` spends the time on the one
comparison whose true effect is near zero.

Why several processes: a kernel's speed here is partly fixed when the
process places it (the no-probe kernel of freelist runs at about 15 or
about 19 ns/op on the same trace, process to process, and the timed kernel
has modes of its own), so one process's ratio can be a ratio of two modes.

Not a test (it needs a quiet machine); a script like stats_targets.py, whose
output goes into docs/latency.md and the notes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODES = ("none", "every op", "1 in 16", "1 in 1000", "timeline")


def _instrument(mode):
    from alloclab.harness.runner import Instrument

    return {"none": None, "every op": Instrument(sample=1), "1 in 16": Instrument(sample=16),
            "1 in 1000": Instrument(sample=1000), "timeline": Instrument(timeline_every=-1)}[mode]


def worker(name: str, ops: int, rounds: int, modes) -> dict:
    """One process: ``rounds`` rotating rounds of ``modes``; ns/op per mode, in round order."""
    from alloclab import strategies, workloads
    from alloclab.harness import runner

    tr = workloads.generate("random", procs=1, seed=1, ops=ops, dist="small")
    cfg = strategies.resolve(name).load().Config()
    for m in modes:   # compile or load each kernel, fault the arena in
        runner.run_cell(name, cfg, tr, reps=1, instrument=_instrument(m))
    ns = {m: [] for m in modes}
    order = list(modes)
    for r in range(rounds):
        for m in order[r % len(order):] + order[:r % len(order)]:
            res = runner.run_cell(name, cfg, tr, reps=1, warmup=False, instrument=_instrument(m))
            ns[m].append(1e9 * res[0][1].wall_s / len(tr))
    return ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="go,freelist")
    ap.add_argument("--ops", type=int, default=10_000_000)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modes", default=",".join(MODES[1:]), help="the probe modes to run beside none")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    modes = ["none"] + [m for m in a.modes.split(",") if m != "none"]
    bad = set(modes) - set(MODES)
    if bad:
        ap.error(f"--modes: unknown {', '.join(sorted(bad))}; choose from {', '.join(MODES[1:])}")
    if a.worker:
        print(json.dumps(worker(a.worker, a.ops, a.rounds, modes)))
        return
    for name in a.strategies.split(","):
        runs = []
        for k in range(a.processes):
            out = subprocess.run([sys.executable, __file__, "--worker", name, "--ops", str(a.ops),
                                  "--rounds", str(a.rounds), "--modes", ",".join(modes)],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"  {name} process {k + 1}/{a.processes}: none median "
                  f"{statistics.median(runs[-1]['none']):.2f} ns/op", file=sys.stderr, flush=True)
        print(f"{name}, random, {a.ops:,} ops, {a.processes} processes x {a.rounds} rounds")
        best_none = min(min(r["none"]) for r in runs)
        for m in modes:
            med = [statistics.median(r[m]) for r in runs]
            line = f"  {m:9s} ns/op median {statistics.median(med):7.2f}  best {min(min(r[m]) for r in runs):7.2f}"
            if m != "none":
                per = [100 * (statistics.median(x / y for x, y in zip(r[m], r["none"])) - 1) for r in runs]
                pooled = 100 * (statistics.median(x / y for r in runs for x, y in zip(r[m], r["none"])) - 1)
                best = 100 * (min(min(r[m]) for r in runs) / best_none - 1)
                line += (f"  overhead {statistics.median(per):+6.1f}% (processes: "
                         f"{', '.join(f'{x:+.0f}%' for x in per)}; pooled {pooled:+.1f}%; best-of {best:+.1f}%)")
            print(line)


if __name__ == "__main__":
    main()
