"""Bit operations the Go model needs beyond strategies._atomics (Go: internal/runtime/sys, atomic).

- ``popcount64``: LLVM's ctpop (Go: sys.OnesCount64), for allocCount after sweeping.
- ``atomic_add_i8``: fetch-and-add on one int8 slot, for tiny-block reference
  counts (one byte per tiny block keeps the table at arena/16 bytes).
- ``find_bit_range64``: the first run of n set bits (Go: findBitRange64 in
  mpagecache.go's helper), for multi-page allocations from a page cache.
- ``bits_of``: host side, for the invariant checks: the bits of uint64 words
  as a bool array.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from alloclab.strategies._kernel import kernel


@intrinsic
def popcount64(typingctx, x):
    sig = types.int64(x)

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.uint64)
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [v])

    return sig, codegen


@intrinsic
def atomic_add_i8(typingctx, arr, idx, val):
    """Atomically add ``val`` to int8 ``arr[idx]``; returns the old value (sign-extended)."""
    sig = types.int64(arr, idx, val)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1]])
        v = context.cast(builder, args[2], signature.args[2], types.int8)
        old = builder.atomic_rmw("add", ptr, v, "seq_cst")
        return builder.sext(old, ir.IntType(64))

    return sig, codegen


U1 = np.uint64(1)


@kernel(inline="always")
def low_mask(n):
    """uint64 with the low n bits set, 0 <= n <= 64."""
    if n >= 64:
        return ~np.uint64(0)
    return (U1 << np.uint64(n)) - U1


@kernel(inline="always")
def ctz64(x):
    """Trailing zeros of uint64 x as int64 (64 for x == 0). numba's own returns uint64,
    and uint64 + int64 is float64 in numba: every index stays int64 through this."""
    return np.int64(trailing_zeros(x))


@kernel
def find_bit_range64(c, n):
    """Index of the first run of n >= 1 consecutive set bits of uint64 c, or 64."""
    x = c
    for _ in range(n - 1):
        x &= x >> U1
    return ctz64(x)


def bits_of(words: np.ndarray, n: int) -> np.ndarray:
    """bool array of the first n bits of uint64 words (bit i of word w = slot 64w + i); host side."""
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")[:n].astype(bool)
