"""Real programs as workloads: the Go allocfreetrace importer, the recorded Go programs, the real suite.

tests/data/go_allocfreetrace.log is an excerpt of a real log: a 3-goroutine Go
1.19 program (lists of a pointerful struct plus byte slices, then runtime.GC())
run with GODEBUG=allocfreetrace=1, cut to 13 whole events (one tracegc() block
kept with its first goroutine only).
"""
from __future__ import annotations

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
