"""Process-level repetitions: a suite runs in rounds, each round in a fresh process.

Why rounds. Timing noise on a shared machine lives between processes and
between moments (see significance.py), so a cell's samples come from
``processes`` separate worker processes, each running ``reps`` repetitions
after its own warm-up; the statistics take one sample per process.

Why interleaved. Round k runs every cell of the suite, forward in even
rounds and backward in odd ones (ABBA over the suite). Slow drift of the
machine (a neighbour, thermal state, page cache) then reaches every cell
alike, instead of whichever cells happened to run last, and the cells that
a report compares with each other are measured side by side in time.

The parent generates each trace once and writes it to the run folder's
``.traces/`` (Parquet); workers load it. A worker appends each cell's rows
as one part the moment the cell finishes, tagged with its round (``proc``),
so a kill loses at most one cell of one round, and ``--resume`` reruns only
the (cell, round) pairs not on disk. A worker that dies (a crash in a
kernel) leaves an error row for the cell it was in, and the next round
starts afresh.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

TRACES_DIR = ".traces"
JOBS_DIR = ".rounds"


def round_order(n_cells: int, rnd: int) -> list[int]:
    """The order of the cells in round ``rnd``: forward in even rounds, backward in odd ones."""
    order = list(range(n_cells))
    return order if rnd % 2 == 0 else order[::-1]


def trace_file(out_dir: Path, trace_key) -> Path:
    h = hashlib.sha1(json.dumps(trace_key, default=str).encode()).hexdigest()[:16]
    return out_dir / TRACES_DIR / f"{h}.parquet"


def cell_to_json(cell) -> dict[str, Any]:
    """A cell for a worker, with its strategy's registry line: a strategy registered at run
    time (a test-only one, a user's module) is registered again in the worker."""
    import dataclasses

    from alloclab import strategies

    return dict(strategy=cell.strategy, config=cell.config.to_dict(), workload=cell.workload,
                wparams=cell.wparams, procs=cell.procs, mode=cell.mode, seed=cell.seed,
                descriptor=dataclasses.asdict(strategies.descriptor(cell.strategy)))


def cell_from_json(d: dict[str, Any]):
    from alloclab import strategies
    from alloclab.harness.bench import Cell
    from alloclab.strategies._descriptor import Hooks, Strategy

    if d["strategy"] not in strategies.names(include_unavailable=True):
        desc = dict(d["descriptor"])
        strategies.register(Strategy(**{**desc, "hooks": Hooks(**desc["hooks"])}))
    cfg = strategies.get(d["strategy"]).Config.from_dict(d["config"])
    return Cell(d["strategy"], cfg, d["workload"], d["wparams"], d["procs"], d["mode"], d["seed"])


def run_round(out_dir: Path, job: dict[str, Any], on_line: Callable[[str], None], timeout_s: float | None = None) -> int:
    """Start one worker process for ``job`` and feed its progress lines to ``on_line``; returns its exit code."""
    jobs = out_dir / JOBS_DIR
    jobs.mkdir(exist_ok=True)
    path = jobs / f"round-{job['round']:03d}.json"
    path.write_text(json.dumps(job, default=str))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "alloclab.harness.rounds", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, bufsize=1, preexec_fn=_die_with_parent)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
        rc = proc.wait(timeout=timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read() if proc.stderr else ""
    if rc != 0 and err:
        (out_dir / "errors.log").open("a").write(f"round {job['round']} worker exited {rc}\n{err}\n")
    return rc


ROUNDS_FILE = "rounds.json"


def record_round(out_dir: Path, rnd: int, cells: int, wall_s: float) -> None:
    """Add a worker process's wall time to the run folder's rounds.json: with the
    repetitions' own times it gives what a process costs (``alloclab noise`` plans with it)."""
    from alloclab.harness.atomic_file import atomic_write

    path = out_dir / ROUNDS_FILE
    data = json.loads(path.read_text()) if path.exists() else []
    data.append(dict(round=rnd, cells=cells, wall_s=round(wall_s, 3)))
    atomic_write(path, json.dumps(data, indent=1))


def round_costs(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / ROUNDS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def _die_with_parent() -> None:
    """In the worker, before exec: ask Linux to SIGKILL it when the bench process dies, so that
    a killed bench leaves no orphan adding parts to its run folder (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker finishes its round and exits
        pass


def cleanup(out_dir: Path) -> None:
    for d in (TRACES_DIR, JOBS_DIR):
        shutil.rmtree(out_dir / d, ignore_errors=True)


def worker(job_path: str) -> int:
    """A round's worker: run the job's cells in order, append each cell's rows, print a line per cell."""
    from alloclab.harness import bench
    from alloclab.harness import results as R
    from alloclab.workloads import trace as T

    job = json.loads(Path(job_path).read_text())
    out_dir = Path(job["out_dir"])
    from alloclab.harness.calibrate import Yardstick

    store = R.ResultsStore(out_dir)
    yardstick = Yardstick()
    loaded: dict[str, Any] = {}
    for idx, cd, tfile in job["cells"]:
        cell = cell_from_json(cd)
        print(f"start {idx}", flush=True)
        if tfile not in loaded:
            loaded.clear()  # cells are ordered by trace: keep one in memory
            try:
                loaded[tfile] = T.load(tfile) if tfile else ValueError("no trace")
            except (ValueError, OSError) as e:
                loaded[tfile] = e
        rows = bench.measure_cell(cell, loaded[tfile], reps=job["reps"], rep0=job["round"] * job["reps"],
                                  proc=job["round"], run_id=job["run_id"], check=job["check"],
                                  arena_mb=job["arena_mb"], out_dir=out_dir, yardstick=yardstick)
        store.append(rows)
        bad = [r for r in rows if r["status"] != "ok"]
        print(f"done {idx} {'ok' if not bad else bad[-1]['status'] + ': ' + str(bad[-1]['error'])[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    from alloclab.harness import cli  # configures numba's cache the way the CLI does

    cli.quiet_compile_warnings()
    sys.exit(worker(sys.argv[1]))
