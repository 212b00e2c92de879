"""Compile the kernels a command will run before it runs them, in parallel worker processes.

Why. numba compiles a kernel on first use, one at a time, and a fresh clone
has nothing cached: the first round of a suite used to spend minutes
compiling each strategy's replay kernel in turn on one core while the
others idled. Compiling different kernels in separate processes at once
puts every core to work, and numba's on-disk cache (its saves are locked,
strategies/_numba_cache.py) hands the code to the processes that then run
the cells, which only load it.

What. A job is one strategy's replay kernel (``executor.replay`` for its
State type; threads mode and timelines are the same kernel) and, when a cell
asks for latency, its timed variant (``executor.replay`` with a clock). Jobs
are packed onto at most ``os.cpu_count()`` workers, heaviest first; the
weights are relative compile costs (the Go model compiles its tiers, the
others one file each). A worker replays a tiny trace through each of its
jobs, which compiles and saves exactly the specialisation the cells use.

When not. A finished job leaves a marker in the cache folder, which is
keyed by the kernels' source hash, so a warm run starts no worker. A job
that fails is not an error here: the cell that needs the kernel compiles it
(or fails with its own message), as it would without a warm-up.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# relative compile cost of a strategy's replay kernel (default 1; the timed variant costs about the
# same again), as tests/compile_profile.py measures them: the Go model's is many times a simple
# strategy's, more than all the others together, so it gets a worker of its own
WEIGHTS = {"go": 25.0, "bitmap": 2.5, "freelist": 2.0, "naive": 2.0}
MARKERS = "warm"


@dataclasses.dataclass(frozen=True)
class Job:
    strategy: str
    timed: bool = False

    @property
    def weight(self) -> float:
        return WEIGHTS.get(self.strategy, 1.0)

    @property
    def marker(self) -> str:
        return f"{self.strategy}{'-timed' if self.timed else ''}"


def _marker_dir() -> Path | None:
    """Where this checkout's markers live: one folder per checkout, not per cache folder. The cache
    folder is keyed by the sources' hash, so two clones of one commit share it, but numba files a
    kernel under its source file's absolute path (its user-provided cache locator), so the second
    clone's kernels are not there: a marker shared by both would skip the second clone's warm-up
    and leave its compiles to the cells, one at a time."""
    d = os.environ.get("NUMBA_CACHE_DIR")
    if not d:
        return None
    import hashlib

    here = str(Path(__file__).resolve().parent.parent)   # this checkout's package folder
    return Path(d) / MARKERS / hashlib.sha1(here.encode()).hexdigest()[:12]


def pending(jobs) -> list[Job]:
    """The jobs whose kernels this cache folder does not hold yet (kernel strategies only)."""
    from alloclab import strategies

    marks = _marker_dir()
    out = []
    for j in dict.fromkeys(jobs):
        try:
            if strategies.descriptor(j.strategy).is_external:
                continue
        except KeyError:
            continue
        if marks is None or not (marks / j.marker).exists():
            out.append(j)
    return out


def pack(jobs: list[Job], workers: int) -> list[list[Job]]:
    """Jobs onto ``workers`` bins, heaviest first into the lightest bin (longest-processing-time rule)."""
    bins: list[list[Job]] = [[] for _ in range(max(1, min(workers, len(jobs))))]
    load = [0.0] * len(bins)
    for j in sorted(jobs, key=lambda j: -j.weight):
        k = load.index(min(load))
        bins[k].append(j)
        load[k] += j.weight
    return [b for b in bins if b]


class Warmup:
    """Worker processes compiling in the background; ``wait()`` blocks until they are done."""

    def __init__(self, procs: list[subprocess.Popen], jobs: list[Job], folder: str):
        self.procs, self.jobs, self._folder = procs, jobs, folder
        self.started = time.monotonic()

    def wait(self) -> float:
        """Wait for every worker; returns the seconds the warm-up took. A failed worker is ignored
        (its kernels compile where they are first used)."""
        for p in self.procs:
            try:
                p.wait()
            except BaseException:
                for q in self.procs:
                    q.kill()
                raise
        import shutil

        shutil.rmtree(self._folder, ignore_errors=True)
        return time.monotonic() - self.started


def start(jobs, *, workers: int | None = None) -> Warmup | None:
    """Start compiling ``jobs`` not yet in the cache; None when there is nothing to compile."""
    from alloclab import strategies
    from alloclab.harness.rounds import _die_with_parent

    todo = pending(jobs)
    if not todo:
        return None
    folder = tempfile.mkdtemp(prefix="alloclab-warmup-")
    procs = []
    for k, group in enumerate(pack(todo, workers or os.cpu_count() or 1)):
        path = Path(folder) / f"warmup-{k}.json"
        path.write_text(json.dumps([dict(strategy=j.strategy, timed=j.timed,
                                         descriptor=dataclasses.asdict(strategies.descriptor(j.strategy)))
                                    for j in group]))
        procs.append(subprocess.Popen([sys.executable, "-m", "alloclab.harness.warmup", str(path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent))
    return Warmup(procs, todo, folder)


def describe(w: Warmup) -> str:
    names = ", ".join(dict.fromkeys(j.strategy for j in w.jobs))
    return (f"compiling the kernels of {names} in {len(w.procs)} processes "
            f"(first run of this version only; cached under {os.environ.get('NUMBA_CACHE_DIR', '?')})")


def _compile(job: dict) -> None:
    from alloclab import strategies, workloads
    from alloclab.harness import runner
    from alloclab.strategies._descriptor import Hooks, Strategy

    if job["strategy"] not in strategies.names(include_unavailable=True):
        desc = dict(job["descriptor"])
        strategies.register(Strategy(**{**desc, "hooks": Hooks(**desc["hooks"])}))
    trace = workloads.generate("random", scale=0.002, seed=1)
    cfg = strategies.get(job["strategy"]).Config()
    if job["timed"]:
        from alloclab.harness.latency import DEFAULT_SAMPLE

        runner.run_cell(job["strategy"], cfg, trace, reps=1, warmup=False,
                        instrument=runner.Instrument(sample=DEFAULT_SAMPLE, timeline_every=-1))
    else:
        runner.replay_trace(job["strategy"], trace, cfg)


def worker(path: str) -> int:
    jobs = json.loads(Path(path).read_text())
    marks = _marker_dir()
    failed = 0
    for job in jobs:
        try:
            _compile(job)
        except Exception:  # the cell that needs this kernel reports the problem itself
            failed += 1
            continue
        if marks is not None:
            marks.mkdir(parents=True, exist_ok=True)
            (marks / Job(job["strategy"], job["timed"]).marker).touch()
    return 1 if failed else 0


if __name__ == "__main__":
    from alloclab.harness import cli  # noqa: F401  (the CLI's warning filters)
    from alloclab.strategies import _numba_cache

    _numba_cache.configure()  # NUMBA_CACHE_DIR, inherited from the parent, as it is
    cli.quiet_compile_warnings()
    sys.exit(worker(sys.argv[1]))
