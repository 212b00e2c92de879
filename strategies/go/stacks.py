"""Goroutine stacks and G descriptors (trace kind ``stack``).

Models src/runtime/stack.go (stackalloc, stackfree, stackpoolalloc,
stackpoolfree, stackcacherefill, stackcacherelease) and the free-G lists of
src/runtime/proc.go (gfget, gfput, malg). See __init__.py for an overview.

Stacks are powers of two from ``fixed_stack`` (2 KiB). Orders 0..
``stack_orders``-1 (2/4/8/16 KiB) below ``stack_cache_size`` come from the
P's stack cache, a linked list per order threaded through the free stacks'
first words (Go's gclinkptr); an empty cache is refilled from the global
stack pool of that order to ``stack_cache_refill`` bytes, and a cache that
reaches ``stack_cache_size`` is drained back to that level. The pool of an
order is a list of spans of ``stack_cache_size`` bytes carved into stacks,
each span with its own free list (mspan.manualFreeList) and a lock per
order (LOCK_CENTRAL). Larger stacks are dedicated spans from the heap.

G descriptors (kind ``stack``, size < 2 KiB) are never freed, as in Go: an
exiting goroutine's G goes on its P's free-G list (gfput); when the list
reaches ``gfree_local_cap`` (64) Gs, the P moves Gs to the global list until
fewer than ``gfree_batch`` (32) remain, under the global sched.gFree lock
(LOCK_GLOBAL). A spawn (gfget) pops the local list, first refilling it with
up to ``gfree_batch`` Gs from the global list if it is empty, and only when
no free G exists makes a new one (malg: new(g), ``g_size`` = 440 bytes, via
mallocgc). A G keeps its starting-size stack across reuse: the trace frees
and allocates the stack as its own object, so the model pairs them per P
(see ``stack_free_entry``).

State: per P, the stack cache (MCACHE_STACKCACHE_* of ``mc``, Go's
mcache.stackcache) and the free-G list (PP_GFREE_*, Go's p.gFree); the
global free-G lists (SCHED_GFREE_* of ``gl``); the stack-pool lists (from
CFG_STACKPOOL_LISTS in ``lists``); the words of a G's own memory (GDESC_*).
Invariants (``check``):
    mc[p, MCACHE_STACKCACHE_SIZE + o] == (length of mc[p, MCACHE_STACKCACHE_LIST + o]) * (fixed << o)
    for each stack-pool span: stacks of fixed << order bytes; allocCount + length(manualFreeList) == nelems,
        and it is on its order's pool list iff its manualFreeList is not empty
    mc[p, PP_GFREE_N] == length of p's free-G list;  gl[SCHED_GFREE_N] == length of both global lists,
        sched.gFree.stack holding exactly the Gs with a stack
"""
from __future__ import annotations

from alloclab.strategies._atomics import atomic_load, spin_lock, spin_unlock
from alloclab.strategies._counters import FAST_HITS, IN_USE, LOCK_CENTRAL, LOCK_GLOBAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.layout import (
    CFG_FIXED_STACK, CFG_G_SIZE, CFG_GFREE_BATCH, CFG_GFREE_LOCAL_CAP, CFG_NUM_SPANCLASSES, CFG_NUM_STACK_ORDERS,
    CFG_PAGE_SHIFT, CFG_PAGE_SIZE, CFG_STACK_CACHE_REFILL, CFG_STACK_CACHE_SIZE, CFG_STACK_SPAN_PAGES,
    CFG_STACKPOOL_LISTS, LK_GFREE, LK_STACKPOOL, X_G_STACK, X_GF_MOVES, X_GF_REUSE, X_SC_HITS, X_SC_REFILLS,
    X_SC_RELEASES,
)
from alloclab.strategies.go.mcache import MCACHE_STACKCACHE_LIST, MCACHE_STACKCACHE_SIZE, mallocgc
from alloclab.strategies.go.mgc import PP_STACK_BYTES
from alloclab.strategies.go.mheap import mheap_alloc, mheap_free_span
from alloclab.strategies.go.mspan import (
    LIST_HEAD, MSPAN_STACK_LARGE, MSPAN_STACK_POOL, SPAN_ALLOCCOUNT, SPAN_AUX, SPAN_BASE, SPAN_DIVMAGIC,
    SPAN_ELEMSIZE, SPAN_LIST, SPAN_NELEMS, SPAN_SPANCLASS, list_push_head, list_remove, walk,
)

