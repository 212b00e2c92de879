"""go-runtime: the real Go runtime replaying the trace — an external peer.

Design. Not a numba kernel: ``run_external`` writes the trace in a binary
form (a 64-byte header + the columns as little-endian arrays, see
goreplay/main.go beside this file) that goreplay maps read-only, so the
columns are off the Go heap (not scanned, not in the GC's heap goal, not in
the figures). The writer renumbers objects into slots (``assign_slots``): a
slot is taken at an object's alloc and given back at its free, so goreplay's
slot table (its roots, 8 B a slot, on the Go heap because it holds the live
objects' pointers) has the trace's peak live object count, not one entry per
object id. It runs ``goreplay``, a small Go program (standard
library only) built on first use with the installed toolchain into
``~/.cache/alloclab/goreplay-<hash of its source and of `go version`>/``, and
turns its JSON into one ``RunResult`` per repetition. goreplay allocates each
heap object as a Go slice of the op's size (kind heap: ``[]unsafe.Pointer``, a
scanned object; noscan: ``[]byte``) held in a slot table, and a free drops
the reference: memory comes back when Go's collector says so, which is the
point of running the real thing next to the ``go`` model. A stack object of
2 KiB or more is a goroutine parked on a stack grown (by recursion) to the
traced size rounded up to a power of two, woken at its free (it runs and exits
with the next batch of runnable goroutines, see goreplay's yieldEvery), so
stacks are Go's own (StackInuse, outside the heap goal's heapLive), as in the
model; a smaller stack object is the trace's G descriptor, which the real
goroutine brings with it (not allocated again). Goroutines start on Go's
2 KiB stack (GODEBUG=adaptivestackstart=0: Go 1.19 otherwise starts them on
the average scanned stack, larger than a traced 2 KiB stack).
serial: one goroutine, GOMAXPROCS=1 (the collector's work lands on the one
measured thread); threads: one goroutine per P, GOMAXPROCS=procs, cross-P
frees wait until the allocating goroutine has published that object in its
slot (slots are reused, so the wait is for the object's id, not any pointer). One
untimed warm-up on the first ``WARMUP_OPS`` ops, then each repetition is a
fresh replay after runtime.GC() + debug.FreeOSMemory(), in one process.

Figures (sampled through runtime/metrics every 4096 ops of each goroutine and
at the end; names as in runtime.MemStats):
    wall_s              the replay only (serial: sampling time subtracted)
    peak_mapped_bytes   peak of HeapSys - HeapReleased + StackInuse (heap
                        memory the OS backs: live objects, garbage not yet
                        collected, free spans kept, stack spans; what the go
                        model's peak held counts) minus its value at the rep's baseline,
                        read after loading and a runtime.GC() (the slot
                        table, 8 B per peak live object, and the runtime's
                        own heap). Not raw HeapSys: HeapSys never shrinks within
                        a process (released pages stay in it), so after the
                        first rep it would repeat the first rep's peak.
    in_use_at_peak      peak HeapInuse + StackInuse (spans holding objects
                        and stack spans, free cached stacks included: the go
                        model's peak in-use, its spans) minus its value at the
                        rep's baseline (includes garbage not yet swept, so
                        the report's "internal fragmentation" of go-runtime
                        counts GC lag)
    counters            ALLOCS, FREES (ops replayed); extras: gc_cycles (NumGC
                        during the rep) and the raw, not rebased, peaks
                        heap_sys_peak, heap_inuse_peak, heap_alloc_peak,
                        sys_peak (HeapSys, HeapInuse, HeapAlloc, Sys);
                        bysize_mallocs (the rep's MemStats.BySize Mallocs
                        summed over its 61 entries: Go objects up to
                        BySize[60].Size, each new tiny block counted once),
                        tiny_allocs (allocs that went into a current tiny
                        block, not in BySize), slots (goreplay's slot table),
                        stack_inuse_peak (raw peak StackInuse),
                        stack_goroutines_peak (stack goroutines parked at
                        once), goroutines_leaked (left running after the rep
                        released every stack: not 0 fails the rep).
                        FAST_HITS, REFILLS, locks, IN_USE: 0 (not visible
                        from outside the runtime).
    extra               everything goreplay reported for the rep, baselines
                        included, and its Go version; by_size: per size class
                        {size, mallocs, frees} during the rep (MemStats.BySize
                        deltas; frees after a GC that sweeps the rep's garbage).
A sampled peak can miss what happens between two samples (at most 4096 ops of
allocation per goroutine); Go returns memory to the OS slowly (background
scavenger), so the heap's held bytes rarely fall within a replay.

Latency (``run --latency``, bench matrices with ``latency = true``): latency
repetitions in which goreplay times 1 op in ``--sample`` (the ops the
kernels' executor would time: the same Weyl hash of the op index) with Go's
monotonic clock (``time.Since``: one vDSO read), into harness/latency.py's
histogram layout in ns; an op is tagged "gc" when a GC cycle was in progress
at its start or end (the runtime's ``gcphase`` word, read directly: the other
slow paths are not visible from outside the runtime).

Timeline (``run --timeline``, ``timeline = true``): goreplay writes a row
every K ops and one at the end, as the kernels' executor does
(harness/timeline.py): ``mapped`` is the held bytes and ``in_use`` the in-use
bytes over the rep's baseline (the same definitions as the peaks above),
``gc_cycles`` the cycles since it and ``heap_goal`` the pacer's goal
(runtime/metrics ``/gc/heap/goal:bytes``); ``live`` is the trace's live
bytes at that op, computed here from the trace. Threads mode: each goroutine
writes a row every K ops of its own stream, at the trace index of its next
op, and the figures are the process's, so the rows merge by sorting on op
(no sum: unlike the kernels' per-P in-use, a read of runtime/metrics is the
whole heap).

Tunables:
    gogc   GOGC: the heap may grow to live x (1 + gogc/100) before the next
           collection. Higher = fewer GC cycles (less time) for more memory;
           -1 = off (never collect: memory grows with every allocation).
           Unlike the go model's gogc = 0 (frees take effect at once, no GC),
           0 here is Go's own GOGC=0: a collection whenever the heap grows.
           Not tuned by default (each trial would run the Go program).
    gc_stw Go's GODEBUG=gcstoptheworld=1: a GC cycle runs whole once the
           pacer triggers it, with the world stopped. Not Go's default; it
           makes the peak heap repeat run to run, where the concurrent GC's
           peak moves with when each mark lands, by more than a size-class
           table changes it (figures: docs/go-fidelity.md); comparing two
           tables on the real runtime needs that (tune's real validation).
    page_size, max_small_size, sc_*
           the size-class generator's fields, the same names and defaults as
           the go model's (``alloclab list -v go`` says what each trades; a
           config file's ``[go]`` table is read for them, its other fields
           describe the model and are not read). A table that differs from
           the toolchain's own runs in a goreplay built against a copy of
           GOROOT whose runtime/sizeclasses.go is that table
           (``go/sizeclasses_go.emit``): the copy is symbolic links to the
           toolchain's files but that one file, so it costs the build only,
           which recompiles the standard library into the copy's GOCACHE
           (seconds), once per table (the folder is keyed by the file's
           text). A table Go 1.19 cannot run (``go119_problem``: class 2 is
           the tiny allocator's 16 B, 8 KiB pages, 32 KiB max small size,
           16-byte steps from 32 B, at most 127 classes) is a ConfigError.

Invariants: none kept here — the Go runtime checks itself (``check`` returns
[]); with ``check=True`` goreplay verifies that each object's id is intact at
its free and the rep is ``check_failed`` otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

from alloclab.harness.native_build import build_once, cache_folder
from alloclab.strategies._config import ConfigBase, ConfigError, param
from alloclab.strategies._counters import ALLOCS, EXTRA_BASE, FREES, NCOUNTERS
from alloclab.strategies._result import RunResult

NAME = "go-runtime"
DESCRIPTION = "the real Go runtime replaying the trace in a Go program (needs a Go toolchain)"
EXTRA_COUNTERS: tuple[str, ...] = ("gc_cycles", "heap_sys_peak", "heap_inuse_peak", "heap_alloc_peak", "sys_peak",
                                   "bysize_mallocs", "tiny_allocs", "slots", "stack_inuse_peak",
                                   "stack_goroutines_peak", "goroutines_leaked")
ALIGN16 = False   # Go aligns to 8 (and less in its tiny allocator); the executor does not run it anyway
(GC_CYCLES, HEAP_SYS_PEAK, HEAP_INUSE_PEAK, HEAP_ALLOC_PEAK, SYS_PEAK, BYSIZE_MALLOCS, TINY_ALLOCS,
 SLOTS, STACK_INUSE_PEAK, STACK_GOROUTINES_PEAK, GOROUTINES_LEAKED) = range(EXTRA_BASE, EXTRA_BASE + len(EXTRA_COUNTERS))

# the Go program's source, shipped as package data beside this module
SOURCE_DIR = Path(__file__).resolve().parent / "goreplay"
SOURCES = ("main.go", "go.mod")
MIN_GO = (1, 19)
WARMUP_OPS = 20_000
BUILD_FAILED = "build-failed.txt"   # beside the binary: goreplay's source does not compile with this toolchain
TRACE_MAGIC = b"ALCGOTR2"
TRACE_VERSION = 2
HEADER = struct.Struct("<8sIIQQQ24x")   # magic, version, procs, ops, slots, objects


class GoRuntimeError(RuntimeError):
    """goreplay could not be built or failed (one line)."""


# ---------------------------------------------------------------- toolchain

_version_cache: dict[str, str | None] = {}


def _go() -> str | None:
    return shutil.which("go")


def go_version(go: str) -> str | None:
    """``go1.19.8`` for the toolchain at ``go`` (None if it does not answer)."""
    if go not in _version_cache:
        try:
            out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30,
                                 env=_go_env(None)).stdout
            m = re.search(r"\bgo(\d+)\.(\d+)(\.\d+)?\S*", out)
            _version_cache[go] = m.group(0) if m else None
        except (OSError, subprocess.SubprocessError):
            _version_cache[go] = None
    return _version_cache[go]


def _sources() -> bytes:
    try:
        return b"".join(n.encode() + b"\0" + (SOURCE_DIR / n).read_bytes() for n in SOURCES)
    except OSError:
        return b""


def _build_dir(go: str) -> Path:
    return cache_folder("goreplay", _sources(), go_version(go) or "")


def _go_env(folder: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # std lib only: nothing to download, and no other toolchain either
    env.update(GO111MODULE="on", GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", CGO_ENABLED="0")
    if folder is not None:
        env.update(GOCACHE=str(folder / "gocache"), GOPATH=str(folder / "gopath"))
    return env


# ---------------------------------------------------------------- the config

# Imported here, below _go, go_version and _go_env: the go package's import reads them (its default
# go_version is the toolchain's), so importing it first would find this module without them.
from alloclab.strategies.go import sizeclasses as SC  # noqa: E402
from alloclab.strategies.go import sizeclasses_go as SCGO  # noqa: E402

TABLE_FIELDS = SCGO.table_fields()


def _validate_table(self) -> None:
    why = SCGO.go119_problem(table_of(self))
    if why is not None:
        raise ConfigError(f"go-runtime cannot take this size-class table: {why}")


def _from_dict(cls, d):
    # a config written for the go model (tune's best.toml: a [go] table) gives its size-class fields;
    # its other fields describe the model, not anything the real runtime can be told
    d = dict(d or {})
    if isinstance(d.get("go"), dict):
        d.update({k: v for k, v in d.pop("go").items() if k in TABLE_FIELDS})
    return ConfigBase.from_dict.__func__(cls, d)


Config = dataclasses.make_dataclass(
    "Config",
    [("gogc", int, param(100, lo=-1, hi=10000, tune=False,
                         doc="GOGC: heap goal = live x (1 + gogc/100); higher = fewer GC cycles, more memory; "
                             "-1 = GC off; 0 = Go's GOGC=0 (collect whenever the heap grows), not the model's no-GC")),
     ("gc_stw", bool, param(False, tune=False,
                            doc="GODEBUG=gcstoptheworld=1 (not Go's default): each GC cycle marks and sweeps with the "
                                "world stopped, so nothing is allocated during a mark and the peak heap repeats run to "
                                "run (concurrent GC: the peak moves with when the mark lands); costs ns/op"))]
    + [(f.name, int, param(f.default, tune=False,
                           doc=f"size-class rule (Go: {f.default}), as the go model's {f.name}: a table other than "
                               "the toolchain's runs in a goreplay built against it"))
       for f in dataclasses.fields(SC.GenParams)],
    bases=(ConfigBase,), frozen=True,
    namespace={"_validate_combination": _validate_table, "from_dict": classmethod(_from_dict),
               "__doc__": "gogc and the size-class table the real runtime runs with (module docstring)"})
Config.__module__ = __name__   # pickled into worker processes by name


def table_of(config) -> SC.SizeClassTable:
    """The size-class table of a go-runtime or go Config (their generator fields)."""
    return SC.generate(SC.GenParams.of(config))


def from_go_config(go_config, gogc: int = 100, gc_stw: bool = False) -> Config:
    """The go-runtime Config that runs a go model config's size-class table (at ``gogc``)."""
    return Config(gogc=gogc, gc_stw=gc_stw, **{k: getattr(go_config, k) for k in TABLE_FIELDS}).validate()



