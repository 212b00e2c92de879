"""docs/adding-a-workload.md's worked example: one module (tests/testworkloads/burst.py) and one
registry line are all a workload needs; ``list -v``, ``--param`` and generate pick it up."""
import json

import numpy as np
import pytest

from alloclab import workloads
from alloclab.harness.cli import main

KIND_STACK = 2


@pytest.fixture
def burst(monkeypatch):
    monkeypatch.setattr(workloads, "_REGISTRY", dict(workloads._REGISTRY))   # forget it after the test
    workloads.register("burst", "testworkloads.burst")                         # the guide's registry line
    return workloads.get("burst")


def test_listed_with_its_parameters(burst, capsys):
    assert "burst" in workloads.names()
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert f"  burst        {burst.DESCRIPTION}\n" in out
    assert "      size = 64 1..1048576  object size (bytes)\n" in out


def test_params_parsed_and_checked_from_the_declaration(burst):
    assert workloads.parse_params(burst, {"size": "128", "objects": "3"}) == {"size": 128, "objects": 3}
    with pytest.raises(ValueError, match=r"^workload 'burst': size='big': expected int in 1\.\.1048576$"):
        workloads.parse_params(burst, {"size": "big"})
    with pytest.raises(ValueError, match=r"^workload 'burst': size=0: expected an integer in 1\.\.1048576$"):
        workloads.parse_params(burst, {"size": "0"})
    with pytest.raises(ValueError, match="^workload 'burst' has no parameter 'colour'; it has goroutines, objects, size$"):
        workloads.parse_params(burst, {"colour": "red"})
    with pytest.raises(ValueError, match=r"^size=0: expected an integer in 1\.\.1048576$"):
        workloads.generate("burst", size=0)


def test_generates_what_it_declares(burst):
    tr = workloads.generate("burst", procs=2, seed=1, scale=0.1, size=128)
    tr.validate()
    assert tr.meta["generator"] == "burst"
    assert tr.meta["params"] == {"goroutines": 1000, "objects": 8, "size": 128}
    objs = (tr.op == 0) & (tr.kind != KIND_STACK)
    assert set(np.unique(tr.size[objs])) == {128}
    assert objs.sum() == 100 * 8 and tr.meta["sim"]["spawns"] == 100
    assert tr.stats()["allocs"] == tr.stats()["frees"]


def test_cli_generates_it(burst, tmp_path, capsys):
    out = tmp_path / "burst.parquet"
    assert main(["trace", "gen", "-w", "burst", "--scale", "0.05", "--param", "objects=2", "-o", str(out)]) == 0
    assert main(["trace", "info", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert info["allocs"] == 50 * (2 + 2)            # two objects, a descriptor and a stack per worker
