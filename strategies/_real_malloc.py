"""What the real-allocator peers share: libc's ``system`` and the loaded ones (jemalloc, tcmalloc, mimalloc).

Two parts:

* Accounting, the same for every real peer, so that their figures mean the
  same thing. A real allocator's own bookkeeping is invisible, so each peer
  counts, per P, the bytes the allocator reserves for the live blocks' payloads
  (``IN_USE``: malloc_usable_size, or the library's size class of the request)
  and the live blocks, and keeps a shared total whose peak floors the sampled
  memory figure (``account``). The sampled figure is the library's own
  (``sample``), taken by the runner between serial slices and at the end.
  ``peak_mapped_bytes`` is the larger of the two, so it is never below what
  was really handed out.

* Calling a library loaded at run time (``Library``). The libraries are
  ``dlopen``'ed with ``RTLD_LOCAL | RTLD_NOW``: their symbols join no global
  scope, so their exported plain ``malloc``/``free`` cannot interpose glibc's
  for the rest of the process (Python, numpy and numba keep glibc's; a
  pointer freed by the wrong allocator would corrupt the heap). Not
  ``RTLD_DEEPBIND``: that would bind the library's *own* calls to ``malloc``/
  ``free`` (through libc functions that return heap memory) to itself while
  libc allocated them. The kernels call only the prefixed or sized entry
  points (mallocx/sdallocx, tc_malloc/tc_free_sized, mi_malloc/mi_free_size)
  through function pointers that ``make_state`` puts in the state's ``fns``
  array: numba's on-disk cache keeps only the code that loads and calls them,
  never an address, so cached kernels load in any process (a pointer baked in
  as a constant would not; linking by name, as ``system`` does with libc,
  needs the symbol in the global scope, which is exactly what RTLD_LOCAL
  refuses).

jemalloc's library uses the initial-exec TLS model (2.6 KB of static TLS),
more than glibc keeps spare for ``dlopen`` (512 B by default): it loads only
in a process started with ``GLIBC_TUNABLES=glibc.rtld.optional_static_tls=
STATIC_TLS_BYTES``. The alloclab command re-executes itself with it once
(``ensure_static_tls``); elsewhere (a bare pytest) the strategy is
unavailable and says so.

State layout of every real peer (``tot``, ``resid``, ``mem``; ``system`` adds
its own words at the indices marked "module's"):
    tot[TOT_IN_USE]   published part of the IN_USE sum       tot[PEAK_IN_USE]  its peak
    tot[TOT_MMAP]     system only: its own mmap'ed blocks    tot[PEAK_MMAP]    their peak
    tot[BATCH]        a P publishes once its change reaches +-BATCH bytes (1 = every op)
    tot[SHARED]       1 = several Ps may run at once: publish with atomics
    resid[8p]         P p's change not yet published (a cache line per P)
    mem[0], mem[1]    the module's baselines      mem[LAST_OS], mem[PEAK_OS]  sampled figure, its peak
    mem[SAMPLES]      samples taken                mem[5..7]  the module's
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from alloclab.strategies._atomics import atomic_add, atomic_cas, atomic_load
from alloclab.strategies._counters import ALLOCS, EXTRA_BASE, FREES, IN_USE, new_counters
from alloclab.strategies._kernel import kernel

# tot[]: shared by all Ps, kept per op in the kernels (see account)
TOT_IN_USE = 0
PEAK_IN_USE = 1
TOT_MMAP = 2
PEAK_MMAP = 3
BATCH = 4
SHARED = 5
PUBLISH_BATCH = 4096  # BATCH with several Ps: bounds the in-use peak's error to nprocs x 4 KiB
# mem[]: the library's figure, sampled from Python
LAST_OS = 2
PEAK_OS = 3
SAMPLES = 4
LIVE_BLOCKS = EXTRA_BASE  # every real peer's EXTRA_COUNTERS starts with "live_blocks"

STATIC_TLS_TUNABLE = "glibc.rtld.optional_static_tls"
STATIC_TLS_BYTES = 8192   # jemalloc's 2632 B, with room for the others' (tcmalloc 88 B, mimalloc 9 B)
_REEXEC_MARK = "ALLOCLAB_STATIC_TLS_REEXEC"


# ----------------------------------------------------------------- calling C from kernels

@intrinsic
def ptr_to_i64(typingctx, ptr):
    """The address held by a ``voidptr`` as an int64 (the executor's address type)."""
    sig = types.int64(types.voidptr)

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def i64_to_ptr(typingctx, addr):
    """An int64 address as a ``voidptr`` for libc."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


def _c_call_codegen(nargs: int, returns: bool):
    """Code that calls the C function at address ``fn`` (the first argument) with ``nargs`` int64
    arguments (pointers, size_t and int all travel as 64-bit integer registers in the x86-64 and
    AArch64 C ABIs) and returns its int64 result, or nothing."""
    i64 = ir.IntType(64)
    fnty = ir.FunctionType(i64 if returns else ir.VoidType(), [i64] * nargs)
    sig = (types.int64 if returns else types.void)(*([types.int64] * (nargs + 1)))

    def codegen(context, builder, signature, cargs):
        f = builder.inttoptr(cargs[0], fnty.as_pointer())
        r = builder.call(f, list(cargs[1:]))
        return r if returns else context.get_dummy_value()

    return sig, codegen


@intrinsic
def call1(typingctx, fn, a):
    """r = fn(a)"""
    return _c_call_codegen(1, True)


@intrinsic
def call2(typingctx, fn, a, b):
    """r = fn(a, b)"""
    return _c_call_codegen(2, True)


@intrinsic
def call_void2(typingctx, fn, a, b):
    """fn(a, b)"""
    return _c_call_codegen(2, False)


@intrinsic
def call_void3(typingctx, fn, a, b, c):
    """fn(a, b, c)"""
    return _c_call_codegen(3, False)


# ----------------------------------------------------------------- the loaded peers' state

class PeerState(NamedTuple):
    """The state of a loaded peer. Each module subclasses it under a class name of its own
    (``class JemallocState(PeerState): __slots__ = ()``, then ``State = JemallocState``): the executor
    dispatches on the State class, and numba names compiled code by its argument types' printed form,
    which for a NamedTuple is the class name and the field types, the same for the three peers."""
    counters: np.ndarray   # (nprocs, NCOUNTERS); IN_USE = the library's size classes of the live blocks
    meta: np.ndarray       # the heap's words (unused: memory comes from the library)
    arena: np.ndarray      # unused
    tot: np.ndarray        # (16,) the shared in-use total and its peak (module docstring)
    resid: np.ndarray      # (nprocs * 8,) unpublished in-use change per P
    mem: np.ndarray        # (8,) the sampled figure; the module's baselines and side figures
    fns: np.ndarray        # addresses of the library's functions in this process, in the module's order


def new_state(cls, lib: "Library", symbols: tuple[str, ...], heap, nprocs: int):
    """A fresh ``cls`` (a PeerState subclass) whose ``fns`` hold ``symbols``' addresses in ``lib``."""
    return cls(meta=heap.meta, arena=heap.arena, fns=np.array([lib.addr(f) for f in symbols], np.int64),
               **new_accounting(nprocs))


# ----------------------------------------------------------------- accounting

def new_accounting(nprocs: int) -> dict:
    """The accounting arrays of a fresh state: counters, tot, resid, mem (see the module docstring)."""
    tot = np.zeros(16, np.int64)
    tot[BATCH], tot[SHARED] = (1, 0) if nprocs == 1 else (PUBLISH_BATCH, 1)
    return dict(counters=new_counters(nprocs), tot=tot, resid=np.zeros(nprocs * 8, np.int64),
                mem=np.zeros(8, np.int64))


@kernel(inline="always")
def raise_peak(tot, i, v):
    while True:
        pk = atomic_load(tot, i)
        if pk >= v or atomic_cas(tot, i, pk, v) == pk:
            return


@kernel(inline="always")
def account(st, p, n, blocks, m):
    """Count ``n`` bytes in use and ``blocks`` live blocks (both negative at a free) on P ``p``, publish the change to the
    shared total and raise its peak; ``m``: the change of system's own mmap'ed bytes (0 elsewhere).

    The peak of a sum of per-P rows cannot be read off the rows, so a shared
    total is kept. An atomic add on it per op measured +1.5 ns/op serial
    (system, random 2M ops, one P) and in threads mode it
    would bounce one cache line between all Ps on every op, serialising the
    very scaling that the allocators' per-thread caches are meant to show. A P
    therefore publishes its net change only once it reaches +-BATCH bytes
    (one atomic per ~4 KiB of churn), and with a single P (one thread
    whatever the mode) it publishes every op with plain stores: exact.
    """
    st.counters[p, IN_USE] += n
    st.counters[p, LIVE_BLOCKS] += blocks
    r = st.resid[p * 8] + n
    b = st.tot[BATCH]
    if -b < r < b:
        st.resid[p * 8] = r
    else:
        st.resid[p * 8] = 0
        if st.tot[SHARED] != 0:
            cur = atomic_add(st.tot, TOT_IN_USE, r) + r
            if r > 0:
                raise_peak(st.tot, PEAK_IN_USE, cur)
        else:
            cur = st.tot[TOT_IN_USE] + r
            st.tot[TOT_IN_USE] = cur
            if cur > st.tot[PEAK_IN_USE]:
                st.tot[PEAK_IN_USE] = cur
    if m != 0:  # rare: only system's blocks past the mmap threshold
        cm = atomic_add(st.tot, TOT_MMAP, m) + m
        if m > 0:
            raise_peak(st.tot, PEAK_MMAP, cm)


def sample(st, figure: int) -> None:
    """Keep one sample of the library's figure (bytes, since make_state's baseline) and its peak."""
    st.mem[LAST_OS] = figure
    st.mem[PEAK_OS] = max(int(st.mem[PEAK_OS]), figure)
    st.mem[SAMPLES] += 1


def sampled_bytes(st) -> int:
    """The library's figure (bytes since make_state's baseline) as the last ``sample`` took it."""
    return int(st.mem[LAST_OS])


def peak_in_use_bound(st) -> int:
    """An upper bound of the IN_USE sum's peak: exact with one P; with n Ps the
    published peak plus what each P may hold back (< BATCH bytes each)."""
    nprocs = st.counters.shape[0]
    return int(st.tot[PEAK_IN_USE]) + nprocs * (int(st.tot[BATCH]) - 1)


def peak_mapped_bytes(st) -> int:
    """Peak of the sampled figure, floored by the in-use peak (bound) and system's own mmap'ed blocks."""
    return max(int(st.mem[PEAK_OS]), peak_in_use_bound(st), int(st.tot[PEAK_MMAP]))


def check_accounting(st, min_usable: int) -> list[str]:
    """The invariants every real peer's state keeps:
        sum_p counters[p, IN_USE] >= 0;  sum_p live_blocks[p] == sum_p ALLOCS - sum_p FREES >= 0
        sum_p counters[p, IN_USE] >= min_usable * sum_p live_blocks[p]
        (sum_p counters[p, IN_USE] == 0) == (sum_p live_blocks[p] == 0)
        tot[TOT_IN_USE] + sum_p resid[8p] == sum_p counters[p, IN_USE];  |resid[8p]| < tot[BATCH]
        sum_p counters[p, IN_USE] <= peak_in_use_bound;  sampled peak >= 0
    """
    errs = []
    c = st.counters
    in_use = int(c[:, IN_USE].sum())
    live = int(c[:, LIVE_BLOCKS].sum())
    net = int(c[:, ALLOCS].sum()) - int(c[:, FREES].sum())
    if in_use < 0:
        errs.append(f"negative bytes in use ({in_use})")
    if live != net:
        errs.append(f"live blocks {live} != allocs - frees {net}")
    if live < 0:
        errs.append(f"negative live blocks ({live})")
    if in_use < min_usable * live:
        errs.append(f"bytes in use {in_use} below {live} live blocks x {min_usable} B")
    if (in_use == 0) != (live == 0):
        errs.append(f"bytes in use {in_use} with {live} live blocks")
    unpublished = int(st.resid[::8].sum())
    if int(st.tot[TOT_IN_USE]) + unpublished != in_use:
        errs.append(f"published in-use total {int(st.tot[TOT_IN_USE])} + unpublished {unpublished} "
                    f"!= sum of per-P IN_USE {in_use}")
    if np.abs(st.resid[::8]).max(initial=0) >= st.tot[BATCH]:
        errs.append(f"a P holds back {int(np.abs(st.resid[::8]).max())} B, not below the batch {int(st.tot[BATCH])}")
    if peak_in_use_bound(st) < in_use:
        errs.append(f"in-use peak bound {peak_in_use_bound(st)} below bytes in use {in_use}")
    if st.mem[PEAK_OS] < 0 or peak_mapped_bytes(st) < 0:
        errs.append("negative peak")
    return errs


# ----------------------------------------------------------------- loading a library

class Library:
    """A malloc library ``dlopen``'ed by soname with RTLD_LOCAL (see the module docstring), or why not.

    ``reason`` is None when it loaded; ``addr(name)`` is a symbol's address, ``cdll`` the ctypes handle."""

    def __init__(self, soname: str, package: str, symbols: tuple[str, ...], env: dict[str, str] | None = None):
        self.soname, self.package, self.cdll, self.reason = soname, package, None, None
        for k, v in (env or {}).items():   # read by the library's initialisers, at load
            os.environ.setdefault(k, v)
        try:
            self.cdll = ctypes.CDLL(soname, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as e:
            msg = str(e)
            if "static TLS" in msg:
                self.reason = (f"{soname} needs static TLS this process did not reserve: start it with "
                               f"GLIBC_TUNABLES={STATIC_TLS_TUNABLE}={STATIC_TLS_BYTES} (the alloclab command does)")
            elif "No such file" in msg or "cannot open" in msg:
                self.reason = f"{soname} not found (Debian: apt-get install {package})"
            else:
                self.reason = f"{soname} does not load: {msg} (Debian: apt-get install {package})"
            return
        missing = [s for s in symbols if not hasattr(self.cdll, s)]
        if missing:
            self.reason = f"{soname} lacks {', '.join(missing)} (Debian: apt-get install {package})"
            self.cdll = None

    def addr(self, name: str) -> int:
        return ctypes.cast(getattr(self.cdll, name), ctypes.c_void_p).value

    def func(self, name: str, restype, *argtypes):
        f = getattr(self.cdll, name)
        f.restype, f.argtypes = restype, list(argtypes)
        return f


_LOADED: dict[tuple, Library] = {}


def library(soname: str, package: str, symbols: tuple[str, ...], env: dict[str, str] | None = None) -> Library:
    """The Library for ``soname``, loaded once per process (a failed load is kept too: dlopen would fail again)."""
    key = (soname, package, symbols)
    if key not in _LOADED:
        _LOADED[key] = Library(soname, package, symbols, env)
    return _LOADED[key]


def require(lib: Library, name: str) -> Library:
    """``lib`` if it loaded; else the registry's UnavailableStrategy for strategy ``name``."""
    if lib.reason is not None:
        from alloclab.strategies import UnavailableStrategy

        raise UnavailableStrategy(name, lib.reason)
    return lib


def ensure_static_tls(enabled: bool = True) -> None:
    """Re-execute this process once with the static TLS jemalloc needs (see the module docstring),
    if it was not started with it. For the CLI's entry point only (``enabled``: it was started as
    a command, not called in-process); a no-op when the tunable is already set."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not enabled or STATIC_TLS_TUNABLE in tunables or os.environ.get(_REEXEC_MARK):
        return
    if not sys.platform.startswith("linux") or not getattr(sys, "orig_argv", None):
        return
    env = dict(os.environ, **{_REEXEC_MARK: "1"})
    env["GLIBC_TUNABLES"] = ":".join(t for t in (tunables, f"{STATIC_TLS_TUNABLE}={STATIC_TLS_BYTES}") if t)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)
