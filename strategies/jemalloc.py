"""jemalloc: jemalloc 5's mallocx/sdallocx called from numba kernels — a real peer.

Mechanism (why, and the alternatives, in ``_real_malloc``): libjemalloc.so.2 is
``dlopen``'ed with RTLD_LOCAL, so its exported ``malloc`` interposes nothing
and the rest of the process keeps glibc's; the kernels call its non-standard
API through function pointers held in the state: ``mallocx(size, 0)`` to
allocate and the sized ``sdallocx(ptr, size, 0)`` to free (the trace gives
every free its object's size, as C++'s sized delete does, which spares
jemalloc a radix-tree lookup of the block's size class). Everything behind
them — per-thread tcaches, arenas (threads are spread over 4 x cores of them),
extents, decay — is jemalloc's own and not modelled.

The library needs 2.6 KB of static TLS, which a process has to reserve when
it starts: the alloclab command does (``_real_malloc.ensure_static_tls``);
another process must be started with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192,
or the strategy is unavailable and says so.

Counters (the same for every real peer: ``_real_malloc.account``):
    IN_USE       the size class of each live block, ``nallocx(size, 0)`` (what
                 jemalloc reserves for it, = its usable size), per P row
                 (+ on the allocating P, - on the freeing P; only the sum is exact)
    live_blocks  blocks not yet freed, per P row (same rule)
    FAST_HITS, REFILLS, lock counters: 0 (jemalloc's paths are not visible from outside).

Memory figure (``sample_memory``, called by the runner between serial slices
and once at the end): ``stats.resident`` after an ``epoch`` bump, minus its
value at make_state (taken after purging every arena's unused dirty pages):
the pages jemalloc holds resident for this run — active blocks, its metadata
and the dirty pages it keeps for reuse, like glibc's free chunks. It is a
process-wide figure, but only alloclab's kernels call jemalloc in this
process (Python, numpy and numba use glibc), so it is the run's.
``stats.mapped`` and ``stats.allocated`` are kept beside it (``mem[MAPPED]``,
``mem[ALLOCATED]``, last sample). jemalloc counts resident pages from its own
bookkeeping (an upper bound: a dirty page counts as resident even if never
touched), so the figure may exceed what the kernel sees as the process's RSS.

Tunables (process-wide, applied by every make_state):
    dirty_decay_ms  how long unused dirty pages stay before jemalloc purges
                    them (jemalloc's default 10000 ms; 0 = at once). Shorter =
                    less memory held after frees, more page faults and
                    madvise calls when the live set grows back.

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
from alloclab.strategies._real_malloc import peak_mapped_bytes  # noqa: F401  (a hook of the registry line)

NAME = "jemalloc"
DESCRIPTION = "jemalloc 5 (mallocx/sdallocx) called from numba: a real peer"
EXTRA_COUNTERS: tuple[str, ...] = ("live_blocks",)
ALIGN16 = True    # size classes from 16 B are multiples of the 16 B quantum on x86-64 and AArch64

SONAME = "libjemalloc.so.2"
PACKAGE = "libjemalloc2"
SYMBOLS = ("mallocx", "sdallocx", "nallocx", "mallctl")
ARENAS_ALL = 4096  # MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena

FNS = ("mallocx", "sdallocx", "nallocx")   # the kernels' functions, in State.fns
MALLOCX, SDALLOCX, NALLOCX = 0, 1, 2   # fns[]
BASE_RESIDENT = 0                      # mem[]: stats.resident at make_state
MAPPED, ALLOCATED = 5, 6               # mem[]: stats.mapped, stats.allocated at the last sample


def _lib() -> real.Library:
    return real.library(SONAME, PACKAGE, SYMBOLS)


def unavailable_reason() -> str | None:
    return _lib().reason


def _mallctl(name: str, new: ctypes._SimpleCData | None = None, old_type=ctypes.c_size_t) -> int:
    """Write ``new`` (if given) to jemalloc's control ``name`` and return its value (read with ``old_type``)."""
    lib = _lib()
    f = lib.func("mallctl", ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                 ctypes.c_void_p, ctypes.c_size_t)
    old, size = old_type(), ctypes.c_size_t(ctypes.sizeof(old_type))
    if new is None:
        rc = f(name.encode(), ctypes.byref(old), ctypes.byref(size), None, 0)
    else:
        rc = f(name.encode(), None, None, ctypes.byref(new), ctypes.sizeof(new))
    if rc != 0:
        raise RuntimeError(f"jemalloc mallctl({name!r}) failed: error {rc}")
    return int(old.value or 0)


def stat(name: str) -> int:
    """A ``stats.*`` figure, refreshed (jemalloc's statistics are a snapshot taken at each ``epoch`` write)."""
    _mallctl("epoch", ctypes.c_uint64(1))
    return _mallctl(name)


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    dirty_decay_ms: int = param(10000, choices=(0, 100, 1000, 10000, 30000),
                                doc="ms unused dirty pages stay before jemalloc purges them, process-wide (jemalloc's "
                                    "default 10000): shorter = less memory held after frees, more page faults and "
                                    "madvise calls when the live set grows back")


class JemallocState(real.PeerState):
    """fns: the addresses of mallocx, sdallocx, nallocx in this process."""
    __slots__ = ()


State = JemallocState


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    lib = real.require(_lib(), NAME)
    decay = ctypes.c_ssize_t(config.dirty_decay_ms)
    _mallctl("arenas.dirty_decay_ms", decay)                 # arenas made later (threads get their own)
    for i in range(_mallctl("arenas.narenas", old_type=ctypes.c_uint)):
        try:
            _mallctl(f"arena.{i}.dirty_decay_ms", decay)
        except RuntimeError:
            pass                                              # an arena index not initialised yet
    _purge()
    st = real.new_state(State, lib, FNS, heap, nprocs)
    st.mem[BASE_RESIDENT] = stat("stats.resident")
    return st


def _purge() -> None:
    """Give back every arena's unused dirty pages, so that the baseline hides as little reusable memory as it can."""
    lib = _lib()
    f = lib.func("mallctl", ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                 ctypes.c_size_t)
    f(f"arena.{ARENAS_ALL}.purge".encode(), None, None, None, 0)


@kernel
def alloc(st, p, size, kind):
    a = real.call2(st.fns[MALLOCX], size, 0)
    if a == 0:
        return -1
    real.account(st, p, real.call2(st.fns[NALLOCX], size, 0), 1, 0)
    return a


@kernel
def free(st, p, addr, size, kind):
    real.account(st, p, -real.call2(st.fns[NALLOCX], size, 0), -1, 0)
    real.call_void3(st.fns[SDALLOCX], addr, size, 0)


def sample_memory(st: State) -> None:
    """Sample jemalloc's resident bytes for this run (and keep mapped and allocated beside them)."""
    real.sample(st, stat("stats.resident") - int(st.mem[BASE_RESIDENT]))
    st.mem[MAPPED], st.mem[ALLOCATED] = _mallctl("stats.mapped"), _mallctl("stats.allocated")


def min_usable() -> int:
    """jemalloc's smallest size class (8 B on x86-64)."""
    f = _lib().func("nallocx", ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int)
    return int(f(1, 0))


def check(st: State) -> list[str]:
    return real.check_accounting(st, min_usable())


_dispatch.register(State, alloc, free, real_ptrs=True)
