"""Every kind of bad input alloclab refuses, and the one line it answers with.

Used by tests/test_bad_input.py (each case must exit 2 with one line naming
the problem) and, run as a script, prints the README's table:

    .venv/bin/python tests/bad_input_cases.py > /tmp/table.md
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def make_files(d: Path) -> dict[str, str]:
    """Bad files of every kind, written into ``d``."""
    from alloclab.workloads import trace as T

    f = {}
    (d / "empty.parquet").write_bytes(b"")
    f["empty"] = str(d / "empty.parquet")
    (d / "random.parquet").write_bytes(np.random.default_rng(1).bytes(5000))
    f["random"] = str(d / "random.parquet")
    good = T.make_trace(np.zeros(4, np.int16), np.array([0, 0, 1, 1], np.int8), np.zeros(4, np.int8),
                        np.array([8, 16, 8, 16], np.int32), np.array([0, 1, 0, 1], np.int64), procs=1)
    T.save(good, d / "good.parquet")
    (d / "trunc.parquet").write_bytes((d / "good.parquet").read_bytes()[:200])
    f["trunc"] = str(d / "trunc.parquet")

    def bad(name, **cols):
        base = dict(p=good.p, op=good.op, kind=good.kind, size=good.size, obj=good.obj)
        base.update(cols)
        t = T.Trace(base["p"], base["op"], base["kind"], base["size"], base["obj"], 1, {})
        T.save(t, d / f"{name}.parquet")
        f[name] = str(d / f"{name}.parquet")

    bad("unknown_free", obj=np.array([0, 1, 0, 3], np.int64))
    bad("double_free", op=np.array([0, 0, 1, 1], np.int8), obj=np.array([0, 1, 0, 0], np.int64))
    bad("neg_size", size=np.array([8, -16, 8, -16], np.int32))
    bad("zero_size", size=np.array([0, 16, 0, 16], np.int32))
    bad("huge_size", size=np.array([8, 2**31 - 1, 8, 2**31 - 1], np.int32))
    bad("bad_p", p=np.array([0, 3, 0, 3], np.int16))
    bad("dup_id", obj=np.array([0, 0, 0, 1], np.int64))
    bad("wrong_type", size=np.array([8.0, 16.0, 8.0, 16.0]))
    for name, text in {
        "cfg_unknown": "[freelist]\ncolour = 1\n", "cfg_zero_batch": "[freelist]\nbatch = 0\n",
        "cfg_batch_gt_cap": "[freelist]\nbatch = 64\ncache_capacity = 8\n",
        "cfg_not_toml": "batch = = 1\n", "cfg_type": "[freelist]\nbatch = 'many'\n",
        "go_page": "[go]\npage_size = 3000\n", "go_classes": "[go]\nsc_max_objects = 64\n",
        "suite_bad": "[[matrix]]\nstrategies = ['nope']\nworkloads = ['web']\n",
    }.items():
        (d / f"{name}.toml").write_text(text)
        f[name] = str(d / f"{name}.toml")
    (d / "notrun").mkdir()
    f["notrun"] = str(d / "notrun")
    return f


def cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    r = ["run", "-s", "freelist", "-w", "random", "--ops", "1000", "--reps", "1"]
    return [
        ("empty trace file", ["trace", "info", f["empty"]]),
        ("random bytes as a trace", ["trace", "info", f["random"]]),
        ("truncated trace", ["trace", "info", f["trunc"]]),
        ("free of an unknown object", ["trace", "info", f["unknown_free"]]),
        ("double free", ["trace", "info", f["double_free"]]),
        ("negative size", ["trace", "info", f["neg_size"]]),
        ("zero size", ["trace", "info", f["zero_size"]]),
        ("huge size", ["trace", "info", f["huge_size"]]),
        ("p outside 0..procs-1", ["trace", "info", f["bad_p"]]),
        ("duplicate object id", ["trace", "info", f["dup_id"]]),
        ("wrong column type", ["trace", "info", f["wrong_type"]]),
        ("missing trace file", ["run", "-s", "go", "-w", "trace:/nonexistent.parquet"]),
        ("unknown strategy", ["run", "-s", "tcmalloc", "-w", "web"]),
        ("unknown workload", ["run", "-s", "go", "-w", "nginx"]),
        ("procs 0", r + ["--procs", "0"]),
        ("procs over the limit", r + ["--procs", "5000"]),
        ("bad flag", r + ["--fast"]),
        ("unknown workload parameter", r + ["--param", "colour=red"]),
        ("bad workload parameter value", r + ["--param", "live=lots"]),
        ("arena too small", ["run", "-s", "bump", "-w", "random", "--ops", "5000", "--param", "dist=large",
                             "--arena-mb", "2", "--reps", "1"]),
        ("config: unknown key", r + ["--config", f["cfg_unknown"]]),
        ("config: zero batch size", r + ["--config", f["cfg_zero_batch"]]),
        ("config: batch above cache capacity", r + ["--config", f["cfg_batch_gt_cap"]]),
        ("config: not TOML", r + ["--config", f["cfg_not_toml"]]),
        ("config: wrong type", r + ["--config", f["cfg_type"]]),
        ("go config: page size not a power of two", ["sizeclasses", "--config", f["go_page"]]),
        ("go config: oversized classes for max objects", ["sizeclasses", "--config", f["go_classes"]]),
        ("suite: unknown strategy", ["bench", "--suite", f["suite_bad"], "--out", f["notrun"] + "/x"]),
        ("suite: no such file", ["bench", "--suite", "/nonexistent.toml"]),
        ("results folder that is not one", ["report", f["notrun"]]),
        ("unwritable output folder", ["bench", "--suite", "quick", "--out", "/proc/alloclab"]),
        ("output folder missing", ["trace", "gen", "-w", "web", "-o", "/nonexistent/dir/t.parquet"]),
        ("resume without a folder", ["bench", "--resume"]),
        ("tune: unknown objective", ["tune", "-s", "go", "-w", "web", "--objective", "speed"]),
        ("tune: bad storage URL", ["tune", "-s", "go", "-w", "web", "--storage", "nosuchdb://x", "--trials", "1"]),
        ("compare: bad threshold", ["compare", f["notrun"], f["notrun"], "--fail", "fast"]),
    ]


def run(argv):
    return subprocess.run([sys.executable, "-m", "alloclab.harness.cli", *argv], capture_output=True, text=True,
                          timeout=300)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        f = make_files(Path(d))
        print("| bad input | command | exit | message |")
        print("|---|---|---|---|")
        for what, argv in cases(f):
            r = run(argv)
            msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "(none)"
            cmd = " ".join(a.replace(d, "DIR") for a in argv)
            msg = msg.replace(d, "DIR").replace("|", "\\|")
            print(f"| {what} | `alloclab {cmd}` | {r.returncode} | {msg} |")