# ---------------------------------------------------------------- mc: the P's free Gs (Go: p.gFree)
PP_GFREE_HEAD = 6         # p.gFree list head (G address), -1 = empty
PP_GFREE_N = 7
PP_GFREE_READY = 8        # starting-size stack of the G handed out last, waiting for its stack alloc
PP_GFREE_ORPHAN = 9       # starting-size stack freed before its G: attached at the next gfput

# ---------------------------------------------------------------- gl: sched.gFree words, one per cache line
SCHED_GFREE_STACK = 9 * 8     # sched.gFree.stack head
SCHED_GFREE_NOSTACK = 10 * 8  # sched.gFree.noStack head
SCHED_GFREE_N = 11 * 8

# ---------------------------------------------------------------- G descriptor words (in the G's own memory)
GDESC_SCHEDLINK = 8       # next G on a free list (g.schedlink)
GDESC_STACK = 16          # attached starting-size stack, -1 = none (g.stack.lo)
GDESC_LIMIT = 2048        # KIND_STACK objects below this size are G descriptors (the trace contract)


@kernel(inline="always")
def stack_round(st, size):
    """round2 with the fixed stack as the floor: Go's stacks are powers of two."""
    n = st.cfg[CFG_FIXED_STACK]
    while n < size:
        n <<= 1
    return n


@kernel(inline="always")
def pool_lock(st, order):
    return (st.cfg[CFG_NUM_SPANCLASSES] + LK_STACKPOOL + order) * 8


@kernel
def stackpool_alloc(st, p, order):
    """stackpoolalloc (pool lock held): a stack of the order from the pool's first span, carving a new span if none."""
    cfg = st.cfg
    spans = st.spans
    li = cfg[CFG_STACKPOOL_LISTS] + order
    s = st.lists[li, LIST_HEAD]
    if s < 0:
        npages = cfg[CFG_STACK_SPAN_PAGES]
        esize = cfg[CFG_FIXED_STACK] << order
        nel = (npages << cfg[CFG_PAGE_SHIFT]) // esize
        s = mheap_alloc(st, p, npages, MSPAN_STACK_POOL, order, esize, nel, 0, -1)
        if s < 0:
            return -1
        head = -1
        base = spans[s, SPAN_BASE]
        for i in range(nel):
            x = base + i * esize
            st.arena64[x >> 3] = head
            head = x
        spans[s, SPAN_AUX] = head
        list_push_head(st.lists, spans, li, s)
    x = spans[s, SPAN_AUX]
    spans[s, SPAN_AUX] = st.arena64[x >> 3]
    spans[s, SPAN_ALLOCCOUNT] += 1
    if spans[s, SPAN_AUX] < 0:
        list_remove(st.lists, spans, s)
    return x


@kernel
def stackpool_free(st, p, x, order):
    """stackpoolfree (pool lock held); an empty span goes back to the heap (Go: when no GC is running)."""
    spans = st.spans
    s = st.pagemap[x >> st.cfg[CFG_PAGE_SHIFT]]
    if spans[s, SPAN_AUX] < 0:
        list_push_head(st.lists, spans, st.cfg[CFG_STACKPOOL_LISTS] + order, s)
    st.arena64[x >> 3] = spans[s, SPAN_AUX]
    spans[s, SPAN_AUX] = x
    n = spans[s, SPAN_ALLOCCOUNT] - 1
    spans[s, SPAN_ALLOCCOUNT] = n
    if n == 0:
        list_remove(st.lists, spans, s)
        spans[s, SPAN_AUX] = -1
        mheap_free_span(st, p, s)


@kernel
def stackcache_refill(st, p, order):
    """stackcacherefill: fill the P's empty cache of the order to stack_cache_refill bytes."""
    esize = st.cfg[CFG_FIXED_STACK] << order
    lk = pool_lock(st, order)
    spin_lock(st.locks, lk, st.counters, p, LOCK_CENTRAL)
    head = st.mc[p, MCACHE_STACKCACHE_LIST + order]
    size = st.mc[p, MCACHE_STACKCACHE_SIZE + order]
    while size < st.cfg[CFG_STACK_CACHE_REFILL]:
        x = stackpool_alloc(st, p, order)
        if x < 0:
            break
        st.arena64[x >> 3] = head
        head = x
        size += esize
    spin_unlock(st.locks, lk)
    st.mc[p, MCACHE_STACKCACHE_LIST + order] = head
    st.mc[p, MCACHE_STACKCACHE_SIZE + order] = size
    st.counters[p, X_SC_REFILLS] += 1


