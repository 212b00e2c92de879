"""go/sizeclasses.py: Go's mksizeclasses algorithm, its tables and its parameters."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from alloclab.strategies._config import ConfigError
from alloclab.strategies.go import Config, sizeclasses as SC

# Go's real table (internal/runtime/gc/sizeclasses.go, unchanged since about Go 1.18): the project's
# shared data folder when it sits beside the checkout, else the copy kept in tests/data.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "go_sizeclasses.csv"
CSV_PATH = _SHARED if _SHARED.exists() else Path(__file__).resolve().parent / "data" / "go_sizeclasses.csv"


@pytest.fixture(scope="module")
def table():
    return SC.generate()


def test_defaults_reproduce_go_csv_exactly(table):
    assert SC.format_table(table, csv=True) == CSV_PATH.read_text()


def test_table_shape_matches_go(table):
    assert table.nclasses == 68                      # _NumSizeClasses with the dummy class 0
    assert table.class_to_size[0] == 0 and table.class_to_size[-1] == 32768
    assert table.max_objs_per_span == 1024           # MaxObjsPerSpan
    assert int(table.class_to_npages.max()) == 10    # MaxSizeClassNPages
    assert (np.diff(table.class_to_size) > 0).all()
    if CSV_PATH.exists():
        rows = list(csv.DictReader(CSV_PATH.open()))
        assert [int(r["bytes_per_obj"]) for r in rows] == table.class_to_size[1:].tolist()
        assert [int(r["bytes_per_span"]) for r in rows] == (table.class_to_npages[1:] * 8192).tolist()


def test_div_magic_finds_every_object_index(table):
    for c in range(1, table.nclasses):
        size = int(table.class_to_size[c])
        span = int(table.class_to_npages[c]) * 8192
        off = np.arange(span, dtype=np.uint64)
        got = (off * np.uint64(table.class_to_divmagic[c])) >> np.uint64(32)
        assert np.array_equal(got, off // np.uint64(size)), size
        assert table.class_to_divmagic[c] == (2**32 - 1) // size + 1


def test_size_to_class_for_every_small_size(table):
    """Go's rule: a size maps to the smallest class that holds it, through the by-8 and by-128 tables."""
    sizes = table.class_to_size
    for s in range(1, 32769):
        want = int(np.searchsorted(sizes, s))   # first class with size >= s
        got = table.size_to_class(s)
        assert got == want, (s, got, want)
    assert table.size_to_class8.shape == (1024 // 8 + 1,)
    assert table.size_to_class128.shape == ((32768 - 1024) // 128 + 1,)


def test_go_alignment_rules_hold_in_the_table(table):
    rows = table.rows()
    for c, size, span, objs, tail, waste, align in rows:
        assert align == min(size & -size, 8192)
        assert span % 8192 == 0 and objs == span // size and tail == span - objs * size
        assert tail <= span // 8   # the generator's tail-waste target
        if size >= 32:             # heap bitmaps want 16-byte alignment from 32 B on (Go's comment)
            assert size % 16 == 0


def test_text_layout_is_gos_comment_table(table):
    text = SC.format_table(table)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["class", "bytes/obj"]
    assert len(lines) == 68
    assert lines[1].split() == ["1", "8", "8192", "1024", "0", "87.50%", "8"]
    assert lines[-1].split() == ["67", "32768", "32768", "1", "0", "12.50%", "8192"]


def test_generate_accepts_config_dict_and_none(table):
    assert np.array_equal(SC.generate(Config()).class_to_size, table.class_to_size)
    assert np.array_equal(SC.generate({"page_size": 8192}).class_to_size, table.class_to_size)


def test_parameters_change_the_table():
    coarse = SC.generate({"sc_align_frac_div": 4, "sc_tail_waste_div": 4})
    fine = SC.generate({"sc_align_frac_div": 16})
    go = SC.generate()
    assert coarse.nclasses < go.nclasses < fine.nclasses
    for t in (coarse, fine):
        assert (np.diff(t.class_to_size[1:]) > 0).all()
        for c, size, span, objs, tail, waste, align in t.rows():
            assert objs >= 1 and tail == span - objs * size
    big = SC.generate({"page_size": 16384, "sc_max_objects": 2048})
    assert big.class_to_size[1] == 8 and big.class_nelems[1] == 2048
    narrow = SC.generate({"max_small_size": 16384})
    assert narrow.class_to_size[-1] == 16384 and narrow.nclasses < go.nclasses
    first16 = SC.generate({"sc_min_align": 16})
    assert first16.class_to_size[1] == 16


@pytest.mark.parametrize("params, msg", [
    ({"page_size": 12288}, "not a power of two"),
    ({"page_size": 16384}, "more than sc_max_objects"),
    ({"sc_align_max": 96}, "not a power of two"),
    ({"max_small_size": 32768 + 64}, "sc_large_size_div"),
    ({"sc_small_size_max": 1000}, "multiple"),
    ({"page_size": 4096, "sc_max_objects": 8192}, "not increasing"),   # the final size bump collides
    ({"max_small_size": 65536}, "32 bits of division magic"),
])
def test_invalid_generator_parameters_raise_one_line_errors(params, msg):
    with pytest.raises(ConfigError) as e:
        SC.generate(params)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="tiny_size"):
        Config(tiny_size=8, sc_min_align=16).validate()   # the first class is then 16 B
    with pytest.raises(ConfigError, match="gfree_batch"):
        Config(gfree_batch=100, gfree_local_cap=64).validate()
    with pytest.raises(ConfigError, match="stack_cache_refill"):
        Config(stack_cache_refill=65536).validate()
    with pytest.raises(ConfigError, match="page_size"):
        Config.from_dict({"page_size": 12288})
    with pytest.raises(ConfigError, match="unknown config key"):
        Config.from_dict({"pagesize": 8192})
    assert Config.from_dict({"tiny_size": 0, "gogc": 100}).gogc == 100


def test_every_go_constant_is_a_documented_field_with_gos_default():
    cfg = Config()
    want = dict(page_size=8192, max_small_size=32768, tiny_size=16, page_cache_pages=64, heap_growth_kb=4096,
                arena_mb=64, stack_cache_size=32768, stack_cache_refill=16384, stack_orders=4, fixed_stack=2048,
                gfree_local_cap=64, gfree_batch=32, g_size=440, sc_tail_waste_div=8, sc_max_objects=1024, gogc=100)
    for k, v in want.items():
        assert getattr(cfg, k) == v, k
    for name, default, rng, doc in Config.describe():
        assert doc and len(doc) > 20, name


def test_search_space_yields_valid_configs():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    ok = 0
    tuned = set()
    for _ in range(40):
        trial = study.ask()
        try:
            cfg = Config.suggest(trial)
        except ConfigError:
            continue
        ok += 1
        tuned |= set(trial.params)
        SC.generate(cfg)   # the table of every accepted config builds
    assert ok >= 5
    for name in ("tiny_size", "page_cache_pages", "stack_cache_size", "gfree_batch", "sc_tail_waste_div"):
        assert name in tuned
    assert "gogc" not in tuned and "g_size" not in tuned
    fields = {f.name for f in dataclasses.fields(Config)}
    assert tuned <= fields
