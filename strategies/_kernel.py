"""The decorator for every hot-path kernel: ``@kernel`` = ``@njit(nogil=True, cache=True)`` without NRT.

Why ``_nrt=False``: a strategy's state is a NamedTuple of arrays, and with
numba's reference counting on, every ``st.field`` access in a loop pays an
atomic incref/decref pair. Measured on a 2M-op replay with a bump allocator:
18.5 ns/op with NRT, 7.2 ns/op without (the bare loop is 6.5). Kernels
therefore never allocate arrays; all memory is made in Python by ``make_state``.

Why calls between kernels see no literal types: numba types a constant
argument in a kernel-to-kernel call as a literal (``Literal[int](5)``) and
compiles the callee once per distinct constant, and once more per integer
width (a P from the trace's int16 column, or from an int64 loop). The Go
model's slow paths are called with constant span states, owners and lock ids
from a dozen sites, and each became its own multi-second compile
(mheap_alloc_span ten times). A kernel that wants a constant folded says so
with ``inline="always"``; every other kernel is compiled once per widened
signature (``_one_per_type``).
"""
from numba import njit, types


def _widen(t):
    """A call argument's type as the callee is compiled for it: no literal, and a signed integer
    narrower than 64 bits (a trace's int16 P, int32 size) as int64, the value unchanged."""
    t = types.unliteral(t)
    if isinstance(t, types.Integer) and t.signed and t.bitwidth < 64:
        return types.int64
    return t


def _one_per_type(dispatcher):
    """Make kernel-to-kernel calls to ``dispatcher`` compile for the arguments' widened types (``_widen``).

    ``get_call_template`` is what numba's type inference asks a dispatcher when a compiled function
    calls it; the only change is that argument types are widened first. The test suite checks
    that this still holds (tests/test_warmup.py::test_kernel_calls_compile_once_per_type)."""
    ask = dispatcher.get_call_template

    def get_call_template(args, kws):
        return ask(tuple(_widen(a) for a in args), {k: _widen(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher


def kernel(fn=None, **opts):
    def wrap(f):
        return _one_per_type(njit(nogil=True, cache=True, _nrt=False, **opts)(f))

    return wrap(fn) if fn is not None else wrap
