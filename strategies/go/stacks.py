"""Goroutine stacks and G descriptors (trace kind ``stack``).

Models src/runtime/stack.go (stackalloc, stackfree, stackpoolalloc,
stackpoolfree, stackcacherefill, stackcacherelease) and the free-G lists of
src/runtime/proc.go (gfget, gfput, malg). See the package docstring.

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

State (per P row of ``mc``; global words in ``gl``), and invariants:
    mc[p, MC_SC_SIZE + o] == (length of mc[p, MC_SC_LIST + o]) * (fixed << o)
    for each stack-pool span: allocCount + length(manualFreeList) == nelems,
        and it is on its order's pool list iff its manualFreeList is not empty
    mc[p, MC_GF_N] == length of p's free-G list;  gl[GL_GF_N] == length of both global lists
"""
from __future__ import annotations

from alloclab.strategies._atomics import atomic_load, spin_lock, spin_unlock
from alloclab.strategies._counters import FAST_HITS, IN_USE, LOCK_CENTRAL, LOCK_GLOBAL
from alloclab.strategies._kernel import kernel
from alloclab.strategies.go.layout import (
    C_FIXED_STACK, C_G_SIZE, C_GFREE_BATCH, C_GFREE_CAP, C_LISTS_STACK, C_NSPC, C_PAGE_SHIFT, C_PAGE_SIZE,
    C_STACK_CACHE, C_STACK_ORDERS, C_STACK_REFILL, C_STACK_SPAN_PAGES, G_LINK, G_STACK, GL_GF_N, GL_GF_NOSTACK,
    GL_GF_STACK, L_HEAD, LK_GFREE, LK_STACK, MC_GF_HEAD, MC_GF_N, MC_GF_ORPHAN, MC_GF_READY, MC_SC_LIST,
    MC_SC_SIZE, SP_ALLOCCOUNT, SP_AUX, SP_BASE, SP_DIVMAGIC, SP_ELEMSIZE, SPAN_STACK_LARGE, SPAN_STACK_POOL,
    X_G_STACK, X_GF_MOVES, X_GF_REUSE, X_SC_HITS, X_SC_REFILLS, X_SC_RELEASES,
)
from alloclab.strategies.go.mcache import mallocgc
from alloclab.strategies.go.mcentral import mheap_alloc
from alloclab.strategies.go.mheap import list_push_head, list_remove, mheap_free_span


@kernel(inline="always")
def stack_round(st, size):
    """round2 with the fixed stack as the floor: Go's stacks are powers of two."""
    n = st.cfg[C_FIXED_STACK]
    while n < size:
        n <<= 1
    return n


@kernel(inline="always")
def pool_lock(st, order):
    return (st.cfg[C_NSPC] + LK_STACK + order) * 8


@kernel
def stackpool_alloc(st, p, order):
    """stackpoolalloc (pool lock held): a stack of the order from the pool's first span, carving a new span if none."""
    cfg = st.cfg
    spans = st.spans
    li = cfg[C_LISTS_STACK] + order
    s = st.lists[li, L_HEAD]
    if s < 0:
        npages = cfg[C_STACK_SPAN_PAGES]
        esize = cfg[C_FIXED_STACK] << order
        nel = (npages << cfg[C_PAGE_SHIFT]) // esize
        s = mheap_alloc(st, p, npages, SPAN_STACK_POOL, order, esize, nel, 0, -1)
        if s < 0:
            return -1
        head = -1
        base = spans[s, SP_BASE]
        for i in range(nel):
            x = base + i * esize
            st.arena64[x >> 3] = head
            head = x
        spans[s, SP_AUX] = head
        list_push_head(st.lists, spans, li, s)
    x = spans[s, SP_AUX]
    spans[s, SP_AUX] = st.arena64[x >> 3]
    spans[s, SP_ALLOCCOUNT] += 1
    if spans[s, SP_AUX] < 0:
        list_remove(st.lists, spans, s)
    return x


