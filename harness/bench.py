"""Benchmark suites: strategies x workloads x procs x modes x configs, from TOML.

A suite file has a ``[suite]`` table (name, reps, seed, arena_mb) and one or
more ``[[matrix]]`` blocks, each expanded as a Cartesian product:

    [[matrix]]
    strategies = ["go", "freelist"]
    workloads  = [{ name = "web", scale = 0.05 }, { name = "random", ops = 400000 }]
    procs      = [1, 2]
    modes      = ["serial", "threads"]
    configs    = [{}, { gogc = 100 }]     # optional; applied to every strategy that has the keys

Every cell starts from a fresh state after an untimed warm-up; its rows are
appended to the run folder as one Parquet part the moment it finishes, so a
Ctrl-C or a kill loses at most the cell in flight, and ``--resume`` runs only
the cells (and repetitions) not yet on disk. A cell that fails (oom, check
failure, an exception) is recorded with its status and the suite goes on.
"""
from __future__ import annotations

import itertools
import json
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from alloclab import strategies, workloads
from alloclab.harness import results as R
from alloclab.harness import runner
from alloclab.harness.limits import DEFAULT_ARENA_MB, MAX_ARENA_MB, MAX_PROCS
from alloclab.strategies._config import ConfigError

BUILTIN_SUITES = ("quick", "full", "targets", "scaling", "real", "latency")
MATRIX_KEYS = {"strategies", "workloads", "procs", "modes", "configs", "latency", "timeline"}
SUITE_KEYS = {"name", "description", "reps", "processes", "seed", "arena_mb", "pilot"}
# A suite file that does not say: five fresh processes of one repetition each. Five is the
# fewest whose exact U test can reach a Benjamini-Hochberg-adjusted 5% over a few dozen
# cells (significance.min_p(5, 5) = 0.008); one repetition because the spread lives between
# processes, not inside one (measure yours with `alloclab noise`).
DEFAULT_PROCESSES = 5
DEFAULT_REPS = 1
MAX_PROCESSES = 100


class SuiteError(ValueError):
    """A suite file is malformed (one line, names the problem)."""


@dataclass
class Cell:
    strategy: str
    config: Any
    workload: str
    wparams: dict[str, Any]
    procs: int
    mode: str
    seed: int
    latency: bool = False    # also one latency repetition (harness/latency.py), apart from the timed ones
    timeline: bool = False   # also one memory timeline (harness/timeline.py)

    @property
    def trace_key(self):
        return (self.workload, json.dumps(self.wparams, sort_keys=True), self.procs, self.seed)

    def label(self) -> str:
        cfg = "" if self.config == strategies.get(self.strategy).Config() else f"[{self.config.config_hash()[:6]}]"
        return f"{self.strategy}{cfg} x {self.workload} P{self.procs} {self.mode}"


@dataclass
class Suite:
    name: str
    description: str
    reps: int              # repetitions per process, after that process's warm-up of the cell
    seed: int
    arena_mb: int
    cells: list[Cell] = field(default_factory=list)
    source: str = ""
    skipped: list[str] = field(default_factory=list)
    processes: int = DEFAULT_PROCESSES   # fresh processes per cell: the samples of significance.py
    pilot: dict[str, Any] = field(default_factory=dict)  # the measured variance split the counts came from


def _suite_text(spec: str) -> tuple[str, str]:
    if spec in BUILTIN_SUITES:
        return resources.files("alloclab.harness").joinpath("suites", f"{spec}.toml").read_text(), f"builtin:{spec}"
    p = Path(spec)
    if not p.is_file():
        raise SuiteError(f"{spec}: not a suite name ({', '.join(BUILTIN_SUITES)}) nor a TOML file")
    try:
        return p.read_text(), str(p)
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{spec}: cannot read suite ({e})") from None