@kernel
def stackcache_release(st, p, order):
    """stackcacherelease: give stacks back to the pool until the cache holds stack_cache_refill bytes."""
    esize = st.cfg[CFG_FIXED_STACK] << order
    lk = pool_lock(st, order)
    spin_lock(st.locks, lk, st.counters, p, LOCK_CENTRAL)
    x = st.mc[p, MCACHE_STACKCACHE_LIST + order]
    size = st.mc[p, MCACHE_STACKCACHE_SIZE + order]
    while size > st.cfg[CFG_STACK_CACHE_REFILL]:
        y = st.arena64[x >> 3]
        stackpool_free(st, p, x, order)
        x = y
        size -= esize
    spin_unlock(st.locks, lk)
    st.mc[p, MCACHE_STACKCACHE_LIST + order] = x
    st.mc[p, MCACHE_STACKCACHE_SIZE + order] = size
    st.counters[p, X_SC_RELEASES] += 1


@kernel(inline="always")
def stack_is_cached(st, n):
    cfg = st.cfg
    return n < (cfg[CFG_FIXED_STACK] << cfg[CFG_NUM_STACK_ORDERS]) and n < cfg[CFG_STACK_CACHE_SIZE]


@kernel(inline="always")
def stack_order(st, n):
    o = 0
    m = st.cfg[CFG_FIXED_STACK]
    while m < n:
        m <<= 1
        o += 1
    return o


@kernel
def stackalloc(st, p, n):
    """stackalloc of a power-of-two size n: the P's stack cache, or a dedicated span; -1 = OOM."""
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        x = st.mc[p, MCACHE_STACKCACHE_LIST + order]
        if x < 0:
            stackcache_refill(st, p, order)
            x = st.mc[p, MCACHE_STACKCACHE_LIST + order]
            if x < 0:
                return -1
        else:
            st.counters[p, X_SC_HITS] += 1
            st.counters[p, FAST_HITS] += 1
        st.mc[p, MCACHE_STACKCACHE_LIST + order] = st.arena64[x >> 3]
        st.mc[p, MCACHE_STACKCACHE_SIZE + order] -= n
        return x
    shift = st.cfg[CFG_PAGE_SHIFT]
    npages = (n + st.cfg[CFG_PAGE_SIZE] - 1) >> shift
    s = mheap_alloc(st, p, npages, MSPAN_STACK_LARGE, 0, n, 1, 0, -1)
    if s < 0:
        return -1
    st.spans[s, SPAN_ALLOCCOUNT] = 1
    return s << shift


@kernel
def stackfree(st, p, x, n):
    """stackfree: into the P's stack cache (releasing half first if it is full), or the span back to the heap."""
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        if st.mc[p, MCACHE_STACKCACHE_SIZE + order] >= st.cfg[CFG_STACK_CACHE_SIZE]:
            stackcache_release(st, p, order)
        st.arena64[x >> 3] = st.mc[p, MCACHE_STACKCACHE_LIST + order]
        st.mc[p, MCACHE_STACKCACHE_LIST + order] = x
        st.mc[p, MCACHE_STACKCACHE_SIZE + order] += n
        return
    mheap_free_span(st, p, st.pagemap[x >> st.cfg[CFG_PAGE_SHIFT]])


