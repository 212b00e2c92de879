"""The outcome of one replay of a trace on a strategy: what the runner measures for a
kernel strategy and what an external strategy (go-runtime) reports for itself.

Neutral ground: the harness and the external strategies both import it, and
neither imports the other for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunResult:
    status: str                     # "ok", "oom" or "check_failed"
    error: str                      # one line; "" when ok
    wall_s: float
    counters: np.ndarray            # summed over Ps
    per_p_wall_s: list[float]
    peak_mapped_bytes: int
    in_use_at_peak: int             # -1 if not measured (threads mode)
    extra: dict = field(default_factory=dict)
    state: object = None            # the strategy's final State (kernel strategies)
    addr_of: np.ndarray | None = None   # serial replays: each object's address, by the trace's object id