def unavailable_reason() -> str | None:
    """None if goreplay can run here, else why (one line)."""
    go = _go()
    if go is None:
        return "no Go toolchain (apt-get install golang-go)"
    v = go_version(go)
    if v is None:
        return f"{go} does not answer `go version`"
    m = re.match(r"go(\d+)\.(\d+)", v)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_GO:
        return f"{v} is older than go{MIN_GO[0]}.{MIN_GO[1]} (goreplay needs unsafe.Slice and runtime/metrics)"
    if not _sources():
        return f"goreplay source missing under {SOURCE_DIR}"
    failed = _build_dir(go) / BUILD_FAILED
    if failed.is_file():
        return f"go build of goreplay failed ({failed.read_text().strip()[:160]}; delete {failed.parent} to retry)"
    return None


def binary_path(config: Config | None = None) -> Path:
    """The goreplay binary for ``config``'s size-class table, built on first use.

    The toolchain's own table: about 20 s cold, with the std lib compiled into
    GOCACHE. Another table: built against a copy of GOROOT holding that table
    (``custom_sizeclasses``), in a folder of its own keyed by the table's file.
    A compile error is remembered in ``build-failed.txt`` beside it, so that
    ``unavailable_reason`` reports it without building again."""
    why = unavailable_reason()
    if why is not None:
        raise GoRuntimeError(why)
    go = _go()
    text = custom_sizeclasses(config) if config is not None else None
    folder = _build_dir(go) if text is None else cache_folder("goreplay", _sources(), go_version(go) or "", text)
    failed = folder / BUILD_FAILED
    if text is not None and failed.is_file():
        raise GoRuntimeError(f"go build of goreplay with this size-class table failed ({failed.read_text().strip()[:160]})")
    src = folder / "src"
    env = _go_env(folder)

    def prepare(_folder: Path) -> None:
        src.mkdir(exist_ok=True)
        for n in SOURCES:
            shutil.copyfile(SOURCE_DIR / n, src / n)
        if text is not None:
            _goroot_copy(Path(_goroot(go)), folder / "goroot", text)

    if text is not None:
        env["GOROOT"] = str(folder / "goroot")
    return build_once(folder, "goreplay", lambda tmp: [go, "build", "-o", str(tmp), "."], what="go build of goreplay",
                      prepare=prepare, cwd=src, env=env, error=GoRuntimeError,
                      on_tool_error=lambda line: failed.write_text(line + "\n"))