@kernel(inline="always")
def stack_alloc_entry(st, p, size):
    """A goroutine stack: the starting stack that came with a reused G if there is one, else the
    P's stack cache (inline: the common case), else stackalloc."""
    n = stack_round(st, size)
    if n == st.cfg[CFG_FIXED_STACK]:
        x = st.mc[p, PP_GFREE_READY]
        if x >= 0:
            st.mc[p, PP_GFREE_READY] = -1
        else:
            x = st.mc[p, PP_GFREE_ORPHAN]
            st.mc[p, PP_GFREE_ORPHAN] = -1
        if x >= 0:
            st.counters[p, X_G_STACK] += 1
            st.counters[p, FAST_HITS] += 1
            st.counters[p, IN_USE] += n
            st.mc[p, PP_STACK_BYTES] += n
            return x
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        x = st.mc[p, MCACHE_STACKCACHE_LIST + order]
        if x >= 0:
            st.mc[p, MCACHE_STACKCACHE_LIST + order] = st.arena64[x >> 3]
            st.mc[p, MCACHE_STACKCACHE_SIZE + order] -= n
            st.counters[p, X_SC_HITS] += 1
            st.counters[p, FAST_HITS] += 1
            st.counters[p, IN_USE] += n
            st.mc[p, PP_STACK_BYTES] += n
            return x
    x = stackalloc(st, p, n)
    if x >= 0:
        st.counters[p, IN_USE] += n
        st.mc[p, PP_STACK_BYTES] += n
    return x


@kernel(inline="always")
def stack_free_entry(st, p, x, size):
    """A goroutine's stack at exit. gfput keeps a starting-size stack on the dead G; the trace frees
    the stack and the G separately, so the stack goes onto this P's most recently freed G if that G
    has none, else waits in the P's orphan slot for the next gfput; anything else is stackfree'd."""
    n = stack_round(st, size)
    st.counters[p, IN_USE] -= n
    st.mc[p, PP_STACK_BYTES] -= n
    if n == st.cfg[CFG_FIXED_STACK]:
        top = st.mc[p, PP_GFREE_HEAD]
        if top >= 0 and st.arena64[(top + GDESC_STACK) >> 3] < 0:
            st.arena64[(top + GDESC_STACK) >> 3] = x
            return
        if st.mc[p, PP_GFREE_ORPHAN] < 0:
            st.mc[p, PP_GFREE_ORPHAN] = x
            return
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        if st.mc[p, MCACHE_STACKCACHE_SIZE + order] < st.cfg[CFG_STACK_CACHE_SIZE]:
            st.arena64[x >> 3] = st.mc[p, MCACHE_STACKCACHE_LIST + order]
            st.mc[p, MCACHE_STACKCACHE_LIST + order] = x
            st.mc[p, MCACHE_STACKCACHE_SIZE + order] += n
            return
    stackfree(st, p, x, n)


@kernel(inline="always")
def g_slot_room(st, g):
    """Bytes from G address g to the end of its heap slot."""
    s = st.pagemap[g >> st.cfg[CFG_PAGE_SHIFT]]
    base = st.spans[s, SPAN_BASE]
    esize = st.spans[s, SPAN_ELEMSIZE]
    idx = ((g - base) * st.spans[s, SPAN_DIVMAGIC]) >> 32
    return base + (idx + 1) * esize - g


@kernel(inline="always")
def gfget(st, p, size):
    """gfget: pop the P's free-G list (inline: the common case), else gfget_slow."""
    g = st.mc[p, PP_GFREE_HEAD]
    if g >= 0 and st.mc[p, PP_GFREE_READY] < 0 and g_slot_room(st, g) >= max(size, st.cfg[CFG_G_SIZE]):
        st.mc[p, PP_GFREE_HEAD] = st.arena64[(g + GDESC_SCHEDLINK) >> 3]
        st.mc[p, PP_GFREE_N] -= 1
        st.mc[p, PP_GFREE_READY] = st.arena64[(g + GDESC_STACK) >> 3]
        st.counters[p, X_GF_REUSE] += 1
        st.counters[p, FAST_HITS] += 1
        st.counters[p, IN_USE] += st.spans[st.pagemap[g >> st.cfg[CFG_PAGE_SHIFT]], SPAN_ELEMSIZE]
        return g
    return gfget_slow(st, p, size)


