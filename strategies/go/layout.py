"""What every tier of the Go model shares: the run's constants, the lock slots, the extra counters.

See the package docstring (``alloclab.strategies.go``) for the design. Each
Go struct the model keeps is a row of an int64 array of State, so that kernels
take arrays and scalars only. A tier's own columns live in that tier's file
(mspan.py: SPAN_*, mcache.py: MCACHE_*, mheap.py: MHEAP_*, ...); this module
holds only what no single tier owns:

- ``cfg`` (CFG_*): the run's constants, made once by ``make_state`` from the
  Config and read by every tier;
- ``locks`` (LK_*): one array for every lock, so that each sits on its own
  cache line and the counters see them all the same way;
- the extra counters (X_*) every tier increments;
- the sizes of the arrays several tiers write into (MAX_STACK_ORDERS,
  GL_NWORDS).
"""
from __future__ import annotations

from alloclab.strategies._counters import EXTRA_BASE

# ---------------------------------------------------------------- cfg: constants of one run
CFG_PAGE_SHIFT = 0
CFG_PAGE_SIZE = 1
CFG_SMALL_LIMIT = 2              # largest size served by a size class (max_small_size - malloc header)
CFG_MALLOC_HEADER = 3            # malloc header bytes for pointerful objects above CFG_MALLOC_HEADER_MIN (0 = off)
CFG_MALLOC_HEADER_MIN = 4        # Go's minSizeForMallocHeader (512 B on 64-bit)
CFG_TINY_SIZE = 5                # tiny block bytes, Go's maxTinySize (0 = tiny allocator off)
CFG_TINY_SHIFT = 6               # log2(tiny)
CFG_TINY_SPANCLASS = 7           # tinySpanClass: the noscan span class of `tiny` bytes
CFG_SMALL_SIZE_MAX = 8           # smallSizeMax: size_to_class8 covers sizes <= this - 8
CFG_SMALL_SIZE_DIV = 9           # log2(smallSizeDiv)
CFG_LARGE_SIZE_DIV = 10          # log2(largeSizeDiv)
CFG_PAGE_CACHE_PAGES = 11        # pageCachePages (0 = no page cache)
CFG_PAGE_CACHE_MAX_NPAGES = 12   # the page cache serves spans of fewer pages than this (pageCachePages / 4)
CFG_GROWTH_PAGES = 13            # heap growth step in pages (pallocChunkPages)
CFG_ARENA_BYTES = 14             # heapArenaBytes: reservation unit
CFG_NUM_SPANCLASSES = 15         # numSpanClasses (2 x number of size classes)
CFG_ALLOCBITS_WORDS = 16         # 64-bit words of allocBits per span
CFG_EMPTYMSPAN = 17              # row of emptymspan, the span every empty mcache.alloc slot points at
CFG_GOGC = 18                    # 0 = frees take effect at once; > 0 = deferred to modelled GC cycles
CFG_HEAP_MINIMUM = 19            # heapMinimum at GOGC=100 (4 MiB)
CFG_FIXED_STACK = 20
CFG_NUM_STACK_ORDERS = 21        # _NumStackOrders
CFG_STACK_CACHE_SIZE = 22        # _StackCacheSize: a P's per-order cache is released above this
CFG_STACK_CACHE_REFILL = 23      # refill / release target (Go: _StackCacheSize / 2)
CFG_STACK_SPAN_PAGES = 24        # pages of one stack-pool span
CFG_GFREE_LOCAL_CAP = 25
CFG_GFREE_BATCH = 26
CFG_G_SIZE = 27
CFG_NPROCS = 28
CFG_ARENA_PAGES = 29
CFG_STACKPOOL_LISTS = 30         # first stack-pool list id (mspan.py: lists)
CFG_FREE_BATCH = 31              # explicit frees a P batches per span class before one class-lock hold (gogc = 0)
CFG_GOAL_STACKS = 32             # 1 = live stack bytes count towards the heap goal (Go >= 1.18), 0 = marked heap only
CFG_TRIGGER_NUM = 33             # the trigger after a cycle: heapMarked + (goal - heapMarked) / DEN * NUM (mgc.py)
CFG_TRIGGER_DEN = 34
CFG_MARK_END_PCT = 35            # the mark ends this percent of the way from the trigger to the goal (mgc.py)
CFG_NWORDS = 36

# ---------------------------------------------------------------- locks: lock k at index k * 8
# [0, nspc): mcentral[spc] (mcentral.py); then the ones below, offset by nspc
LK_HEAP = 0               # mheap_.lock (mheap.py)
LK_GFREE = 1              # sched.gFree.lock (stacks.py)
LK_GC = 2                 # one GC cycle at a time (mgc.py)
LK_STACKPOOL = 3          # stackpool[order]: LK_STACKPOOL + order (stacks.py)
MAX_STACK_ORDERS = 8      # slots for stack orders: locks here, mcache.stackcache, stack-pool lists
NLK_EXTRA = LK_STACKPOOL + MAX_STACK_ORDERS

# ---------------------------------------------------------------- gl: mheap-wide words, one per cache line
# Words 0, 8, ... 144 are MHEAP_* (mheap.py), GC_* (mgc.py, gcController) and SCHED_* (stacks.py, sched.gFree).
GL_NWORDS = 19 * 8

# ---------------------------------------------------------------- mc: the cached spans' columns
# mcache.alloc[spanclass] (mcache.py owns the mc row); here because mgc.py's mark start reads every P's
# cached spans and mcache.py imports mgc.py
MCACHE_ALLOC = 32

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
X_NEXT_FREE_FAST = EXTRA_BASE + 0
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
