"""Result rows and the results store.

One row per measured run (cell x repetition), metrics as columns (see
docs/design.md, "Results"). A run folder ``results/<run-id>/`` holds ``meta.json`` (machine,
commit, versions, suite) and Parquet parts ``part-NNNN.parquet`` that are
only ever added: each is written to a temp file in the same folder and
renamed into place, so a killed process leaves whole parts or none.
``load`` returns one DataFrame from any number of run folders and migrates
older schema versions to the current one.

Latency and timeline repetitions (harness/latency.py, harness/timeline.py) are
not result rows: they go to side tables of their own, ``latency-NNNN.parquet``
(a histogram's non-empty buckets) and ``timeline-NNNN.parquet`` (memory rows),
written with the same atomic parts, keyed by the cell's id and repetition, and
read back with ``load_table``. ``ns_per_op`` never sees a timed run.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterable

from alloclab.harness.atomic_file import atomic_path, atomic_write

SCHEMA_VERSION = 2
# v2: ``proc``, the index of the process a row was measured in (significance.py takes one
# sample per process; v1 rows all came from one process and migrate as proc 0), and
# ``ref_ns``, the yardstick timed beside the repetition (harness/calibrate.py; NaN if none).

COLUMNS = [
    "schema_version", "run_id", "started_at", "host", "cpu_model", "cores", "git_commit",
    "alloclab_version", "numba_version", "strategy", "config_hash", "config_json", "workload",
    "workload_json", "seed", "procs", "mode", "rep", "proc", "ops", "allocs", "frees", "wall_s", "ns_per_op",
    "peak_live_bytes", "peak_mapped_bytes", "overhead", "internal_frag", "fast_path_rate",
    "lock_local", "lock_central", "lock_global", "contended", "status", "error",
    "refills", "spins", "per_p_wall_json", "counters_json", "cell_id", "ref_ns",
]


SIDE_TABLES = ("latency", "timeline")
# what a side-table row carries of its cell (with ``rep``): enough to group and to join on cell_id
SIDE_KEYS = ("run_id", "strategy", "config_hash", "workload", "workload_json", "seed", "procs", "mode", "cell_id")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


_MACHINE: dict[str, Any] | None = None


def machine() -> dict[str, Any]:
    """Machine and software metadata carried by every row (as pyperf does)."""
    global _MACHINE
    if _MACHINE is None:
        import numba

        try:
            from importlib.metadata import version

            ver = version("alloclab")
        except Exception:
            ver = "0+unknown"
        _MACHINE = dict(host=socket.gethostname(), cpu_model=_cpu_model(), cores=os.cpu_count() or 1,
                        git_commit=_git_commit(), alloclab_version=ver, numba_version=numba.__version__,
                        python=platform.python_version(), platform=platform.platform())
    return dict(_MACHINE)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(prefix: str = "run") -> str:
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{prefix}-{os.getpid() % 10000:04d}"


def make_row(*, run_id, started_at, strategy, config, workload, workload_params, seed, procs, mode, rep,
             trace_stats, result, counters: dict[str, int], proc: int = 0) -> dict[str, Any]:
    """Build one result row from a RunResult (runner) and the trace's statistics."""
    m = machine()
    ops = int(trace_stats["ops"])
    peak_live = int(trace_stats["peak_live_bytes"])
    allocs = counters.get("allocs", 0)
    frees = counters.get("frees", 0)
    ok = result.status == "ok"
    in_use_peak = result.in_use_at_peak
    row = dict(
        schema_version=SCHEMA_VERSION, run_id=run_id, started_at=started_at, host=m["host"],
        cpu_model=m["cpu_model"], cores=m["cores"], git_commit=m["git_commit"],
        alloclab_version=m["alloclab_version"], numba_version=m["numba_version"],
        strategy=strategy, config_hash=config.config_hash(), config_json=config.to_json(),
        workload=workload, workload_json=json.dumps(workload_params, sort_keys=True, default=str),
        seed=int(seed), procs=int(procs), mode=mode, rep=int(rep), proc=int(proc), ops=ops, allocs=int(allocs), frees=int(frees),
        wall_s=float(result.wall_s) if ok else float("nan"),
        ns_per_op=float(result.wall_s) * 1e9 / max(ops, 1) if ok else float("nan"),
        peak_live_bytes=peak_live, peak_mapped_bytes=int(result.peak_mapped_bytes),
        overhead=(result.peak_mapped_bytes / peak_live) if (ok and peak_live > 0) else float("nan"),
        internal_frag=((in_use_peak - peak_live) / in_use_peak) if (ok and in_use_peak > 0) else float("nan"),
        fast_path_rate=(counters.get("fast_hits", 0) / allocs) if allocs else float("nan"),
        lock_local=int(counters.get("lock_local", 0)), lock_central=int(counters.get("lock_central", 0)),
        lock_global=int(counters.get("lock_global", 0)), contended=int(counters.get("contended", 0)),
        status=result.status, error=result.error, refills=int(counters.get("refills", 0)),
        spins=int(counters.get("spins", 0)), per_p_wall_json=json.dumps([round(t, 6) for t in result.per_p_wall_s]),
        counters_json=json.dumps(counters, sort_keys=True),
    )
    ref = result.extra.get("ref_s")
    row["ref_ns"] = float(ref) * 1e9 if ref else float("nan")
    row["cell_id"] = cell_id(row)
    return row