def load_suite(spec: str, reps: int | None = None, config_override=None, processes: int | None = None) -> Suite:
    text, source = _suite_text(spec)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{source}: not valid TOML ({e})") from None
    head = data.get("suite", {})
    if not isinstance(head, dict):
        raise SuiteError(f"{source}: [suite] must be a table")
    unknown = set(head) - SUITE_KEYS
    if unknown:
        raise SuiteError(f"{source}: unknown [suite] key(s) {', '.join(sorted(unknown))}")
    extra = set(data) - {"suite", "matrix"}
    if extra:
        raise SuiteError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    suite = Suite(name=str(head.get("name", Path(source).stem)), description=str(head.get("description", "")),
                  reps=int(reps or head.get("reps", DEFAULT_REPS)), seed=int(head.get("seed", 0)),
                  arena_mb=int(head.get("arena_mb", DEFAULT_ARENA_MB)), source=source,
                  processes=int(processes or head.get("processes", DEFAULT_PROCESSES)),
                  pilot=dict(head.get("pilot", {})) if isinstance(head.get("pilot", {}), dict) else {})
    if not 1 <= suite.processes <= MAX_PROCESSES:
        raise SuiteError(f"{source}: processes {suite.processes} outside 1..{MAX_PROCESSES}")
    if not 1 <= suite.reps <= 1000:
        raise SuiteError(f"{source}: reps {suite.reps} outside 1..1000")
    if not 1 <= suite.arena_mb <= MAX_ARENA_MB:
        raise SuiteError(f"{source}: arena_mb {suite.arena_mb} outside 1..{MAX_ARENA_MB}")
    matrices = data.get("matrix")
    if not isinstance(matrices, list) or not matrices:
        raise SuiteError(f"{source}: needs at least one [[matrix]] block")
    seen = {}
    for mi, m in enumerate(matrices):
        where = f"{source}: matrix {mi + 1}"
        if not isinstance(m, dict):
            raise SuiteError(f"{where}: must be a table")
        unknown = set(m) - MATRIX_KEYS
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("strategies", "workloads"):
            if not isinstance(m.get(key), list) or not m[key]:
                raise SuiteError(f"{where}: '{key}' must be a non-empty list")
        procs = m.get("procs", [1])
        modes = m.get("modes", ["serial"])
        configs = m.get("configs", [{}])
        if not (isinstance(procs, list) and procs and all(isinstance(p, int) and 1 <= p <= MAX_PROCS for p in procs)):
            raise SuiteError(f"{where}: 'procs' must be a list of integers in 1..{MAX_PROCS}")
        if not (isinstance(modes, list) and modes and all(x in runner.MODES for x in modes)):
            raise SuiteError(f"{where}: 'modes' must be a list of {', '.join(runner.MODES)}")
        if not (isinstance(configs, list) and configs and all(isinstance(c, dict) for c in configs)):
            raise SuiteError(f"{where}: 'configs' must be a list of tables")
        probes = {k: m.get(k, False) for k in ("latency", "timeline")}
        if not all(isinstance(v, bool) for v in probes.values()):
            raise SuiteError(f"{where}: 'latency' and 'timeline' are true or false")
        wl = []
        for w in m["workloads"]:
            if isinstance(w, str):
                w = {"name": w}
            if not isinstance(w, dict) or "name" not in w:
                raise SuiteError(f"{where}: each workload is a name or a table with 'name'")
            w = dict(w)
            name = w.pop("name")
            if name.startswith("real:"):   # a real program's recorded trace (harness/real_programs.py)
                from alloclab.harness import real_programs
                try:
                    real_programs.check_params(name, w)
                    why = real_programs.unavailable(name)
                except ValueError as e:
                    raise SuiteError(f"{where}: {e}") from None
                if why is not None:
                    if why not in suite.skipped:
                        suite.skipped.append(why)
                    continue
            elif not name.startswith("trace:"):
                try:
                    mod = workloads.get(name)
                except workloads.UnknownWorkload as e:
                    raise SuiteError(f"{where}: {e}") from None
                bad = set(w) - set(mod.Params.names()) - {"scale"}
                if bad:
                    raise SuiteError(f"{where}: workload {name!r} has no parameter(s) {', '.join(sorted(bad))}")
                try:
                    mod.Params.of({k: v for k, v in w.items() if k != "scale"})
                except ValueError as e:
                    raise SuiteError(f"{where}: workload {name!r}: {e}") from None
            wl.append((name, w))
        for s in m["strategies"]:
            try:
                mod = strategies.get(s)
            except strategies.UnknownStrategy as e:
                raise SuiteError(f"{where}: {e}") from None
            except strategies.UnavailableStrategy as e:
                # a peer whose toolchain is missing here (go-runtime without Go): skip it, say so
                if str(e) not in suite.skipped:
                    suite.skipped.append(str(e))
                continue
            for c in configs:
                try:
                    if config_override is not None and s in config_override:
                        cfg = config_override[s]
                    else:
                        base = mod.Config().to_dict()
                        base.update({k: v for k, v in c.items() if k in base})
                        cfg = mod.Config.from_dict(base)
                except ConfigError as e:
                    raise SuiteError(f"{where}: config for {s}: {e}") from None
                if c and not any(k in mod.Config().to_dict() for k in c):
                    continue  # a config variant for another strategy
                for (wname, wp), p, mode in itertools.product(wl, procs, modes):
                    if wname.startswith("real:"):   # a recorded trace has its own P count
                        from alloclab.harness import real_programs
                        p = real_programs.program(wname).procs
                    cell = Cell(s, cfg, wname, wp, p, mode, suite.seed)
                    key = (s, cfg.config_hash(), cell.trace_key, mode)
                    if key not in seen:
                        seen[key] = cell
                        suite.cells.append(cell)
                    for k, on in probes.items():   # a cell in two matrices is probed if either asks
                        if on and strategies.descriptor(s).records(k):
                            setattr(seen[key], k, True)
    return suite


