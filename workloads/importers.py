"""Importers: allocation logs of real programs -> alloclab traces.

Three formats, each ``import_X(path) -> (Trace, ImportReport)``:

``mtrace``   glibc's mtrace(3) text (MALLOC_TRACE=FILE, the program calls
             mtrace(); on glibc >= 2.34 also LD_PRELOAD=libc_malloc_debug.so):
                 = Start
                 @ ./prog:[0x4005d6] + 0x1e5c460 0x64      malloc/calloc/memalign: address, size (hex)
                 @ ./prog:[0x4005e4] - 0x1e5c460           free
                 @ ./prog:[0x4005f0] < 0x1e5c460           realloc: the old block ...
                 @ ./prog:[0x4005f0] > 0x1e5c8a0 0xc8      ... and the new one
                 @ ./prog:[0x4005f0] ! 0x1e5c460 0x100000  realloc that failed (old block kept)
                 = End
             The ``@ caller`` part is optional. mtrace has no thread ids: one P.
``valgrind`` the lines of ``valgrind --trace-malloc=yes`` (Valgrind 3.x), each
             with its ``--PID--`` prefix:
                 --123-- malloc(100) = 0x4A40040
                 --123-- calloc(10,8) = 0x4A400F0
                 --123-- realloc(0x4A40040,200) = 0x4A40180   (older: ``...,200)0x4A40180``)
                 --123-- realloc(0x4A404A0,0)free(0x4A404A0)  (size 0: a nested free, then
                 --123--  = 0                                  the result on its own line)
                 --123-- memalign(al 64, size 100) = 0x4A40300 (posix_memalign, aligned_alloc
                                                                and memalign all print this)
                 --123-- free(0x4A40180)
             plus C++'s operators (``_Znwm(100) = 0x..``, ``_ZdlPv(0x..)``: names
             starting ``_Zn`` allocate, ``_Zd`` free). ``==PID==`` lines and
             other ``--PID--`` messages are not trace lines (counted, ignored).
             Only the first process that makes a traced call is imported: a
             forked child reuses addresses of its own (its lines are counted
             as ``other_process``). Valgrind runs threads one at a time and
             does not name them: one P.
``rec``      alloclab's recorder (workloads/recorder.c: header + 32-byte
             records with thread ids); threads map to Ps 0..procs-1 in the
             order of their first call (beyond MAX_PROCS they fold, modulo).
``go-allocfreetrace``
             the stderr of a Go program run with GODEBUG=allocfreetrace=1
             (Go 1.19 to 1.21; Go 1.22 removed it, and Go 1.23's
             GODEBUG=traceallocfree=1 writes runtime/trace events instead,
             for which no parser is available here). Each event is a line,
             then the header of the goroutine it ran on, then a stack trace:
                 tracealloc(0xc000082250, 0x10, main.node)   address, size, type
                 goroutine 20 [running]:
                 main.main.func1(0x0?)
                 \t/src/main.go:23 +0x45 ...
                 (blank line)
                 tracefree(0xc000082250, 0x10)               at sweep time
                 goroutine 0 [idle]:                          the sweeper (g0: 0)
             ``tracegc()`` ... ``end tracegc`` blocks (every goroutine's stack
             at each GC) are skipped. What the importer does with it:
               * goroutine -> P: all of a goroutine's ops go to one P; the
                 goroutines take Ps round-robin in the order of their first
                 event (``procs`` of them, default GO_PROCS). The log does not
                 say which P ran a goroutine, nor when one moved.
               * frees are placed where the log has them: at sweep time, on
                 the sweeping goroutine (usually g0 or the background sweeper),
                 so cross-P frees reflect the sweeper, not the program.
               * kind: a printed type is a typed object (kind heap), except
                 pointer-free basic types and arrays of them (``uint8``,
                 ``[16]int64``, counted as ``typed_noscan``); no type (raw
                 bytes: strings, byte slices grown by the runtime) is noscan.
             What the format cannot give: requested sizes (the size printed is
             the size class's, already rounded up; large objects are whole
             pages) and tiny sub-objects (allocations below 16 B without
             pointers share a 16 B block: only a new block is traced, and its
             free frees all of them). A line that does not parse, an event
             without its goroutine header, or a log that ends inside an event
             (truncated) raises ``TraceError`` naming the line.

What the importers do with a real log, and count in the ``ImportReport``:
  * realloc is split into free(old) + alloc(new), even in place (the trace
    has no resize op); realloc(NULL, n) is an alloc; realloc(p, 0) that
    returns NULL (glibc) is a free; a failed realloc (NULL for n > 0) keeps
    the old block and is skipped.
  * calloc, memalign, posix_memalign, aligned_alloc, valloc, pvalloc are
    allocs of their size (the alignment is not kept: the trace has no
    alignment column; strategies give their own).
  * size 0 (malloc(0) returns a unique pointer in glibc) becomes size 1, the
    trace's smallest, and is counted (``zero_size_as_1``).
  * every allocation is a fresh object id (dense, in order of allocation),
    so an address the program reuses after a free is a new object; an
    address handed out again while our log still holds it live (a free the
    log missed) gets an implicit free first (``implicit_free``).
  * skipped and counted: frees of addresses never allocated in the log
    (``free_unknown``: e.g. blocks from before mtrace() was called), double
    frees, free(NULL), failed allocations (NULL result), allocations above
    the trace's 1 GiB limit (and their frees), malformed lines (the first
    few line numbers are kept), lines that are not trace lines.
  * objects still live at the end stay live (the trace format allows it).
  * every op is kind 0 (heap): a C allocation's pointerfulness is unknown.
A problem that leaves nothing to import (no file, unreadable, no valid op,
not a recording) raises ``TraceError`` with one line.
"""
from __future__ import annotations

