"""The trace: alloclab's canonical workload, and its Parquet file format.

Columns, in global logical order (one row per op):
    p     int16  processor (P) that performs the op, 0..procs-1
    op    int8   0 = alloc, 1 = free
    kind  int8   0 = heap, 1 = noscan, 2 = stack (see strategies._counters)
    size  int32  bytes, 1..MAX_OBJECT_SIZE (a free repeats its alloc's size)
    obj   int64  object id: unique per allocation, 0..nobj-1 after loading
A free names a live object; an object may stay live at the end of the trace.
Files carry metadata: format version, generator, its parameters, seed, procs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from alloclab.harness.atomic_file import atomic_path
from alloclab.harness.limits import MAX_PROCS  # noqa: F401  (importers read it here too)

FORMAT_VERSION = 1
MAX_OBJECT_SIZE = 1 << 30      # 1 GiB: larger requests are refused as malformed
COLUMNS = {"p": np.int16, "op": np.int8, "kind": np.int8, "size": np.int32, "obj": np.int64}


class TraceError(ValueError):
    """A trace is malformed; the message names the first bad row."""


@dataclass
class Trace:
    p: np.ndarray
    op: np.ndarray
    kind: np.ndarray
    size: np.ndarray
    obj: np.ndarray
    procs: int
    meta: dict[str, Any] = field(default_factory=dict)
    _stats: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.op.shape[0])

    @property
    def nobj(self) -> int:
        return int(self.obj.max()) + 1 if len(self) else 0

    def live_bytes(self) -> np.ndarray:
        """Live bytes with k ops done, for k = 0..len: the trace's running sum of allocs minus frees
        (a property of the trace, the same under every strategy)."""
        sign = np.where(self.op == 0, 1, -1).astype(np.int64)
        return np.concatenate([[0], np.cumsum(sign * self.size.astype(np.int64))])

    def stats(self) -> dict[str, Any]:
        """ops, allocs, frees, objects, peak live bytes (and the op where it is reached)."""
        if self._stats is None:
            live = self.live_bytes()[1:]   # after each op
            peak_op = int(np.argmax(live)) if len(self) else -1
            allocs = int((self.op == 0).sum())
            self._stats = dict(
                ops=len(self), allocs=allocs, frees=len(self) - allocs, objects=self.nobj,
                peak_live_bytes=int(live[peak_op]) if len(self) else 0, peak_op=peak_op,
                alloc_bytes=int(self.size[self.op == 0].astype(np.int64).sum()),
            )
        return self._stats

    def validate(self) -> "Trace":
        validate_columns(self.p, self.op, self.kind, self.size, self.obj, self.procs)
        return self


@njit(cache=True)
def _validate_kernel(p, op, kind, size, obj, procs, nobj):
    """Returns (row, code) of the first bad row, or (-1, 0). state: 0 unseen, 1 live, 2 freed."""
    state = np.zeros(nobj, np.int8)
    asize = np.zeros(nobj, np.int32)
    for i in range(op.shape[0]):
        if p[i] < 0 or p[i] >= procs:
            return i, 1
        if kind[i] < 0 or kind[i] > 2:
            return i, 2
        if size[i] <= 0 or size[i] > 1 << 30:
            return i, 3
        o = obj[i]
        if o < 0 or o >= nobj:
            return i, 4
        if op[i] == 0:
            if state[o] != 0:
                return i, 5
            state[o] = 1
            asize[o] = size[i]
        elif op[i] == 1:
            if state[o] == 0:
                return i, 6
            if state[o] == 2:
                return i, 7
            if asize[o] != size[i]:
                return i, 8
            state[o] = 2
        else:
            return i, 9
    return -1, 0


_CODES = {
    1: "p outside 0..procs-1", 2: "kind not 0 (heap), 1 (noscan) or 2 (stack)",
    3: f"size <= 0 or above the limit {MAX_OBJECT_SIZE}", 4: "object id negative or too large",
    5: "duplicate object id (allocated twice)", 6: "free of an unknown object",
    7: "free of an already-freed object", 8: "free size differs from the alloc size",
    9: "op not 0 (alloc) or 1 (free)",
}


def validate_columns(p, op, kind, size, obj, procs: int) -> None:
    for name, arr in zip(COLUMNS, (p, op, kind, size, obj)):
        if not isinstance(arr, np.ndarray) or arr.dtype != COLUMNS[name]:
            got = getattr(arr, "dtype", type(arr).__name__)
            raise TraceError(f"column {name!r} has type {got}, expected {np.dtype(COLUMNS[name])}")
        if arr.ndim != 1 or arr.shape[0] != op.shape[0]:
            raise TraceError(f"column {name!r} has {arr.shape} rows, expected {op.shape[0]}")
    if not 1 <= procs <= MAX_PROCS:
        raise TraceError(f"procs {procs} outside 1..{MAX_PROCS}")
    if len(obj) and (obj.min() < 0 or obj.max() >= 4 * len(obj) + 1024):
        raise TraceError("object ids must be dense (0..about the number of ops); re-number them with trace import")
    nobj = int(obj.max()) + 1 if len(obj) else 0
    row, code = _validate_kernel(p, op, kind, size, obj, procs, nobj)
    if row >= 0:
        raise TraceError(f"row {row}: {_CODES[code]} (p={p[row]} op={op[row]} kind={kind[row]} size={size[row]} obj={obj[row]})")


def make_trace(p, op, kind, size, obj, procs: int, meta: dict | None = None, validate: bool = True) -> Trace:
    t = Trace(np.ascontiguousarray(p, np.int16), np.ascontiguousarray(op, np.int8),
              np.ascontiguousarray(kind, np.int8), np.ascontiguousarray(size, np.int32),
              np.ascontiguousarray(obj, np.int64), int(procs), dict(meta or {}))
    return t.validate() if validate else t


def save(trace: Trace, path: str | os.PathLike) -> None:
    """Write ``trace`` as Parquet, atomically (temp file + rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, "procs": trace.procs, **trace.meta}
    table = pa.table({k: getattr(trace, k) for k in COLUMNS})
    table = table.replace_schema_metadata({b"alloclab": json.dumps(meta, default=str).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def load(path: str | os.PathLike) -> Trace:
    """Read and validate a trace file; every problem is a one-line ``TraceError``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise TraceError(f"{path}: not a readable Parquet trace ({str(e).splitlines()[0][:120]})") from None
    raw = (table.schema.metadata or {}).get(b"alloclab")
    if raw is None:
        raise TraceError(f"{path}: Parquet file without alloclab trace metadata")
    try:
        meta = json.loads(raw)
        procs = int(meta.pop("procs"))
        version = int(meta.pop("format_version"))
    except (ValueError, KeyError, TypeError):
        raise TraceError(f"{path}: corrupt alloclab metadata") from None
    if version > FORMAT_VERSION:
        raise TraceError(f"{path}: trace format {version} is newer than this alloclab reads ({FORMAT_VERSION})")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
    cols = {}
    for c, dt in COLUMNS.items():
        col = table.column(c)
        if col.null_count:
            raise TraceError(f"{path}: column {c!r} has null values")
        # writable, as a generated trace's columns are: numba types a read-only array apart,
        # and a replay of a loaded trace would compile the executor a second time
        cols[c] = np.require(col.to_numpy(), requirements="W")
    try:
        t = Trace(cols["p"], cols["op"], cols["kind"], cols["size"], cols["obj"], procs, meta)
        t.validate()
    except TraceError as e:
        raise TraceError(f"{path}: {e}") from None
    return t