@kernel
def stackpool_free(st, p, x, order):
    """stackpoolfree (pool lock held); an empty span goes back to the heap (Go: when no GC is running)."""
    spans = st.spans
    s = st.pagemap[x >> st.cfg[C_PAGE_SHIFT]]
    if spans[s, SP_AUX] < 0:
        list_push_head(st.lists, spans, st.cfg[C_LISTS_STACK] + order, s)
    st.arena64[x >> 3] = spans[s, SP_AUX]
    spans[s, SP_AUX] = x
    n = spans[s, SP_ALLOCCOUNT] - 1
    spans[s, SP_ALLOCCOUNT] = n
    if n == 0:
        list_remove(st.lists, spans, s)
        spans[s, SP_AUX] = -1
        mheap_free_span(st, p, s)


@kernel
def stackcache_refill(st, p, order):
    """stackcacherefill: fill the P's empty cache of the order to stack_cache_refill bytes."""
    esize = st.cfg[C_FIXED_STACK] << order
    lk = pool_lock(st, order)
    spin_lock(st.locks, lk, st.counters, p, LOCK_CENTRAL)
    head = st.mc[p, MC_SC_LIST + order]
    size = st.mc[p, MC_SC_SIZE + order]
    while size < st.cfg[C_STACK_REFILL]:
        x = stackpool_alloc(st, p, order)
        if x < 0:
            break
        st.arena64[x >> 3] = head
        head = x
        size += esize
    spin_unlock(st.locks, lk)
    st.mc[p, MC_SC_LIST + order] = head
    st.mc[p, MC_SC_SIZE + order] = size
    st.counters[p, X_SC_REFILLS] += 1


@kernel
def stackcache_release(st, p, order):
    """stackcacherelease: give stacks back to the pool until the cache holds stack_cache_refill bytes."""
    esize = st.cfg[C_FIXED_STACK] << order
    lk = pool_lock(st, order)
    spin_lock(st.locks, lk, st.counters, p, LOCK_CENTRAL)
    x = st.mc[p, MC_SC_LIST + order]
    size = st.mc[p, MC_SC_SIZE + order]
    while size > st.cfg[C_STACK_REFILL]:
        y = st.arena64[x >> 3]
        stackpool_free(st, p, x, order)
        x = y
        size -= esize
    spin_unlock(st.locks, lk)
    st.mc[p, MC_SC_LIST + order] = x
    st.mc[p, MC_SC_SIZE + order] = size
    st.counters[p, X_SC_RELEASES] += 1


@kernel(inline="always")
def stack_is_cached(st, n):
    cfg = st.cfg
    return n < (cfg[C_FIXED_STACK] << cfg[C_STACK_ORDERS]) and n < cfg[C_STACK_CACHE]


@kernel(inline="always")
def stack_order(st, n):
    o = 0
    m = st.cfg[C_FIXED_STACK]
    while m < n:
        m <<= 1
        o += 1
    return o


@kernel
def stackalloc(st, p, n):
    """stackalloc of a power-of-two size n: the P's stack cache, or a dedicated span; -1 = OOM."""
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        x = st.mc[p, MC_SC_LIST + order]
        if x < 0:
            stackcache_refill(st, p, order)
            x = st.mc[p, MC_SC_LIST + order]
            if x < 0:
                return -1
        else:
            st.counters[p, X_SC_HITS] += 1
            st.counters[p, FAST_HITS] += 1
        st.mc[p, MC_SC_LIST + order] = st.arena64[x >> 3]
        st.mc[p, MC_SC_SIZE + order] -= n
        return x
    shift = st.cfg[C_PAGE_SHIFT]
    npages = (n + st.cfg[C_PAGE_SIZE] - 1) >> shift
    s = mheap_alloc(st, p, npages, SPAN_STACK_LARGE, 0, n, 1, 0, -1)
    if s < 0:
        return -1
    st.spans[s, SP_ALLOCCOUNT] = 1
    return s << shift


@kernel
def stackfree(st, p, x, n):
    """stackfree: into the P's stack cache (releasing half first if it is full), or the span back to the heap."""
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        if st.mc[p, MC_SC_SIZE + order] >= st.cfg[C_STACK_CACHE]:
            stackcache_release(st, p, order)
        st.arena64[x >> 3] = st.mc[p, MC_SC_LIST + order]
        st.mc[p, MC_SC_LIST + order] = x
        st.mc[p, MC_SC_SIZE + order] += n
        return
    mheap_free_span(st, p, st.pagemap[x >> st.cfg[C_PAGE_SHIFT]])