import re
import struct
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alloclab.workloads.trace import MAX_OBJECT_SIZE, MAX_PROCS, Trace, TraceError, make_trace

FORMATS = ("mtrace", "valgrind", "rec", "go-allocfreetrace")
GO_PROCS = 4   # Ps the goroutines of a go-allocfreetrace log are spread over unless told
KEEP_LINE_NUMBERS = 5

# rec format: see recorder.c
REC_MAGIC = b"ALLOCREC"
REC_VERSION = 1
REC_HEADER = struct.Struct("<8sIIIIQ")
REC_DTYPE = np.dtype([("op", "<u2"), ("pad", "<u2"), ("tid", "<u4"), ("size", "<u8"), ("arg", "<u8"), ("result", "<u8")])
(REC_MALLOC, REC_CALLOC, REC_REALLOC, REC_FREE, REC_POSIX_MEMALIGN, REC_ALIGNED_ALLOC, REC_MEMALIGN) = range(1, 8)

# what was skipped (not in the trace) and what was handled (in it, transformed)
SKIP_REASONS = {
    "free_unknown": "frees of addresses not allocated in the log",
    "double_free": "double frees",
    "free_null": "free(NULL)",
    "failed_alloc": "failed allocations (NULL result)",
    "realloc_failed": "failed reallocs (old block kept)",
    "oversize": f"allocations above {MAX_OBJECT_SIZE} B",
    "free_of_oversize": "frees of those",
    "malformed": "malformed lines or records",
    "truncated_tail": "a partial record at the end of the file",
    "not_trace": "lines that are not trace lines",
    "other_process": "lines of another process",
}
HANDLED = {
    "realloc_split": "reallocs split into free + alloc",
    "realloc_as_malloc": "realloc(NULL, n) as alloc",
    "realloc_as_free": "realloc(p, 0) as free",
    "calloc": "callocs",
    "memalign": "aligned allocs (memalign, posix_memalign, aligned_alloc, valloc)",
    "zero_size_as_1": "size-0 allocations as size 1",
    "implicit_free": "address handed out again while live: implicit free added",
    "threads_folded": f"ops of threads beyond {MAX_PROCS} folded onto Ps modulo {MAX_PROCS}",
    "typed_noscan": "typed allocations of pointer-free types (noscan)",
    "untyped_noscan": "untyped allocations (noscan)",
    "gc_blocks": "tracegc() blocks skipped",
}


