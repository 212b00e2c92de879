"""Per-P counter columns shared by every strategy.

Counters live in an int64 array of shape (nprocs, NCOUNTERS), one row per P,
so that hot paths never write a word another P writes (no false sharing of
counts between threads: rows are whole lines and start on one). Columns 0..EXTRA_BASE-1 mean
the same for every strategy; a strategy names its own extras from EXTRA_BASE
on (``EXTRA_COUNTERS`` in its module).
"""
from alloclab.strategies import _aligned as aligned

ALLOCS = 0        # allocations served (counted by the executor)
FREES = 1         # frees served (counted by the executor)
FAST_HITS = 2     # allocations served without taking any lock
REFILLS = 3       # local cache refilled from a shared tier
LOCK_LOCAL = 4    # acquisitions of per-P or per-pool locks
LOCK_CENTRAL = 5  # acquisitions of per-size-class shared locks
LOCK_GLOBAL = 6   # acquisitions of the one heap-wide lock
CONTENDED = 7     # acquisitions that found the lock held
SPINS = 8         # backoff rounds spent waiting for locks
IN_USE = 9        # bytes the strategy holds for live objects (rounded size)
EXTRA_BASE = 16
NCOUNTERS = 40   # x 8 bytes = 5 cache lines a row; rows start on a line (new_counters)


def new_counters(nprocs: int):
    """The (nprocs, NCOUNTERS) counter rows, the first on a cache-line boundary."""
    return aligned.zeros((nprocs, NCOUNTERS))

STANDARD_NAMES = {
    ALLOCS: "allocs", FREES: "frees", FAST_HITS: "fast_hits", REFILLS: "refills",
    LOCK_LOCAL: "lock_local", LOCK_CENTRAL: "lock_central", LOCK_GLOBAL: "lock_global",
    CONTENDED: "contended", SPINS: "spins", IN_USE: "in_use",
}

# Object kinds (trace column `kind`).
KIND_HEAP = 0    # pointerful heap object
KIND_NOSCAN = 1  # pointer-free heap object (Go's noscan; eligible for the tiny allocator)
KIND_STACK = 2   # goroutine stack or G descriptor
