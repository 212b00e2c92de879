"""A span's allocation bitmap and its 64-bit allocCache: finding the next free slot.

Models nextFreeFast (src/runtime/malloc.go), mspan.nextFreeIndex and
mspan.refillAllocCache (src/runtime/mbitmap.go). See __init__.py for an overview;
mspan.py checks these equations.

allocBits holds the slots allocated as of the span's last sweep; every slot
below freeindex counts as allocated too (it was either allocated at the sweep
or handed out since), so

    allocated(i) = allocBits[i] or i < freeindex
    allocCount   = popcount(allocBits | bits below freeindex)

allocCache is the complement of allocBits from freeindex to the end of its
64-slot word, shifted so that bit 0 is slot freeindex: one ctz finds the next
free slot. Only the P whose mcache holds the span reads or writes these four
fields, so none of this takes a lock or an atomic.
"""
from __future__ import annotations

import numpy as np

from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import ctz64
from alloclab.strategies.go.layout import CFG_ALLOCBITS_WORDS
from alloclab.strategies.go.mspan import (
    SPAN_ALLOCCACHE, SPAN_ALLOCCOUNT, SPAN_BASE, SPAN_ELEMSIZE, SPAN_FREEINDEX, SPAN_NELEMS,
)

U1 = np.uint64(1)


@kernel(inline="always")
def next_free_fast(st, s):
    """nextFreeFast: the next free slot's address if the allocCache has it, else -1."""
    spans = st.spans
    cache = st.spans_u[s, SPAN_ALLOCCACHE]
    bit = ctz64(cache)
    if bit < 64:
        result = spans[s, SPAN_FREEINDEX] + bit
        nel = spans[s, SPAN_NELEMS]
        if result < nel:
            nfi = result + 1
            if (nfi & 63) == 0 and nfi != nel:
                return -1
            # two shifts: a shift by 64 is undefined in LLVM (Go defines it as 0)
            st.spans_u[s, SPAN_ALLOCCACHE] = (cache >> np.uint64(bit)) >> U1
            spans[s, SPAN_FREEINDEX] = nfi
            spans[s, SPAN_ALLOCCOUNT] += 1
            return spans[s, SPAN_BASE] + result * spans[s, SPAN_ELEMSIZE]
    return -1


@kernel(inline="always")
def refill_alloc_cache(st, s, word):
    """refillAllocCache: the complement of allocBits word ``word`` (64 slots)."""
    st.spans_u[s, SPAN_ALLOCCACHE] = ~st.allocbits[s * st.cfg[CFG_ALLOCBITS_WORDS] + word]


@kernel
def next_free_index(st, s):
    """nextFreeIndex: the next free slot index at or after freeindex, or nelems if the span is full."""
    spans = st.spans
    fi = spans[s, SPAN_FREEINDEX]
    nel = spans[s, SPAN_NELEMS]
    if fi >= nel:
        return nel
    cache = st.spans_u[s, SPAN_ALLOCCACHE]
    bit = ctz64(cache)
    while bit == 64:
        fi = (fi + 64) & ~63
        if fi >= nel:
            spans[s, SPAN_FREEINDEX] = nel
            return nel
        refill_alloc_cache(st, s, fi >> 6)
        cache = st.spans_u[s, SPAN_ALLOCCACHE]
        bit = ctz64(cache)
    result = fi + bit
    if result >= nel:
        spans[s, SPAN_FREEINDEX] = nel
        return nel
    st.spans_u[s, SPAN_ALLOCCACHE] = (cache >> np.uint64(bit)) >> U1
    fi = result + 1
    if (fi & 63) == 0 and fi != nel:
        refill_alloc_cache(st, s, fi >> 6)
    spans[s, SPAN_FREEINDEX] = fi
    return result


@kernel(inline="always")
def load_alloc_cache(st, s):
    """What mcentral.cacheSpan does before handing a span out: allocCache from freeindex."""
    fi = st.spans[s, SPAN_FREEINDEX]
    refill_alloc_cache(st, s, fi >> 6)
    st.spans_u[s, SPAN_ALLOCCACHE] = st.spans_u[s, SPAN_ALLOCCACHE] >> np.uint64(fi & 63)
