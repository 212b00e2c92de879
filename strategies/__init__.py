"""alloclab.strategies: the allocators, one module per strategy.

The contract (DESIGN.md, "Strategy contract") that every strategy module
implements, and that the shared test suite checks for each of them:

- ``NAME``, ``DESCRIPTION`` (one line), ``EXTRA_COUNTERS`` (names of its
  counter columns from ``_counters.EXTRA_BASE`` on), ``ALIGN16`` (whether
  objects of 16 B or more are 16-aligned, as malloc promises).
- ``Config``: a frozen dataclass of tunables (``_config.ConfigBase``).
- ``make_state(config, heap, nprocs) -> State``: a NamedTuple of numpy arrays
  with at least the fields ``counters`` (nprocs x NCOUNTERS int64), ``meta``
  (the heap's mapping words) and ``arena`` (uint8).
- ``alloc(state, p, size, kind) -> addr`` and ``free(state, p, addr, size, kind)``:
  ``@njit(nogil=True, cache=True)``; addr -1 means out of memory.
- ``check(state) -> list[str]``: the invariants written beside the state, as
  equations; an empty list means they hold.
- the module registers ``State`` with ``_dispatch.register`` at import.

Modules are imported lazily so that ``alloclab list`` does not load numba
kernels it will not run.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from alloclab.strategies import _numba_cache

_numba_cache.configure()

# name -> (module, one-line description)  (descriptions here so `list` stays cheap)
_REGISTRY: dict[str, tuple[str, str]] = {
    "bump": ("alloclab.strategies.bump", "pointer bump, never reuses: the speed limit and reference line"),
    "naive": ("alloclab.strategies.naive", "K&R first-fit free list with boundary tags and coalescing, one global lock"),
    "bitmap": ("alloclab.strategies.bitmap", "per-size-class fixed-block pools with a free bitmap (the article's MemoryPool)"),
    "freelist": ("alloclab.strategies.freelist", "per-size-class intrusive free lists, optional per-P cache with batch transfer (pool + TLA)"),
    "go": ("alloclab.strategies.go", "model of Go's runtime allocator: mcache / mcentral / mheap, tiny alloc, stacks"),
    "system": ("alloclab.strategies.system", "the process's libc malloc/free called from numba: a real peer"),
    "go-runtime": ("alloclab.strategies.go_runtime", "the real Go runtime replaying the trace in a Go program (needs a Go toolchain)"),
}


class UnknownStrategy(KeyError):
    def __str__(self):
        return f"unknown strategy {self.args[0]!r}; choose from {', '.join(names())}"


def names(include_unavailable: bool = False) -> list[str]:
    return [n for n in _REGISTRY if include_unavailable or _available(n)]


def kernel_names() -> list[str]:
    """Strategies implemented as numba kernels (everything but external peers like go-runtime)."""
    return [n for n in names() if n not in _EXTERNAL]


def unavailable_reason(name: str) -> str | None:
    """Why a registered strategy cannot run here (None if it can)."""
    mod = _REGISTRY[name][0]
    if importlib.util.find_spec(mod) is None:
        return "not installed"
    if name in _EXTERNAL:
        m = importlib.import_module(mod)
        return m.unavailable_reason()
    return None


# strategies that are real programs outside numba: available only when their toolchain is
_EXTERNAL = {"go-runtime"}


def _available(name: str) -> bool:
    try:
        return unavailable_reason(name) is None
    except Exception:
        return False


def describe(name: str) -> str:
    return _REGISTRY[name][1]


class UnavailableStrategy(KeyError):
    def __str__(self):
        return f"strategy {self.args[0]!r} is not available here: {self.args[1]}"


def get(name: str) -> ModuleType:
    if name not in _REGISTRY:
        raise UnknownStrategy(name)
    why = unavailable_reason(name) if name in _EXTERNAL else None
    if why is None and not _available(name):
        why = "not installed"
    if why is not None:
        raise UnavailableStrategy(name, why)
    return importlib.import_module(_REGISTRY[name][0])