@kernel
def gfget_slow(st, p, size):
    """gfget with a global-list refill (+ malg when no free G exists); -1 = OOM."""
    cfg = st.cfg
    gl = st.gl
    locked = False
    if st.mc[p, PP_GFREE_N] == 0 and atomic_load(gl, SCHED_GFREE_N) > 0:
        lk = (cfg[CFG_NUM_SPANCLASSES] + LK_GFREE) * 8
        spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
        locked = True
        while st.mc[p, PP_GFREE_N] < cfg[CFG_GFREE_BATCH]:
            g = gl[SCHED_GFREE_STACK]
            if g >= 0:
                gl[SCHED_GFREE_STACK] = st.arena64[(g + GDESC_SCHEDLINK) >> 3]
            else:
                g = gl[SCHED_GFREE_NOSTACK]
                if g < 0:
                    break
                gl[SCHED_GFREE_NOSTACK] = st.arena64[(g + GDESC_SCHEDLINK) >> 3]
            gl[SCHED_GFREE_N] -= 1
            st.arena64[(g + GDESC_SCHEDLINK) >> 3] = st.mc[p, PP_GFREE_HEAD]
            st.mc[p, PP_GFREE_HEAD] = g
            st.mc[p, PP_GFREE_N] += 1
            st.counters[p, X_GF_MOVES] += 1
        spin_unlock(st.locks, lk)
    need = max(size, cfg[CFG_G_SIZE])
    g = st.mc[p, PP_GFREE_HEAD]
    if g >= 0 and g_slot_room(st, g) >= need:
        st.mc[p, PP_GFREE_HEAD] = st.arena64[(g + GDESC_SCHEDLINK) >> 3]
        st.mc[p, PP_GFREE_N] -= 1
        stk = st.arena64[(g + GDESC_STACK) >> 3]
        if stk >= 0:
            old = st.mc[p, PP_GFREE_READY]
            if old >= 0:
                stackfree(st, p, old, cfg[CFG_FIXED_STACK])
            st.mc[p, PP_GFREE_READY] = stk
        st.counters[p, X_GF_REUSE] += 1
        if not locked:
            st.counters[p, FAST_HITS] += 1
        s = st.pagemap[g >> cfg[CFG_PAGE_SHIFT]]
        st.counters[p, IN_USE] += st.spans[s, SPAN_ELEMSIZE]
        return g
    return mallocgc(st, p, need, 0)   # malg: new(g), a pointerful heap object


@kernel(inline="always")
def gfput(st, p, g):
    """gfput: the dead G (with the P's orphan starting stack, if any) onto the P's free-G list."""
    cfg = st.cfg
    s = st.pagemap[g >> cfg[CFG_PAGE_SHIFT]]
    st.counters[p, IN_USE] -= st.spans[s, SPAN_ELEMSIZE]
    st.arena64[(g + GDESC_STACK) >> 3] = st.mc[p, PP_GFREE_ORPHAN]
    st.mc[p, PP_GFREE_ORPHAN] = -1
    st.arena64[(g + GDESC_SCHEDLINK) >> 3] = st.mc[p, PP_GFREE_HEAD]
    st.mc[p, PP_GFREE_HEAD] = g
    st.mc[p, PP_GFREE_N] += 1
    if st.mc[p, PP_GFREE_N] >= cfg[CFG_GFREE_LOCAL_CAP]:
        gfput_spill(st, p)


@kernel
def gfput_spill(st, p):
    """gfput's batch move: Gs go to the global list until fewer than gfree_batch remain."""
    cfg = st.cfg
    gl = st.gl
    lk = (cfg[CFG_NUM_SPANCLASSES] + LK_GFREE) * 8
    spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
    while st.mc[p, PP_GFREE_N] >= cfg[CFG_GFREE_BATCH]:
        x = st.mc[p, PP_GFREE_HEAD]
        st.mc[p, PP_GFREE_HEAD] = st.arena64[(x + GDESC_SCHEDLINK) >> 3]
        st.mc[p, PP_GFREE_N] -= 1
        col = SCHED_GFREE_STACK if st.arena64[(x + GDESC_STACK) >> 3] >= 0 else SCHED_GFREE_NOSTACK
        st.arena64[(x + GDESC_SCHEDLINK) >> 3] = gl[col]
        gl[col] = x
        gl[SCHED_GFREE_N] += 1
        st.counters[p, X_GF_MOVES] += 1
    spin_unlock(st.locks, lk)


# ------------------------------------------------------------------ check (host side)

