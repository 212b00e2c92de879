"""Build a native helper on first use, once per version of its sources.

alloclab ships two helpers as source and compiles them where they run: the
LD_PRELOAD recorder (``workloads/recorder.c``, with the C compiler) and the
go-runtime peer's replay program (with ``go build``). Both follow one recipe:

- the build goes to ``~/.cache/alloclab/<name>-<key>/`` (``cache_folder``),
  where the key hashes everything that decides the output (the sources'
  bytes, the toolchain's version): an edit or a new toolchain is a new
  folder, and a folder that holds the output is never built again;
- the tool writes to a temporary name in that folder, renamed into place
  (``harness.atomic_file``), so two processes building at once both succeed
  and a killed build leaves nothing that looks finished;
- a failure is one line (``BuildError``, or the caller's subclass), the
  first line of the tool's error output that says something.

Like ``atomic_file``, this module stays out of the heavier harness imports,
so that ``workloads`` and ``strategies`` may use it without a cycle.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from alloclab.harness.atomic_file import atomic_path


class BuildError(RuntimeError):
    """A native helper cannot be built here (one line)."""


def cache_folder(name: str, *key: bytes | str) -> Path:
    """``<alloclab cache>/<name>-<first 12 hex digits of sha1(key...)>``; not created."""
    from alloclab.strategies._numba_cache import cache_root

    h = hashlib.sha1()
    for part in key:
        h.update(part.encode() if isinstance(part, str) else part)
    return cache_root() / f"{name}-{h.hexdigest()[:12]}"


def first_error_line(text: str) -> str:
    """The first line of a tool's error output that says something (not blank, not
    a ``#`` heading such as go build's ``# package``)."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "(no output)")


def build_once(folder: Path, output: str, command: Callable[[Path], list[str]], *, what: str,
               prepare: Callable[[Path], None] | None = None, cwd: str | os.PathLike | None = None,
               env: Mapping[str, str] | None = None, timeout: float = 600,
               error: type[Exception] = BuildError, on_tool_error: Callable[[str], None] | None = None) -> Path:
    """``folder / output``, built first if it is not there.

    ``command(tmp)`` is the argv that writes the output to ``tmp`` (a path in
    ``folder`` that does not exist yet); it runs in ``cwd`` with ``env``.
    ``prepare(folder)`` runs before it, only when a build is needed (copy
    sources in, say). ``what`` names the build in messages: ``f"{what}
    failed: <why>"``. Every failure raises ``error`` with one line. When the
    tool itself fails (a non-zero exit), ``on_tool_error(line)`` is called
    first with its first error line: a caller can remember a build that will
    fail again, where a timeout or a missing tool may not.
    """
    out = folder / output
    if out.is_file():
        return out
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if prepare is not None:
            prepare(folder)
    except OSError as e:
        raise error(f"cannot create the build folder {folder} ({e.strerror})") from None
    with atomic_path(out) as tmp:
        try:
            res = subprocess.run(command(tmp), cwd=cwd, env=None if env is None else dict(env),
                                 capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise error(f"{what} failed: {e}") from None
        if res.returncode != 0:
            line = first_error_line(res.stderr)
            if on_tool_error is not None:
                on_tool_error(line)
            raise error(f"{what} failed: {line}")
        if not tmp.is_file():
            raise error(f"{what} failed: it wrote no {output}")
    return out
