"""Soak (not in CI): a long web replay must reach a steady state of mapped memory.

    pytest -m soak tests/test_soak.py            # ALLOCLAB_SOAK_SCALE=4 for longer

For every strategy that reuses memory, once the live heap has reached its
plateau, the rest of the run (millions of alloc/free ops) may raise peak
mapped bytes by at most 5% (+ one heap growth step): memory does not creep.
"""
import os

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.runner import replay_once
from alloclab.workloads import generate

SCALE = float(os.environ.get("ALLOCLAB_SOAK_SCALE", "1.0"))


@pytest.mark.soak
@pytest.mark.parametrize("name", [n for n in strategies.kernel_names() if n not in ("bump", "system")])
def test_mapped_memory_reaches_steady_state(name):
    tr = generate("web", procs=2, seed=42, scale=SCALE)
    sign = np.where(tr.op == 0, 1, -1) * tr.size.astype(np.int64)
    live = np.cumsum(sign)
    # web's long-lived cache fills first; steady state starts where live first reaches 97% of its peak
    steady = int(np.argmax(live >= 0.97 * live.max()))
    assert steady < 0.75 * len(tr), "the trace has no steady phase to soak"
    mid = steady + (len(tr) - steady) // 3
    mod = strategies.get(name)
    first = replay_once(mod, mod.Config(), tr, 2, stop=mid)
    full = replay_once(mod, mod.Config(), tr, 2)
    assert first.status == full.status == "ok"
    # the last two thirds of the steady phase (millions of ops) may add at most 5% + one growth step
    assert full.peak_mapped_bytes <= first.peak_mapped_bytes * 1.05 + (4 << 20), (
        name, first.peak_mapped_bytes, full.peak_mapped_bytes)
