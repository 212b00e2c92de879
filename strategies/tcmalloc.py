"""tcmalloc: gperftools' tcmalloc (minimal) tc_malloc/tc_free_sized called from numba kernels — a real peer.

Mechanism (why, and the alternatives, in ``_real_malloc``): libtcmalloc_minimal.so.4
is ``dlopen``'ed with RTLD_LOCAL, so its exported ``malloc`` interposes
nothing and the rest of the process keeps glibc's; the kernels call its
prefixed API through function pointers held in the state: ``tc_malloc(size)``
and the sized ``tc_free_sized(ptr, size)`` (the trace gives every free its
object's size, which spares tcmalloc the page-map lookup of the size class).
Its thread caches, central free lists and page heap are its own, not modelled.
It is loaded with TCMALLOC_SKIP_SBRK=true: tcmalloc would otherwise grow the
same brk heap as glibc's main arena, and glibc's heap figure (``system``) and
trimming would see tcmalloc's pages.

Counters (the same for every real peer: ``_real_malloc.account``):
    IN_USE       the size class of each live block, ``tc_nallocx(size, 0)``
                 (= its usable size), per P row (+ on the allocating P, - on
                 the freeing P; only the sum is exact)
    live_blocks  blocks not yet freed, per P row (same rule)
    FAST_HITS, REFILLS, lock counters: 0 (tcmalloc's paths are not visible from outside).

Memory figure (``sample_memory``, between serial slices and at the end):
``generic.heap_size - tcmalloc.pageheap_unmapped_bytes`` — the page heap's
bytes obtained from the OS and not given back: live spans, free spans it
keeps (``tcmalloc.pageheap_free_bytes``) and objects cached in the thread
and central caches — minus its value at make_state (taken after
``MallocExtension_ReleaseFreeMemory``). tcmalloc's own metadata (span and
thread-cache structures, allocated apart from the heap) is not in it; it is
in jemalloc's and mimalloc's figures. Process-wide, but only alloclab's
kernels call tcmalloc in this process (Python uses glibc).

Tunables (process-wide, applied by every make_state):
    max_thread_cache_mb  tcmalloc.max_total_thread_cache_bytes, in MiB (its
                         default 32): the most all thread caches together may
                         hold. Larger = fewer trips to the locked central
                         lists (faster with many threads), more memory held
                         in caches.

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

NAME = "tcmalloc"
DESCRIPTION = "gperftools tcmalloc (tc_malloc/tc_free_sized) called from numba: a real peer"
EXTRA_COUNTERS: tuple[str, ...] = ("live_blocks",)
ALIGN16 = True    # gperftools aligns blocks of 16 B and more to 16 (built without TCMALLOC_ALIGN_8BYTES)

SONAME = "libtcmalloc_minimal.so.4"
PACKAGE = "libtcmalloc-minimal4"
SYMBOLS = ("tc_malloc", "tc_free_sized", "tc_nallocx", "MallocExtension_GetNumericProperty",
           "MallocExtension_SetNumericProperty", "MallocExtension_ReleaseFreeMemory")
ENV = {"TCMALLOC_SKIP_SBRK": "true"}

FNS = ("tc_malloc", "tc_free_sized", "tc_nallocx")   # the kernels' functions, in State.fns
MALLOC, FREE_SIZED, NALLOCX = 0, 1, 2   # fns[]
BASE_HELD = 0                           # mem[]: the figure at make_state
FREE_BYTES, UNMAPPED = 5, 6             # mem[]: pageheap_free_bytes, pageheap_unmapped_bytes at the last sample


def _lib() -> real.Library:
    return real.library(SONAME, PACKAGE, SYMBOLS, ENV)


def unavailable_reason() -> str | None:
    return _lib().reason


def prop(name: str) -> int:
    """One of tcmalloc's numeric properties (MallocExtension_GetNumericProperty)."""
    f = _lib().func("MallocExtension_GetNumericProperty", ctypes.c_int, ctypes.c_char_p,
                    ctypes.POINTER(ctypes.c_size_t))
    v = ctypes.c_size_t()
    if not f(name.encode(), ctypes.byref(v)):
        raise RuntimeError(f"tcmalloc has no property {name!r}")
    return int(v.value)


def held_bytes() -> int:
    """Bytes the page heap holds from the OS now: heap_size less what it has unmapped."""
    return prop("generic.heap_size") - prop("tcmalloc.pageheap_unmapped_bytes")


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    max_thread_cache_mb: int = param(32, choices=(1, 4, 16, 32, 64, 256),
                                     doc="MiB all thread caches together may hold, process-wide (tcmalloc's "
                                         "default 32): larger = fewer trips to the locked central lists, more "
                                         "memory held in caches")


class TcmallocState(real.PeerState):
    """fns: the addresses of tc_malloc, tc_free_sized, tc_nallocx in this process."""
    __slots__ = ()


State = TcmallocState


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    lib = real.require(_lib(), NAME)
    setp = lib.func("MallocExtension_SetNumericProperty", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    if not setp(b"tcmalloc.max_total_thread_cache_bytes", config.max_thread_cache_mb << 20):
        raise RuntimeError("tcmalloc refused tcmalloc.max_total_thread_cache_bytes")
    lib.func("MallocExtension_ReleaseFreeMemory", None)()
    st = real.new_state(State, lib, FNS, heap, nprocs)
    st.mem[BASE_HELD] = held_bytes()
    return st


@kernel
def alloc(st, p, size, kind):
    a = real.call1(st.fns[MALLOC], size)
    if a == 0:
        return -1
    real.account(st, p, real.call2(st.fns[NALLOCX], size, 0), 1, 0)
    return a


@kernel
def free(st, p, addr, size, kind):
    real.account(st, p, -real.call2(st.fns[NALLOCX], size, 0), -1, 0)
    real.call_void2(st.fns[FREE_SIZED], addr, size)


def sample_memory(st: State) -> None:
    """Sample the bytes tcmalloc's page heap holds from the OS for this run (free and unmapped beside them)."""
    real.sample(st, held_bytes() - int(st.mem[BASE_HELD]))
    st.mem[FREE_BYTES], st.mem[UNMAPPED] = prop("tcmalloc.pageheap_free_bytes"), prop("tcmalloc.pageheap_unmapped_bytes")


def min_usable() -> int:
    """tcmalloc's smallest size class (8 B)."""
    return int(_lib().func("tc_nallocx", ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int)(1, 0))


def check(st: State) -> list[str]:
    return real.check_accounting(st, min_usable())


_dispatch.register(State, alloc, free, real_ptrs=True)