# ---------------------------------------------------------------- a size-class table of one's own

_goroot_cache: dict[str, str] = {}


def _goroot(go: str) -> str:
    """The toolchain's GOROOT (``go env GOROOT``)."""
    if go not in _goroot_cache:
        try:
            out = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, timeout=30, env=_go_env(None))
        except (OSError, subprocess.SubprocessError) as e:
            raise GoRuntimeError(f"{go} env GOROOT failed: {e}") from None
        if out.returncode != 0 or not out.stdout.strip():
            raise GoRuntimeError(f"{go} env GOROOT failed: {out.stderr.strip()[:160]}")
        _goroot_cache[go] = out.stdout.strip()
    return _goroot_cache[go]


def _same_tables(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def custom_sizeclasses(config) -> str | None:
    """None if ``config``'s size-class table is the toolchain's own, else the sizeclasses.go that holds it.

    A table of one's own needs the toolchain's runtime/sizeclasses.go to be the
    file alloclab's generator writes for Go's defaults (Go 1.19 to 1.23): what
    else in the runtime depends on the table is only known for that layout."""
    go = _go()
    stock_path = Path(_goroot(go)) / SCGO.GO_FILE
    try:
        stock = SCGO.parse(stock_path.read_text())
    except OSError as e:
        raise GoRuntimeError(f"cannot read the toolchain's {stock_path} ({e.strerror})") from None
    text = SCGO.emit(table_of(config))
    if _same_tables(SCGO.parse(text), stock):
        return None
    if not _same_tables(SCGO.parse(SCGO.emit(SC.generate())), stock):
        raise GoRuntimeError(f"{stock_path} ({go_version(go)}) is not the file alloclab's generator writes for "
                             "Go's defaults: go-runtime runs only the toolchain's own size classes here")
    return text


def _goroot_copy(goroot: Path, dest: Path, sizeclasses_go: str) -> None:
    """A GOROOT at ``dest`` that is ``goroot`` but for runtime/sizeclasses.go: symbolic links to the
    toolchain's files (go build hashes contents, so the links cost nothing), the one file written.
    Made under a temporary name and renamed, so two processes building at once both end with one."""
    if (dest / SCGO.GO_FILE).is_file():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".goroot-", dir=dest.parent))
    try:
        keep = Path(SCGO.GO_FILE).parts   # src, runtime, sizeclasses.go: the path copied as folders
        here, there = goroot, tmp
        for depth, part in enumerate(keep):
            for entry in here.iterdir():
                if entry.name != part:
                    (there / entry.name).symlink_to(entry.resolve())
            if depth == len(keep) - 1:
                (there / part).write_text(sizeclasses_go)
            else:
                here, there = here / part, there / part
                there.mkdir()
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / SCGO.GO_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the run

