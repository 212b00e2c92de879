"""Static dispatch from a strategy's State type to its alloc/free kernels.

The executor is one ``@njit(cache=True)`` kernel for every strategy. Passing
alloc/free as first-class function arguments would specialise it too, but
numba then never hits its on-disk cache for that kernel (measured: a fresh
compile in every process, ~1 s). Dispatching on the *type* of the state
argument through ``@overload`` specialises the same way and caches: each
strategy's State is its own NamedTuple class, registered here at import.
"""
from __future__ import annotations

from numba.extending import overload

_KERNELS: dict[type, tuple] = {}


def register(state_cls: type, alloc, free, *, real_ptrs: bool = False) -> None:
    """Bind ``state_cls`` (a NamedTuple) to its kernels. ``real_ptrs``: the
    addresses returned are process pointers, not arena offsets."""
    _KERNELS[state_cls] = (alloc, free, real_ptrs)


def real_pointers(state_cls: type) -> bool:
    """Whether ``state_cls``'s strategy returns process pointers (as registered)."""
    return _KERNELS[state_cls][2]


def _lookup(st):
    cls = getattr(st, "instance_class", None)
    if cls not in _KERNELS:
        raise TypeError(f"no strategy registered for state type {st}")
    return _KERNELS[cls]


def strategy_alloc(st, p, size, kind):  # pragma: no cover - replaced in numba
    raise NotImplementedError


def strategy_free(st, p, addr, size, kind):  # pragma: no cover
    raise NotImplementedError


def strategy_real_ptrs(st):  # pragma: no cover
    raise NotImplementedError


@overload(strategy_alloc, inline="always", jit_options={"nogil": True})
def _ov_alloc(st, p, size, kind):
    fn = _lookup(st)[0]

    def impl(st, p, size, kind):
        return fn(st, p, size, kind)

    return impl


@overload(strategy_free, inline="always", jit_options={"nogil": True})
def _ov_free(st, p, addr, size, kind):
    fn = _lookup(st)[1]

    def impl(st, p, addr, size, kind):
        fn(st, p, addr, size, kind)

    return impl


@overload(strategy_real_ptrs)
def _ov_real(st):
    real = _lookup(st)[2]
    if real:
        return lambda st: True
    return lambda st: False
