"""system: the process's own libc malloc/free, called from numba kernels — a real peer.

Design. ``alloc`` calls libc ``malloc(size)`` and ``free`` calls libc
``free(ptr)``; the addresses are real process pointers (``real_ptrs=True``:
the executor writes object ids through them). libc is linked by symbol name
(``types.ExternalFunction``), not through ctypes function pointers, so that
numba's on-disk cache holds no process address and ``cache=True`` kernels
load in a fresh process. Everything behind malloc — glibc's per-thread tcache,
fastbins, arenas (several in threads mode), its own locks — is libc's; none
of it is modelled or visible here. ``free`` receives the object's size, as
every strategy's does, and ignores it.

Alignment: glibc's MALLOC_ALIGNMENT is 2 * sizeof(size_t) = 16 on 64-bit
targets, so every block is 16-aligned (``ALIGN16 = True``); the module
refuses to import on a 32-bit libc where that would not hold.

Counters:
    IN_USE       sum of malloc_usable_size(ptr) of the live blocks, per P row
                 (+ on the allocating P, - on the freeing P, so one row may go
                 negative under cross-P frees; the sum over Ps is exact). It is
                 what libc really reserves for the object's payload, without
                 its chunk header.
    live_blocks  malloc'ed blocks not yet freed, per P row (same +/- rule).
    FAST_HITS, REFILLS, lock counters: 0. libc's fast paths (tcache) and its
                 locks are not visible from outside, so nothing is claimed.

Memory figures (``sample_memory`` / ``peak_mapped_bytes``, called by the
runner between serial slices of ~262k ops and once at the end) are libc's own
figures, *sampled*: the growth since ``make_state`` (taken after
``malloc_trim(0)``) of glibc ``mallinfo2().arena`` — the bytes of all arenas'
heaps obtained from the OS by sbrk/mmap — plus the bytes of the blocks of
this run that libc mmap'ed on their own (glibc's ``hblkhd``, but counted per
op from each block's chunk header, which carries an IS_MMAPPED bit, because
``hblkhd`` also sees the harness's own large numpy buffers, e.g. the 2 GiB
check shadow). So they include libc's metadata, free-but-retained memory and
fragmentation, but not what the rest of the process held at the baseline.
Caveats, by design:
  * sampled: a peak between two samples is missed (threads mode samples only
    at the end). glibc keeps freed memory (it returns only the top of a heap
    and whole mmap'ed blocks), so the end sample stays close to the heap's
    peak; the *peak* is the figure that matters, and ``peak_mapped_bytes`` is
    at least the per-op peak of the IN_USE sum (exact with one P; with n Ps
    an upper bound, at most n x 4 KiB above it: see ``_real_malloc.account``) and of our
    mmap'ed blocks, so it is never below the bytes really handed out;
  * the heap part counts anything the process mallocs from the heaps during
    the run (the harness's buffers made after ``make_state`` that fall below
    glibc's mmap threshold included) and misses memory libc retained from
    earlier runs that this run reuses (hidden in the baseline; the IN_USE
    floor bounds that error). Both are large next to a small live set:
    random, 2M ops, one P, without warm-up, the heap grew 10.1 MB against a
    0.9 MB in-use peak (the runner's 8 MB object table lands in the heap);
    after a warm-up the table reuses freed heap and the floor (0.9 MB) wins;
  * on glibc < 2.33 (no ``mallinfo2``) ``mallinfo()``'s fields are C ints that
    wrap at 2 GiB: figures above that are wrong there. Where the chunk header
    check at import fails (not glibc), the mmap part falls back to the growth
    of ``hblkhd``, with the harness's buffers in it.
Objects still live when a trace ends (or a run aborts) are not freed: the
strategy keeps no list of its blocks (that would add work to the measured
path), so they leak for the life of the process, as in a C program that exits.

Tunables (all ``mallopt`` settings, applied in ``make_state``; they are
PROCESS-WIDE and outlive the run — a later state with 0 puts back glibc's
static mmap threshold, not its dynamic rise, and cannot unset M_ARENA_MAX):
    m_arena_max       M_ARENA_MAX: most malloc arenas threads may spread over
                      (0 = libc default, 8 x cores). Fewer = less memory held
                      per idle arena and less fragmentation across arenas,
                      more lock contention between threads. glibc fixes the
                      limit the first time it needs it and never destroys an
                      arena, so it only acts in a fresh process: not tuned.
    m_mmap_threshold  M_MMAP_THRESHOLD: requests of at least this many bytes
                      get their own mmap (0 = libc default: 128 KiB, raised
                      dynamically up to 32 MiB as large blocks are freed).
                      Lower = large blocks go back to the OS at free (small
                      peak, but a syscall and page faults per block); higher =
                      served from the heap (fast reuse, more retained memory).
                      Setting it turns glibc's dynamic adjustment off.

State invariants (``check``):
    sum_p counters[p, IN_USE] >= 0
    sum_p live_blocks[p] == sum_p counters[p, ALLOCS] - sum_p counters[p, FREES]
    sum_p counters[p, IN_USE] >= MIN_USABLE * sum_p live_blocks[p]
    (sum_p counters[p, IN_USE] == 0) == (sum_p live_blocks[p] == 0)
    tot[TOT_IN_USE] + sum_p resid[8p] == sum_p counters[p, IN_USE]
    |resid[8p]| < tot[BATCH]             (1 with one P: the total is exact)
    sum_p counters[p, IN_USE] <= tot[PEAK_IN_USE] + nprocs * (tot[BATCH] - 1)
    0 <= tot[TOT_MMAP] <= tot[PEAK_MMAP];  tot[TOT_MMAP] == 0 when no block is live
    peak_mapped_bytes >= max(that in-use peak bound, tot[PEAK_MMAP]) >= 0
"""
from __future__ import annotations

