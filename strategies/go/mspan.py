"""mspan: the span record, its states, mSpanList, and the invariants of one span.

Go keeps mspan and mSpanList in src/runtime/mheap.go. The model gives them
this file because the record is read and written by every tier (mcache,
mcentral, mheap, the sweeper, stacks), while mheap.py is the page heap; a span's
columns and the equations a span states belong together, below all of them.
See ``__init__.py`` for the overview.

A span's record is the row of ``spans`` at the span's first page (the model's
fixalloc for mspans); the extra row at the end is emptymspan, the span an
empty mcache.alloc slot points at. Per span (mbitmap.py, mgc.py):

    allocated(i) = allocBits[i] or i < freeindex
    allocCount   = popcount(allocated)         (small spans)
    freed        is a subset of allocated       (slots freed or unmarked, not yet swept: mgc.py)
    nelems * elemsize <= npages * page size
    pagemap[page] == span for each of its pages (Go: spanOf)

mSpanList: the ``lists`` rows are doubly linked lists of span records: each
span class's partial and full sets (mcentral.py) and the stack pools
(stacks.py). A span is on at most one list (SPAN_LIST, -1 = none); the
caller holds the lock guarding the list.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.bits import bits_of
from alloclab.strategies.go.layout import CFG_ALLOCBITS_WORDS, CFG_EMPTYMSPAN, CFG_PAGE_SIZE

# ---------------------------------------------------------------- spans: one row per mspan
# Two cache lines, split by who writes them. Line 1 is read by every free of an object in the
# span, from any P, and written only when the span changes hands (refill, uncache, sweep under
# the class lock); line 2 is the owning P's allocation state, written by nextFreeFast on every
# allocation. With both in one line, a free from another P reads a line the owner is writing,
# and the two cores pass it back and forth.
SPAN_BASE = 0           # line 1: what a free (and nextFreeFast) reads; Go's startAddr
SPAN_ELEMSIZE = 1
SPAN_NELEMS = 2
SPAN_DIVMAGIC = 3       # Go's divMul: slot index = (offset * divmagic) >> 32
SPAN_OWNER = 4          # P whose mcache holds the span, -1 = none
SPAN_SPANCLASS = 5      # spanclass (sizeclass << 1 | noscan); stack order for stack-pool spans
SPAN_STATE = 6          # MSPAN_*
SPAN_NPAGES = 7
SPAN_ALLOCCACHE = 8     # line 2: the owner's allocation state; read through the uint64 view (spans_u)
SPAN_FREEINDEX = 9
SPAN_ALLOCCOUNT = 10
SPAN_NEXT = 11          # mSpanList links (class or heap lock held)
SPAN_PREV = 12
SPAN_LIST = 13          # list the span is on, -1 = none
SPAN_SWEEPGEN = 14      # mheap sweepgen when the span was last cached or swept
SPAN_AUX = 15           # stack-pool span: manualFreeList head; large span: 1 = dead, 2 = unmarked (mgc.py)
SPAN_NCOLS = 16

# span states (Go: mSpanDead, mSpanInUse, mSpanManual; the model splits the last two by use)
MSPAN_DEAD = 0          # not the head of a span in use
MSPAN_SMALL = 1         # size-classed objects (mSpanInUse)
MSPAN_LARGE = 2         # one object > max small size (mSpanInUse, class 0)
MSPAN_STACK_POOL = 3    # stackpool span carved into stacks (mSpanManual)
MSPAN_STACK_LARGE = 4   # one large stack (mSpanManual)

# ---------------------------------------------------------------- lists: (head, tail, len, 5 pad) rows, one cache line each
# partial[spc] = spc, full[spc] = nspc + spc, stackpool[order] = CFG_STACKPOOL_LISTS + order
LIST_HEAD = 0
LIST_TAIL = 1
LIST_LEN = 2


# ------------------------------------------------------------------ mSpanList (mheap.go)

@kernel(inline="always")
def list_push_tail(lists, spans, li, s):
    t = lists[li, LIST_TAIL]
    spans[s, SPAN_PREV] = t
    spans[s, SPAN_NEXT] = -1
    spans[s, SPAN_LIST] = li
    if t >= 0:
        spans[t, SPAN_NEXT] = s
    else:
        lists[li, LIST_HEAD] = s
    lists[li, LIST_TAIL] = s
    lists[li, LIST_LEN] += 1


@kernel(inline="always")
def list_push_head(lists, spans, li, s):
    h = lists[li, LIST_HEAD]
    spans[s, SPAN_NEXT] = h
    spans[s, SPAN_PREV] = -1
    spans[s, SPAN_LIST] = li
    if h >= 0:
        spans[h, SPAN_PREV] = s
    else:
        lists[li, LIST_TAIL] = s
    lists[li, LIST_HEAD] = s
    lists[li, LIST_LEN] += 1


@kernel(inline="always")
def list_remove(lists, spans, s):
    li = spans[s, SPAN_LIST]
    n = spans[s, SPAN_NEXT]
    pv = spans[s, SPAN_PREV]
    if pv >= 0:
        spans[pv, SPAN_NEXT] = n
    else:
        lists[li, LIST_HEAD] = n
    if n >= 0:
        spans[n, SPAN_PREV] = pv
    else:
        lists[li, LIST_TAIL] = pv
    lists[li, LIST_LEN] -= 1
    spans[s, SPAN_LIST] = -1
    spans[s, SPAN_NEXT] = -1
    spans[s, SPAN_PREV] = -1


@kernel(inline="always")
def list_pop_head(lists, spans, li):
    s = lists[li, LIST_HEAD]
    if s >= 0:
        list_remove(lists, spans, s)
    return s


# ------------------------------------------------------------------ check (host side)

def walk(head: int, nxt, limit: int, what: str, errs: list) -> list[int]:
    """The members of a linked list from ``head`` (-1 ends it), following ``nxt``; a cycle is an error."""
    out, x = [], head
    while x >= 0:
        out.append(x)
        if len(out) > limit:
            errs.append(f"{what}: list longer than {limit} (a cycle?)")
            break
        x = nxt(x)
    return out


class SpanCensus(NamedTuple):
    """What ``check`` found, for the other tiers' checks."""
    covered: np.ndarray                # page -> it belongs to a span in use
    by_state: dict[int, list[int]]     # MSPAN_* -> spans in that state whose record is sound
    alloc: dict[int, np.ndarray]       # small span -> allocated(i) per slot
    freed: dict[int, np.ndarray]       # small span -> its freed or unmarked bits (mgc.py), all allocBits words
    live: dict[int, np.ndarray]        # small span -> allocated and not freed (mcentral.check takes batched frees out)