@kernel(inline="always")
def stack_alloc_entry(st, p, size):
    """A goroutine stack: the starting stack that came with a reused G if there is one, else the
    P's stack cache (inline: the common case), else stackalloc."""
    n = stack_round(st, size)
    if n == st.cfg[C_FIXED_STACK]:
        x = st.mc[p, MC_GF_READY]
        if x >= 0:
            st.mc[p, MC_GF_READY] = -1
        else:
            x = st.mc[p, MC_GF_ORPHAN]
            st.mc[p, MC_GF_ORPHAN] = -1
        if x >= 0:
            st.counters[p, X_G_STACK] += 1
            st.counters[p, FAST_HITS] += 1
            st.counters[p, IN_USE] += n
            return x
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        x = st.mc[p, MC_SC_LIST + order]
        if x >= 0:
            st.mc[p, MC_SC_LIST + order] = st.arena64[x >> 3]
            st.mc[p, MC_SC_SIZE + order] -= n
            st.counters[p, X_SC_HITS] += 1
            st.counters[p, FAST_HITS] += 1
            st.counters[p, IN_USE] += n
            return x
    x = stackalloc(st, p, n)
    if x >= 0:
        st.counters[p, IN_USE] += n
    return x


@kernel(inline="always")
def stack_free_entry(st, p, x, size):
    """A goroutine's stack at exit. gfput keeps a starting-size stack on the dead G; the trace frees
    the stack and the G separately, so the stack goes onto this P's most recently freed G if that G
    has none, else waits in the P's orphan slot for the next gfput; anything else is stackfree'd."""
    n = stack_round(st, size)
    st.counters[p, IN_USE] -= n
    if n == st.cfg[C_FIXED_STACK]:
        top = st.mc[p, MC_GF_HEAD]
        if top >= 0 and st.arena64[(top + G_STACK) >> 3] < 0:
            st.arena64[(top + G_STACK) >> 3] = x
            return
        if st.mc[p, MC_GF_ORPHAN] < 0:
            st.mc[p, MC_GF_ORPHAN] = x
            return
    if stack_is_cached(st, n):
        order = stack_order(st, n)
        if st.mc[p, MC_SC_SIZE + order] < st.cfg[C_STACK_CACHE]:
            st.arena64[x >> 3] = st.mc[p, MC_SC_LIST + order]
            st.mc[p, MC_SC_LIST + order] = x
            st.mc[p, MC_SC_SIZE + order] += n
            return
    stackfree(st, p, x, n)


@kernel(inline="always")
def g_slot_room(st, g):
    """Bytes from G address g to the end of its heap slot."""
    s = st.pagemap[g >> st.cfg[C_PAGE_SHIFT]]
    base = st.spans[s, SP_BASE]
    esize = st.spans[s, SP_ELEMSIZE]
    idx = ((g - base) * st.spans[s, SP_DIVMAGIC]) >> 32
    return base + (idx + 1) * esize - g


@kernel(inline="always")
def gfget(st, p, size):
    """gfget: pop the P's free-G list (inline: the common case), else gfget_slow."""
    g = st.mc[p, MC_GF_HEAD]
    if g >= 0 and st.mc[p, MC_GF_READY] < 0 and g_slot_room(st, g) >= max(size, st.cfg[C_G_SIZE]):
        st.mc[p, MC_GF_HEAD] = st.arena64[(g + G_LINK) >> 3]
        st.mc[p, MC_GF_N] -= 1
        st.mc[p, MC_GF_READY] = st.arena64[(g + G_STACK) >> 3]
        st.counters[p, X_GF_REUSE] += 1
        st.counters[p, FAST_HITS] += 1
        st.counters[p, IN_USE] += st.spans[st.pagemap[g >> st.cfg[C_PAGE_SHIFT]], SP_ELEMSIZE]
        return g
    return gfget_slow(st, p, size)