import ctypes
import dataclasses
from typing import NamedTuple

import numpy as np
from numba import types

from alloclab.strategies import _dispatch
from alloclab.strategies._atomics import peek_i64
from alloclab.strategies._config import ConfigBase, param
from alloclab.strategies._kernel import kernel
from alloclab.strategies._real_malloc import (BATCH, LAST_OS, LIVE_BLOCKS, PEAK_IN_USE, PEAK_MMAP, PEAK_OS,  # noqa: F401
                                              PUBLISH_BATCH, SAMPLES, SHARED, TOT_IN_USE, TOT_MMAP, account,
                                              check_accounting, i64_to_ptr, new_accounting, peak_in_use_bound,
                                              peak_mapped_bytes, ptr_to_i64, sample)

NAME = "system"
DESCRIPTION = "the process's libc malloc/free called from numba: a real peer"
EXTRA_COUNTERS: tuple[str, ...] = ("live_blocks",)
ALIGN16 = True

if ctypes.sizeof(ctypes.c_size_t) != 8:  # pragma: no cover - 32-bit libc aligns to 8 only
    raise ImportError("system strategy needs a 64-bit libc (16-byte malloc alignment)")

# libc, linked by symbol name: numba's cache stores the name, the loader
# resolves it in each process (a ctypes pointer would bake an address in).
c_malloc = types.ExternalFunction("malloc", types.voidptr(types.intp))
c_free = types.ExternalFunction("free", types.void(types.voidptr))
# size_t declared as intp: a uint64 result would turn int64 arithmetic into float64.
c_usable = types.ExternalFunction("malloc_usable_size", types.intp(types.voidptr))


# --- libc from Python: mallopt / mallinfo for make_state and sampling -------
_libc = ctypes.CDLL(None)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
DEFAULT_MMAP_THRESHOLD = 128 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MIN
HAVE_MALLINFO2 = hasattr(_libc, "mallinfo2")
_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in _FIELDS]


class _MallInfo(ctypes.Structure):  # glibc < 2.33: int fields, wrap at 2 GiB
    _fields_ = [(f, ctypes.c_int) for f in _FIELDS]


