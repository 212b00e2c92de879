"""Where each piece of the Go model's state lives: column and slot numbers of the State arrays.

See the package docstring (``alloclab.strategies.go``) for the design. Every
structure that Go keeps as a struct is a row of an int64 array here, so that
kernels take arrays and scalars only; this module names the columns.
"""
from __future__ import annotations

from alloclab.strategies._counters import EXTRA_BASE

# ---------------------------------------------------------------- cfg: constants of one run
C_PAGE_SHIFT = 0
C_PAGE_SIZE = 1
C_SMALL_LIMIT = 2        # largest size served by a size class (max_small_size - malloc header)
C_HEADER = 3             # malloc header bytes for pointerful objects above C_HEADER_MIN (0 = off)
C_HEADER_MIN = 4         # Go's minSizeForMallocHeader (512 B on 64-bit)
C_TINY = 5               # tiny block bytes (0 = tiny allocator off)
C_TINY_SHIFT = 6         # log2(tiny)
C_TINY_SPC = 7           # span class of tiny blocks (tinySpanClass: noscan class of `tiny` bytes)
C_SMALL_SIZE_MAX = 8     # size_to_class8 covers sizes <= this - 8
C_SMALL_DIV = 9
C_LARGE_DIV = 10
C_PCACHE_PAGES = 11      # pageCachePages (0 = no page cache)
C_PCACHE_MAXN = 12       # page cache serves spans of fewer pages than this (pageCachePages / 4)
C_GROWTH_PAGES = 13      # heap growth step in pages (pallocChunkPages)
C_ARENA_BYTES = 14       # heapArenaBytes: reservation unit
C_NSPC = 15              # number of span classes (2 x number of size classes)
C_W = 16                 # 64-bit words of allocBits per span
C_DUMMY = 17             # index of the dummy span (Go's emptymspan)
C_GOGC = 18              # 0 = frees take effect at once; > 0 = deferred to modelled GC cycles
C_MIN_HEAP = 19          # heapMinimum at GOGC=100 (4 MiB)
C_FIXED_STACK = 20
C_STACK_ORDERS = 21
C_STACK_CACHE = 22       # _StackCacheSize: a P's per-order cache is released above this
C_STACK_REFILL = 23      # refill / release target (Go: _StackCacheSize / 2)
C_STACK_SPAN_PAGES = 24  # pages of one stack-pool span
C_GFREE_CAP = 25
C_GFREE_BATCH = 26
C_G_SIZE = 27
C_NPROCS = 28
C_ARENA_PAGES = 29
C_LISTS_STACK = 30       # first stack-pool list id
C_FREE_BATCH = 31        # explicit frees a P batches per span class before one class-lock hold (gogc = 0)
NCFG = 32

# ---------------------------------------------------------------- spans: one row per mspan
# A span's record is the row of its first page (the model's fixalloc for mspans).
# Two cache lines, split by who writes them. Line 1 is read by every free of an object in the
# span, from any P, and written only when the span changes hands (refill, uncache, sweep under
# the class lock); line 2 is the owning P's allocation state, written by nextFreeFast on every
# allocation. With both in one line, a cross-P free (23% of web's frees) read a line the owner
# was writing, and the two cores passed it back and forth.
SP_BASE = 0           # line 1: what a free (and nextFreeFast) reads
SP_ELEMSIZE = 1
SP_NELEMS = 2
SP_DIVMAGIC = 3
SP_OWNER = 4          # P whose mcache holds the span, -1 = none
SP_SPC = 5            # span class (sizeclass << 1 | noscan); stack order for stack-pool spans
SP_STATE = 6
SP_NPAGES = 7
SP_ALLOCCACHE = 8     # line 2: the owner's allocation state; read through the uint64 view (spans_u)
SP_FREEINDEX = 9
SP_ALLOCCOUNT = 10
SP_NEXT = 11          # mSpanList links (class or heap lock held)
SP_PREV = 12
SP_LIST = 13          # list the span is on, -1 = none
SP_SWEEPGEN = 14      # mheap sweepgen when the span was last cached or swept
SP_AUX = 15           # stack-pool span: manualFreeList head; large span: 1 = dead, awaiting GC
NSF = 16

SPAN_FREE = 0         # not the head of a span in use (Go: mSpanDead)
SPAN_SMALL = 1        # size-classed objects (mSpanInUse)
SPAN_LARGE = 2        # one object > max small size (mSpanInUse, class 0)
SPAN_STACK_POOL = 3   # stackpool span carved into stacks (mSpanManual)
SPAN_STACK_LARGE = 4  # one large stack (mSpanManual)

# ---------------------------------------------------------------- mc: one row per P (mcache + P-local state)
# Columns [MC_ALLOC, MC_ALLOC + nspc) are mcache.alloc[spanClass]; P-local words come first.
MC_TINY = 0
MC_TINYOFF = 1
MC_PC_BASE = 2        # pageCache.base (page index), -1 = none
MC_PC_BITS = 3        # pageCache.cache (1 = free), read through the uint64 view
MC_FLUSHGEN = 4       # sweepgen this mcache was last flushed at (prepareForSweep)
MC_DEAD = 5           # bytes freed by this P and not yet swept (gogc > 0)
MC_GF_HEAD = 6        # p.gFree list head (G address), -1 = empty
MC_GF_N = 7
MC_GF_READY = 8       # starting-size stack of the G handed out last, waiting for its stack alloc
MC_GF_ORPHAN = 9      # starting-size stack freed before its G: attached at the next gfput
MC_FB_TOTAL = 10      # frees waiting in this P's batches (fbuf), all classes
MC_SC_LIST = 16       # stackcache[order].list, 8 slots
MC_SC_SIZE = 24       # stackcache[order].size, 8 slots
MC_ALLOC = 32
MAX_STACK_ORDERS = 8