@kernel
def gfget_slow(st, p, size):
    """gfget with a global-list refill (+ malg when no free G exists); -1 = OOM."""
    cfg = st.cfg
    gl = st.gl
    locked = False
    if st.mc[p, MC_GF_N] == 0 and atomic_load(gl, GL_GF_N) > 0:
        lk = (cfg[C_NSPC] + LK_GFREE) * 8
        spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
        locked = True
        while st.mc[p, MC_GF_N] < cfg[C_GFREE_BATCH]:
            g = gl[GL_GF_STACK]
            if g >= 0:
                gl[GL_GF_STACK] = st.arena64[(g + G_LINK) >> 3]
            else:
                g = gl[GL_GF_NOSTACK]
                if g < 0:
                    break
                gl[GL_GF_NOSTACK] = st.arena64[(g + G_LINK) >> 3]
            gl[GL_GF_N] -= 1
            st.arena64[(g + G_LINK) >> 3] = st.mc[p, MC_GF_HEAD]
            st.mc[p, MC_GF_HEAD] = g
            st.mc[p, MC_GF_N] += 1
            st.counters[p, X_GF_MOVES] += 1
        spin_unlock(st.locks, lk)
    need = max(size, cfg[C_G_SIZE])
    g = st.mc[p, MC_GF_HEAD]
    if g >= 0 and g_slot_room(st, g) >= need:
        st.mc[p, MC_GF_HEAD] = st.arena64[(g + G_LINK) >> 3]
        st.mc[p, MC_GF_N] -= 1
        stk = st.arena64[(g + G_STACK) >> 3]
        if stk >= 0:
            old = st.mc[p, MC_GF_READY]
            if old >= 0:
                stackfree(st, p, old, cfg[C_FIXED_STACK])
            st.mc[p, MC_GF_READY] = stk
        st.counters[p, X_GF_REUSE] += 1
        if not locked:
            st.counters[p, FAST_HITS] += 1
        s = st.pagemap[g >> cfg[C_PAGE_SHIFT]]
        st.counters[p, IN_USE] += st.spans[s, SP_ELEMSIZE]
        return g
    return mallocgc(st, p, need, 0)   # malg: new(g), a pointerful heap object


@kernel(inline="always")
def gfput(st, p, g):
    """gfput: the dead G (with the P's orphan starting stack, if any) onto the P's free-G list."""
    cfg = st.cfg
    s = st.pagemap[g >> cfg[C_PAGE_SHIFT]]
    st.counters[p, IN_USE] -= st.spans[s, SP_ELEMSIZE]
    st.arena64[(g + G_STACK) >> 3] = st.mc[p, MC_GF_ORPHAN]
    st.mc[p, MC_GF_ORPHAN] = -1
    st.arena64[(g + G_LINK) >> 3] = st.mc[p, MC_GF_HEAD]
    st.mc[p, MC_GF_HEAD] = g
    st.mc[p, MC_GF_N] += 1
    if st.mc[p, MC_GF_N] >= cfg[C_GFREE_CAP]:
        gfput_spill(st, p)


@kernel
def gfput_spill(st, p):
    """gfput's batch move: Gs go to the global list until fewer than gfree_batch remain."""
    cfg = st.cfg
    gl = st.gl
    lk = (cfg[C_NSPC] + LK_GFREE) * 8
    spin_lock(st.locks, lk, st.counters, p, LOCK_GLOBAL)
    while st.mc[p, MC_GF_N] >= cfg[C_GFREE_BATCH]:
        x = st.mc[p, MC_GF_HEAD]
        st.mc[p, MC_GF_HEAD] = st.arena64[(x + G_LINK) >> 3]
        st.mc[p, MC_GF_N] -= 1
        col = GL_GF_STACK if st.arena64[(x + G_STACK) >> 3] >= 0 else GL_GF_NOSTACK
        st.arena64[(x + G_LINK) >> 3] = gl[col]
        gl[col] = x
        gl[GL_GF_N] += 1
        st.counters[p, X_GF_MOVES] += 1
    spin_unlock(st.locks, lk)