@njit(cache=True)
def _assign_slots(p, op, obj, nobj, procs, per_p):
    """(slot of each op, slots used): free slots kept in LIFO lists linked through ``nxt``.

    per_p False: one list, so the slot count is the peak live object count.
    per_p True: a freed slot joins the freeing P's list and only that P's allocs
    take it, so a slot changes hands only through a free (see goreplay's worker)."""
    n = op.shape[0]
    slot_of = np.full(nobj, -1, np.int32)   # object id -> its slot while live
    nxt = np.full(max(nobj, 1), -1, np.int32)
    head = np.full(procs, -1, np.int32)
    out = np.empty(n, np.int32)
    nslots = 0
    for i in range(n):
        q = p[i] if per_p else 0
        o = obj[i]
        if op[i] == 0:
            s = head[q]
            if s >= 0:
                head[q] = nxt[s]
            else:
                s = nslots
                nslots += 1
            slot_of[o] = s
        else:
            s = slot_of[o]
            nxt[s] = head[q]
            head[q] = s
        out[i] = s
    return out, nslots


def assign_slots(trace, mode: str = "serial") -> tuple[np.ndarray, int]:
    """Each op's slot in goreplay's slot table (int32), and the table's length.

    serial: the trace's peak live object count. threads: a freed slot is reused
    only by the P that freed it, so the count can exceed the peak by the slots
    idle on other Ps' lists; never more than the object count."""
    if len(trace) == 0:
        return np.zeros(0, np.int32), 0
    return _assign_slots(trace.p, trace.op, trace.obj, trace.nobj, trace.procs, mode == "threads")