def _make_trace(cell: Cell):
    if cell.workload.startswith("real:"):
        from alloclab.harness import real_programs
        return real_programs.trace(cell.workload, cell.wparams)
    params = dict(cell.wparams)
    scale = float(params.pop("scale", 1.0))
    return workloads.generate(cell.workload, procs=cell.procs, seed=cell.seed, scale=scale, **params)


def measure_cell(cell: Cell, trace, *, reps: int, rep0: int, proc: int, run_id: str, check: bool, arena_mb: int,
                 out_dir: Path, yardstick=None) -> list[dict[str, Any]]:
    """Warm up and measure one cell ``reps`` times in this process; its result rows
    (repetitions numbered from ``rep0``, tagged with the process index ``proc``)."""
    started = R.now_iso()
    if isinstance(trace, Exception):
        return [_error_row(run_id, started, cell, rep0, f"workload: {trace}", None, proc)]
    stats = trace.stats()
    rows = []
    try:
        res = runner.run_cell(cell.strategy, cell.config, trace, mode=cell.mode, reps=reps, check=check,
                              arena_mb=arena_mb, yardstick=yardstick)
        for rep, r in res:
            rows.append(R.make_row(run_id=run_id, started_at=started, strategy=cell.strategy, config=cell.config,
                                   workload=cell.workload, workload_params=dict(cell.wparams), seed=cell.seed,
                                   procs=cell.procs, mode=cell.mode, rep=rep0 + rep, proc=proc, trace_stats=stats,
                                   result=r, counters=runner.counters_dict(cell.strategy, r)))
    except Exception as e:  # a crashing cell is a result too; the suite goes on
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        rows.append(_error_row(run_id, started, cell, rep0, msg, stats, proc))
        with (out_dir / "errors.log").open("a") as f:
            f.write(f"{cell.label()} (process {proc})\n{traceback.format_exc()}\n")
    return rows


