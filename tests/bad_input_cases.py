"""Every kind of bad input alloclab refuses, and the one line it answers with.

Used by tests/test_bad_input.py (each case must exit 2 with one line saying
what the case expects) and, run as a script, prints docs/bad-input.md:

    .venv/bin/python tests/bad_input_cases.py > docs/bad-input.md
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np


TOML_FILES = {
    "cfg_unknown": "[freelist]\ncolour = 1\n", "cfg_zero_batch": "[freelist]\nbatch = 0\n",
    "cfg_batch_gt_cap": "[freelist]\nbatch = 64\ncache_capacity = 8\n",
    "cfg_not_toml": "batch = = 1\n", "cfg_type": "[freelist]\nbatch = 'many'\n",
    "go_page": "[go]\npage_size = 3000\n", "go_classes": "[go]\nsc_max_objects = 64\n",
    "suite_bad": "[[matrix]]\nstrategies = ['nope']\nworkloads = ['web']\n",
    "suite_latency": "[[matrix]]\nstrategies = ['bump']\nworkloads = ['web']\nlatency = 'yes'\n",
}
FOLDERS = ("notrun",)
_GO_EVENT = "tracealloc(0xc000082250, 0x10, main.node)\ngoroutine 20 [running]:\nmain.main.func1(0x0?)\n\t/m.go:23 +0x45\n\n"
GO_LOGS = {   # GODEBUG=allocfreetrace=1 logs: cut inside an event, an event line that does not parse, no header
    "go_trunc": _GO_EVENT + "tracefree(0xc000082250, 0x10)\ngorou",
    "go_badline": _GO_EVENT + "tracealloc(0xc000082260, sixteen)\ngoroutine 20 [running]:\n\n",
    "go_noheader": _GO_EVENT + "tracealloc(0xc000082260, 0x10)\ntracefree(0xc000082250, 0x10)\n",
}


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
    for name, text in TOML_FILES.items():
        (d / f"{name}.toml").write_text(text)
        f[name] = str(d / f"{name}.toml")
    for name, text in GO_LOGS.items():
        (d / f"{name}.log").write_text(text)
        f[name] = str(d / f"{name}.log")
    (d / "notrun").mkdir()
    f["notrun"] = str(d / "notrun")
    return f


def cases(f: Mapping[str, str]) -> list[tuple[str, list[str], str]]:
    """(what, argv, what the one line of stderr must say) for every kind of bad input; ``f`` maps the
    names of ``make_files`` to paths."""
    r = ["run", "-s", "freelist", "-w", "random", "--ops", "1000", "--reps", "1"]
    return [
        ("empty trace file", ["trace", "info", f["empty"]], "not a readable Parquet trace"),
        ("random bytes as a trace", ["trace", "info", f["random"]], "not a readable Parquet trace"),
        ("truncated trace", ["trace", "info", f["trunc"]], "not a readable Parquet trace"),
        ("free of an unknown object", ["trace", "info", f["unknown_free"]], "row 3: free of an unknown object"),
        ("double free", ["trace", "info", f["double_free"]], "row 3: free of an already-freed object"),
        ("negative size", ["trace", "info", f["neg_size"]], "row 1: size <= 0 or above the limit 1073741824"),
        ("zero size", ["trace", "info", f["zero_size"]], "row 0: size <= 0 or above the limit 1073741824"),
        ("huge size", ["trace", "info", f["huge_size"]], "row 1: size <= 0 or above the limit 1073741824"),
        ("p outside 0..procs-1", ["trace", "info", f["bad_p"]], "row 1: p outside 0..procs-1"),
        ("duplicate object id", ["trace", "info", f["dup_id"]], "row 1: duplicate object id"),
        ("wrong column type", ["trace", "info", f["wrong_type"]], "column 'size' has type float64, expected int32"),
        ("missing trace file", ["run", "-s", "go", "-w", "trace:/nonexistent.parquet"],
         "/nonexistent.parquet: no such trace file"),
        ("unknown strategy", ["run", "-s", "hoard", "-w", "web"], "unknown strategy 'hoard'; choose from"),
        ("unknown workload", ["run", "-s", "go", "-w", "nginx"], "unknown workload 'nginx'; choose from"),
        ("procs 0", r + ["--procs", "0"], "argument --procs: expected a positive integer, got 0"),
        ("procs over the limit", r + ["--procs", "5000"], "argument --procs: procs 5000 above the limit 1024"),
        ("bad flag", r + ["--fast"], "unrecognized arguments: --fast"),
        ("unknown workload parameter", r + ["--param", "colour=red"], "workload 'random' has no parameter 'colour'"),
        ("bad workload parameter value", r + ["--param", "live=lots"], "live='lots'"),
        ("arena too small", ["run", "-s", "bump", "-w", "random", "--ops", "5000", "--param", "dist=large",
                             "--arena-mb", "2", "--reps", "1"], "arena exhausted"),
        ("latency with --check", r + ["--latency", "--check"], "do not combine with --check"),
        ("latency sample of 0", r + ["--latency", "--sample", "0"], "argument --sample: expected a positive integer, got 0"),
        ("config: unknown key", r + ["--config", f["cfg_unknown"]], "unknown config key(s) colour"),
        ("config: zero batch size", r + ["--config", f["cfg_zero_batch"]], "batch: 0 is below the minimum 1"),
        ("config: batch above cache capacity", r + ["--config", f["cfg_batch_gt_cap"]],
         "batch (64) must not exceed cache_capacity (8)"),
        ("config: not TOML", r + ["--config", f["cfg_not_toml"]], "not valid TOML"),
        ("config: wrong type", r + ["--config", f["cfg_type"]], "batch: expected an integer, got 'many'"),
        ("go config: page size not a power of two", ["sizeclasses", "--config", f["go_page"]],
         "page_size: 3000 is not one of"),
        ("go config: oversized classes for max objects", ["sizeclasses", "--config", f["go_classes"]],
         "more than sc_max_objects 64"),
        ("suite: unknown strategy", ["bench", "--suite", f["suite_bad"], "--out", f["notrun"] + "/x"],
         "matrix 1: unknown strategy 'nope'"),
        ("suite: latency not a boolean", ["bench", "--suite", f["suite_latency"], "--out", f["notrun"] + "/x"],
         "'latency' and 'timeline' are true or false"),
        ("suite: no such file", ["bench", "--suite", "/nonexistent.toml"], "/nonexistent.toml: not a suite name"),
        ("results folder that is not one", ["report", f["notrun"]], "not an alloclab run folder"),
        ("ab with too few processes for a paired verdict", ["ab", "freelist", "bitmap", "-w", "random",
                                                            "--processes", "5"],
         "--processes 5: a paired verdict needs 6 or more"),
        ("unwritable output folder", ["bench", "--suite", "quick", "--out", "/proc/alloclab"],
         "cannot create results folder /proc/alloclab"),
        ("output folder missing", ["trace", "gen", "-w", "web", "-o", "/nonexistent/dir/t.parquet"],
         "/nonexistent/dir: output folder does not exist"),
        ("resume without a folder", ["bench", "--resume"], "--resume needs --out RUN_DIR"),
        ("tune: unknown objective", ["tune", "-s", "go", "-w", "web", "--objective", "speed"],
         "--objective speed: choose one or more of memory, inuse, time, locks"),
        ("tune: bad storage URL", ["tune", "-s", "go", "-w", "web", "--storage", "nosuchdb://x", "--trials", "1"],
         "storage 'nosuchdb://x'"),
        ("go-allocfreetrace: log cut inside an event", ["trace", "import", "-f", "go-allocfreetrace", f["go_trunc"],
                                                         "-o", "t.parquet"],
         "line 6: the log ends inside the tracefree event that starts there (truncated?)"),
        ("go-allocfreetrace: event line that does not parse", ["trace", "import", "-f", "go-allocfreetrace",
                                                                f["go_badline"], "-o", "t.parquet"],
         "line 6: not an allocfreetrace event"),
        ("go-allocfreetrace: event without its goroutine header", ["trace", "import", "-f", "go-allocfreetrace",
                                                                    f["go_noheader"], "-o", "t.parquet"],
         "line 7: expected the goroutine header of the tracealloc at line 6"),
        ("trace import: --procs for a format with threads", ["trace", "import", "-f", "mtrace", f["go_trunc"],
                                                              "--procs", "4", "-o", "t.parquet"],
         "--procs applies to go-allocfreetrace only"),
        ("compare: bad threshold", ["compare", f["notrun"], f["notrun"], "--fail", "fast"],
         "--fail 'fast': expected min|median|mean:PCT"),
        ("fidelity: unknown workload", ["fidelity", "-w", "nginx", "--out", f["notrun"] + "/f"],
         "unknown workload 'nginx'; choose from"),
    ]


class _Placeholders(dict):
    """make_files' names as DIR/<name>: the cases without writing any file."""

    def __missing__(self, key):
        return f"DIR/{key}" + ("" if key in FOLDERS else ".toml" if key in TOML_FILES
                               else ".log" if key in GO_LOGS else ".parquet")


CASES = cases(_Placeholders())
DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


def render() -> str:
    """docs/bad-input.md, generated from the cases alone (no command is run)."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        "# Bad input",
        "",
        "<!-- Generated by `.venv/bin/python tests/bad_input_cases.py > docs/bad-input.md`; do not edit.",
        "     tests/test_bad_input.py fails when this file differs from what the cases generate. -->",
        "",
        "Every kind of bad input alloclab is tested with. Each one exits with status 2 and one",
        "line on stderr (`alloclab CMD: error: ...`, no traceback, no partial output file), and",
        "that line says what the last column says (the rest of it names the file, the row or",
        "the valid choices). `DIR` is a folder of bad files that `make_files` in",
        "`tests/bad_input_cases.py` writes; `tests/test_bad_input.py` runs every row.",
        "",
        "| bad input | command | exit | the message says |",
        "|---|---|---|---|",
    ]
    for what, argv, expect in CASES:
        lines.append(f"| {cell(what)} | `alloclab {cell(' '.join(argv))}` | 2 | {cell(expect)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
