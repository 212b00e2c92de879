"""Point numba's on-disk cache at a folder keyed by a hash of alloclab's sources.

numba invalidates a cached kernel when *its own* file changes, but not when a
function it calls (in another module) changes: the executor would keep running
a stale inlined allocator after an edit to that allocator. Keying the whole
cache by the source hash makes any edit a clean (cold) cache, and a release a
warm one. Set NUMBA_CACHE_DIR yourself to override.

``configure`` is called by the entry points (the CLI's ``main``, the test
session's conftest), never on import: numba reads the folder when a kernel is
decorated, so it must run before any kernel module is imported. It exports
NUMBA_CACHE_DIR so that worker processes use the same folder.

One cache folder per set of strategies: numba's index for the executor lists
every State type it was compiled for and unpickles them all in each process
that loads it, so a folder that has seen a strategy from outside the package
(the tests' own) can only be used where that strategy's module imports. The
test session therefore keeps its own folder (``flavour="tests"``).

Saves are locked. Several processes may compile into one folder at once
(harness/warmup.py does so on purpose). numba's save reads a function's
index, picks a free data-file number and writes both back, unlocked: two
processes saving different specialisations of one function (the executor
for two strategies) can both pick number 1, and the index can end up naming
one's data under the other's key, which runs the wrong machine code.
``configure`` wraps each save in an exclusive ``flock`` on a lock file
beside the index (``_locked_saves``).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

# Only the folders and files that hold numba kernels: an edit to the CLI or the report
# must not throw away minutes of compiled kernels.
_PKG_DIRS = ("strategies", "workloads")
_KERNEL_FILES = ("harness/executor.py",)
_KEEP = 3  # cache folders of other source versions kept, per flavour (switching branches stays warm)


def source_hash(extra_dirs=()) -> str:
    """Hash of the kernel sources (and of ``*.py`` under ``extra_dirs``: strategies from elsewhere)."""
    here = Path(__file__).resolve().parent.parent
    h = hashlib.sha1()
    files = [f for d in _PKG_DIRS if (here / d).is_dir() for f in sorted((here / d).rglob("*.py"))]
    files += [here / f for f in _KERNEL_FILES if (here / f).is_file()]
    for f in files:
        h.update(str(f.relative_to(here)).encode())
        h.update(f.read_bytes())
    for d in extra_dirs:
        for f in sorted(Path(d).rglob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    # installed as a wheel the three folders are siblings under alloclab/
    return h.hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alloclab"


def configure(flavour: str = "", extra_dirs=()) -> str:
    """Set numba's cache folder (and NUMBA_CACHE_DIR) for this process and its children; returns it.

    ``flavour`` names a separate family of folders (``numba-<flavour>-<hash>``), for a
    process that registers strategies from outside the package (``extra_dirs``, hashed
    too). A NUMBA_CACHE_DIR already set is kept, with ``-<flavour>`` appended."""
    override = os.environ.get("NUMBA_CACHE_DIR")
    if override:
        # a folder this function chose for the flavour (inherited by a child process) is kept as it is
        ours = not flavour or override.endswith(f"-{flavour}") or Path(override).name.startswith(f"numba-{flavour}-")
        target = Path(override if ours else f"{override}-{flavour}")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
    else:
        root = cache_root()
        prefix = f"numba-{flavour}-" if flavour else "numba-"
        target = root / f"{prefix}{source_hash(extra_dirs)}"
        try:
            target.mkdir(parents=True, exist_ok=True)
            os.utime(target)
            # this flavour's folders only: numba-<12 hex digits> does not match numba-tests-<...>
            others = sorted((p for p in root.glob(prefix + "?" * 12) if p != target), key=lambda p: p.stat().st_mtime)
            for old in others[:-_KEEP] if len(others) > _KEEP else []:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            return ""  # unwritable home: numba falls back to __pycache__
    os.environ["NUMBA_CACHE_DIR"] = str(target)
    _locked_saves()
    try:  # numba may already be imported; its config is read when a kernel is decorated
        from numba.core import config

        config.CACHE_DIR = str(target)
    except Exception:  # pragma: no cover
        pass
    return str(target)


def _locked_saves() -> None:
    """Make numba's index-and-data save of a cache entry hold an exclusive flock (see the module's
    docstring). numba's ``IndexDataCacheFile.save`` is the one place it writes an index; the test
    suite checks that two concurrent saves into one index both survive."""
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if getattr(cls.save, "_alloclab_locked", False):
        return
    save = cls.save

    def locked_save(self, key, data):
        try:
            fd = os.open(self._index_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # unwritable folder: numba's own save fails or falls back as before
            return save(self, key, data)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return save(self, key, data)
        finally:
            os.close(fd)

    locked_save._alloclab_locked = True
    cls.save = locked_save
