"""alloclab.strategies: the allocators, one module per strategy, and their registry.

The registry (``_REGISTRY`` below) holds one descriptor per strategy
(``_descriptor.Strategy``): its name, module, one-line description, kind
(numba ``kernel`` or ``external`` program), and the optional hooks its module
provides. Adding a strategy is one module plus one line here
(docs/adding-a-strategy.md).

The contract (docs/design.md, "The strategy contract") that every kernel strategy's
module implements, and that the shared test suite checks for each of them:

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
- the hooks named in its descriptor (``_descriptor.Hooks``), with the
  signatures given there.

An external strategy's module has ``NAME``, ``DESCRIPTION``, ``EXTRA_COUNTERS``,
``ALIGN16``, ``Config`` and ``check``, and the hooks ``run_external`` and
``unavailable_reason``.

Modules are imported lazily so that ``alloclab list`` does not load numba
kernels it will not run. Importing this package has no side effects: numba's
cache folder is configured by the entry points (``_numba_cache.configure``).
"""
from __future__ import annotations

import importlib.util
from types import ModuleType

from alloclab.strategies._descriptor import Hooks, Strategy

_SIZE_CLASSES_SIMPLE = "alloclab.strategies._size_class_tables:simple"
# the real allocators loaded at run time (strategies/_real_malloc.py): their own memory figures, and
# unavailable where the library is not installed
_LOADED_PEER = Hooks(sample_memory="sample_memory", peak_mapped_bytes="peak_mapped_bytes",
                     sampled_mapped="alloclab.strategies._real_malloc:sampled_bytes",
                     unavailable_reason="unavailable_reason")

_REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("bump", "alloclab.strategies.bump", "pointer bump, never reuses: the speed limit and reference line"),
    Strategy("naive", "alloclab.strategies.naive",
             "K&R first-fit free list with boundary tags and coalescing, one global lock"),
    Strategy("bitmap", "alloclab.strategies.bitmap",
             "per-size-class fixed-block pools with a free bitmap (the article's MemoryPool)",
             hooks=Hooks(size_classes=_SIZE_CLASSES_SIMPLE)),
    Strategy("freelist", "alloclab.strategies.freelist",
             "per-size-class intrusive free lists, optional per-P cache with batch transfer (pool + TLA)",
             hooks=Hooks(size_classes=_SIZE_CLASSES_SIMPLE)),
    Strategy("go", "alloclab.strategies.go",
             "model of Go's runtime allocator: mcache / mcentral / mheap, tiny alloc, stacks",
             hooks=Hooks(peak_inuse_bytes="peak_inuse_bytes", mapped_floor="mapped_floor",
                         size_classes="alloclab.strategies._size_class_tables:go")),
    Strategy("system", "alloclab.strategies.system", "the process's libc malloc/free called from numba: a real peer",
             hooks=Hooks(sample_memory="sample_memory", peak_mapped_bytes="peak_mapped_bytes",
                         sampled_mapped="alloclab.strategies._real_malloc:sampled_bytes")),
    Strategy("jemalloc", "alloclab.strategies.jemalloc", "jemalloc 5 (mallocx/sdallocx) called from numba: a real peer",
             requires="Debian: apt-get install libjemalloc2", hooks=_LOADED_PEER),
    Strategy("tcmalloc", "alloclab.strategies.tcmalloc",
             "gperftools tcmalloc (tc_malloc/tc_free_sized) called from numba: a real peer",
             requires="Debian: apt-get install libtcmalloc-minimal4", hooks=_LOADED_PEER),
    Strategy("mimalloc", "alloclab.strategies.mimalloc", "mimalloc 2 (mi_malloc/mi_free_size) called from numba: a real peer",
             requires="Debian: apt-get install libmimalloc2.0", hooks=_LOADED_PEER),
    Strategy("go-runtime", "alloclab.strategies.go_runtime",
             "the real Go runtime replaying the trace in a Go program (needs a Go toolchain)",
             kind="external", requires="a Go toolchain, 1.19 or newer (apt-get install golang-go)",
             hooks=Hooks(run_external="run_external", unavailable_reason="unavailable_reason"),
             external_probes=("latency", "timeline")),
)}


class UnknownStrategy(KeyError):
    def __str__(self):
        return f"unknown strategy {self.args[0]!r}; choose from {', '.join(names())}"


class UnavailableStrategy(KeyError):
    def __str__(self):
        return f"strategy {self.args[0]!r} is not available here: {self.args[1]}"


def register(strategy: Strategy) -> Strategy:
    """Add (or replace) a registry line at run time: a strategy module outside the package.

    Its module must be importable in every process that shares the numba cache
    folder (see tests/conftest.py)."""
    _REGISTRY[strategy.name] = strategy
    return strategy


def descriptor(name: str) -> Strategy:
    """The registry line of ``name`` (imports nothing)."""
    if name not in _REGISTRY:
        raise UnknownStrategy(name)
    return _REGISTRY[name]


def resolve(strategy: str | Strategy | ModuleType) -> Strategy:
    """A descriptor from a name, a registered strategy's module, or a descriptor (one not in the
    registry is allowed)."""
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, ModuleType):
        for d in _REGISTRY.values():
            if d.module == strategy.__name__:
                return d
        raise UnknownStrategy(strategy.__name__)
    return descriptor(strategy)


def names(include_unavailable: bool = False) -> list[str]:
    return [n for n in _REGISTRY if include_unavailable or _available(n)]


def kernel_names() -> list[str]:
    """Strategies implemented as numba kernels (everything but external peers like go-runtime)."""
    return [n for n in names() if not _REGISTRY[n].is_external]


def unavailable_reason(name: str) -> str | None:
    """Why a registered strategy cannot run here (None if it can)."""
    d = descriptor(name)
    if importlib.util.find_spec(d.module) is None:
        return "not installed"
    return d.unavailable_reason()


def _available(name: str) -> bool:
    try:
        return unavailable_reason(name) is None
    except Exception:
        return False


def describe(name: str) -> str:
    return descriptor(name).description


def get(name: str) -> ModuleType:
    """The module of an available strategy (UnknownStrategy, UnavailableStrategy otherwise)."""
    d = descriptor(name)
    why = unavailable_reason(name) if d.is_external or d.hooks.unavailable_reason else (
        None if _available(name) else "not installed")
    if why is not None:
        raise UnavailableStrategy(name, why)
    return d.load()