def check(st, census, errs: list[str]) -> int:
    """The invariants of the module docstring; returns what stacks and Gs add to IN_USE: the power-of-two
    size per live stack, less the G descriptors on free lists (their heap slots count as live objects
    in mcache.check, but IN_USE dropped them at gfput). ``census`` is mspan.check's."""
    cfg, spans, gl, a64 = st.cfg, st.spans, st.gl, st.arena64
    nprocs, page, shift = st.mc.shape[0], int(cfg[CFG_PAGE_SIZE]), int(cfg[CFG_PAGE_SHIFT])
    fixed = int(cfg[CFG_FIXED_STACK])
    stack_bytes = 0
    for s in census.by_state[MSPAN_STACK_POOL]:
        row, tag = spans[s], f"span {s}"
        order, esize, nel, cnt = int(row[SPAN_SPANCLASS]), int(row[SPAN_ELEMSIZE]), int(row[SPAN_NELEMS]), int(row[SPAN_ALLOCCOUNT])
        if esize != fixed << order:
            errs.append(f"{tag}: stack pool span of order {order} has {esize}-byte stacks")
        fl = walk(int(row[SPAN_AUX]), lambda x: int(a64[x >> 3]), nel, tag + " manualFreeList", errs)
        if any(not (s * page <= x < s * page + nel * esize) or (x - s * page) % esize for x in fl):
            errs.append(f"{tag}: manualFreeList holds an address outside its stacks")
        if cnt + len(fl) != nel:
            errs.append(f"{tag}: allocCount {cnt} + {len(fl)} free stacks != {nel}")
        if (int(row[SPAN_LIST]) == int(cfg[CFG_STACKPOOL_LISTS]) + order) != (len(fl) > 0):
            errs.append(f"{tag}: on its pool list iff it has free stacks, violated")
        stack_bytes += cnt * (fixed << order)      # handed out: to a goroutine, a stack cache, a dead G
    for s in census.by_state[MSPAN_STACK_LARGE]:
        stack_bytes += int(spans[s, SPAN_ELEMSIZE])
    for p in range(nprocs):
        for o in range(int(cfg[CFG_NUM_STACK_ORDERS])):
            lst = walk(int(st.mc[p, MCACHE_STACKCACHE_LIST + o]), lambda x: int(a64[x >> 3]), 1 << 20,
                       f"P{p} stack cache {o}", errs)
            if len(lst) * (fixed << o) != int(st.mc[p, MCACHE_STACKCACHE_SIZE + o]):
                errs.append(f"P{p}: stack cache order {o} holds {len(lst)} stacks but says "
                            f"{int(st.mc[p, MCACHE_STACKCACHE_SIZE + o])} B")
            stack_bytes -= len(lst) * (fixed << o)

    def g_bytes(g):
        s = int(st.pagemap[g >> shift])
        return int(spans[s, SPAN_ELEMSIZE]) if s >= 0 else 0

    parked = dead_g_bytes = 0      # starting stacks kept for dead Gs; the dead Gs' own slots
    for p in range(nprocs):
        gs = walk(int(st.mc[p, PP_GFREE_HEAD]), lambda g: int(a64[(g + GDESC_SCHEDLINK) >> 3]), 1 << 22,
                  f"P{p} gFree", errs)
        if len(gs) != int(st.mc[p, PP_GFREE_N]):
            errs.append(f"P{p}: gFree.n {int(st.mc[p, PP_GFREE_N])} != {len(gs)} listed")
        parked += sum(fixed for g in gs if a64[(g + GDESC_STACK) >> 3] >= 0)
        dead_g_bytes += sum(g_bytes(g) for g in gs)
        parked += fixed * sum(int(st.mc[p, c]) >= 0 for c in (PP_GFREE_READY, PP_GFREE_ORPHAN))
    nglobal = 0
    for col in (SCHED_GFREE_STACK, SCHED_GFREE_NOSTACK):
        gs = walk(int(gl[col]), lambda g: int(a64[(g + GDESC_SCHEDLINK) >> 3]), 1 << 22, "sched.gFree", errs)
        nglobal += len(gs)
        with_stack = [a64[(g + GDESC_STACK) >> 3] >= 0 for g in gs]
        if any(w != (col == SCHED_GFREE_STACK) for w in with_stack):
            errs.append("sched.gFree: a G sits on the wrong (stack / noStack) list")
        parked += fixed * sum(with_stack)
        dead_g_bytes += sum(g_bytes(g) for g in gs)
    if nglobal != int(gl[SCHED_GFREE_N]):
        errs.append(f"sched.gFree.n {int(gl[SCHED_GFREE_N])} != {nglobal} listed")
    return stack_bytes - parked - dead_g_bytes
