"""Measure issue 17's targets: A/A pairs of a suite, and an injected slowdown.

    python tests/stats_targets.py aa [--pairs 3] [--suite quick]
        runs the suite twice per pair (alloclab bench, back to back) and
        compares each pair: cells flagged, and the exit code of --fail min:5%.
    python tests/stats_targets.py slowdown --delay 2 [--processes N]
        two runs of a suite of bump, freelist and the test-only ``delayed``
        strategy (bump plus DELAY dependent multiply-adds per op) on the quick
        suite's serial workloads: delay 0 in the first, DELAY in the second,
        the same config, so compare matches the cells; prints how many of
        delayed's cells are called slower, at what measured slowdown.

Not a test (it takes minutes and needs a quiet machine); a script, like
serial_fingerprint.py, whose output goes into the README and the notes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from alloclab.harness import compare  # noqa: E402
from alloclab.harness import results as R  # noqa: E402
from alloclab.harness.cli import main  # noqa: E402

SERIAL = """
[[matrix]]
strategies = ["bump", "freelist", "delayed"]
workloads = [
  { name = "random", ops = 400000, dist = "small" },
  { name = "web", scale = 0.05 },
  { name = "spawn-storm", scale = 0.05 },
  { name = "tiny", scale = 0.05 },
  { name = "large-mix", scale = 0.05 },
  { name = "phase-shift", scale = 0.05 },
]
"""


def bench(suite: str, out: Path, extra=()) -> None:
    rc = main(["bench", "--suite", suite, "--out", str(out), "--no-progress", *extra])
    if rc != 0:
        raise SystemExit(f"bench {suite} exited {rc}")


def cmp(a: Path, b: Path) -> tuple[int, int, int]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["compare", str(a), str(b), "--fail", "min:5%"])
    df, _, _ = compare.compare_frames(R.load([a]), R.load([b]))
    return int(df["significant"].sum()), len(df), rc


def aa(args) -> None:
    root = Path(tempfile.mkdtemp(prefix="aa-"))
    for i in range(args.pairs):
        a, b = root / f"a{i}", root / f"b{i}"
        bench(args.suite, a)
        bench(args.suite, b)
        flagged, n, rc = cmp(a, b)
        print(f"pair {i + 1}: {flagged} of {n} cells flagged; compare --fail min:5% exit {rc}  ({a} {b})", flush=True)


def slowdown(args) -> None:
    from alloclab import strategies
    from alloclab.strategies import _numba_cache

    # a process that registers test-only strategies uses the tests' cache folder (tests/conftest.py)
    _numba_cache.configure("tests", extra_dirs=[TESTS / "teststrategies"])
    from conftest import DELAYED

    strategies.register(DELAYED)
    root = Path(tempfile.mkdtemp(prefix="slow-"))
    suite = root / "s.toml"
    suite.write_text(f"[suite]\nname = 'slowdown'\nprocesses = {args.processes}\nreps = {args.reps}\n"
                     f"seed = 1\narena_mb = 2048\n{SERIAL}")
    a, b = root / "a", root / "b"
    os.environ["ALLOCLAB_TEST_DELAY"] = "0"
    bench(str(suite), a)
    os.environ["ALLOCLAB_TEST_DELAY"] = str(args.delay)
    bench(str(suite), b)
    df, _, _ = compare.compare_frames(R.load([a]), R.load([b]))
    print(df[["cell", "ratio", "verdict", "q", "mde_pct", "cv_pct"]].to_string(index=False))
    d = df[df["cell"].str.startswith("delayed ")]
    o = df[~df["cell"].str.startswith("delayed ")]
    print(f"delayed (delay {args.delay}): {int((d['verdict'] == 'slower').sum())} of {len(d)} cells called slower, "
          f"measured slowdown {100 * (d['ratio'].min() - 1):.0f}-{100 * (d['ratio'].max() - 1):.0f}%; "
          f"unchanged strategies: {int(o['significant'].sum())} of {len(o)} flagged  ({a} {b})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("aa")
    s.add_argument("--pairs", type=int, default=3)
    s.add_argument("--suite", default="quick")
    s.set_defaults(fn=aa)
    s = sub.add_parser("slowdown")
    s.add_argument("--delay", type=int, default=2)
    s.add_argument("--processes", type=int, default=6)
    s.add_argument("--reps", type=int, default=1)
    s.set_defaults(fn=slowdown)
    a = ap.parse_args()
    a.fn(a)