@dataclass
class ImportReport:
    format: str
    source: str
    lines: int = 0                  # lines (text formats) or records (rec) read
    ops: int = 0
    allocs: int = 0
    frees: int = 0
    objects: int = 0
    procs: int = 0
    live_at_end: int = 0
    skipped: Counter = field(default_factory=Counter)
    handled: Counter = field(default_factory=Counter)
    malformed_at: list[int] = field(default_factory=list)   # first line (or record) numbers, 1-based
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(format=self.format, source=self.source, lines=self.lines, ops=self.ops, allocs=self.allocs,
                    frees=self.frees, objects=self.objects, procs=self.procs, live_at_end=self.live_at_end,
                    skipped=dict(self.skipped), handled=dict(self.handled), malformed_at=list(self.malformed_at),
                    **({"extra": self.extra} if self.extra else {}))

    def summary_lines(self) -> list[str]:
        unit = "records" if self.format == "rec" else "lines"
        out = [f"{self.format} import of {self.source}: {self.lines:,} {unit} read",
               f"  imported   {self.ops:,} ops ({self.allocs:,} allocs, {self.frees:,} frees), "
               f"{self.objects:,} objects, procs={self.procs}, live at end {self.live_at_end:,}"]
        for k, v in sorted(self.handled.items()):
            out.append(f"  handled    {v:>10,}  {HANDLED.get(k, k)}")
        for k, v in sorted(self.skipped.items()):
            line = f"  skipped    {v:>10,}  {SKIP_REASONS.get(k, k)}"
            if k == "malformed" and self.malformed_at:
                line += f" (first at {'line' if unit == 'lines' else 'record'} " + \
                        ", ".join(map(str, self.malformed_at)) + ")"
            out.append(line)
        for k, v in self.extra.items():
            out.append(f"  {k}: {v}")
        return out


