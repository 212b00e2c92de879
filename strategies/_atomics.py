"""Atomics and the spinlock every strategy's locks are built from.

numba has no atomics of its own, so these are LLVM instructions emitted through
``numba.extending.intrinsic``: ``cmpxchg`` for compare-and-swap, ``atomicrmw``
for fetch-add, and ``load atomic`` / ``store atomic`` for publish/observe. They
operate on one slot of an int64 numpy array, which is how every lock and every
shared word in alloclab is held (kernels take arrays and scalars only).

The spinlock trades latency for fairness: a waiter re-reads the word with
exponentially growing pauses (1, 2, 4 ... 64 relaxed loads) and after that
calls ``sched_yield`` on every round, so that more Ps than cores (8 Ps on this
2-core machine) cannot livelock: the holder gets the CPU back.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from alloclab.strategies._counters import CONTENDED, SPINS
from alloclab.strategies._kernel import kernel

# libc's sched_yield, linked by symbol name so that cached kernels stay valid
# across processes (a ctypes pointer would bake an address into the cache).
sched_yield = types.ExternalFunction("sched_yield", types.int32())


def _slot_ptr(context, builder, arrty, arrval, idx):
    ary = context.make_array(arrty)(context, builder, arrval)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


@intrinsic
def atomic_cas(typingctx, arr, idx, expected, new):
    """Compare-and-swap ``arr[idx]``: returns the old value (== expected on success)."""
    sig = types.int64(arr, idx, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1])
        exp = context.cast(builder, args[2], signature.args[2], types.int64)
        new_ = context.cast(builder, args[3], signature.args[3], types.int64)
        res = builder.cmpxchg(ptr, exp, new_, "seq_cst", "seq_cst")
        return builder.extract_value(res, 0)

    return sig, codegen


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """Fetch-and-add on ``arr[idx]``; returns the value before the add."""
    sig = types.int64(arr, idx, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1])
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """Acquire load of ``arr[idx]``: sees everything published before the matching store."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    """Release store to ``arr[idx]``: publishes every earlier write of this thread."""
    sig = types.void(arr, idx, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1])
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


def _raw_access(bits):
    """(poke, peek) intrinsics for a ``bits``-wide integer at a raw process address (only the
    ``system`` strategy has those; the executor writes and checks its objects through them).

    poke stores the low ``bits`` of an int64, peek loads them and zero-extends to int64. Both
    are ``align 1`` accesses: they assume nothing about the address.
    """
    ity = ir.IntType(bits)

    @intrinsic
    def poke(typingctx, addr, val):
        sig = types.void(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ity.as_pointer())
            v = args[1] if bits == 64 else builder.trunc(args[1], ity)
            builder.store(v, ptr, align=1)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def peek(typingctx, addr):
        sig = types.int64(types.int64)

        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], ity.as_pointer())
            v = builder.load(ptr, align=1)
            return v if bits == 64 else builder.zext(v, ir.IntType(64))

        return sig, codegen

    return poke, peek


poke_i64, peek_i64 = _raw_access(64)
poke_u8, peek_u8 = _raw_access(8)


# Spins before the first sched_yield. 64 relaxed loads cost ~50-100 ns, about
# one uncontended critical section of the mcentral refill path: shorter lock
# holds are won by spinning, longer ones (or a preempted holder) by yielding.
SPIN_LIMIT = 64


@kernel
def spin_lock(locks, i, counters, p, tier_col):
    """Acquire lock word ``locks[i]``; count the acquisition in ``counters[p, tier_col]``.

    A failed first attempt counts one contended acquisition and every
    further attempt one spin, so contention is visible per P and per tier.
    """
    counters[p, tier_col] += 1
    if atomic_cas(locks, i, 0, 1) == 0:
        return
    counters[p, CONTENDED] += 1
    backoff = 1
    while True:
        if backoff <= SPIN_LIMIT:
            for _ in range(backoff):
                if atomic_load(locks, i) == 0:
                    break
            backoff <<= 1
        else:
            sched_yield()
        counters[p, SPINS] += 1
        if atomic_load(locks, i) == 0 and atomic_cas(locks, i, 0, 1) == 0:
            return


@kernel
def spin_unlock(locks, i):
    atomic_store(locks, i, 0)