if HAVE_MALLINFO2:
    _mallinfo = _libc.mallinfo2
    _mallinfo.restype = _MallInfo2
else:  # pragma: no cover - exercised on old glibc only
    _mallinfo = _libc.mallinfo
    _mallinfo.restype = _MallInfo
_mallinfo.argtypes = []
_libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mallopt.restype = ctypes.c_int
_libc.malloc_trim.argtypes = [ctypes.c_size_t]
_libc.malloc_trim.restype = ctypes.c_int
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.malloc.restype = ctypes.c_void_p
_libc.free.argtypes = [ctypes.c_void_p]
_libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
_libc.malloc_usable_size.restype = ctypes.c_size_t


def _min_usable() -> int:
    p = _libc.malloc(1)
    try:
        return int(_libc.malloc_usable_size(p))
    finally:
        _libc.free(p)


def _glibc_chunks() -> bool:
    """True if blocks carry glibc's chunk header (size word at ptr-8, IS_MMAPPED = 2):
    a small block must not have the bit, a 64 MiB one (always mmap'ed) must."""
    if not HAVE_MALLINFO2 and not hasattr(_libc, "mallinfo"):
        return False
    small, big = _libc.malloc(64), _libc.malloc(64 << 20)
    try:
        if not small or not big:
            return False
        hs = ctypes.c_int64.from_address(small - 8).value
        hb = ctypes.c_int64.from_address(big - 8).value
        return (hs & 2) == 0 and (hb & 2) != 0 and (hb & ~7) >= (64 << 20) and (hs & ~7) >= 64
    finally:
        _libc.free(small)
        _libc.free(big)


MIN_USABLE = _min_usable()  # smallest block libc hands out (24 B on x86_64 glibc)
GLIBC_CHUNKS = _glibc_chunks()

# what this module last set process-wide (0 = untouched): so that a later
# state asking for the default can put it back
_applied = {M_ARENA_MAX: 0, M_MMAP_THRESHOLD: 0}


def _mallopt(param_no: int, value: int) -> None:
    if value == 0:
        if _applied[param_no] == 0 or param_no == M_ARENA_MAX:
            return  # untouched, or not undoable: glibc's mallopt ignores M_ARENA_MAX <= 0
        value = DEFAULT_MMAP_THRESHOLD  # the static default; the dynamic rise stays off
    if _libc.mallopt(param_no, value) != 1:
        raise RuntimeError(f"mallopt({param_no}, {value}) failed")
    _applied[param_no] = value


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    m_arena_max: int = param(0, lo=0, hi=64, tune=False,
                             doc="glibc M_ARENA_MAX, process-wide (0 = libc default 8 x cores): fewer arenas = "
                                 "less memory held and fragmented per arena, more lock contention between threads; "
                                 "glibc latches it on first use, so it only acts in a fresh process")
    m_mmap_threshold: int = param(0, choices=(0, 16384, 65536, 131072, 262144, 1 << 20, 4 << 20, 32 << 20),
                                  doc="glibc M_MMAP_THRESHOLD in bytes, process-wide (0 = libc default, 128 KiB "
                                      "rising dynamically): lower = large blocks mmap'ed and unmapped at free "
                                      "(smaller peak, a syscall + page faults each), higher = served from the heap "
                                      "(fast reuse, more memory retained)")


# tot[] and mem[] as every real peer keeps them (_real_malloc); tot[TOT_MMAP], tot[PEAK_MMAP]: the
# bytes of our live blocks that libc mmap'ed on their own (whole mappings), exact, and their peak.
# mem[]: libc's figures, sampled from Python
BASE_ARENA = 0    # mallinfo arena at make_state
BASE_HBLKHD = 1   # mallinfo hblkhd at make_state (used only without the chunk layout)
LAYOUT = 5        # 1 = glibc's chunk header verified at import: own mmap'ed blocks are counted per op