def write_trace(trace, path, mode: str = "serial") -> int:
    """The binary form goreplay maps: header, then p, op, kind, size, slot, obj, each 8-byte
    aligned; returns the number of slots (``assign_slots`` for ``mode``)."""
    n = len(trace)
    slot, nslots = assign_slots(trace, mode)
    with open(path, "wb") as f:
        f.write(HEADER.pack(TRACE_MAGIC, TRACE_VERSION, trace.procs, n, nslots, trace.nobj))
        for col, dt in ((trace.p, "<i2"), (trace.op, "<i1"), (trace.kind, "<i1"), (trace.size, "<i4"),
                        (slot, "<i4"), (trace.obj, "<i8")):
            a = np.ascontiguousarray(col, dtype=dt)
            a.tofile(f)
            pad = -a.nbytes % 8
            if pad:
                f.write(b"\0" * pad)
    return nslots


def run_external(config: Config, trace, *, mode: str = "serial", reps: int = 1, check: bool = False,
                 progress=None, instrument=None):
    """Replay ``trace`` in goreplay ``reps`` times: [(rep, RunResult)] like runner.run_cell.

    ``instrument`` (runner.Instrument) with a sample: latency repetitions instead, goreplay timing
    1 op in ``sample`` with its own clock; each result's ``extra["latency"]`` is a latency.Histogram
    and ``extra["clock"]`` the clock's read cost and step (ns). With a ``timeline_every``:
    ``extra["timeline"]``, a DataFrame of harness/timeline.py's columns."""
    config.validate()
    sample = every = 0
    if instrument:
        sample = instrument.sample
        if instrument.timeline_every:
            from alloclab.harness import timeline

            every = timeline.default_every(len(trace)) if instrument.timeline_every < 0 else instrument.timeline_every
    exe = binary_path(config)
    with tempfile.TemporaryDirectory(prefix="alloclab-goreplay-") as d:
        f = Path(d) / "trace.bin"
        write_trace(trace, f, mode)
        cmd = [str(exe), "-trace", str(f), "-mode", mode, "-reps", str(reps), "-gogc", str(config.gogc),
               "-warmup", str(min(WARMUP_OPS, len(trace))), "-sample", str(sample), "-timeline", str(every)] + (
                   ["-check"] if check else [])
        env = dict(os.environ)
        for k in ("GOGC", "GOMAXPROCS", "GOMEMLIMIT"):   # the flags decide, not the caller's environment
            env.pop(k, None)
        # goroutines start on Go's 2 KiB stack, not on the average scanned stack (Go 1.19's default), so
        # that a traced stack object is its traced size (goreplay's holders)
        debug = [env.get("GODEBUG"), "adaptivestackstart=0"] + (["gcstoptheworld=1"] if config.gc_stw else [])
        env["GODEBUG"] = ",".join(x for x in debug if x)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        err = res.stderr.strip()
        first = next((ln for ln in err.splitlines() if ln.strip()), f"exit status {res.returncode}")
        if "out of memory" in err:
            r = RunResult("oom", f"the Go runtime ran out of memory: {first}", float("nan"),
                          np.zeros(NCOUNTERS, np.int64), [], 0, -1)
            return [(0, r)]
        raise GoRuntimeError(f"goreplay failed: {first}")
    try:
        data = json.loads(res.stdout)
    except ValueError:
        raise GoRuntimeError(f"goreplay printed no JSON: {res.stdout[:120]!r}") from None
    out = []
    for rd in data["reps"]:
        peak, base = rd["peak"], rd["base"]
        c = np.zeros(NCOUNTERS, np.int64)
        c[ALLOCS], c[FREES] = rd["allocs"], rd["frees"]
        c[GC_CYCLES] = rd["num_gc"]
        c[HEAP_SYS_PEAK], c[HEAP_INUSE_PEAK] = peak["HeapSys"], peak["HeapInuse"]
        c[HEAP_ALLOC_PEAK], c[SYS_PEAK] = peak["HeapAlloc"], peak["Sys"]
        c[BYSIZE_MALLOCS] = sum(k["mallocs"] for k in rd["by_size"])
        c[TINY_ALLOCS], c[SLOTS] = rd["tiny_allocs"], data["slots"]
        c[STACK_INUSE_PEAK], c[STACK_GOROUTINES_PEAK] = peak["StackInuse"], rd["stack_goroutines_peak"]
        c[GOROUTINES_LEAKED] = rd["goroutines_leaked"]
        status, error = "ok", ""
        if rd["check_errors"]:
            status = "check_failed"
            error = f"{rd['first_error']} ({rd['check_errors']} objects in all)"
        elif rd["goroutines_leaked"]:   # a stack's goroutine outlived its object: every figure after is off
            status = "check_failed"
            error = (f"goreplay left {rd['goroutines_leaked']} goroutines running after releasing the "
                     f"{rd['stack_goroutines_end']} stacks live at the trace's end")
        extra = dict(rd, go_version=data["go_version"], gomaxprocs=data["gomaxprocs"], gogc=data["gogc"])
        if "latency" in rd:
            extra["latency"] = latency_histogram(rd["latency"])
            extra["clock"] = data.get("clock", {})
        if "timeline" in rd:
            extra["timeline"] = timeline_frame(rd["timeline"], trace)
        # peak held and peak in-use as the go model reports them: heap and stack spans (module docstring)
        r = RunResult(status, error, rd["wall_ns"] / 1e9, c, [t / 1e9 for t in rd["per_p_wall_ns"]],
                      max(0, peak["Held"] - base["Held"]), max(0, peak["InUse"] - base["InUse"]),
                      extra=extra, state=None)
        out.append((int(rd["rep"]), r))
        if progress is not None:
            progress(len(trace))
        if status != "ok":
            break
    return out