class _Builder:
    """Turns a stream of (thread, alloc/free, address, size[, kind]) events into trace columns.

    Threads map to Ps in the order of their first op: one P each up to MAX_PROCS
    (beyond, folded modulo MAX_PROCS); with ``procs`` given, round-robin over
    that many Ps (the Go importer: goroutines are many more than Ps).
    """

    def __init__(self, report: ImportReport, procs: int | None = None):
        self.r = report
        self.p, self.op, self.kind, self.size, self.obj = array("h"), array("b"), array("b"), array("i"), array("q")
        self.live: dict[int, tuple[int, int, int]] = {}   # address -> (object id, size, kind)
        self.freed: set[int] = set()                  # addresses freed and not handed out since
        self.oversize: set[int] = set()               # live addresses of skipped oversize blocks
        self.pmap: dict[int, int] = {}
        self.procs = procs
        self.nobj = 0

    def _p(self, tid: int) -> int:
        p = self.pmap.get(tid)
        if p is None:
            p = len(self.pmap)
            if self.procs is not None:
                p %= self.procs
            elif p >= MAX_PROCS:
                self.r.handled["threads_folded"] += 1
                p %= MAX_PROCS
            self.pmap[tid] = p
        return p

    def malformed(self, lineno: int) -> None:
        self.r.skipped["malformed"] += 1
        if len(self.r.malformed_at) < KEEP_LINE_NUMBERS:
            self.r.malformed_at.append(lineno)

    def alloc(self, tid: int, addr: int, size: int, kind: int = 0) -> None:
        if addr == 0:
            self.r.skipped["failed_alloc"] += 1
            return
        if size > MAX_OBJECT_SIZE:
            self.r.skipped["oversize"] += 1
            self.oversize.add(addr)
            return
        if size <= 0:
            self.r.handled["zero_size_as_1"] += 1
            size = 1
        p = self._p(tid)
        if addr in self.live:
            self.r.handled["implicit_free"] += 1
            self.free(tid, addr)
        self.oversize.discard(addr)
        self.freed.discard(addr)
        o = self.nobj
        self.nobj += 1
        self.live[addr] = (o, size, kind)
        self.p.append(p)
        self.op.append(0)
        self.kind.append(kind)
        self.size.append(size)
        self.obj.append(o)

    def free(self, tid: int, addr: int) -> None:
        if addr == 0:
            self.r.skipped["free_null"] += 1
            return
        ent = self.live.pop(addr, None)
        if ent is None:
            if addr in self.oversize:
                self.oversize.discard(addr)
                self.r.skipped["free_of_oversize"] += 1
            elif addr in self.freed:
                self.r.skipped["double_free"] += 1
            else:
                self.r.skipped["free_unknown"] += 1
            return
        self.freed.add(addr)
        self.p.append(self._p(tid))
        self.op.append(1)
        self.kind.append(ent[2])
        self.size.append(ent[1])
        self.obj.append(ent[0])

    def realloc(self, tid: int, old: int, size: int, new: int) -> None:
        if old == 0:
            self.r.handled["realloc_as_malloc"] += 1
            self.alloc(tid, new, size)
        elif new == 0:
            if size == 0:
                self.r.handled["realloc_as_free"] += 1
                self.free(tid, old)
            else:
                self.r.skipped["realloc_failed"] += 1
        else:
            self.r.handled["realloc_split"] += 1
            self.free(tid, old)
            self.alloc(tid, new, size)

    def finish(self, path: Path, fmt: str) -> Trace:
        n = len(self.op)
        r = self.r
        r.ops = n
        r.allocs = self.nobj
        r.frees = n - self.nobj
        r.objects = self.nobj
        r.live_at_end = len(self.live)
        r.procs = max(1, min(len(self.pmap), self.procs or MAX_PROCS))
        if n == 0:
            raise TraceError(f"{path}: no valid allocation ops in this {fmt} log ({_short(r)})")
        cols = [np.frombuffer(a, dt) if len(a) else np.zeros(0, dt)
                for a, dt in ((self.p, np.int16), (self.op, np.int8), (self.kind, np.int8), (self.size, np.int32),
                              (self.obj, np.int64))]
        meta = {"generator": f"import:{fmt}", "source": str(path), "import_report": r.to_dict()}
        return make_trace(*cols, r.procs, meta)


def _short(r: ImportReport) -> str:
    unit = "records" if r.format == "rec" else "lines"
    parts = [f"{r.lines:,} {unit} read"] + [f"{v:,} {k}" for k, v in sorted(r.skipped.items())]
    return ", ".join(parts)


def _regular_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if not path.is_file():
        raise TraceError(f"{path}: not a regular file")
    return path


def _open_text(path) -> tuple[Path, Any]:
    path = _regular_file(path)
    try:
        return path, open(path, "r", encoding="utf-8", errors="replace", newline=None)
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror})") from None


def _read_lines(path, fh):
    try:
        with fh:
            yield from fh
    except OSError as e:  # e.g. EIO mid-file: what was read so far still counts
        raise TraceError(f"{path}: read error ({e.strerror})") from None


# ---------------------------------------------------------------- mtrace

_HEX = r"(0x[0-9a-fA-F]+|\(nil\)|0)"
_MT_OP = re.compile(r"^([-+<>!]) " + _HEX + r"(?: (0x[0-9a-fA-F]+|\d+))?\s*$")


def _num(s: str) -> int:
    if s in ("(nil)", "NULL"):
        return 0
    return int(s, 16) if s.startswith(("0x", "0X")) else int(s)