def cell_id(row: dict[str, Any]) -> str:
    """What identifies a measured cell across runs (for resume and compare)."""
    return "|".join(str(row[k]) for k in ("strategy", "config_hash", "workload", "workload_json", "seed", "procs", "mode"))


class ResultsStore:
    """An append-only run folder: meta.json + atomically written Parquet parts."""

    def __init__(self, run_dir: str | os.PathLike, meta: dict[str, Any] | None = None):
        self.dir = Path(run_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create results folder {self.dir}: {e.strerror}") from None
        if not os.access(self.dir, os.W_OK):
            raise OSError(f"results folder {self.dir} is not writable")
        mp = self.dir / "meta.json"
        if not mp.exists():
            atomic_write(mp, json.dumps({"schema_version": SCHEMA_VERSION, "created_at": now_iso(),
                                          **machine(), **(meta or {})}, indent=2, default=str).encode())

    def parts(self, table: str = "part") -> list[Path]:
        return sorted(self.dir.glob(f"{table}-*.parquet"))

    def append(self, rows: list[dict[str, Any]], table: str = "part") -> Path:
        """Add ``rows`` as a new part of the result rows (``table="part"``) or of a side table."""
        import pandas as pd

        if not rows:
            raise ValueError("no rows to append")
        if table != "part" and table not in SIDE_TABLES:
            raise ValueError(f"unknown table {table!r}")
        df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c in rows[0]] + [k for k in rows[0] if k not in COLUMNS])
        # The part number is claimed with O_EXCL so that concurrent writers never overwrite a part.
        n = len(self.parts(table))
        while True:
            path = self.dir / f"{table}-{n:04d}.parquet"
            try:
                fd = os.open(path.with_suffix(".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
                if path.exists():
                    os.unlink(path.with_suffix(".claim"))
                    n += 1
                    continue
                break
            except FileExistsError:
                n += 1
        try:
            with atomic_path(path) as tmp:
                df.to_parquet(tmp, index=False)
        finally:
            try:
                os.unlink(path.with_suffix(".claim"))
            except FileNotFoundError:
                pass
        return path

    def done_rounds(self) -> set[tuple[str, int]]:
        """(cell_id, proc) pairs already on disk (for --resume), and (cell_id, -1) for a
        cell that failed (oom, check, error): a failure is a result, and running it in
        another process would only fail again."""
        if not self.parts():
            return set()
        df = load([self.dir])
        out = set(zip(df["cell_id"], df["proc"].astype(int)))
        out |= {(cid, -1) for cid in df.loc[df["status"] != "ok", "cell_id"]}
        return out


    def append_probe(self, row: dict[str, Any], result) -> None:
        """Write a latency/timeline repetition's side tables; ``row`` is its cell's result row
        (make_row), for the keys. One part per table, so a killed process leaves all of it or none of it
        per table."""
        keys = {k: row[k] for k in SIDE_KEYS} | {"rep": int(row["rep"])}
        if "latency" in result.extra:
            self.append(result.extra["latency"].to_rows(**keys), "latency")
        if "timeline" in result.extra:
            tl = result.extra["timeline"]
            self.append([keys | rec for rec in tl.to_dict("records")], "timeline")

    def done_probes(self, table: str) -> set[str]:
        """cell_ids with rows in a side table (for --resume)."""
        if not self.parts(table):
            return set()
        return set(load_table([self.dir], table)["cell_id"])


def load_table(run_dirs: Iterable[str | os.PathLike], table: str):
    """One DataFrame of a side table (``latency`` or ``timeline``) from every given run folder."""
    import pandas as pd

    if table not in SIDE_TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(SIDE_TABLES)}")
    frames = []
    for d in run_dirs:
        for part in sorted(Path(d).glob(f"{table}-*.parquet")):
            try:
                frames.append(pd.read_parquet(part))
            except Exception as e:
                raise ValueError(f"{part}: unreadable {table} part ({str(e).splitlines()[0][:100]})") from None
    if not frames:
        return pd.DataFrame(columns=list(SIDE_KEYS) + ["rep"])
    return pd.concat(frames, ignore_index=True)


def _migrate(df, version: int):
    """Bring a frame written with an older schema to SCHEMA_VERSION."""
    if version > SCHEMA_VERSION:
        raise ValueError(f"results schema {version} is newer than this alloclab reads ({SCHEMA_VERSION})")
    if version < 2:
        df = df.assign(proc=0, ref_ns=float("nan"), schema_version=SCHEMA_VERSION)
    return df


def load(run_dirs: Iterable[str | os.PathLike]):
    """One DataFrame from the parts of every given run folder (schema-migrated)."""
    import pandas as pd

    frames = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a results folder")
        parts = sorted(d.glob("part-*.parquet"))
        if not parts and not (d / "meta.json").exists():
            raise FileNotFoundError(f"{d}: no meta.json or result parts (not an alloclab run folder)")
        for part in parts:
            try:
                df = pd.read_parquet(part)
            except Exception as e:  # pyarrow raises several types for corrupt files
                raise ValueError(f"{part}: unreadable result part ({str(e).splitlines()[0][:100]})") from None
            if "schema_version" not in df.columns:
                raise ValueError(f"{part}: not an alloclab result part (no schema_version)")
            frames.append(_migrate(df, int(df["schema_version"].max())))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)
