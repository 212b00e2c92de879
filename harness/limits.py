"""The lab's hard limits, in one place: every check and every message reads them here.

- ``MAX_PROCS``: the most Ps (processors) a trace, a workload or a run may
  have. The executor keeps per-P rows (counters, pending-free rings) and
  threads mode starts one OS thread per P; 1024 keeps those tables small
  while leaving room far beyond any real core count.
- ``MAX_ARENA_MB``: the largest simulated address space (``--arena-mb``, a
  suite's ``arena_mb``). The arena is reserved with ``np.zeros`` and
  committed lazily by the OS, so the limit guards against a typo asking for
  more address space than a 64-bit process should reserve, not against use.
- ``DEFAULT_ARENA_MB``: the arena a run gets unless told otherwise.

Only the standard library is imported (none at all), so that strategies and
workloads may read these without an import cycle.
"""
MAX_PROCS = 1024
MAX_ARENA_MB = 65536
DEFAULT_ARENA_MB = 2048