def import_mtrace(path) -> tuple[Trace, ImportReport]:
    """glibc mtrace(3) text -> (Trace, ImportReport). One P (mtrace has no thread ids)."""
    path, fh = _open_text(path)
    r = ImportReport("mtrace", str(path))
    b = _Builder(r)
    pending_old = None      # the "<" half of a realloc, waiting for its ">"
    for lineno, line in enumerate(_read_lines(path, fh), 1):
        r.lines = lineno
        s = line.rstrip("\r\n")
        if s.startswith("@ "):
            # the caller: "@ file:(sym+off)[0xaddr] " or "@ [0xaddr] "
            j = s.find("] ")
            if j < 0:
                b.malformed(lineno)
                continue
            s = s[j + 2:]
        if s.startswith("= "):
            r.extra["markers"] = r.extra.get("markers", 0) + 1   # = Start / = End
            continue
        if not s.strip():
            r.skipped["not_trace"] += 1
            continue
        m = _MT_OP.match(s)
        if m is None:
            b.malformed(lineno)
            continue
        op, a, sz = m.group(1), _num(m.group(2)), m.group(3)
        if op in "+>!" and sz is None:
            b.malformed(lineno)
            continue
        if op != ">" and pending_old is not None:
            # a "<" without its ">": the old block was freed all the same
            b.free(0, pending_old)
            r.handled["realloc_split"] += 1
            pending_old = None
        if op == "+":
            b.alloc(0, a, _num(sz))
        elif op == "-":
            b.free(0, a)
        elif op == "<":
            pending_old = a
        elif op == ">":
            if pending_old is None:
                b.malformed(lineno)
                continue
            b.realloc(0, pending_old, _num(sz), a)
            pending_old = None
        else:  # "!": failed realloc, the old block stays
            r.skipped["realloc_failed"] += 1
    if pending_old is not None:
        b.free(0, pending_old)
        r.handled["realloc_split"] += 1
    return b.finish(path, "mtrace"), r


# ---------------------------------------------------------------- valgrind

_VG_PREFIX = re.compile(r"^--(\d+)--(.*)$")
_VG_CALL = re.compile(r"^([A-Za-z_]\w*)\(([^()]*)\)")
_VG_NAME = re.compile(r"^([A-Za-z_]\w*)\(")
_VG_RESULT = re.compile(r"^\s*(?:=\s*)?" + _HEX + r"\s*")
_ADDR_OR_NUM = re.compile(r"0x[0-9a-fA-F]+|\(nil\)|\d+")
_VG_ALLOC1 = {"malloc", "valloc", "pvalloc", "__builtin_new", "__builtin_vec_new", "builtin_new", "builtin_vec_new"}
_VG_ALIGNED = {"memalign", "posix_memalign", "aligned_alloc"}
_VG_FREE = {"free", "cfree", "__builtin_delete", "__builtin_vec_delete", "builtin_delete", "builtin_vec_delete"}
_VG_KNOWN = _VG_ALLOC1 | _VG_ALIGNED | _VG_FREE | {"calloc", "realloc"}


def _is_alloc_name(name: str) -> bool:
    return name in _VG_ALLOC1 or name in _VG_ALIGNED or name in ("calloc", "realloc") or name.startswith("_Zn")


def _is_free_name(name: str) -> bool:
    return name in _VG_FREE or name.startswith("_Zd")


