"""mimalloc: Microsoft's mimalloc 2 (mi_malloc/mi_free_size) called from numba kernels — a real peer.

Mechanism (why, and the alternatives, in ``_real_malloc``): libmimalloc.so.2
is ``dlopen``'ed with RTLD_LOCAL, so its exported ``malloc`` interposes
nothing and the rest of the process keeps glibc's; the kernels call its
prefixed API through function pointers held in the state: ``mi_malloc(size)``
and ``mi_free_size(ptr, size)`` (in 2.0 the size is only checked in debug
builds). Its per-thread heaps, free-list sharding and segments are its own,
not modelled; a block freed by another thread goes back to its owner's page
through mimalloc's delayed-free list, as in any program.

Alignment: mimalloc's bins are whole words (24, 40, 56 B ...), so a 24 B
block is only 8-aligned: ``ALIGN16 = False`` (check mode holds it to 8 from
16 B, malloc's promise for types of that size).

Counters (the same for every real peer: ``_real_malloc.account``):
    IN_USE       the bin of each live block, ``mi_good_size(size)`` (= its
                 usable size), per P row (+ on the allocating P, - on the
                 freeing P; only the sum is exact)
    live_blocks  blocks not yet freed, per P row (same rule)
    FAST_HITS, REFILLS, lock counters: 0 (mimalloc's paths are not visible from outside).

Memory figure (``sample_memory``, between serial slices and at the end):
``mi_process_info``'s committed bytes minus their value at make_state (taken
after ``mi_collect(true)``), and its peak: when the process's committed peak
rose during the run, the run set it, and ``peak - baseline`` is the run's
exact peak, not a sampled one. Committed is not resident: with eager commit
(mimalloc's default on Linux, which overcommits) a segment is committed
whole, 32 MiB at a time, so for a live set of a few MB this figure is
mimalloc's reservation granularity, far above the pages it touches — not
comparable with glibc's or tcmalloc's heap bytes there (docs/design.md).
Process-wide, but only alloclab's kernels call mimalloc in this process.

Tunables (process-wide, applied by every make_state):
    eager_commit  mimalloc's ``eager_commit`` option (its default 1): commit a
                  segment whole when it is reserved. 0 = commit pages on
                  demand: less committed memory, a commit call per page run.

State invariants (``check``): those of ``_real_malloc.check_accounting``.
"""
from __future__ import annotations

import ctypes
import dataclasses
import numpy as np

from alloclab.strategies import _dispatch
from alloclab.strategies import _real_malloc as real
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._kernel import kernel
from alloclab.strategies._real_malloc import PEAK_OS, peak_mapped_bytes  # noqa: F401  (a hook of the registry line)

NAME = "mimalloc"
DESCRIPTION = "mimalloc 2 (mi_malloc/mi_free_size) called from numba: a real peer"
EXTRA_COUNTERS: tuple[str, ...] = ("live_blocks",)
ALIGN16 = False   # word-sized bins: a 24 B block is 8-aligned

SONAME = "libmimalloc.so.2"
PACKAGE = "libmimalloc2.0"
SYMBOLS = ("mi_malloc", "mi_free_size", "mi_good_size", "mi_process_info", "mi_collect", "mi_option_set",
           "mi_option_get")
OPTION_EAGER_COMMIT = 3   # mi_option_eager_commit in mimalloc.h's mi_option_t (2.x)

FNS = ("mi_malloc", "mi_free_size", "mi_good_size")   # the kernels' functions, in State.fns
MALLOC, FREE_SIZE, GOOD_SIZE = 0, 1, 2   # fns[]
BASE_COMMIT, BASE_PEAK = 0, 1            # mem[]: committed and its process peak at make_state


def _lib() -> real.Library:
    return real.library(SONAME, PACKAGE, SYMBOLS)


def unavailable_reason() -> str | None:
    return _lib().reason


def commit() -> tuple[int, int]:
    """(committed bytes now, their process-wide peak), from mi_process_info."""
    f = _lib().func("mi_process_info", None, *[ctypes.POINTER(ctypes.c_size_t)] * 8)
    v = [ctypes.c_size_t() for _ in range(8)]  # elapsed, user, system, rss, peak rss, commit, peak commit, faults
    f(*[ctypes.byref(x) for x in v])
    return int(v[5].value), int(v[6].value)


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    eager_commit: int = param(1, choices=(0, 1),
                              doc="mimalloc's eager_commit, process-wide (its default 1: commit a 32 MiB segment "
                                  "whole): 0 = commit pages on demand, less committed memory, more commit calls")


class MimallocState(real.PeerState):
    """fns: the addresses of mi_malloc, mi_free_size, mi_good_size in this process."""
    __slots__ = ()


State = MimallocState


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    lib = real.require(_lib(), NAME)
    lib.func("mi_option_set", None, ctypes.c_int, ctypes.c_long)(OPTION_EAGER_COMMIT, config.eager_commit)
    lib.func("mi_collect", None, ctypes.c_bool)(True)
    st = real.new_state(State, lib, FNS, heap, nprocs)
    st.mem[BASE_COMMIT], st.mem[BASE_PEAK] = commit()
    return st


@kernel
def alloc(st, p, size, kind):
    a = real.call1(st.fns[MALLOC], size)
    if a == 0:
        return -1
    real.account(st, p, real.call1(st.fns[GOOD_SIZE], size), 1, 0)
    return a


@kernel
def free(st, p, addr, size, kind):
    real.account(st, p, -real.call1(st.fns[GOOD_SIZE], size), -1, 0)
    real.call_void2(st.fns[FREE_SIZE], addr, size)


def sample_memory(st: State) -> None:
    """Sample mimalloc's committed bytes for this run; a new process peak is the run's exact peak."""
    cur, peak = commit()
    base = int(st.mem[BASE_COMMIT])
    real.sample(st, cur - base)
    if peak > int(st.mem[BASE_PEAK]):
        st.mem[PEAK_OS] = max(int(st.mem[PEAK_OS]), peak - base)


def min_usable() -> int:
    """mimalloc's smallest bin (8 B)."""
    return int(_lib().func("mi_good_size", ctypes.c_size_t, ctypes.c_size_t)(1))


def check(st: State) -> list[str]:
    return real.check_accounting(st, min_usable())


_dispatch.register(State, alloc, free, real_ptrs=True)
