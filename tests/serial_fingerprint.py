"""Serial counters of every kernel strategy on the quick suite's serial cells, as JSON.

Serial replay is deterministic: the same trace and config give the same
counters bit for bit. A refactoring that must change no measured behaviour
is checked by comparing this output before and after it:

    python tests/serial_fingerprint.py > /tmp/before.json   # on the old commit
    python tests/serial_fingerprint.py > /tmp/after.json
    diff /tmp/before.json /tmp/after.json && echo identical

It drives the CLI (``alloclab run --json``) in-process, so it survives
changes to the Python API underneath. Timing columns are left out.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile

from alloclab.harness.cli import main

STRATEGIES = ["bump", "naive", "bitmap", "freelist", "go", "system"]
WORKLOADS = [
    ["-w", "random", "--ops", "400000", "-P", "dist=small"],
    ["-w", "web", "--scale", "0.05"],
    ["-w", "spawn-storm", "--scale", "0.05"],
    ["-w", "tiny", "--scale", "0.05"],
    ["-w", "large-mix", "--scale", "0.05"],
    ["-w", "phase-shift", "--scale", "0.05"],
]
# what varies between runs of the same code: clocks, ids, the machine
VOLATILE = {"wall_s", "ns_per_op", "started_at", "run_id", "host", "cpu_model", "cores", "git_commit",
            "alloclab_version", "numba_version", "ops_per_ms", "per_p_wall_s", "per_p_wall_json",
            "schema_version", "proc"}  # the last two: bookkeeping of the results schema, not measurements


def cell(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["run", "--reps", "1", "--seed", "1", "--json", *argv])
    if rc != 0:
        raise SystemExit(f"alloclab run {' '.join(argv)} exited {rc}")
    row = json.loads(out.getvalue().strip().splitlines()[-1])
    return {k: v for k, v in sorted(row.items()) if k not in VOLATILE}


def main_() -> None:
    rows = {}
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as gogc:
        gogc.write("gogc = 100\n")
        gogc.flush()
        cells = [(s, w, []) for s in STRATEGIES for w in WORKLOADS]
        cells.append(("go", ["-w", "web", "--scale", "0.05"], ["--config", gogc.name]))
        for s, w, extra in cells:
            key = f"{s} {' '.join(w)} {' '.join(extra[:1])}".strip()
            print(key, file=sys.stderr)
            rows[key] = cell(["-s", s, *w, *extra])
    json.dump(rows, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main_()