def import_valgrind(path) -> tuple[Trace, ImportReport]:
    """``valgrind --trace-malloc=yes`` output -> (Trace, ImportReport). One P."""
    path, fh = _open_text(path)
    r = ImportReport("valgrind", str(path))
    b = _Builder(r)
    main_pid = None
    pending = None   # (name, args, lineno, nested_free_seen) of a call whose result is on a later line

    def finish_pending(result: int) -> None:
        name, args, _, freed = pending
        _apply(b, name, args, result, freed)

    for lineno, line in enumerate(_read_lines(path, fh), 1):
        r.lines = lineno
        s = line.rstrip("\r\n")
        m = _VG_PREFIX.match(s)
        if m is None:
            r.skipped["not_trace"] += 1   # ==PID== messages, the program's own output
            continue
        pid, body = int(m.group(1)), m.group(2).strip()
        if body.startswith("="):
            if pid != main_pid:
                r.skipped["other_process" if main_pid is not None else "not_trace"] += 1
                continue
            rm = _VG_RESULT.match(body)
            if pending is None or rm is None:
                b.malformed(lineno)
            else:
                finish_pending(_num(rm.group(1)))
            pending = None
            continue
        cm = _VG_CALL.match(body)
        if cm is None:
            nm = _VG_NAME.match(body)
            if nm and pid == main_pid and (nm.group(1) in _VG_KNOWN or nm.group(1).startswith(("_Zn", "_Zd"))):
                b.malformed(lineno)   # a traced call cut short
            else:
                r.skipped["not_trace"] += 1   # valgrind's own messages (REDIR, Reading syms, ...)
            continue
        if main_pid is None:
            main_pid = pid
        if pid != main_pid:
            r.skipped["other_process"] += 1
            continue
        if pending is not None:
            # a new call while the last one never got its result: that one is lost
            b.malformed(pending[2])
            pending = None
        # a line may hold a call and the calls it made (realloc(p,0)free(p))
        rest = body
        while rest:
            cm = _VG_CALL.match(rest)
            if cm is None:
                b.malformed(lineno)
                break
            name, args = cm.group(1), cm.group(2)
            rest = rest[cm.end():]
            if _is_free_name(name):
                nums = _ADDR_OR_NUM.findall(args)
                if not nums:
                    b.malformed(lineno)
                    break
                addr = _num(nums[0])
                if pending is not None and pending[0] == "realloc":
                    pend_nums = _ADDR_OR_NUM.findall(pending[1])
                    if pend_nums and _num(pend_nums[0]) == addr:
                        pending = (*pending[:3], True)
                b.free(0, addr)
                rest = rest.strip()
                continue
            if not _is_alloc_name(name):
                if name in _VG_KNOWN:
                    b.malformed(lineno)
                else:
                    r.skipped["not_trace"] += 1
                break
            rm = _VG_RESULT.match(rest) if rest.strip() else None
            if rm is not None and (rest.lstrip().startswith("=") or rest.lstrip().startswith("0")
                                   or rest.lstrip().startswith("(nil)")):
                if not _apply(b, name, args, _num(rm.group(1)), False):
                    b.malformed(lineno)
                if pending is not None and pending[0] == "realloc" and _realloc_of_null(pending[1]):
                    # realloc(0x0,n) printed, then served by the malloc just applied: no result of its own
                    r.handled["realloc_as_malloc"] += 1
                    pending = None
                rest = rest[rm.end():].strip()
                continue
            pending = (name, args, lineno, False)   # its " = 0x..." comes later (after nested calls)
            rest = rest.strip()
    if pending is not None:
        b.malformed(pending[2])
    if main_pid is not None:
        r.extra["pid"] = main_pid
    return b.finish(path, "valgrind"), r


def _realloc_of_null(args: str) -> bool:
    nums = _ADDR_OR_NUM.findall(args)
    return bool(nums) and _num(nums[0]) == 0


