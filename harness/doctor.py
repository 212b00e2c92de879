"""``alloclab doctor``: what this machine has for alloclab, and what each missing piece disables.

Every piece is optional except Python's own: the numba strategies, the suites
and the report need nothing outside the pip install. The Go toolchain runs the
real Go runtime (``go-runtime``) as a peer of the ``go`` model; the Debian
packages libjemalloc2, libtcmalloc-minimal4 and libmimalloc2.0 bring the
real allocators loaded as peers (``jemalloc``, ``tcmalloc``, ``mimalloc``); Chromium renders
the report in the report tests; psycopg lets tuning studies live in PostgreSQL
(several machines on one study). The numba cache says whether the next run
compiles its kernels first (minutes) or loads them (about 2 s). doctor only
reports: it exits 0 whatever it finds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


@dataclass(frozen=True)
class Piece:
    name: str
    status: str      # ok, missing, unusable, warm, cold
    detail: str
    disables: str = ""   # what is lost while it is missing
    install: str = ""    # the package that brings it


def _import_version(module: str) -> str | None:
    """The module's version if it imports here, else None (psycopg without libpq fails at import)."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except Exception:  # ImportError, or a driver's own error when its C library is missing
        return None
    return str(getattr(mod, "__version__", "") or "installed")


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "")


def go_piece() -> Piece:
    from alloclab import strategies
    from alloclab.strategies import go_runtime

    disables = "the go-runtime strategy (the real Go runtime, a peer of the go model in suites and reports)"
    go = shutil.which("go")
    if go is None:
        return Piece("go", "missing", "no `go` on PATH", disables, "Debian: apt-get install golang-go")
    why = strategies.unavailable_reason("go-runtime")
    version = go_runtime.go_version(go) or "no version"
    if why:
        return Piece("go", "unusable", f"{version} at {go}: {why}", disables,
                     f"Debian: apt-get install golang-go (go{go_runtime.MIN_GO[0]}.{go_runtime.MIN_GO[1]} or newer)")
    return Piece("go", "ok", f"{version} at {go}")


def real_allocator_pieces() -> list[Piece]:
    """jemalloc, tcmalloc and mimalloc, the real allocators loaded as peers: found, or the package to install."""
    from alloclab import strategies
    from alloclab.strategies import _real_malloc

    out = []
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        d = strategies.descriptor(name)
        mod = d.load()
        why = strategies.unavailable_reason(name)
        if why is None:
            out.append(Piece(name, "ok", f"{mod.SONAME} loaded (RTLD_LOCAL: glibc's malloc stays the process's)"))
        elif _real_malloc.STATIC_TLS_TUNABLE in why:
            # only a process started without jemalloc's static TLS (not the alloclab command, which reserves it)
            out.append(Piece(name, "ok", f"{mod.SONAME} installed; loads where the process reserves static TLS "
                                         "(the alloclab command does), not in this one"))
        elif "not found" in why:
            out.append(Piece(name, "missing", why, f"the {name} strategy (a real allocator beside glibc's in suites "
                                                   "and reports; suites skip its cells)", d.requires))
        else:
            out.append(Piece(name, "unusable", why, f"the {name} strategy in this process", d.requires))
    return out


def chromium_piece() -> Piece:
    path = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if path is None:
        return Piece("chromium", "missing", f"none of {', '.join(CHROMIUM_NAMES)} on PATH",
                     "the report test that renders index.html in headless Chromium (it is skipped)",
                     "Debian: apt-get install chromium")
    return Piece("chromium", "ok", f"{_first_line([path, '--version']) or 'no version'} at {path}")


def storage_pieces() -> list[Piece]:
    import sqlite3

    out = [Piece("sqlite3", "ok", f"SQLite {sqlite3.sqlite_version} (Python's own): tuning's default storage")]
    v = _import_version("psycopg")
    if v is None:
        out.append(Piece("psycopg", "missing", "no PostgreSQL driver",
                         "tuning studies in PostgreSQL (tune --storage postgresql://..., several machines on one study)",
                         "pip install 'psycopg[binary]' (or alloclab[pg])"))
    else:
        out.append(Piece("psycopg", "ok", f"{v}: tuning studies in PostgreSQL"))
    return out


def numba_cache_state(folder: Path) -> tuple[str, str]:
    """("warm" | "cold", what is there). Warm: a non-empty index of the executor's kernel, which every
    strategy's replay goes through; an empty or missing one means the next run compiles first."""
    index = [p for p in folder.rglob("executor.*.nbi") if p.stat().st_size > 0] if folder.is_dir() else []
    kernels = sum(1 for _ in folder.rglob("*.nbc")) if folder.is_dir() else 0
    if index:
        return "warm", f"{len(index)} executor index file(s), {kernels} compiled kernel(s)"
    return "cold", "no executor index yet: the next run compiles its kernels first (minutes; then about 2 s)"


def numba_cache_piece() -> Piece:
    folder = os.environ.get("NUMBA_CACHE_DIR")   # set by the CLI's entry point (strategies/_numba_cache.py)
    if not folder:
        return Piece("numba cache", "cold", "no cache folder (the cache home is not writable): numba caches beside "
                                            "the sources, or compiles in every process")
    state, detail = numba_cache_state(Path(folder))
    return Piece("numba cache", state, f"{folder}: {detail}")


def pieces() -> list[Piece]:
    return [go_piece(), *real_allocator_pieces(), chromium_piece(), *storage_pieces(), numba_cache_piece()]


def report() -> str:
    """The doctor's report as text: one line per piece, then what each missing piece disables and its package."""
    import platform

    found = pieces()
    lines = [f"alloclab doctor: Python {platform.python_version()}, numba {_import_version('numba') or '?'}, "
             f"numpy {_import_version('numpy') or '?'}"]
    width = max(len(p.name) for p in found)
    lines += [f"  {p.name:<{width}}  {p.status:<8}  {p.detail}" for p in found]
    missing = [p for p in found if p.disables]
    if missing:
        lines.append("missing pieces (everything else works without them):")
        lines += [f"  {p.name}: disables {p.disables}; install: {p.install}" for p in missing]
    else:
        lines.append("every piece is here")
    return "\n".join(lines)
