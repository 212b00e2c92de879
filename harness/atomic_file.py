"""Write a file so that a reader sees the old content or the new, never a part.

Every file alloclab leaves for later (result parts and meta.json, reports,
traces, tuned configs, built native helpers) is written under a temporary
name in the same folder, so that the rename stays on one file system, and
renamed into place with ``os.replace``. A process killed mid-write leaves at
most a ``.tmp-*`` file, never a truncated result; two processes writing the
same path both succeed and one of them wins whole.

This module imports only the standard library: ``workloads`` and
``strategies`` use it too, and it must never pull in the harness's heavier
modules (or sit among the sources that key numba's kernel cache).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that does not exist yet; write it
    inside the block. On a normal exit it is renamed to ``path``; on an error
    it is removed and the error goes on. The temporary name ends with
    ``path``'s name, so tools that look at the suffix see the right one."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
