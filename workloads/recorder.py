"""Record a real program's allocations: ``alloclab trace record -o OUT -- CMD ARGS``.

``recorder.c`` (next to this file; see its header for the record format, the
ordering argument and how threads, fork and exec are handled) is compiled
with the system C compiler on first use into
``~/.cache/alloclab/recorder-<hash of the source>/librec.so`` (``$CC``, else
``cc``, ``gcc``, ``clang``), then ``CMD ARGS`` runs with it in ``LD_PRELOAD``
and ``ALLOCLAB_REC_FILE`` naming a file in a temporary folder. The log is
imported with ``importers.import_rec``: threads become Ps.

Processes: every process of the command that inherits the environment
records to its own file (``rec``, ``rec.<pid>``). The trace is made from the
recording with the most records: the program itself when CMD is a wrapper
(a pyenv shim, ``sh -c``, ``env``, ``time``), the parent when it forks
helpers. The report says which process it took and how many others there were.

A program that is statically linked, or setuid, is not interposed (the
loader ignores LD_PRELOAD): its recording is empty and the import fails with
one line. A program that ends by a signal or ``_exit`` loses the records
still buffered in the library (at most 32k, 1 MiB).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from alloclab.harness.native_build import build_once, cache_folder
from alloclab.workloads.importers import ImportReport, import_rec
from alloclab.workloads.trace import Trace, TraceError

SOURCE = Path(__file__).with_name("recorder.c")
ENV_FILE = "ALLOCLAB_REC_FILE"
LIB_NAME = "librec.so"


class RecorderError(TraceError):
    """The recorder cannot run here (no C compiler, build failure, command not found): one line."""


def compiler() -> str | None:
    for c in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if c and shutil.which(c.split()[0]):
            return c
    return None


def library_path() -> Path:
    """The compiled recorder library, built on first use (keyed by the source's hash)."""
    try:
        src = SOURCE.read_bytes()
    except OSError as e:
        raise RecorderError(f"recorder source {SOURCE} missing ({e.strerror}): reinstall alloclab") from None
    folder = cache_folder("recorder", src)
    if (folder / LIB_NAME).is_file():
        return folder / LIB_NAME
    cc = compiler()
    if cc is None:
        raise RecorderError("no C compiler found (set CC, or apt-get install gcc) to build the recorder library")
    return build_once(folder, LIB_NAME,
                      lambda out: cc.split() + ["-shared", "-fPIC", "-O2", "-o", str(out), str(SOURCE), "-ldl", "-lpthread"],
                      what=f"building the recorder with {cc}", timeout=120, error=RecorderError)


def record(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None,
           keep_dir: str | os.PathLike | None = None, stdout=None, stderr=None) -> tuple[Trace, ImportReport]:
    """Run ``cmd`` under the recorder and import its log: (Trace, ImportReport).

    The report's ``extra`` holds the command's exit status, the process the
    trace came from and how many processes were recorded. ``keep_dir``: write
    the raw recordings there (else a temporary folder, removed after import).
    ``env``: variables added to this process's environment for the command.
    """
    if not cmd:
        raise RecorderError("no command to record (alloclab trace record -o OUT -- CMD ARGS...)")
    exe = cmd[0] if os.sep in cmd[0] else shutil.which(cmd[0])
    if exe is None or not os.path.isfile(exe):
        raise RecorderError(f"{cmd[0]}: command not found")
    lib = library_path()
    tmpdir = None
    if keep_dir is None:
        tmpdir = tempfile.mkdtemp(prefix="alloclab-rec-")
        folder = Path(tmpdir)
    else:
        folder = Path(keep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("rec*"):
            old.unlink()
    try:
        base = folder / "rec"
        run_env = dict(os.environ) | dict(env or {})
        run_env[ENV_FILE] = str(base)
        run_env["LD_PRELOAD"] = str(lib) + (" " + run_env["LD_PRELOAD"] if run_env.get("LD_PRELOAD") else "")
        try:
            res = subprocess.run(cmd, env=run_env, timeout=timeout, stdout=stdout, stderr=stderr)
        except OSError as e:
            raise RecorderError(f"{cmd[0]}: cannot run ({e.strerror})") from None
        except subprocess.TimeoutExpired:
            raise RecorderError(f"{cmd[0]}: still running after {timeout} s (killed)") from None
        files = sorted(folder.glob("rec*"))
        if not files:
            raise RecorderError(f"{cmd[0]}: nothing recorded (statically linked or setuid programs ignore LD_PRELOAD)")
        largest = max(files, key=lambda f: (f.stat().st_size, f == base))
        trace, report = import_rec(largest)
        report.source = shlex.join(cmd)
        trace.meta["source"] = report.source
        report.extra.update(exit_status=res.returncode, processes_recorded=len(files),
                            process=("the command itself" if largest == base else
                                     f"a child, pid {largest.suffix[1:]} (the process with the most records)"))
        trace.meta["import_report"] = report.to_dict()
        trace.meta["generator"] = "record"
        return trace, report
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