# ---------------------------------------------------------------- gl: mheap-wide words, one per cache line
GL_SWEEPGEN = 0 * 8
GL_HEAP_LIVE = 1 * 8      # gcController.heapLive (gogc > 0)
GL_HEAP_GOAL = 2 * 8
GL_HEAP_MARKED = 3 * 8
GL_SEARCH = 4 * 8         # pageAlloc.searchAddr as a page index (heap lock)
GL_PAGES_END = 5 * 8      # pages [0, end) are mapped and known to the page allocator (heap lock)
GL_FREE_PAGES = 6 * 8     # free pages in the page allocator, not counting page caches (heap lock)
GL_ARENA_END = 7 * 8      # end of reserved arenas in bytes (heap lock)
GL_ARENAS = 8 * 8
GL_GF_STACK = 9 * 8       # sched.gFree.stack head
GL_GF_NOSTACK = 10 * 8    # sched.gFree.noStack head
GL_GF_N = 11 * 8
GL_SPAN_PAGES = 12 * 8     # pages in spans (Go: HeapInuse + StackInuse, in pages); atomic
GL_SPAN_PAGES_PEAK = 13 * 8  # its peak (exact in serial replay; a racy max in threads mode)
NGL = 14 * 8

# ---------------------------------------------------------------- locks: lock k at index k * 8
# [0, nspc): mcentral[spc]; then the ones below, offset by nspc
LK_HEAP = 0
LK_GFREE = 1
LK_GC = 2
LK_STACK = 3              # stackpool[order]: LK_STACK + order
NLK_EXTRA = LK_STACK + MAX_STACK_ORDERS

# ---------------------------------------------------------------- lists: (head, tail, len, 5 pad) rows, one cache line each
# partial[spc] = spc, full[spc] = nspc + spc, stackpool[order] = 2 * nspc + order
L_HEAD = 0
L_TAIL = 1
L_LEN = 2

# ---------------------------------------------------------------- G descriptor words (in the G's own memory)
G_LINK = 8        # next G on a free list (g.schedlink)
G_STACK = 16      # attached starting-size stack, -1 = none (g.stack.lo)
G_DESC_LIMIT = 2048   # KIND_STACK objects below this size are G descriptors (the trace contract)

# ---------------------------------------------------------------- extra counters
EXTRA_COUNTERS: tuple[str, ...] = (
    "next_free_fast",      # allocations served by nextFreeFast (allocCache hit)
    "next_free",           # allocations served by nextFreeIndex without a refill
    "page_cache_hits",     # spans carved from a P's page cache without the heap lock
    "page_cache_refills",  # page caches refilled under the heap lock
    "tiny_allocs",         # tiny objects combined into an existing block (Go's tinyAllocs)
    "tiny_blocks",         # new tiny blocks taken from the tiny span class
    "large_allocs",        # objects > max small size, each a dedicated span
    "spans_returned",      # spans whose pages went back to the page allocator
    "heap_grows",          # mheap.grow calls (new mapped memory)
    "stack_cache_hits",    # stacks served from the P's stack cache
    "stack_cache_refills", # stackcacherefill calls
    "stack_cache_releases",  # stackcacherelease calls
    "gfree_reuse",         # G descriptors reused from a free-G list
    "gfree_moves",         # G descriptors moved between a P's list and the global one
    "g_stack_reuse",       # starting stacks reused together with their G
    "gc_cycles",           # modelled GC cycles (gogc > 0)
    "free_batches",        # batches of explicit frees swept under one class-lock hold (gogc = 0)
    "batched_frees",       # frees that went through a batch (slot in a span this P does not cache)
)
X_NFF = EXTRA_BASE + 0
X_NEXT_FREE = EXTRA_BASE + 1
X_PC_HITS = EXTRA_BASE + 2
X_PC_REFILLS = EXTRA_BASE + 3
X_TINY = EXTRA_BASE + 4
X_TINY_BLOCKS = EXTRA_BASE + 5
X_LARGE = EXTRA_BASE + 6
X_SPANS_RETURNED = EXTRA_BASE + 7
X_GROWS = EXTRA_BASE + 8
X_SC_HITS = EXTRA_BASE + 9
X_SC_REFILLS = EXTRA_BASE + 10
X_SC_RELEASES = EXTRA_BASE + 11
X_GF_REUSE = EXTRA_BASE + 12
X_GF_MOVES = EXTRA_BASE + 13
X_G_STACK = EXTRA_BASE + 14
X_GC = EXTRA_BASE + 15
X_FREE_BATCHES = EXTRA_BASE + 16
X_BATCHED_FREES = EXTRA_BASE + 17