def _cell_id(cell: Cell) -> str:
    return R.cell_id(dict(strategy=cell.strategy, config_hash=cell.config.config_hash(), workload=cell.workload,
                          workload_json=json.dumps(cell.wparams, sort_keys=True, default=str), seed=cell.seed,
                          procs=cell.procs, mode=cell.mode))


def run_suite(suite: Suite, out_dir: Path, resume: bool = False, progress: bool = True, log=print,
              check: bool = False, interleave: bool = True) -> dict[str, Any]:
    """Run every missing (cell, process) pair of ``suite`` into ``out_dir``; returns a summary dict.

    With ``suite.processes == 1`` the cells run in this process, one after the
    other (fast, and what unit tests use; a comparison of such runs can only
    say "~"). Otherwise each of the ``processes`` rounds is a fresh worker
    process that runs every cell (rounds.py): forward, then backward in the
    next round, unless ``interleave`` is off.
    """
    from alloclab.harness import rounds

    store = R.ResultsStore(out_dir, meta={"suite": suite.name, "suite_source": suite.source,
                                          "description": suite.description, "reps": suite.reps,
                                          "processes": suite.processes, "pilot": suite.pilot})
    if not resume and store.parts():
        raise SuiteError(f"{out_dir} already holds results; pass --resume to complete it or choose another --out")
    done = store.done_rounds() if resume else set()
    run_id = out_dir.name
    # cells sorted by trace, so that consecutive cells share one trace in memory
    order = sorted(range(len(suite.cells)), key=lambda i: (suite.cells[i].trace_key, suite.cells[i].strategy,
                                                           suite.cells[i].mode))
    ids = [_cell_id(c) for c in suite.cells]
    plan = []
    for rnd in range(suite.processes):
        seq = [order[j] for j in rounds.round_order(len(order), rnd if interleave else 0)]
        need = [i for i in seq if (ids[i], rnd) not in done and (ids[i], -1) not in done]
        if need:
            plan.append((rnd, need))
    todo = sum(len(need) for _, need in plan)
    summary = dict(cells=len(suite.cells), processes=suite.processes, skipped=len(suite.cells) * suite.processes - todo,
                   ran=0, failed=0, rows=0)
    if not plan:
        log(f"all {len(suite.cells)} cells of {suite.name} are already in {out_dir}")
        summary["probed"] = 0 if check else _run_probes(suite, store, run_id, progress)
        return summary
    bar = Progress(todo, suite.name, enabled=progress)
    warm = _start_warmup(suite, plan, check, bar.write)

    def record(rows, rows_written=None):
        summary["ran"] += 1
        summary["rows"] += len(rows) if rows_written is None else rows_written
        if any(r["status"] != "ok" for r in rows):
            summary["failed"] += 1
            bad = rows[-1]
            bar.write(f"  {bad['strategy']} x {bad['workload']} P{bad['procs']} {bad['mode']} (process {bad['proc']}): "
                      f"{bad['status']}: {bad['error']}")

    try:
        if suite.processes == 1:
            from alloclab.harness.calibrate import Yardstick

            _finish_warmup(warm, bar)
            yardstick = Yardstick()
            traces: dict = {}
            for rnd, need in plan:
                for i in need:
                    cell = suite.cells[i]
                    bar.label(cell.label())
                    if cell.trace_key not in traces:
                        traces.clear()
                        traces[cell.trace_key] = _try_make_trace(cell)
                    rows = measure_cell(cell, traces[cell.trace_key], reps=suite.reps, rep0=rnd * suite.reps,
                                        proc=rnd, run_id=run_id, check=check, arena_mb=suite.arena_mb,
                                        out_dir=out_dir, yardstick=yardstick)
                    store.append(rows)
                    record(rows)
                    bar.update()
        else:
            _run_rounds(suite, out_dir, plan, run_id, check, bar, store, record, warm)
            rounds.cleanup(out_dir)
    finally:
        bar.close()
    if not check:
        summary["probed"] = _run_probes(suite, store, run_id, progress)
    return summary


