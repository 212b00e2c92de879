"""Measure issue 17's targets: A/A pairs of a suite, and an injected slowdown.

    python tests/stats_targets.py aa [--pairs 3] [--suite quick]
        runs the suite twice per pair (alloclab bench, back to back) and
        compares each pair: cells flagged, and the exit code of --fail min:5%.
    python tests/stats_targets.py slowdown --pct 20 [--suite quick|full] [--processes N]
        two separate runs of a suite of bump, freelist and the test-only
        ``delayed`` strategy on the suite's serial workloads, delayed's delay
        calibrated per workload to PCT percent (as ``injected``): off in the
        first run (ALLOCLAB_TEST_DELAY_OFF=1), on in the second, the same
        config, so compare matches the cells; prints how many of delayed's
        cells are called slower, at what measured slowdown, and how many
        unchanged cells were flagged. The unpaired comparison a CI gate makes.
    python tests/stats_targets.py injected --pct 20 [--suite quick|full] [--processes 8]
        the issue's injected-slowdown target: on each serial workload of the
        suite's first matrix, the test-only ``delayed`` strategy against itself
        slowed by PCT percent, calibrated per workload (a pilot measures the
        cell's ns/op and the cost of one delay step), both sides in every
        process, interleaved (what ``alloclab ab`` runs); prints each cell's
        measured slowdown and its verdict, paired (signed-rank on per-process
        ratios, as ab) and unpaired (U test, as compare of two runs).
        --pct 0 is a paired A/A: B differs from A only in a field with no effect.

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


def _register_delayed():
    from alloclab import strategies
    from alloclab.strategies import _numba_cache

    # a process that registers test-only strategies uses the tests' cache folder (tests/conftest.py)
    _numba_cache.configure("tests", extra_dirs=[TESTS / "teststrategies"])
    from conftest import DELAYED

    strategies.register(DELAYED)


def slowdown(args) -> None:
    wls, arena_mb, root, lines = _prepare(args, "slowdown")
    for wl in wls:
        cal = _calibrated(wl, args.pct, arena_mb, reps=args.pilot_reps)
        if cal is None:
            continue
        d, f = cal
        lines.append(_matrix(["bump", "freelist"], wl, "{}"))
        lines.append(_matrix(["delayed"], wl, f"{{ delay = {d}, delay_frac = {f} }}"))
    suite = root / "s.toml"
    suite.write_text("\n".join(lines))
    a, b = root / "a", root / "b"
    os.environ["ALLOCLAB_TEST_DELAY_OFF"] = "1"
    bench(str(suite), a)
    os.environ["ALLOCLAB_TEST_DELAY_OFF"] = "0"
    bench(str(suite), b)
    df, _, _ = compare.compare_frames(R.load([a]), R.load([b]))
    print(df[["cell", "raw_ratio", "ratio", "verdict", "q", "mde_pct", "cv_pct"]].to_string(index=False))
    d = df[df["cell"].str.startswith("delayed ")]
    o = df[~df["cell"].str.startswith("delayed ")]
    print(f"delayed ({args.pct:g}%, {args.suite} workloads, two runs of {args.processes} processes): "
          f"{int((d['verdict'] == 'slower').sum())} of {len(d)} cells called slower, "
          f"measured slowdown {100 * (d['raw_ratio'].min() - 1):.0f}-{100 * (d['raw_ratio'].max() - 1):.0f}%; "
          f"unchanged strategies: {int(o['significant'].sum())} of {len(o)} flagged  ({a} {b})")


def _prepare(args, name: str):
    """The delayed strategy registered; the suite's serial workloads, its arena, a scratch folder and
    the suite file's head."""
    _register_delayed()
    wls, arena_mb = _suite_workloads(args.suite)
    return wls, arena_mb, Path(tempfile.mkdtemp(prefix=f"{name}-")), [_suite_head(name, args, arena_mb)]


def _suite_head(name: str, args, arena_mb: int) -> str:
    return (f"[suite]\nname = '{name}'\nprocesses = {args.processes}\nreps = {args.reps}\nseed = 1\n"
            f"arena_mb = {arena_mb}\n")


def _matrix(strats: list[str], wl: dict, config: str) -> str:
    inline = ", ".join(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in wl.items())
    names = ", ".join(f'"{x}"' for x in strats)
    return (f"[[matrix]]\nstrategies = [{names}]\nworkloads = [{{ {inline} }}]\nprocs = [1]\n"
            f"modes = [\"serial\"]\nconfigs = [{config}]\n")


def _calibrated(wl: dict, pct: float, arena_mb: int, reps: int = 5) -> tuple[int, int] | None:
    try:
        d, f, base = _calibrate(wl, pct, arena_mb, reps=reps)
    except Skip as e:
        print(f"skipped {e}", flush=True)
        return None
    print(f"calibrated {wl['name']}: base {base:.1f} ns/op, delay {d} + {f}/1024 steps per op", flush=True)
    return d, f


def _suite_workloads(suite: str) -> tuple[list[dict], int]:
    """The serial workloads of a suite's first matrix, and its arena."""
    import tomllib

    from alloclab.harness import bench as B

    text, _ = B._suite_text(suite)
    doc = tomllib.loads(text)
    return doc["matrix"][0]["workloads"], int(doc["suite"].get("arena_mb", 2048))


class Skip(Exception):
    """A workload the injected-slowdown strategy cannot run."""


