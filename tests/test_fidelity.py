"""alloclab fidelity: the go model and the real Go runtime on the same traces, and the report's section."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alloclab.harness import fidelity as F
from alloclab.harness import results
from alloclab.harness.cli import main
from alloclab.strategies import _counters as K
from alloclab.strategies import go
from alloclab.workloads.trace import make_trace

WHY = F.unavailable_reason()
needs_go = pytest.mark.skipif(WHY is not None, reason=f"go-runtime unavailable: {WHY}")


def _trace(rows, procs=1):
    c = list(zip(*rows))
    return make_trace(*(np.array(x) for x in c), procs=procs)


def test_model_by_class_rounds_like_mallocgc_and_counts_tiny_blocks_once():
    H, N, S = K.KIND_HEAP, K.KIND_NOSCAN, K.KIND_STACK
    rows = [(0, 0, H, 24, 0), (0, 0, H, 20, 1), (0, 0, N, 5, 2), (0, 0, N, 3, 3), (0, 0, H, 600, 4),
            (0, 0, S, 440, 5), (0, 0, N, 40000, 6), (0, 1, H, 24, 0)]
    tr = _trace(rows)
    by = F.model_by_class(tr, go.Config(go_version="1.19"), tiny_blocks=1)
    assert by == {24: 2, 16: 1, 640: 1}          # the stack-kind G and the large object are not in classes
    assert F.model_by_class(tr, go.Config(go_version="1.22"), tiny_blocks=1)[640] == 1   # 608 with the header
    # goreplay runs stack-kind objects as goroutines: BySize is the real side as it is (448: a runtime G)
    real = F.real_by_class(tr, [dict(size=16, mallocs=1), dict(size=24, mallocs=2), dict(size=448, mallocs=1),
                                dict(size=640, mallocs=1), dict(size=0, mallocs=5)], go.Config())
    assert real == {16: 1, 24: 2, 448: 1, 640: 1}     # every class BySize lists, the last one included
    assert F.class_match(by, real) == (3, 4, 1)
    assert F.class_match(by, real | {448: 0}) == (3, 3, 0)
    assert F.class_match(by, real | {448: 0, 24: 3}) == (2, 3, 1)
    assert F.class_match(by, {16: 1, 24: 2}) == (2, 2, 0)   # classes past the last one listed are not compared


def test_fidelity_without_a_toolchain_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(F, "unavailable_reason", lambda: "no Go toolchain (apt-get install golang-go)")
    assert main(["fidelity", "-w", "web", "--scale", "0.002", "--out", str(tmp_path / "f"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["alloclab fidelity: error: the real Go runtime cannot run: no Go toolchain "
                   "(apt-get install golang-go)"]


@needs_go
def test_fidelity_runs_a_small_trace_and_the_report_shows_it(tmp_path, capsys):
    out = tmp_path / "fid"
    assert main(["fidelity", "-w", "larson", "--scale", "0.01", "--procs", "2", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "larson" in text and "threads/2" in text and "GC cycles" in text
    df = results.load([out])
    assert set(df["strategy"]) == {"go", "go-runtime"} and set(df["mode"]) == {"serial", "threads"}
    assert (df["status"] == "ok").all() and (df[F.INUSE_COL] > 0).all()
    # the model's default config is Go's: GOGC = 100
    assert {json.loads(c)["gogc"] for c in df.loc[df["strategy"] == "go", "config_json"]} == {100}
    from alloclab.harness.report_fidelity import fidelity_lines

    lines = fidelity_lines(df)
    assert [(ln["workload"], ln["mode"]) for ln in lines] == [("larson", "serial"), ("larson", "threads")]
    serial = lines[0]
    eq, n, worst = serial["classes"]
    # the runtime's and goreplay's own few allocations, a few objects each, land in 2 or 3 classes: how
    # many depends on how many GC cycles the run took (one class more with one cycle more)
    assert n > 10 and eq >= n - 3 and worst <= 8
    for key, _ in F.METRICS:
        m, g, ratio = serial[key]
        assert m > 0 and g > 0 and ratio == pytest.approx(m / g)
    assert main(["report", str(out), "-o", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Fidelity: the go model against the real Go runtime" in md
    assert (tmp_path / "rep" / "fidelity.png").stat().st_size > 5000