def _run_probes(suite: Suite, store, run_id: str, progress: bool) -> int:
    """The cells' latency and timeline repetitions, here, after every timed one (resume: those not
    yet in the side tables). One repetition each: a serial timeline is deterministic, and a
    histogram of every op of a run holds its own spread."""
    probed = [c for c in suite.cells if c.latency or c.timeline]
    done = store.done_probes("latency") | store.done_probes("timeline")
    todo = [c for c in probed if _cell_id(c) not in done]
    if not todo:
        return 0
    from alloclab.harness.latency import DEFAULT_SAMPLE

    bar = Progress(len(todo), f"{suite.name}: latency and timelines", enabled=progress)
    for cell in sorted(todo, key=lambda c: c.trace_key):
        bar.label(cell.label())
        tr = _try_make_trace(cell)
        if isinstance(tr, Exception):
            continue
        inst = runner.Instrument(sample=DEFAULT_SAMPLE if cell.latency else 0, timeline_every=-1 if cell.timeline else 0)
        try:
            [(rep, r)] = runner.run_cell(cell.strategy, cell.config, tr, mode=cell.mode, reps=1,
                                         arena_mb=suite.arena_mb, instrument=inst)
        except Exception as e:  # a failed probe is reported; the timed rows are already safe
            bar.write(f"  {cell.label()}: latency/timeline failed: {type(e).__name__}: {e}".splitlines()[0][:300])
            bar.update()
            continue
        if r.status == "ok":
            row = R.make_row(run_id=run_id, started_at=R.now_iso(), strategy=cell.strategy, config=cell.config,
                             workload=cell.workload, workload_params=dict(cell.wparams), seed=cell.seed,
                             procs=cell.procs, mode=cell.mode, rep=0, trace_stats=tr.stats(), result=r,
                             counters=runner.counters_dict(cell.strategy, r))
            store.append_probe(row, r)
        bar.update()
    bar.close()
    return len(todo)


def _try_make_trace(cell: Cell):
    try:
        return _make_trace(cell)
    except (ValueError, OSError) as e:
        return e


def _start_warmup(suite: Suite, plan, check: bool, log):
    """Compile the kernels the planned cells need in parallel processes (harness/warmup.py), while
    this process makes the traces; None when the cache holds them all."""
    from alloclab.harness import warmup

    cells = [suite.cells[i] for _, need in plan for i in need]
    jobs = [warmup.Job(c.strategy) for c in cells]
    if not check:
        # a timeline runs the throughput kernel (executor.replay's chunks): only latency needs the timed one
        jobs += [warmup.Job(c.strategy, timed=True) for c in suite.cells if c.latency]
    w = warmup.start(jobs)
    if w is not None:
        log(warmup.describe(w))
    return w


def _finish_warmup(warm, bar) -> None:
    if warm is None:
        return
    bar.label("compiling kernels (first run only)")
    took = warm.wait()
    bar.write(f"kernels compiled in {took:.0f} s")