def check(st, npages_mapped: int, errs: list[str]) -> SpanCensus:
    """Every span record in use, its pages in the page map, its shape and allocation bits; every mSpanList."""
    cfg = st.cfg
    page, W, empty = int(cfg[CFG_PAGE_SIZE]), int(cfg[CFG_ALLOCBITS_WORDS]), int(cfg[CFG_EMPTYMSPAN])
    spans, end = st.spans, npages_mapped
    census = SpanCensus(np.zeros(end, bool), {k: [] for k in (MSPAN_SMALL, MSPAN_LARGE, MSPAN_STACK_POOL,
                                                               MSPAN_STACK_LARGE)}, {}, {}, {})
    covered = census.covered
    for s in np.flatnonzero(spans[:empty, SPAN_STATE] != MSPAN_DEAD).tolist():
        row = spans[s]
        npg, state = int(row[SPAN_NPAGES]), int(row[SPAN_STATE])
        tag = f"span {s}"
        if int(row[SPAN_BASE]) != s * page or npg < 1 or s + npg > end:
            errs.append(f"{tag}: base {int(row[SPAN_BASE])} / {npg} pages outside the {end} mapped pages")
            continue
        if covered[s:s + npg].any():
            errs.append(f"{tag}: a page belongs to two spans")
        covered[s:s + npg] = True
        if (st.pagemap[s:s + npg] != s).any():
            errs.append(f"{tag}: page map does not point every page at the span")
        nel, esize, cnt = int(row[SPAN_NELEMS]), int(row[SPAN_ELEMSIZE]), int(row[SPAN_ALLOCCOUNT])
        if nel * esize > npg * page:
            errs.append(f"{tag}: {nel} objects of {esize} B overrun its {npg} pages")
        if state == MSPAN_SMALL:
            sc = int(row[SPAN_SPANCLASS]) >> 1
            if not (1 <= sc < st.t_size.shape[0]) or esize != st.t_size[sc] or nel != st.t_nelems[sc] or npg != st.t_npages[sc]:
                errs.append(f"{tag}: shape does not match span class {int(row[SPAN_SPANCLASS])}")
                continue
            alloc_b = bits_of(st.allocbits[s * W:(s + 1) * W], nel)
            alloc_b[:int(row[SPAN_FREEINDEX])] = True
            if int(alloc_b.sum()) != cnt:
                errs.append(f"{tag}: allocCount {cnt} != popcount(allocBits | below freeindex) {int(alloc_b.sum())}")
            half = st.freed.shape[0] // 2    # freed, then unmarked (mgc.py): a slot in either is dead
            freed_b = bits_of((st.freed[s * W:(s + 1) * W] | st.freed[half + s * W:half + (s + 1) * W]).view(np.uint64),
                              W * 64)
            census.alloc[s], census.freed[s] = alloc_b, freed_b
            census.live[s] = alloc_b & ~freed_b[:nel]
        elif state == MSPAN_LARGE:
            if nel != 1 or cnt != 1 or esize != npg * page:
                errs.append(f"{tag}: large span with {nel} objects / count {cnt} / {esize} B")
        elif state not in census.by_state:
            errs.append(f"{tag}: unknown state {state}")
            continue
        census.by_state[state].append(s)
    for li in range(st.lists.shape[0]):
        members = walk(int(st.lists[li, LIST_HEAD]), lambda x: int(spans[x, SPAN_NEXT]), empty, f"list {li}", errs)
        if len(members) != int(st.lists[li, LIST_LEN]) or any(int(spans[x, SPAN_LIST]) != li for x in members):
            errs.append(f"list {li}: length or membership inconsistent")
        if members and int(st.lists[li, LIST_TAIL]) != members[-1]:
            errs.append(f"list {li}: tail is not the last member")
    return census
