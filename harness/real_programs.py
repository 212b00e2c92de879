"""Real programs as workloads: small Go programs kept in the repo, and C programs from Debian packages
running inputs kept in the repo, each recorded once per machine.

A real workload is named ``real:<program>`` (in a suite: ``{ name =
"real:go-httpserver" }``, with any of the program's parameters as keys). Its
trace comes from ``trace(name, params)``:

1. the program (``workloads/programs/go/<dir>/main.go``, standard library
   only) is built with the local Go toolchain, once per source and toolchain,
   into ``~/.cache/alloclab/real-go-<dir>-<key>/``;
2. it runs with ``GODEBUG=allocfreetrace=1`` and ``GOMAXPROCS`` = the
   program's P count and GOGC, its stderr (the log, a stack trace per event)
   going to a temporary file;
3. the log is imported (``importers.import_go_allocfreetrace``, streamed;
   goroutines dealt round-robin to the same P count; an event cut at exit by
   the background sweeper is dropped and counted) and the log deleted;
4. the trace is saved as ``~/.cache/alloclab/real-traces/<program>-<go
   version>-<key>.parquet``, the key hashing the program's source, its input
   files, its parameters, the P count, GOGC and the Go version. Later runs load it.

A C program (``CProgram``: sqlite3 on a SQL script, python3 with
PYTHONMALLOC=malloc on a stdlib-heavy script, both under
``workloads/programs/``) runs under alloclab's LD_PRELOAD recorder
(``workloads/recorder.py``; the installed binary itself, not a wrapper or a
shim, so the recorded process is the program) and is cached the same way,
keyed by its input, arguments, parameters, the binary's bytes and the
recorder's source. lua5.4 runs a script kept in the repo the same way.

A server (``ServerProgram``: redis-server) is started directly under the
recorder, listening on a free port of 127.0.0.1 only, with no persistence and
its working folder in a temporary folder; its client (redis-benchmark, a
bounded number of requests) runs unrecorded, then ``redis-cli shutdown
nosave`` stops the server cleanly, so that its exit flushes the recorder's
buffer and the trace is complete. Only the server's own process is imported.

The programs are sized so that a recording takes well under two minutes on a
2-core machine; each one's source (or input) says what allocation pattern it
stands for.

What cannot run here is a reason, not a failure: ``unavailable(name)`` says
why (no ``go`` on PATH; a Go without allocfreetrace, i.e. 1.22 or later; a
package, or a server's client, not installed; no C compiler for the recorder) and
the bench suite skips those cells with it. A program that fails while being
recorded raises ``RecordingError`` (one line).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from alloclab import workloads
from alloclab.harness.native_build import BuildError, build_once, cache_folder
from alloclab.strategies._numba_cache import cache_root

PREFIX = "real:"
PROGRAMS_DIR = Path(workloads.__file__).resolve().parent / "programs"   # package data (pyproject.toml)
GO_DIR = PROGRAMS_DIR / "go"
RECORD_TIMEOUT_S = 600
SERVER_READY_S = 20      # a server that does not accept connections by then is a failed recording
# a trace recorded by an older importer is recorded again: bump when the import's output changes
IMPORT_VERSION = 1


class RecordingError(ValueError):
    """A real program could not be built, run or imported (one line)."""


@dataclass(frozen=True)
class GoProgram:
    dir: str                       # workloads/programs/go/<dir>/main.go
    about: str
    params: dict = field(default_factory=dict)   # flag -> default value (each a -flag=value argument)
    inputs: tuple[str, ...] = ()   # files under workloads/programs/go passed as arguments (hashed into the key)
    procs: int = 4                 # GOMAXPROCS, and the Ps the goroutines are dealt to
    gogc: int = 100                # GOGC for the run: the log's frees come at GC sweeps, so this sets when objects die

    def source(self) -> Path:
        return GO_DIR / self.dir / "main.go"


# Sizes: 30-120k events each (allocfreetrace prints a stack trace per event, so the cost per event grows
# with stack depth: gofmt's recursive parser is the dearest): enough for the shape of the workload, small
# enough that each records in well under two minutes (times in docs/findings.md).
PROGRAMS: dict[str, GoProgram | CProgram | ServerProgram] = {
    "go-httpserver": GoProgram("httpserver", "net/http server, a goroutine per connection, 4 loopback clients",
                               {"requests": 600, "clients": 4}),
    "go-jsonpipeline": GoProgram("jsonpipeline", "channel pipeline: generate -> json.Marshal -> json.Unmarshal",
                                 {"records": 2500, "workers": 2, "buffer": 16}),
    "go-gofmt": GoProgram("gofmt", "go/parser + go/printer over the repo's Go programs, one goroutine",
                          {"rounds": 5},
                          inputs=("httpserver/main.go", "jsonpipeline/main.go", "gofmt/main.go", "lrucache/main.go")),
    "go-lrucache": GoProgram("lrucache", "mutex-guarded LRU cache shared by 4 workers, gets and puts",
                             {"workers": 4, "ops": 4000, "capacity": 2000, "keys": 8000}),
}


@dataclass(frozen=True)
class CProgram:
    exe: str                       # the installed binary, run directly (not a wrapper, not a pyenv shim)
    package: str                   # the Debian package that installs it (.ci/apt-packages)
    about: str
    args: tuple[str, ...]          # "{input}" stands for the input's path
    input: str                     # a file under workloads/programs
    env: tuple[tuple[str, str], ...] = ()
    procs: int = 1                 # its threads (the recorder maps each thread to a P)
    params: dict = field(default_factory=dict)   # name -> default, each "{name}" in args
    version_args: tuple[str, ...] = ("--version",)

    def argv(self, params: dict) -> list[str]:
        return [self.exe] + _fill(self.args, params, input=PROGRAMS_DIR / self.input)


@dataclass(frozen=True)
class ServerProgram:
    exe: str                       # the server, started directly under the recorder (the recorded process)
    package: str                   # the Debian package that installs it (.ci/apt-packages)
    about: str
    args: tuple[str, ...]          # "{port}" and "{dir}" (a temporary working folder) stand for theirs
    client: tuple[str, ...]        # drives the server, unrecorded; "{port}" and "{<param>}" filled in
    stop: tuple[str, ...]          # asks the server to exit cleanly: the recorder's buffer is flushed at exit
    tools: str                     # the package of the client and stop programs
    params: dict = field(default_factory=dict)   # name -> default, each "{name}" in client
    procs: int = 1                 # the threads that allocate (the recorder maps each thread to a P)
    version_args: tuple[str, ...] = ("--version",)


def _fill(args, params: dict, **more) -> list[str]:
    """``args`` with each "{name}" replaced by its value in ``params`` or ``more``."""
    values = {k: str(v) for k, v in {**params, **more}.items()}
    return [re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), a) for a in args]


# python3's script is not named *.py: numba's cache is keyed by every *.py under workloads/, and an
# edit to an input should not cost every kernel a recompile
C_PROGRAMS: dict[str, CProgram] = {
    "sqlite3": CProgram("/usr/bin/sqlite3", "sqlite3", "sqlite3 running an order-processing SQL script in memory",
                        (":memory:", ".read {input}"), "sql/orders.sql"),
    "python3": CProgram("/usr/bin/python3", "python3", "CPython with PYTHONMALLOC=malloc: json, re, Counter on 4 "
                        "threads", ("-S", "{input}"), "python/stdlib_mix.python", env=(("PYTHONMALLOC", "malloc"),),
                        procs=4),
    "lua": CProgram("/usr/bin/lua5.4", "lua5.4", "Lua 5.4 interpreter: records, string building, growing "
                    "tables, closures, word counts", ("{input}", "{rounds}"), "lua/interp_mix.lua",
                    params={"rounds": 4}, version_args=("-v",)),
}
# redis-server: no persistence (no fork, no dump file), loopback only, its folder a temporary one. The
# client: redis-benchmark's default command mix on a random keyspace (-r), values of 64 B, `requests`
# per command from `clients` connections: strings, lists, sets, hashes and sorted sets are made and
# overwritten, and query buffers and replies come and go per request.
SERVERS: dict[str, ServerProgram] = {
    "redis": ServerProgram(
        "/usr/bin/redis-server", "redis-server", "redis-server driven by redis-benchmark on loopback",
        ("--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "{dir}",
         "--daemonize", "no", "--logfile", "", "--loglevel", "warning"),
        ("/usr/bin/redis-benchmark", "-h", "127.0.0.1", "-p", "{port}", "-n", "{requests}", "-c", "{clients}",
         "-r", "10000", "-d", "64", "-q",
         "-t", "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"),
        ("/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", "{port}", "shutdown", "nosave"),
        "redis-tools", {"requests": 2000, "clients": 4}),
}
PROGRAMS.update(C_PROGRAMS)
PROGRAMS.update(SERVERS)


def names() -> list[str]:
    return [PREFIX + n for n in PROGRAMS]


def program(name: str) -> GoProgram | CProgram | ServerProgram:
    """The program of ``real:<name>``; ValueError naming the choices for another name."""
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if key not in PROGRAMS:
        raise ValueError(f"unknown real program {name!r}; choose from {', '.join(names())}")
    return PROGRAMS[key]


def check_params(name: str, params: dict) -> dict:
    """The program's parameters with ``params`` applied; ValueError for an unknown key or a non-integer."""
    prog = program(name)
    bad = sorted(set(params) - set(prog.params))
    if bad:
        raise ValueError(f"real program {name!r} has no parameter(s) {', '.join(bad)} "
                         f"(it has {', '.join(prog.params)})")
    out = dict(prog.params)
    for k, v in params.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"real program {name!r}: {k} must be a positive integer, got {v!r}")
        out[k] = v
    return out


