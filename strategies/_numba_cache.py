"""Point numba's on-disk cache at a folder keyed by a hash of alloclab's sources.

numba invalidates a cached kernel when *its own* file changes, but not when a
function it calls (in another module) changes: the executor would keep running
a stale inlined allocator after an edit to that allocator. Keying the whole
cache by the source hash makes any edit a clean (cold) cache, and a release a
warm one. Set NUMBA_CACHE_DIR yourself to override.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

# Only the folders and files that hold numba kernels: an edit to the CLI or the report
# must not throw away minutes of compiled kernels.
_PKG_DIRS = ("strategies", "workloads")
_KERNEL_FILES = ("harness/executor.py",)
_KEEP = 3  # cache folders of other source versions kept (switching branches stays warm)


def source_hash() -> str:
    here = Path(__file__).resolve().parent.parent
    h = hashlib.sha1()
    files = [f for d in _PKG_DIRS if (here / d).is_dir() for f in sorted((here / d).rglob("*.py"))]
    files += [here / f for f in _KERNEL_FILES if (here / f).is_file()]
    for f in files:
        h.update(str(f.relative_to(here)).encode())
        h.update(f.read_bytes())
    # installed as a wheel the three folders are siblings under alloclab/
    return h.hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alloclab"


def configure() -> str:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    root = cache_root()
    target = root / f"numba-{source_hash()}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.utime(target)
        others = sorted((p for p in root.glob("numba-*") if p != target), key=lambda p: p.stat().st_mtime)
        for old in others[:-_KEEP] if len(others) > _KEEP else []:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return ""  # unwritable home: numba falls back to __pycache__
    os.environ["NUMBA_CACHE_DIR"] = str(target)
    try:  # numba may already be imported; its config is read when a kernel is decorated
        from numba.core import config

        config.CACHE_DIR = str(target)
    except Exception:  # pragma: no cover
        pass
    return str(target)