# a class name of its own: numba names a compiled specialisation by its argument types' printed form,
# and naive's State holds the same field types (tests/test_strategy_contract.py checks they all differ)
class SystemState(NamedTuple):
    counters: np.ndarray   # (nprocs, NCOUNTERS); IN_USE = usable bytes of live blocks
    meta: np.ndarray       # the heap's words (unused: memory comes from libc)
    arena: np.ndarray      # unused
    tot: np.ndarray        # (16,) TOT_IN_USE..SHARED, one cache line shared by all Ps
    resid: np.ndarray      # (nprocs * 8,) IN_USE change of P p not yet published, at [p * 8] (own cache line)
    mem: np.ndarray        # (8,) sampled libc figures, BASE_ARENA..LAYOUT
    settings: np.ndarray   # (2,) the mallopt values applied: m_arena_max, m_mmap_threshold


State = SystemState


def make_state(config: Config, heap, nprocs: int) -> State:
    config.validate()
    _mallopt(M_ARENA_MAX, config.m_arena_max)
    _mallopt(M_MMAP_THRESHOLD, config.m_mmap_threshold)
    # give back what earlier runs left free, so the baseline hides as little
    # reusable memory as libc allows
    _libc.malloc_trim(0)
    mi = _mallinfo()
    acc = new_accounting(nprocs)
    mem = acc["mem"]
    mem[BASE_ARENA], mem[BASE_HBLKHD], mem[LAYOUT] = int(mi.arena), int(mi.hblkhd), int(GLIBC_CHUNKS)
    return State(
        meta=heap.meta, arena=heap.arena, **acc,
        settings=np.array([config.m_arena_max, config.m_mmap_threshold], np.int64),
    )


@kernel(inline="always")
def _mmapped_bytes(st, a):
    """The whole mapping behind block ``a`` if libc mmap'ed it on its own, else 0.

    glibc's chunk header: size word at a-8 with IS_MMAPPED (2) in its low
    bits; for such a chunk the mapping is prev_size (a-16, the alignment
    slack) + chunk size.
    """
    if st.mem[LAYOUT] == 0:
        return 0
    h = peek_i64(a - 8)
    if (h & 2) == 0:
        return 0
    return (h & ~7) + peek_i64(a - 16)


@kernel
def alloc(st, p, size, kind):
    ptr = c_malloc(size)
    a = ptr_to_i64(ptr)
    if a == 0:
        return -1
    account(st, p, c_usable(ptr), 1, _mmapped_bytes(st, a))
    return a


@kernel
def free(st, p, addr, size, kind):
    ptr = i64_to_ptr(addr)
    account(st, p, -c_usable(ptr), -1, -_mmapped_bytes(st, addr))
    c_free(ptr)


def os_figure(st: State) -> int:
    """Bytes libc holds from the OS for this run now: the growth of mallinfo
    ``arena`` (all arenas' heaps) since make_state + our own mmap'ed blocks
    (exact; mallinfo ``hblkhd`` growth where the chunk layout is unknown)."""
    mi = _mallinfo()
    heaps = int(mi.arena) - int(st.mem[BASE_ARENA])
    if st.mem[LAYOUT]:
        return heaps + int(st.tot[TOT_MMAP])
    return heaps + int(mi.hblkhd) - int(st.mem[BASE_HBLKHD])


def sample_memory(st: State) -> None:
    """Sample libc's OS-obtained bytes for this run and keep their peak."""
    sample(st, os_figure(st))


def check(st: State) -> list[str]:
    errs = check_accounting(st, MIN_USABLE)
    live = int(st.counters[:, LIVE_BLOCKS].sum())
    if not 0 <= int(st.tot[TOT_MMAP]) <= int(st.tot[PEAK_MMAP]):
        errs.append(f"own mmap'ed bytes {int(st.tot[TOT_MMAP])} outside 0..peak {int(st.tot[PEAK_MMAP])}")
    if live == 0 and int(st.tot[TOT_MMAP]) != 0:
        errs.append(f"{int(st.tot[TOT_MMAP])} mmap'ed bytes with no live block")
    return errs


_dispatch.register(State, alloc, free, real_ptrs=True)