def go_toolchain() -> tuple[str | None, str | None]:
    """(path of ``go``, its version like ``go1.19.8``), each None when missing."""
    go = shutil.which("go")
    if go is None:
        return None, None
    from alloclab.strategies.go_runtime import go_version
    return go, go_version(go)


def unavailable(name: str) -> str | None:
    """Why ``real:<name>`` cannot be recorded here, or None. ValueError for an unknown program."""
    prog = program(name)
    if isinstance(prog, (CProgram, ServerProgram)):
        from alloclab.workloads import recorder
        if not os.path.isfile(prog.exe):
            return f"{name}: skipped, {prog.exe} is not installed (apt-get install {prog.package})"
        if isinstance(prog, ServerProgram):
            for tool in (prog.client[0], prog.stop[0]):
                if not os.path.isfile(tool):
                    return f"{name}: skipped, {tool} is not installed (apt-get install {prog.tools})"
        if recorder.compiler() is None:
            return f"{name}: skipped, no C compiler to build the recorder (apt-get install gcc)"
        return None
    go, version = go_toolchain()
    if go is None:
        return f"{name}: skipped, no Go toolchain on PATH (apt-get install golang-go)"
    m = re.match(r"go(\d+)\.(\d+)", version or "")
    if m is None:
        return f"{name}: skipped, `go version` did not answer"
    if (int(m.group(1)), int(m.group(2))) >= (1, 22):
        return (f"{name}: skipped, {version} has no GODEBUG=allocfreetrace (removed in Go 1.22; Go 1.19-1.21 "
                f"record these traces)")
    return None