def _calibrate(wl: dict, pct: float, arena_mb: int, reps: int = 5) -> tuple[int, int, float]:
    """(delay, delay_frac, base ns/op) that make delayed on this workload ``pct`` percent slower,
    searched in a pilot in this process: the fastest of ``reps`` interleaved runs with and
    without the delay (the fastest, not the median: a pilot wants the cost of the code, not of
    the moment). A search, not a proportion: the out-of-order core hides the first steps of
    delay under the allocator's own memory stalls, more on some workloads than others."""
    import numpy as np

    from alloclab import strategies, workloads
    from alloclab.harness import runner

    params = {k: v for k, v in wl.items() if k != "name"}
    tr = workloads.generate(wl["name"], procs=1, seed=1, **params)
    mod = strategies.resolve("delayed").load()

    def one(cfg) -> float:
        r = runner.run_cell("delayed", cfg, tr, reps=1, arena_mb=arena_mb)[0][1]
        if r.status != "ok":
            raise Skip(f"{wl['name']}: delayed (bump, which never reuses memory) cannot run it: {r.error}")
        return float(r.wall_s * 1e9 / len(tr))

    def cfg_of(units: int):   # units: 1/1024ths of a step per op
        return mod.Config(delay=units >> 10, delay_frac=units & 1023)

    def ratio(units: int) -> tuple[float, float]:
        base, slow = [], []
        for _ in range(reps):
            base.append(one(mod.Config()))
            slow.append(one(cfg_of(units)))
        return min(slow) / min(base), min(base)

    target = 1 + pct / 100
    lo, hi = 0, 1024
    r, base = ratio(hi)
    while r < target and hi < (1 << 24):
        lo, hi = hi, hi * 2
        r, base = ratio(hi)
    for _ in range(7):
        mid = (lo + hi) // 2
        r, _ = ratio(mid)
        lo, hi = (mid, hi) if r < target else (lo, mid)
    return hi >> 10, hi & 1023, float(np.float64(base))


def injected(args) -> None:
    import numpy as np
    import pandas as pd

    wls, arena_mb, root, lines = _prepare(args, "injected")
    for wl in wls:
        if args.pct > 0:
            cal = _calibrated(wl, args.pct, arena_mb, reps=args.pilot_reps)
            if cal is None:
                continue
            d, f = cal
            b_cfg = f"{{ delay = {d}, delay_frac = {f} }}"
        else:
            # a paired A/A: B differs from A only in a field that does nothing while slow_every = 0,
            # so the two are distinct cells with identical code paths
            b_cfg = "{ slow_delay = 20001 }"
        lines.append(_matrix(["delayed"], wl, f"{{}}, {b_cfg}"))
    suite = root / "s.toml"
    suite.write_text("\n".join(lines))
    out = root / "run"
    bench(str(suite), out)
    df = R.load([out])
    df = df[df["status"] == "ok"]
    slow = df["config_json"].str.contains('"delay": [1-9]|"delay_frac": [1-9]|"slow_delay": 20001', regex=True)
    sides, names, measured = [], [], []
    for w in sorted(df["workload"].unique()):
        g = df[df["workload"] == w]
        ga, gb = g[~slow[g.index]], g[slow[g.index]]
        sides.append((ga, gb))
        names.append(w)
        ra = ga.groupby("proc")["ns_per_op"].median()
        rb = gb.groupby("proc")["ns_per_op"].median()
        measured.append(float(np.median((rb / ra).dropna())) - 1)
    paired = compare.side_verdicts(sides, paired=True)
    unpaired = compare.side_verdicts(sides)
    t = pd.DataFrame(dict(workload=names, measured_pct=[100 * m for m in measured],
                          paired=[v.verdict for v in paired], paired_q=[v.q for v in paired],
                          paired_mde_pct=[100 * v.mde for v in paired],
                          unpaired=[v.verdict for v in unpaired], unpaired_q=[v.q for v in unpaired],
                          unpaired_mde_pct=[100 * v.mde for v in unpaired]))
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    n = len(t)
    print(f"injected {args.pct:g}% ({args.suite} workloads, {args.processes} processes, interleaved): "
          f"paired {int((t['paired'] == 'slower').sum())} of {n} cells called slower, "
          f"unpaired {int((t['unpaired'] == 'slower').sum())} of {n}; measured slowdown "
          f"{t['measured_pct'].min():.0f}-{t['measured_pct'].max():.0f}%  ({out})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("aa")
    s.add_argument("--pairs", type=int, default=3)
    s.add_argument("--suite", default="quick")
    s.set_defaults(fn=aa)
    s = sub.add_parser("slowdown")
    s.add_argument("--pct", type=float, default=20.0)
    s.add_argument("--suite", default="quick")
    s.add_argument("--processes", type=int, default=5)
    s.add_argument("--reps", type=int, default=1)
    s.add_argument("--pilot-reps", type=int, default=5)
    s.set_defaults(fn=slowdown)
    s = sub.add_parser("injected")
    s.add_argument("--pct", type=float, default=20.0)
    s.add_argument("--suite", default="quick")
    s.add_argument("--processes", type=int, default=8)
    s.add_argument("--reps", type=int, default=1)
    s.add_argument("--pilot-reps", type=int, default=5)
    s.set_defaults(fn=injected)
    a = ap.parse_args()
    a.fn(a)