def _apply(b: _Builder, name: str, args: str, result: int, nested_free: bool) -> bool:
    """One allocation-family call with its result; False if its arguments do not parse."""
    try:
        if name == "realloc":
            old, size = (_num(x.strip()) for x in args.split(","))
            if size == 0 and result == 0 and nested_free:
                b.r.handled["realloc_as_free"] += 1   # the nested free(p) line did it
                return True
            b.realloc(0, old, size, result)
        elif name == "calloc":
            n, sz = (_num(x.strip()) for x in args.split(","))
            b.r.handled["calloc"] += 1
            b.alloc(0, result, n * sz)
        elif name in _VG_ALIGNED:
            m = re.search(r"size\s+(\d+)", args)
            size = int(m.group(1)) if m else _num(args.split(",")[-1].strip())
            b.r.handled["memalign"] += 1
            b.alloc(0, result, size)
        else:   # malloc, valloc, operator new (size first: "100" or "size 100, al 64")
            nums = re.findall(r"\d+", args)
            if not nums:
                return False
            if name in ("valloc", "pvalloc"):
                b.r.handled["memalign"] += 1
            b.alloc(0, result, int(nums[0]))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- rec

def import_rec(path) -> tuple[Trace, ImportReport]:
    """alloclab recorder binary log -> (Trace, ImportReport); threads -> Ps."""
    path = _regular_file(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < REC_HEADER.size:
        raise TraceError(f"{path}: truncated recording ({len(data)} B, shorter than the {REC_HEADER.size} B header)")
    magic, version, rec_size, pid, ppid, _ = REC_HEADER.unpack_from(data)
    if magic != REC_MAGIC:
        raise TraceError(f"{path}: not an alloclab recording (bad magic {magic[:8]!r})")
    if version > REC_VERSION:
        raise TraceError(f"{path}: recording format {version} is newer than this alloclab reads ({REC_VERSION})")
    if rec_size != REC_DTYPE.itemsize:
        raise TraceError(f"{path}: record size {rec_size} B, expected {REC_DTYPE.itemsize}")
    r = ImportReport("rec", str(path))
    r.extra["pid"] = pid
    body = len(data) - REC_HEADER.size
    n, tail = divmod(body, rec_size)
    if tail:
        r.skipped["truncated_tail"] += 1
        r.extra["truncated_tail_bytes"] = tail
    recs = np.frombuffer(data, REC_DTYPE, count=n, offset=REC_HEADER.size)
    r.lines = n
    b = _Builder(r)
    for i, (op, tid, size, arg, res) in enumerate(zip(recs["op"].tolist(), recs["tid"].tolist(),
                                                       recs["size"].tolist(), recs["arg"].tolist(),
                                                       recs["result"].tolist())):
        if op == REC_MALLOC:
            b.alloc(tid, res, size)
        elif op == REC_FREE:
            b.free(tid, arg)
        elif op == REC_REALLOC:
            b.realloc(tid, arg, size, res)
        elif op == REC_CALLOC:
            r.handled["calloc"] += 1
            b.alloc(tid, res, size)
        elif op in (REC_POSIX_MEMALIGN, REC_ALIGNED_ALLOC, REC_MEMALIGN):
            r.handled["memalign"] += 1
            b.alloc(tid, res, size)
        else:
            b.malformed(i + 1)
    r.extra["threads"] = len(b.pmap)
    return b.finish(path, "rec"), r


# ---------------------------------------------------------------- go-allocfreetrace

_GO_EVENT = re.compile(r"^trace(alloc|free)\((0x[0-9a-f]+), (0x[0-9a-f]+)(?:, (.+))?\)$")
_GO_HEADER = re.compile(r"^goroutine (\d+) \[")
_GO_BASIC_NOSCAN = frozenset({"bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32",
                              "uint64", "uintptr", "float32", "float64", "complex64", "complex128"})
_GO_ARRAY = re.compile(r"^\[\d+\](.+)$")


def _go_pointer_free(typ: str) -> bool:
    """True for types the name shows hold no pointer: basic numeric types and arrays of them."""
    m = _GO_ARRAY.match(typ)
    while m:
        typ = m.group(1)
        m = _GO_ARRAY.match(typ)
    return typ in _GO_BASIC_NOSCAN


def import_go_allocfreetrace(path, procs: int = GO_PROCS, *, truncated_tail_ok: bool = False
                             ) -> tuple[Trace, ImportReport]:
    """GODEBUG=allocfreetrace=1 stderr -> (Trace, ImportReport); goroutines -> ``procs`` Ps, round-robin.

    Streams the log line by line (memory: the trace's columns and the live
    addresses). ``truncated_tail_ok``: a log cut inside its last event (a
    program that exits while the background sweeper prints) loses that event
    (counted ``truncated_tail``) instead of failing.
    """
    if not 1 <= procs <= MAX_PROCS:
        raise TraceError(f"procs {procs} outside 1..{MAX_PROCS}")
    path, fh = _open_text(path)
    r = ImportReport("go-allocfreetrace", str(path))
    b = _Builder(r, procs=procs)
    pending = None          # (lineno, "alloc"|"free", addr, size, kind) waiting for its goroutine header
    gc_from = 0             # line of the open tracegc(), 0 when none
    lineno = 0

    def cut(what: str, at: int) -> None:
        if truncated_tail_ok:
            r.skipped["truncated_tail"] += 1
            return
        raise TraceError(f"{path}: line {at}: the log ends inside {what} (truncated?)")

    for lineno, line in enumerate(_read_lines(path, fh), 1):
        s = line.rstrip("\r\n")
        if pending is not None:
            m = _GO_HEADER.match(s)
            if m is None:
                if not line.endswith("\n"):
                    break   # the header itself cut short: the tail check below
                raise TraceError(f"{path}: line {lineno}: expected the goroutine header of the trace{pending[1]} "
                                 f"at line {pending[0]}, got {s[:60]!r}")
            _, op, addr, size, kind = pending
            if op == "alloc":
                b.alloc(int(m.group(1)), addr, size, kind)
            else:
                b.free(int(m.group(1)), addr)
            pending = None
            continue
        if gc_from:
            if s == "end tracegc":
                gc_from = 0
            continue
        if s.startswith("trace"):
            m = _GO_EVENT.match(s)
            if m is None:
                if s == "tracegc()":
                    gc_from = lineno
                    r.handled["gc_blocks"] += 1
                    continue
                if not line.endswith("\n"):
                    cut("this event line", lineno)
                    break
                raise TraceError(f"{path}: line {lineno}: not an allocfreetrace event: {s[:60]!r}")
            op, typ = m.group(1), m.group(4)
            if op == "free" and typ is not None:
                raise TraceError(f"{path}: line {lineno}: tracefree with a type: {s[:60]!r}")
            if typ is None:
                kind = 1
                if op == "alloc":
                    r.handled["untyped_noscan"] += 1
            elif _go_pointer_free(typ):
                kind = 1
                r.handled["typed_noscan"] += 1
            else:
                kind = 0
            pending = (lineno, op, int(m.group(2), 16), int(m.group(3), 16), kind)
    r.lines = lineno
    if pending is not None:
        cut(f"the trace{pending[1]} event that starts there", pending[0])
    elif gc_from:
        cut("the tracegc() block that starts there", gc_from)
    r.extra["goroutines"] = len(b.pmap)
    r.extra["goroutine_to_p"] = f"round-robin over {procs} Ps in order of first event"
    return b.finish(path, "go-allocfreetrace"), r


IMPORTERS = {"mtrace": import_mtrace, "valgrind": import_valgrind, "rec": import_rec,
             "go-allocfreetrace": import_go_allocfreetrace}


def import_file(fmt: str, path, procs: int | None = None) -> tuple[Trace, ImportReport]:
    """Import ``path`` in format ``fmt``; ``procs`` (go-allocfreetrace only): Ps for the goroutines."""
    if fmt not in IMPORTERS:
        raise TraceError(f"unknown import format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "go-allocfreetrace":
        return import_go_allocfreetrace(path, GO_PROCS if procs is None else procs)
    if procs is not None:
        raise TraceError(f"--procs applies to go-allocfreetrace only ({fmt} logs name their threads or have one)")
    return IMPORTERS[fmt](path)