def _key(prog, params: dict, version: str) -> str:
    h = hashlib.sha1()
    if isinstance(prog, (CProgram, ServerProgram)):
        from alloclab.workloads import recorder
        if isinstance(prog, CProgram):
            files, what = [PROGRAMS_DIR / prog.input], [prog.args, prog.env]
        else:
            files, what = [], [prog.args, prog.client, prog.stop]
        for f in (*files, Path(prog.exe), recorder.SOURCE):
            h.update(f.read_bytes())
        h.update(json.dumps([*what, IMPORT_VERSION]).encode())
        if params:    # (a program without parameters keeps the key it had before they existed)
            h.update(json.dumps(params, sort_keys=True).encode())
        return h.hexdigest()[:12]
    for f in (prog.source(), *(GO_DIR / i for i in prog.inputs)):
        h.update(f.read_bytes())
    h.update(json.dumps([params, prog.inputs, prog.procs, prog.gogc, version, IMPORT_VERSION],
                        sort_keys=True).encode())
    return h.hexdigest()[:12]


def trace_path(name: str, params: dict | None = None, cache_dir: Path | None = None) -> Path:
    """Where ``real:<name>``'s trace is (or will be) cached for this toolchain."""
    prog = program(name)
    params = check_params(name, params or {})
    version = go_toolchain()[1] if isinstance(prog, GoProgram) else _c_version(prog)
    base = (cache_dir or cache_root()) / "real-traces"
    return base / f"{name.removeprefix(PREFIX)}-{version or 'nogo'}-{_key(prog, params, version or '')}.parquet"