def _run_rounds(suite: Suite, out_dir: Path, plan, run_id: str, check: bool, bar, store, record, warm=None) -> None:
    """Each round in a fresh worker process (rounds.py); traces are made once, here, while the
    warm-up (if any) compiles the kernels."""
    from alloclab.harness import rounds
    from alloclab.workloads import trace as T

    tfile: dict[int, str] = {}
    for i in sorted({i for _, need in plan for i in need}, key=lambda i: suite.cells[i].trace_key):
        cell = suite.cells[i]
        path = rounds.trace_file(out_dir, cell.trace_key)
        if not path.exists():
            bar.label(f"trace {cell.workload}")
            path.parent.mkdir(exist_ok=True)
            tr = _try_make_trace(cell)
            if isinstance(tr, Exception):
                tfile[i] = ""
                continue
            T.save(tr, path)
        tfile[i] = str(path)
    _finish_warmup(warm, bar)
    for rnd, need in plan:
        while need:
            job = dict(round=rnd, out_dir=str(out_dir), run_id=run_id, reps=suite.reps, check=check,
                       arena_mb=suite.arena_mb,
                       cells=[(i, rounds.cell_to_json(suite.cells[i]), tfile.get(i, "")) for i in need])
            state = {"current": None, "finished": set()}

            def on_line(line: str, state=state):
                kind, _, rest = line.partition(" ")
                idx = int(rest.split(" ", 1)[0]) if rest else -1
                if kind == "start":
                    state["current"] = idx
                    bar.label(f"{suite.cells[idx].label()} [process {rnd + 1}/{suite.processes}]")
                elif kind == "done":
                    state["finished"].add(idx)
                    state["current"] = None
                    status = rest.split(" ", 1)[1] if " " in rest else "ok"
                    cell = suite.cells[idx]
                    record([dict(status="ok" if status == "ok" else status.split(":", 1)[0],
                                 error=status.split(": ", 1)[-1], strategy=cell.strategy, workload=cell.workload,
                                 procs=cell.procs, mode=cell.mode, proc=rnd)], suite.reps)
                    bar.update()

            t0 = time.monotonic()
            rc = rounds.run_round(out_dir, job, on_line)
            rounds.record_round(out_dir, rnd, len(state["finished"]), time.monotonic() - t0)
            crashed = state["current"]
            if rc != 0 and crashed is not None:
                cell = suite.cells[crashed]
                rows = [_error_row(run_id, R.now_iso(), cell, rnd * suite.reps,
                                   f"worker process died (exit {rc}) in this cell; see errors.log", None, rnd)]
                store.append(rows)
                record(rows)
                bar.update()
                state["finished"].add(crashed)
            elif rc != 0:
                raise SuiteError(f"round {rnd + 1}: worker process exited {rc} (see {out_dir / 'errors.log'})")
            need = [i for i in need if i not in state["finished"]]


class Progress:
    """A progress bar on a terminal; elsewhere (a log, CI) one plain line every 10 s or so."""

    def __init__(self, total: int, desc: str, enabled: bool = True, every_s: float = 10.0, unit: str = "cell"):
        import sys

        self.total, self.n, self.desc, self.every, self.unit = total, 0, desc, every_s, unit
        self.enabled = enabled
        self.pbar = None
        self.t0 = self.last = time.monotonic()
        self.current = ""
        self._err = sys.stderr
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.pbar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, file=sys.stderr,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} " + unit + "s [{elapsed}<{remaining}] {postfix}")

    def label(self, text: str) -> None:
        self.current = text
        if self.pbar:
            self.pbar.set_postfix_str(text)

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.pbar:
            self.pbar.update(k)
        elif self.enabled and (time.monotonic() - self.last >= self.every or self.n == self.total):
            self.last = time.monotonic()
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}s, {self.last - self.t0:.0f} s ({self.current})",
                  file=self._err, flush=True)

    def write(self, text: str) -> None:
        if self.pbar:
            self.pbar.write(text)
        else:
            print(text, file=self._err, flush=True)

    def close(self) -> None:
        if self.pbar:
            self.pbar.close()


def _error_row(run_id, started, cell: Cell, rep: int, msg: str, stats, proc: int = 0) -> dict[str, Any]:
    class _Failed:
        status = "error"
        error = msg
        wall_s = float("nan")
        peak_mapped_bytes = 0
        in_use_at_peak = -1
        per_p_wall_s: list = []
        extra: dict = {}

    stats = stats or dict(ops=0, peak_live_bytes=0)
    return R.make_row(run_id=run_id, started_at=started, strategy=cell.strategy, config=cell.config,
                      workload=cell.workload, workload_params=dict(cell.wparams), seed=cell.seed, procs=cell.procs,
                      mode=cell.mode, rep=rep, proc=proc, trace_stats=stats, result=_Failed(), counters={})
