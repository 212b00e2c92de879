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

BUILTIN_SUITES = ("quick", "full", "targets", "scaling")
MATRIX_KEYS = {"strategies", "workloads", "procs", "modes", "configs"}
SUITE_KEYS = {"name", "description", "reps", "seed", "arena_mb"}


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
    reps: int
    seed: int
    arena_mb: int
    cells: list[Cell] = field(default_factory=list)
    source: str = ""
    skipped: list[str] = field(default_factory=list)


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


def load_suite(spec: str, reps: int | None = None, config_override=None) -> Suite:
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
                  reps=int(reps or head.get("reps", 3)), seed=int(head.get("seed", 0)),
                  arena_mb=int(head.get("arena_mb", DEFAULT_ARENA_MB)), source=source)
    if not 1 <= suite.reps <= 1000:
        raise SuiteError(f"{source}: reps {suite.reps} outside 1..1000")
    if not 1 <= suite.arena_mb <= MAX_ARENA_MB:
        raise SuiteError(f"{source}: arena_mb {suite.arena_mb} outside 1..{MAX_ARENA_MB}")
    matrices = data.get("matrix")
    if not isinstance(matrices, list) or not matrices:
        raise SuiteError(f"{source}: needs at least one [[matrix]] block")
    seen = set()
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
        wl = []
        for w in m["workloads"]:
            if isinstance(w, str):
                w = {"name": w}
            if not isinstance(w, dict) or "name" not in w:
                raise SuiteError(f"{where}: each workload is a name or a table with 'name'")
            w = dict(w)
            name = w.pop("name")
            if not name.startswith("trace:"):
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
                    cell = Cell(s, cfg, wname, wp, p, mode, suite.seed)
                    key = (s, cfg.config_hash(), cell.trace_key, mode)
                    if key not in seen:
                        seen.add(key)
                        suite.cells.append(cell)
    return suite


def _make_trace(cell: Cell):
    params = dict(cell.wparams)
    scale = float(params.pop("scale", 1.0))
    return workloads.generate(cell.workload, procs=cell.procs, seed=cell.seed, scale=scale, **params)


def run_suite(suite: Suite, out_dir: Path, resume: bool = False, progress: bool = True, log=print,
              check: bool = False) -> dict[str, Any]:
    """Run every missing cell of ``suite`` into ``out_dir``; returns a summary dict."""
    store = R.ResultsStore(out_dir, meta={"suite": suite.name, "suite_source": suite.source,
                                          "description": suite.description, "reps": suite.reps})
    done = store.done_cells() if resume else {}
    if not resume and store.parts():
        raise SuiteError(f"{out_dir} already holds results; pass --resume to complete it or choose another --out")
    run_id = out_dir.name
    todo = []
    for cell in suite.cells:
        probe = dict(strategy=cell.strategy, config_hash=cell.config.config_hash(), workload=cell.workload,
                     workload_json=json.dumps(cell.wparams, sort_keys=True, default=str), seed=cell.seed,
                     procs=cell.procs, mode=cell.mode)
        have = done.get(R.cell_id(probe), 0)
        if have < suite.reps:
            todo.append((cell, have))
    summary = dict(cells=len(suite.cells), skipped=len(suite.cells) - len(todo), ran=0, failed=0, rows=0)
    if not todo:
        log(f"all {len(suite.cells)} cells of {suite.name} are already in {out_dir}")
        return summary
    # group by trace so each trace is generated once
    todo.sort(key=lambda ct: (ct[0].trace_key, ct[0].strategy, ct[0].mode))
    total_ops_est = len(todo)
    pbar = None
    if progress:
        from tqdm import tqdm

        pbar = tqdm(total=total_ops_est, unit="cell", desc=suite.name, dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}] {postfix}")
    traces: dict = {}
    try:
        for cell, have in todo:
            if pbar:
                pbar.set_postfix_str(cell.label())
            key = cell.trace_key
            if key not in traces:
                traces.clear()  # keep one trace in memory at a time (they are sorted by trace)
                try:
                    traces[key] = _make_trace(cell)
                except (ValueError, OSError) as e:
                    traces[key] = e
            tr = traces[key]
            started = R.now_iso()
            rows = []
            if isinstance(tr, Exception):
                rows.append(_error_row(run_id, started, cell, 0, f"workload: {tr}", None))
            else:
                stats = tr.stats()
                wparams = dict(cell.wparams)
                try:
                    res = runner.run_cell(cell.strategy, cell.config, tr, mode=cell.mode, reps=suite.reps - have,
                                          check=check, arena_mb=suite.arena_mb)
                    mod = strategies.get(cell.strategy)
                    for rep, r in res:
                        rows.append(R.make_row(run_id=run_id, started_at=started, strategy=cell.strategy,
                                               config=cell.config, workload=cell.workload, workload_params=wparams,
                                               seed=cell.seed, procs=cell.procs, mode=cell.mode, rep=have + rep,
                                               trace_stats=stats, result=r,
                                               counters=runner.counters_dict(mod, r)))
                except Exception as e:  # a crashing cell is a result too; the suite goes on
                    msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                    rows.append(_error_row(run_id, started, cell, have, msg, stats))
                    (out_dir / "errors.log").open("a").write(f"{cell.label()}\n{traceback.format_exc()}\n")
            store.append(rows)
            summary["ran"] += 1
            summary["rows"] += len(rows)
            if any(r["status"] != "ok" for r in rows):
                summary["failed"] += 1
                if pbar:
                    pbar.write(f"  {cell.label()}: {rows[-1]['status']}: {rows[-1]['error']}")
            if pbar:
                pbar.update(1)
    finally:
        if pbar:
            pbar.close()
    return summary


def _error_row(run_id, started, cell: Cell, rep: int, msg: str, stats) -> dict[str, Any]:
    class _Failed:
        status = "error"
        error = msg
        wall_s = float("nan")
        peak_mapped_bytes = 0
        in_use_at_peak = -1
        per_p_wall_s: list = []

    stats = stats or dict(ops=0, peak_live_bytes=0)
    return R.make_row(run_id=run_id, started_at=started, strategy=cell.strategy, config=cell.config,
                      workload=cell.workload, workload_params=dict(cell.wparams), seed=cell.seed, procs=cell.procs,
                      mode=cell.mode, rep=rep, trace_stats=stats, result=_Failed(), counters={})
