"""Slow, obviously-correct references the compiled code is compared with.

``LiveSet`` replays a trace in pure Python against the addresses a strategy
returned, with an interval list, and says whether any two live objects ever
overlapped; ``reference_bump`` is the bump allocator written out in Python
(its addresses must equal the compiled ``bump``'s exactly).
"""
from __future__ import annotations

import bisect


class LiveSet:
    def __init__(self):
        self.starts: list[int] = []
        self.ends: dict[int, int] = {}

    def add(self, addr: int, size: int) -> None:
        i = bisect.bisect_left(self.starts, addr)
        if i < len(self.starts) and self.starts[i] < addr + size:
            raise AssertionError(f"[{addr}, {addr + size}) overlaps the object at {self.starts[i]}")
        if i > 0 and self.ends[self.starts[i - 1]] > addr:
            raise AssertionError(f"[{addr}, {addr + size}) overlaps the object at {self.starts[i - 1]}")
        self.starts.insert(i, addr)
        self.ends[addr] = addr + size

    def remove(self, addr: int) -> None:
        i = bisect.bisect_left(self.starts, addr)
        assert i < len(self.starts) and self.starts[i] == addr, f"free of {addr}, not live"
        self.starts.pop(i)
        del self.ends[addr]


def replay_addresses(trace, addrs_by_obj) -> None:
    """Check, in Python, that the addresses a strategy gave never overlap while live."""
    live = LiveSet()
    for op, size, obj in zip(trace.op.tolist(), trace.size.tolist(), trace.obj.tolist()):
        if op == 0:
            live.add(addrs_by_obj[obj], size)
        else:
            live.remove(addrs_by_obj[obj])


def reference_bump(trace, region_bytes: int, chunk: int, procs: int) -> dict[int, int]:
    """obj -> address, as the bump strategy must produce."""
    mapped = 0
    cursor = [0] * procs
    limit = [0] * procs
    out = {}
    for p, op, size, obj in zip(trace.p.tolist(), trace.op.tolist(), trace.size.tolist(), trace.obj.tolist()):
        if op != 0:
            continue
        n = (size + 15) & ~15
        if cursor[p] + n > limit[p]:
            want = max(region_bytes, n)
            got = (want + chunk - 1) // chunk * chunk
            cursor[p], limit[p] = mapped, mapped + got
            mapped += got
        out[obj] = cursor[p]
        cursor[p] += n
    return out