def _c_version(prog: CProgram | ServerProgram) -> str:
    """``3.40.1``: the version the binary reports (``unknown`` if it does not)."""
    try:
        out = subprocess.run([prog.exe, *prog.version_args], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(r"\d+\.\d+(?:\.\d+)?", out)
    return m.group(0) if m else "unknown"


def _record_c(name: str, prog: CProgram, params: dict, path: Path, version: str, log):
    from alloclab.workloads import recorder

    t0 = time.monotonic()
    tr, report = recorder.record(prog.argv(params), env=dict(prog.env), timeout=RECORD_TIMEOUT_S,
                                 stdout=subprocess.DEVNULL)
    run_s = time.monotonic() - t0
    status = report.extra.get("exit_status", 0)
    if status:
        raise RecordingError(f"{name}: exited with status {status} while recorded")
    tr.meta.update(generator=name, version=version, params=params,
                   recording=dict(run_s=round(run_s, 2)), threads=report.extra.get("threads", 0))
    return _keep(tr, path, log, f"recorded {name}: {report.ops:,} ops, {report.extra.get('threads', 0)} threads, "
                                f"in {run_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(server: subprocess.Popen, port: int, name: str):
    deadline = time.monotonic() + SERVER_READY_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RecordingError(f"{name}: the server exited with status {server.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RecordingError(f"{name}: the server was not listening on 127.0.0.1:{port} after {SERVER_READY_S} s")


def _record_server(name: str, prog: ServerProgram, params: dict, path: Path, version: str, log):
    """Start the server under the recorder, drive it with its client, stop it cleanly, import its log."""
    from alloclab.workloads import recorder
    from alloclab.workloads.importers import import_rec

    lib = recorder.library_path()
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="alloclab-real-"))
    log_base = tmp / "rec"
    # only the server carries the recorder: the client and the stop command run in the plain environment
    env = dict(os.environ, LD_PRELOAD=" ".join(filter(None, [str(lib), os.environ.get("LD_PRELOAD")])))
    env[recorder.ENV_FILE] = str(log_base)
    server = None
    try:
        t0 = time.monotonic()
        try:
            server = subprocess.Popen([prog.exe, *_fill(prog.args, params, port=port, dir=tmp)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        except OSError as e:
            raise RecordingError(f"{name}: cannot run {prog.exe} ({e.strerror})") from None
        _wait_listening(server, port, name)
        for what, argv in (("client", prog.client), ("stop command", prog.stop)):
            try:
                res = subprocess.run(_fill(argv, params, port=port), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, timeout=RECORD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise RecordingError(f"{name}: the {what} still ran after {RECORD_TIMEOUT_S} s (killed)") from None
            if res.returncode != 0:
                raise RecordingError(f"{name}: the {what} {argv[0]} exited with status {res.returncode}")
        try:
            status = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise RecordingError(f"{name}: the server did not exit within 60 s of {' '.join(prog.stop[1:])}") from None
        run_s = time.monotonic() - t0
        if status != 0:
            raise RecordingError(f"{name}: the server exited with status {status} while recorded")
        if not log_base.is_file():
            raise RecordingError(f"{name}: nothing recorded ({prog.exe} ignored LD_PRELOAD)")
        tr, report = import_rec(log_base)    # the server's own process (a child would write rec.<pid>)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    report.source = f"{name} ({' '.join(_fill(prog.client, params, port='PORT'))})"
    tr.meta.update(generator=name, source=report.source, version=version, params=params,
                   import_report=report.to_dict(), recording=dict(run_s=round(run_s, 2)),
                   threads=report.extra.get("threads", 0))
    return _keep(tr, path, log, f"recorded {name}: {report.ops:,} ops, {report.extra.get('threads', 0)} threads, "
                                f"in {run_s:.0f} s")


def _keep(tr, path: Path, log, line: str):
    """Save a fresh recording into the cache and tell ``log``."""
    from alloclab.workloads import trace as T

    path.parent.mkdir(parents=True, exist_ok=True)
    T.save(tr, path)
    if log is not None:
        log(f"{line} -> {path}")
    return tr


def _build(prog: GoProgram, go: str, version: str) -> Path:
    src = prog.source()
    folder = cache_folder(f"real-go-{prog.dir}", src.read_bytes(), version)
    env = dict(os.environ, GO111MODULE="off", GOPROXY="off", GOTOOLCHAIN="local", CGO_ENABLED="0",
               GOCACHE=str(folder / "gocache"))
    try:
        return build_once(folder, prog.dir, lambda out: [go, "build", "-o", str(out), str(src)],
                          what=f"go build {src}", env=env, timeout=300, error=RecordingError)
    except BuildError as e:
        raise RecordingError(str(e)) from None


def trace(name: str, params: dict | None = None, *, cache_dir: Path | None = None, log=None):
    """``real:<name>``'s trace: loaded from the cache, else recorded now (see the module docstring).

    ``log(line)``, when given, hears what a recording does and what it cost."""
    from alloclab.workloads import importers
    from alloclab.workloads import trace as T

    why = unavailable(name)
    if why is not None:
        raise RecordingError(why)
    prog = program(name)
    params = check_params(name, params or {})
    path = trace_path(name, params, cache_dir)
    if path.is_file():
        return T.load(path)
    if isinstance(prog, CProgram):
        return _record_c(name, prog, params, path, _c_version(prog), log)
    if isinstance(prog, ServerProgram):
        return _record_server(name, prog, params, path, _c_version(prog), log)
    go, version = go_toolchain()
    exe = _build(prog, go, version)
    argv = [str(exe)] + [f"-{k}={v}" for k, v in params.items()] + [str(GO_DIR / i) for i in prog.inputs]
    env = dict(os.environ, GODEBUG="allocfreetrace=1", GOMAXPROCS=str(prog.procs), GOGC=str(prog.gogc))
    tmp = tempfile.mkdtemp(prefix="alloclab-real-")
    try:
        logf = Path(tmp) / "allocfreetrace.log"
        t0 = time.monotonic()
        try:
            with open(logf, "wb") as err:
                res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                     timeout=RECORD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RecordingError(f"{name}: still running after {RECORD_TIMEOUT_S} s (killed)") from None
        except OSError as e:
            raise RecordingError(f"{name}: cannot run {exe} ({e.strerror})") from None
        run_s = time.monotonic() - t0
        if res.returncode != 0:
            raise RecordingError(f"{name}: exited with status {res.returncode} while recorded")
        log_bytes = logf.stat().st_size
        t1 = time.monotonic()
        tr, report = importers.import_go_allocfreetrace(logf, procs=prog.procs, truncated_tail_ok=True)
        import_s = time.monotonic() - t1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.source = f"{name} ({' '.join(argv[1:])})"
    tr.meta.update(generator=name, source=report.source, params=params, go_version=version,
                   import_report=report.to_dict(), goroutines=report.extra.get("goroutines", 0),
                   recording=dict(run_s=round(run_s, 2), import_s=round(import_s, 2), log_bytes=log_bytes))
    return _keep(tr, path, log, f"recorded {name}: {report.ops:,} ops from {log_bytes / 1e6:.0f} MB of log in "
                                f"{run_s:.0f} s (+{import_s:.0f} s import)")