def timeline_frame(rows, trace):
    """goreplay's timeline rows ([op, held, in-use, GC cycles, heap goal], sorted by op) as
    harness/timeline.py's DataFrame, with the trace's live bytes at each row's op."""
    import pandas as pd

    from alloclab.harness import timeline

    a = np.asarray(rows, np.int64).reshape(-1, 5)
    df = pd.DataFrame({"op": a[:, 0], "mapped": a[:, 1], "in_use": a[:, 2], "live": trace.live_bytes()[a[:, 0]],
                       "gc_cycles": a[:, 3], "heap_goal": a[:, 4]})
    return df[list(timeline.COLUMNS)]


def latency_histogram(lat: dict):
    """goreplay's latency JSON (nonzero [op, cause, bucket, count] rows of harness/latency.py's
    bucket layout, in ns) as a latency.Histogram."""
    from alloclab.harness import executor as ex
    from alloclab.harness import latency

    if (lat["sub_bits"], lat["max_msb"]) != (ex.HIST_SUB_BITS, ex.HIST_MAX_MSB):
        raise GoRuntimeError(f"goreplay's histogram layout (sub_bits {lat['sub_bits']}, max_msb {lat['max_msb']}) "
                             f"is not harness/latency.py's ({ex.HIST_SUB_BITS}, {ex.HIST_MAX_MSB})")
    counts = np.zeros((2, ex.LAT_CAUSES, ex.HIST_BUCKETS), np.int64)
    cause = np.array([latency.CAUSE_INDEX[name] for name in lat["causes"]], np.int64)
    rows = np.asarray(lat["buckets"], np.int64).reshape(-1, 4)
    np.add.at(counts, (rows[:, 0], cause[rows[:, 1]], rows[:, 2]), rows[:, 3])
    return latency.Histogram.from_buckets(counts, lat["max_ns"], 1.0)


def check(st) -> list[str]:
    """The Go runtime checks itself (and goreplay checks object ids in check mode)."""
    return []
