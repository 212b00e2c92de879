"""Real Go with a size-class table of one's own: Go's sizeclasses.go from the model's generator
(go/sizeclasses_go.py), the tables Go 1.19 can take, and goreplay built against them (go_runtime)."""
from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from alloclab.harness.cli import main
from alloclab.strategies import go_runtime as G
from alloclab.strategies._config import ConfigError
from alloclab.strategies.go import sizeclasses as SC
from alloclab.strategies.go import sizeclasses_go as SCGO
from alloclab.workloads import generate

WHY = G.unavailable_reason()
needs_go = pytest.mark.skipif(WHY is not None, reason=f"go-runtime unavailable: {WHY}")
# a table Go 1.19 can run that is not Go's: spans may waste up to 1/5 of their bytes (Go: 1/8), 53 classes
CUSTOM = dict(sc_tail_waste_div=5)


def _toolchain_file() -> str:
    return (Path(G._goroot(G._go())) / SCGO.GO_FILE).read_text()


@needs_go
def test_default_table_emits_the_toolchains_own_file():
    ours, theirs = SCGO.emit(SC.generate()), _toolchain_file()
    a, b = SCGO.parse(ours), SCGO.parse(theirs)
    assert set(a) == set(SCGO.ARRAYS) | set(SCGO.CONSTANTS) == set(b)
    for name in a:   # table for table, so a failure names the table that differs
        assert np.array_equal(a[name], b[name]), name
    assert ours == theirs   # and the text, comment tables included, byte for byte


def test_parse_reads_back_every_table_of_an_emitted_file():
    t = SC.generate(CUSTOM)
    got = SCGO.parse(SCGO.emit(t))
    assert got["_NumSizeClasses"] == t.nclasses == 54
    assert (got["_MaxSmallSize"], got["_PageShift"], got["smallSizeDiv"]) == (32768, 13, 8)
    assert np.array_equal(got["class_to_size"], t.class_to_size)
    assert np.array_equal(got["class_to_allocnpages"], t.class_to_npages)
    assert np.array_equal(got["class_to_divmagic"], t.class_to_divmagic)
    assert np.array_equal(got["size_to_class8"], t.size_to_class8)
    assert np.array_equal(got["size_to_class128"], t.size_to_class128)


@needs_go
def test_emitted_file_is_gofmt_clean():
    gofmt = Path(G._goroot(G._go())) / "bin" / "gofmt"
    if not gofmt.is_file():
        pytest.skip(f"no gofmt at {gofmt}")
    text = SCGO.emit(SC.generate(CUSTOM))
    out = subprocess.run([str(gofmt)], input=text, capture_output=True, text=True, check=True).stdout
    assert out == text


@pytest.mark.parametrize("fields, says", [
    (dict(page_size=16384, sc_max_objects=2048), "page_size 16384"),
    (dict(max_small_size=16384), "max_small_size 16384"),
    (dict(sc_min_align=16), "size class 2 is 32 B"),
    (dict(sc_align16_from=64), "size class 40 B"),
    (dict(sc_align_frac_div=16), "size class 136 B"),
])
def test_tables_go_cannot_take_are_refused_in_one_line(fields, says):
    why = SCGO.go119_problem(SC.GenParams(**fields))
    assert why is not None and says in why and "\n" not in why
    with pytest.raises(ConfigError, match="go-runtime cannot take"):
        G.Config.from_dict(fields)


def test_class_count_limit_is_the_span_class_byte():
    t = SC.generate()
    # 128 classes and class 0: one more than a uint8 span class (class << 1 | noscan) can number
    sizes = np.concatenate([[0, 8], 16 * np.arange(1, 128)])
    assert "128 size classes" in SCGO.go119_problem(dataclasses.replace(t, class_to_size=sizes))
    assert SCGO.go119_problem(dataclasses.replace(t, class_to_size=sizes[:-1])) is None
    assert SCGO.go119_problem(t) is None and SCGO.go119_problem(SC.generate(CUSTOM)) is None


def test_go_config_files_give_their_table():
    cfg = G.Config.from_dict({"go": {**CUSTOM, "tiny_size": 16, "gogc": 0}})
    assert cfg.sc_tail_waste_div == 5 and cfg.gogc == 100   # the [go] table's gogc is the model's, not read
    assert G.from_go_config(cfg).to_dict() == cfg.to_dict()


@needs_go
def test_bad_table_is_exit_2_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[go-runtime]\nsc_min_align = 16\n")
    assert main(["run", "-s", "go-runtime", "-w", "tiny", "--scale", "0.001", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "size class 2 is 32 B" in err and len(err.splitlines()) == 1


@needs_go
def test_patched_build_runs_the_configs_table():
    cfg = G.Config.from_dict(CUSTOM)
    text = G.custom_sizeclasses(cfg)
    assert text is not None and G.custom_sizeclasses(G.Config()) is None
    exe = G.binary_path(cfg)
    assert exe != G.binary_path(G.Config())
    assert (exe.parent / "goroot" / SCGO.GO_FILE).read_text() == text
    t0 = time.perf_counter()
    assert G.binary_path(cfg) == exe and time.perf_counter() - t0 < 2   # cached: no second build
    tr = generate("web", procs=2, scale=0.002)
    [(_, r)] = G.run_external(cfg, tr, reps=1)
    assert r.status == "ok", r.error
    sizes = [c["size"] for c in r.extra["by_size"]]
    table = G.table_of(cfg).class_to_size.tolist()
    # MemStats.BySize is 61 entries, copied by length: this table's 54 classes, then zeros
    assert sizes == (table + [0] * 61)[:61]
    assert sum(c["mallocs"] for c in r.extra["by_size"][len(table):]) == 0


@needs_go
def test_gc_stw_runs_goreplay_with_gos_stop_the_world_gc(monkeypatch):
    seen = []
    run = subprocess.run

    def spy(cmd, **kw):
        seen.append(kw.get("env", {}).get("GODEBUG", ""))
        return run(cmd, **kw)

    monkeypatch.setattr(G.subprocess, "run", spy)
    monkeypatch.setenv("GODEBUG", "madvdontneed=1")
    tr = generate("tiny", procs=1, scale=0.002)
    for stw in (False, True):
        [(_, r)] = G.run_external(G.Config(gc_stw=stw), tr, reps=1)
        assert r.status == "ok", r.error
    # the caller's GODEBUG kept; adaptivestackstart=0 always (goreplay's stacks: docs/go-fidelity.md)
    assert seen[-2:] == ["madvdontneed=1,adaptivestackstart=0", "madvdontneed=1,adaptivestackstart=0,gcstoptheworld=1"]
