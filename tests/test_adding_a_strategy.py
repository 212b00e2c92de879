"""docs/adding-a-strategy.md's worked example: one module (tests/teststrategies/pow2.py) and one
registry line are all a strategy needs; the registry, the CLI and the runner pick it up."""
import json
import re
from pathlib import Path

from conftest import POW2

from alloclab import strategies
from alloclab.harness.cli import main
from alloclab.strategies._descriptor import Strategy

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "adding-a-strategy.md").read_text()


def test_the_guide_shows_this_module_and_this_registry_line():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
    assert (Path(__file__).parent / "teststrategies" / "pow2.py").read_text() in blocks
    line = next(b for b in blocks if b.lstrip().startswith("Strategy("))
    shown = eval(line.strip().rstrip(","), {"Strategy": Strategy})
    assert shown == Strategy(POW2.name, "alloclab.strategies.pow2", POW2.description)
    assert strategies.descriptor("pow2") == POW2 and POW2.module == "teststrategies.pow2"


def test_listed_and_run_by_the_cli(capsys):
    assert main(["list"]) == 0
    assert f"  pow2         {POW2.description}\n" in capsys.readouterr().out
    assert main(["run", "-s", "pow2", "-w", "web", "--scale", "0.01", "--check", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["status"] == "ok" and row["counters"]["reuses"] > 0
