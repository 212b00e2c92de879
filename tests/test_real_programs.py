"""Real programs as workloads: the Go allocfreetrace importer, the recorded Go programs, the real suite.

tests/data/go_allocfreetrace.log is an excerpt of a real log: a 3-goroutine Go
1.19 program (lists of a pointerful struct plus byte slices, then runtime.GC())
run with GODEBUG=allocfreetrace=1, cut to 13 whole events (one tracegc() block
kept with its first goroutine only).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from alloclab.harness.cli import main
from alloclab.workloads import importers as I
from alloclab.workloads.trace import TraceError, load

DATA = Path(__file__).resolve().parent / "data"
EXCERPT = DATA / "go_allocfreetrace.log"
HAVE_GO = shutil.which("go") is not None


def _cut(tmp_path, text: str, name="cut.log") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------- importer

def test_excerpt_imports_with_goroutines_dealt_round_robin():
    tr, r = I.import_go_allocfreetrace(EXCERPT, procs=4)
    # 8 allocs, 4 sweep-time frees of objects allocated in the excerpt, the tracegc() block skipped
    assert (r.allocs, r.frees, r.live_at_end) == (8, 4, 4)
    assert r.handled["gc_blocks"] == 1 and not r.skipped
    # goroutines in order of first event: 0, 1, 20, 19, 18 -> Ps 0, 1, 2, 3, 0
    assert tr.p[tr.op == 0].tolist() == [0, 1, 2, 2, 3, 0, 0, 1]
    assert r.extra["goroutines"] == 5 and tr.procs == 4
    # frees run on the sweeper (goroutine 0 -> P 0) and repeat their object's size and kind
    assert set(tr.p[tr.op == 1].tolist()) == {0}
    assert tr.size.tolist() == [16, 112, 16, 112, 16, 16, 112, 16, 112, 16, 112, 8]
    # untyped -> noscan; uint8 (pointer-free) -> noscan; main.node, *sync.Pool -> heap
    assert tr.kind[tr.op == 0].tolist() == [1, 1, 0, 1, 0, 0, 1, 0]
    assert (r.handled["untyped_noscan"], r.handled["typed_noscan"]) == (2, 2)
    alloc_kind = dict(zip(tr.obj[tr.op == 0].tolist(), tr.kind[tr.op == 0].tolist()))
    assert all(alloc_kind[o] == k for o, k in zip(tr.obj[tr.op == 1].tolist(), tr.kind[tr.op == 1].tolist()))


def test_procs_folds_goroutines_and_is_bounded():
    tr, _ = I.import_go_allocfreetrace(EXCERPT, procs=1)
    assert tr.procs == 1 and not tr.p.any()
    tr, _ = I.import_go_allocfreetrace(EXCERPT, procs=64)
    assert tr.procs == 5     # never more Ps than goroutines
    with pytest.raises(TraceError, match="procs 0 outside"):
        I.import_go_allocfreetrace(EXCERPT, procs=0)


@pytest.mark.parametrize("typ,noscan", [("uint8", True), ("[16]int64", True), ("[4][2]float64", True),
                                        ("string", False), ("*int", False), ("[]uint8", False),
                                        ("struct { a int }", False), ("main.node", False)])
def test_pointer_free_type_names(typ, noscan):
    assert I._go_pointer_free(typ) is noscan


def test_type_names_with_spaces_and_parens_parse(tmp_path):
    log = ("tracealloc(0xc000010000, 0x30, struct { F uintptr; f func(int) (string, error) })\n"
           "goroutine 7 [running]:\n\n")
    tr, _ = I.import_go_allocfreetrace(_cut(tmp_path, log))
    assert tr.kind.tolist() == [0] and tr.size.tolist() == [48]


def test_truncated_excerpt_names_the_line(tmp_path):
    text = EXCERPT.read_text()
    lines = text.splitlines(keepends=True)
    # cut inside the goroutine header of the tracefree on line 139
    cut = "".join(lines[:139]) + lines[139][:5]
    with pytest.raises(TraceError, match=r"line 139: the log ends inside the tracefree event"):
        I.import_go_allocfreetrace(_cut(tmp_path, cut))
    # cut after a complete event line, before its header
    with pytest.raises(TraceError, match=r"line 139: the log ends inside the tracefree event"):
        I.import_go_allocfreetrace(_cut(tmp_path, "".join(lines[:139])))
    # cut inside the event line itself
    with pytest.raises(TraceError, match=r"line 139: the log ends inside this event line"):
        I.import_go_allocfreetrace(_cut(tmp_path, "".join(lines[:138]) + lines[138][:12]))
    # cut inside the tracegc() block
    with pytest.raises(TraceError, match=r"line 102: the log ends inside the tracegc\(\) block"):
        I.import_go_allocfreetrace(_cut(tmp_path, "".join(lines[:110])))
    # the recorder's leniency: the cut event is dropped and counted, the rest kept
    tr, r = I.import_go_allocfreetrace(_cut(tmp_path, cut), truncated_tail_ok=True)
    assert r.skipped["truncated_tail"] == 1 and (r.allocs, r.frees) == (7, 1)


def test_bad_lines_name_the_line(tmp_path):
    lines = EXCERPT.read_text().splitlines(keepends=True)
    bad = lines[:26] + ["tracealloc(0xc000082250 0x10, main.node)\n"] + lines[27:]
    with pytest.raises(TraceError, match=r"line 27: not an allocfreetrace event"):
        I.import_go_allocfreetrace(_cut(tmp_path, "".join(bad)))
    noheader = lines[:27] + lines[28:]
    with pytest.raises(TraceError, match=r"line 28: expected the goroutine header of the tracealloc at line 27"):
        I.import_go_allocfreetrace(_cut(tmp_path, "".join(noheader)))
    with pytest.raises(TraceError, match="no valid allocation ops"):
        I.import_go_allocfreetrace(_cut(tmp_path, "hello from the program\n"))


def test_cli_import_writes_the_trace(tmp_path, capsys):
    out = tmp_path / "go.parquet"
    assert main(["trace", "import", "-f", "go-allocfreetrace", "--procs", "2", str(EXCERPT), "-o", str(out)]) == 0
    tr = load(out)
    assert tr.procs == 2 and len(tr) == 12
    assert tr.meta["import_report"]["extra"]["goroutines"] == 5
    assert "goroutine_to_p: round-robin over 2 Ps" in capsys.readouterr().out


# ---------------------------------------------------------------- recording and the real suite

needs_go = pytest.mark.skipif(not HAVE_GO, reason="no Go toolchain: real Go programs cannot be recorded")


@needs_go
def test_record_a_small_go_program_end_to_end(tmp_path, monkeypatch):
    from alloclab.harness import real_programs as RP
    from alloclab.harness.runner import run_cell
    from alloclab import strategies

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # the build and the trace stay here
    # GOGC=5: a small run still reaches a GC (a 200 KB heap goal), so its trace has frees
    monkeypatch.setitem(RP.PROGRAMS, "go-lrucache", dataclasses.replace(RP.PROGRAMS["go-lrucache"], gogc=5))
    if RP.unavailable("real:go-lrucache"):
        pytest.skip(RP.unavailable("real:go-lrucache"))
    params = {"workers": 2, "ops": 200, "keys": 300, "capacity": 50}
    lines = []
    tr = RP.trace("real:go-lrucache", params, log=lines.append)
    path = RP.trace_path("real:go-lrucache", params)
    assert path.is_file() and path.is_relative_to(tmp_path) and "recorded real:go-lrucache" in lines[0]
    assert tr.procs == 4 and tr.meta["goroutines"] >= 3 and (tr.op == 1).any()
    # both kinds: pointerful list entries (heap) and byte-slice values (noscan)
    assert set(tr.kind[tr.op == 0].tolist()) >= {0, 1}
    # no temporary log left behind; a second call loads the cached trace instead of recording
    assert not list(Path(tmp_path).rglob("allocfreetrace.log"))
    again = RP.trace("real:go-lrucache", params, log=lines.append)
    assert len(lines) == 1 and len(again) == len(tr)
    # a different parameter is a different recording
    assert RP.trace_path("real:go-lrucache", dict(params, ops=201)) != path
    [(_, r)] = run_cell("freelist", strategies.get("freelist").Config(), tr, reps=1, check=True, arena_mb=256)
    assert r.status == "ok", r.error


def test_missing_toolchain_skips_the_real_cells_with_the_reason(monkeypatch):
    from alloclab.harness import bench, real_programs as RP

    monkeypatch.setattr(RP.shutil, "which", lambda name: None)
    monkeypatch.setitem(RP.PROGRAMS, "sqlite3", dataclasses.replace(RP.PROGRAMS["sqlite3"], exe="/nonexistent/sqlite3"))
    monkeypatch.setitem(RP.PROGRAMS, "python3", dataclasses.replace(RP.PROGRAMS["python3"], exe="/nonexistent/py"))
    monkeypatch.setitem(RP.PROGRAMS, "lua", dataclasses.replace(RP.PROGRAMS["lua"], exe="/nonexistent/lua5.4"))
    # redis-server installed (or not) but its client missing: the client's package is the reason
    redis = RP.PROGRAMS["redis"]
    monkeypatch.setitem(RP.PROGRAMS, "redis", dataclasses.replace(
        redis, exe=RP.__file__, client=("/nonexistent/redis-benchmark", *redis.client[1:])))
    assert "no Go toolchain on PATH" in RP.unavailable("real:go-httpserver")
    assert RP.unavailable("real:sqlite3") == ("real:sqlite3: skipped, /nonexistent/sqlite3 is not installed "
                                              "(apt-get install sqlite3)")
    assert RP.unavailable("real:lua") == "real:lua: skipped, /nonexistent/lua5.4 is not installed (apt-get install lua5.4)"
    assert RP.unavailable("real:redis") == ("real:redis: skipped, /nonexistent/redis-benchmark is not installed "
                                            "(apt-get install redis-tools)")
    suite = bench.load_suite("real")
    assert not [c for c in suite.cells if c.workload.startswith("real:")]
    assert sum("is not installed" in why for why in suite.skipped) == 4
    assert sum(why.startswith("real:redis: skipped") for why in suite.skipped) == 1
    go_programs = [n for n, prog in RP.PROGRAMS.items() if isinstance(prog, RP.GoProgram)]
    go_skips = [why for why in suite.skipped if why.startswith("real:go-")]
    assert len(go_skips) == len(go_programs) == 4
    assert all("no Go toolchain on PATH" in why for why in go_skips)
    with pytest.raises(RP.RecordingError, match="no Go toolchain"):
        RP.trace("real:go-gofmt")


def test_go_without_allocfreetrace_is_a_reason(monkeypatch):
    from alloclab.harness import real_programs as RP

    monkeypatch.setattr(RP, "go_toolchain", lambda: ("/usr/bin/go", "go1.23.1"))
    assert "removed in Go 1.22" in RP.unavailable("real:go-gofmt")


def test_suite_refuses_unknown_programs_and_parameters(tmp_path):
    from alloclab.harness import bench

    for wl, msg in (('{ name = "real:nginx" }', "unknown real program 'real:nginx'"),
                    ('{ name = "real:go-gofmt", lines = 3 }', "has no parameter(s) lines"),
                    ('{ name = "real:go-gofmt", rounds = 0 }', "rounds must be a positive integer")):
        f = tmp_path / "s.toml"
        f.write_text(f'[[matrix]]\nstrategies = ["go"]\nworkloads = [{wl}]\n')
        with pytest.raises(bench.SuiteError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            bench.load_suite(str(f))


@needs_go
def test_real_cells_take_the_recording_s_procs(monkeypatch):
    from alloclab.harness import bench, real_programs as RP

    if RP.unavailable("real:go-gofmt"):
        pytest.skip(RP.unavailable("real:go-gofmt"))
    suite = bench.load_suite("real")
    real = [c for c in suite.cells if c.workload.startswith("real:go-")]
    assert real and {c.procs for c in real} == {4}
    assert {c.workload for c in real} == {n for n in RP.names() if n.startswith("real:go-")}


needs_sqlite = pytest.mark.skipif(not (shutil.which("sqlite3") and (shutil.which("cc") or shutil.which("gcc"))),
                                  reason="no sqlite3 or no C compiler for the recorder")


@needs_sqlite
def test_record_sqlite3_with_the_preload_recorder(tmp_path, monkeypatch):
    from alloclab.harness import real_programs as RP

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sql = tmp_path / "t.sql"
    sql.write_text("CREATE TABLE t(a, b);\n"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)\n"
                   "  INSERT INTO t SELECT i, printf('%.*c', i % 40, 'x') FROM n;\n"
                   "SELECT count(*), max(length(b)) FROM t;\n")
    prog = dataclasses.replace(RP.PROGRAMS["sqlite3"], exe=shutil.which("sqlite3"), input=str(sql))
    monkeypatch.setitem(RP.PROGRAMS, "sqlite3", prog)   # an absolute input replaces workloads/programs/
    lines = []
    tr = RP.trace("real:sqlite3", log=lines.append)
    # the program itself was recorded (one process, one thread), allocations and frees both
    assert tr.procs == 1 and (tr.op == 0).sum() > 100 and (tr.op == 1).sum() > 100
    assert "recorded real:sqlite3" in lines[0] and RP.trace_path("real:sqlite3").is_file()
    assert len(RP.trace("real:sqlite3", log=lines.append)) == len(tr) and len(lines) == 1
    # the input is part of the key: another script is another recording
    sql.write_text("SELECT 1;\n")
    assert not RP.trace_path("real:sqlite3").is_file()


def test_fill_replaces_named_fields_only():
    from alloclab.harness.real_programs import _fill

    assert _fill(("-p", "{port}", "-n", "{requests}", "{other}", "{input}"), {"requests": 5}, port=7, input="x") == \
        ["-p", "7", "-n", "5", "{other}", "x"]


needs_redis = pytest.mark.skipif(not all(shutil.which(t) for t in ("redis-server", "redis-benchmark", "redis-cli"))
                                 or not (shutil.which("cc") or shutil.which("gcc")),
                                 reason="no redis-server/redis-tools, or no C compiler for the recorder")


@needs_redis
def test_record_redis_server_under_redis_benchmark(tmp_path, monkeypatch):
    from alloclab.harness import real_programs as RP

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    params = {"requests": 100, "clients": 2}
    lines = []
    tr = RP.trace("real:redis", params, log=lines.append)
    # the server process itself (its one allocating thread), not the client: allocations and frees,
    # and some objects still live at the clean shutdown (the keyspace: shutdown nosave does not free it)
    assert tr.procs == 1 and tr.meta["threads"] == 1
    assert (tr.op == 0).sum() > 2000 and (tr.op == 1).sum() > 1000
    assert 0 < tr.stats()["allocs"] - tr.stats()["frees"]
    assert tr.meta["params"] == params and "redis-benchmark" in tr.meta["source"]
    assert tr.meta["version"][0].isdigit() and "recorded real:redis" in lines[0]
    assert not list(tmp_path.glob("alloclab-real-*"))
    # cached: a second call loads it; other parameters are another recording
    assert len(RP.trace("real:redis", params, log=lines.append)) == len(tr) and len(lines) == 1
    assert RP.trace_path("real:redis", dict(params, requests=101)) != RP.trace_path("real:redis", params)


@needs_redis
def test_a_server_that_never_listens_is_a_recording_error(tmp_path, monkeypatch):
    from alloclab.harness import real_programs as RP

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # redis-server refusing its arguments exits before it listens
    bad = dataclasses.replace(RP.PROGRAMS["redis"], args=("--no-such-option", "{port}"))
    monkeypatch.setitem(RP.PROGRAMS, "redis", bad)
    with pytest.raises(RP.RecordingError, match=r"real:redis: the server exited with status 1 before listening"):
        RP.trace("real:redis", {"requests": 10})
    assert not RP.trace_path("real:redis", {"requests": 10}).is_file()


needs_lua = pytest.mark.skipif(not (shutil.which("lua5.4") and (shutil.which("cc") or shutil.which("gcc"))),
                               reason="no lua5.4 or no C compiler for the recorder")


@needs_lua
def test_record_lua_script_with_the_preload_recorder(tmp_path, monkeypatch):
    from alloclab.harness import real_programs as RP

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lines = []
    tr = RP.trace("real:lua", {"rounds": 1}, log=lines.append)
    # Lua allocates through realloc and its collector frees in batches: most objects are freed,
    # long after they were made (lifetimes in the thousands of ops, unlike sqlite3's handful)
    from alloclab.harness.report_real import shape
    row = shape(tr)
    assert tr.procs == 1 and row["allocs"] > 20_000 and row["never_freed"] < 0.5 and row["life_p50"] > 100
    assert tr.meta["version"].startswith("5.4") and tr.meta["params"] == {"rounds": 1}
    assert RP.trace_path("real:lua", {"rounds": 2}) != RP.trace_path("real:lua", {"rounds": 1})


# ---------------------------------------------------------------- trace shape

def test_shape_of_a_hand_made_trace():
    from alloclab.harness.report_real import shape
    from alloclab.workloads.trace import make_trace

    # obj 0 (16 B, P0) freed on P1 after 2 ops; obj 1 (200 B, P0) freed on P0 after 2 ops; obj 2 (40 KiB) live
    tr = make_trace(np.array([0, 0, 1, 1, 0], np.int16), np.array([0, 0, 1, 0, 1], np.int8), np.zeros(5, np.int8),
                    np.array([16, 200, 16, 40960, 200], np.int32), np.array([0, 1, 0, 2, 1], np.int64), procs=2)
    s = shape(tr, goroutines=3)
    assert (s["allocs"], s["size_p50"], s["cross_p_free"], s["never_freed"]) == (3, 200.0, 0.5, round(1 / 3, 3))
    assert (s["share_<=16"], s["share_129-1K"], s["share_>32K"]) == (0.333, 0.333, 0.333)
    assert (s["life_p50"], s["objects_per_goroutine"]) == (2.5, 1.0)


def test_section_only_for_runs_with_real_workloads():
    import pandas as pd

    from alloclab.harness import report_real
    from alloclab.harness.report import ReportInput

    inp = ReportInput(pd.DataFrame({"workload": ["web", "random"]}), pd.DataFrame(), (), "bump")
    assert report_real.section(inp) is None
    assert report_real.section(ReportInput(pd.DataFrame(), pd.DataFrame(), (), "bump")) is None


def test_objects_per_goroutine_reads_the_recording_or_the_simulator():
    from alloclab.harness.report_real import goroutines_of

    class T:
        def __init__(self, meta):
            self.meta = meta

    assert goroutines_of(T({"goroutines": 12})) == 12
    assert goroutines_of(T({"sim": {"spawns": 5000}})) == 5000
    assert goroutines_of(T({"generator": "import:rec"})) is None


def test_comparison_table_rows_and_bad_input(capsys):
    from alloclab.harness import report_real
    from alloclab.workloads.trace import make_trace

    # P0 allocates 16 and 48 B; the 16 B object is freed on P1, the 48 B one on P0, each 2 ops later
    tr = make_trace(np.array([0, 0, 1, 0], np.int16), np.array([0, 0, 1, 1], np.int8), np.zeros(4, np.int8),
                    np.array([16, 48, 16, 48], np.int32), np.array([0, 1, 0, 1], np.int64), procs=2)
    tr.meta["goroutines"] = 2
    rows = report_real.comparison_markdown({"a": tr}).splitlines()
    assert rows[0].startswith("| trace | allocs |") and len(rows) == 3
    assert rows[2] == "| a | 2 | 0.0 MiB | 32 / 45 | 50% | 0.50 | 2 / 2 | 0% | 1 |"
    del tr.meta["goroutines"]
    assert report_real.comparison_markdown({"a": tr}).splitlines()[2].endswith("| 0% | - |")
    assert report_real.main(["--scale", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --scale must be > 0 and --procs >= 1"
