"""alloclab.workloads: named workloads that generate traces, and trace files.

Each workload module exposes ``NAME``, ``DESCRIPTION`` (one line), ``Params``
(a ``_params.WorkloadParams`` dataclass: every parameter declared once, with
its default, range and doc) and ``generate(procs, seed, scale, **params) ->
Trace``, which validates its keyword arguments with ``Params.of``. ``scale``
multiplies the workload's size (1.0 = the publishing default). A workload
spec ``trace:PATH`` loads a saved trace instead. docs/adding-a-workload.md
shows how to add one: a module and a line in ``_REGISTRY``.
"""
from __future__ import annotations

import importlib
import importlib.util

from alloclab.harness.limits import MAX_PROCS
from alloclab.workloads._params import UnknownParam

_REGISTRY: dict[str, str] = {
    "random": "alloclab.workloads.random",
    "spawn-storm": "alloclab.workloads.spawn_storm",
    "web": "alloclab.workloads.web",
    "pipeline": "alloclab.workloads.pipeline",
    "larson": "alloclab.workloads.larson",
    "tiny": "alloclab.workloads.tiny",
    "large-mix": "alloclab.workloads.large_mix",
    "phase-shift": "alloclab.workloads.phase_shift",
}


def register(name: str, module: str) -> str:
    """Add a workload at run time (the tests' own ones); the shipped workloads are the lines above."""
    if name in _REGISTRY:
        raise ValueError(f"workload {name!r} is already registered")
    _REGISTRY[name] = module
    return name


class UnknownWorkload(KeyError):
    def __str__(self):
        return f"unknown workload {self.args[0]!r}; choose from {', '.join(names())} or trace:FILE"


def names() -> list[str]:
    return [n for n, m in _REGISTRY.items() if importlib.util.find_spec(m) is not None]


def get(name: str):
    if name not in _REGISTRY or importlib.util.find_spec(_REGISTRY[name]) is None:
        raise UnknownWorkload(name)
    return importlib.import_module(_REGISTRY[name])


def parse_params(mod, pairs: dict[str, str] | None) -> dict:
    """``--param k=v`` strings typed and validated by the workload's ``Params``; only the given keys."""
    try:
        return mod.Params.parse(pairs or {})
    except UnknownParam as e:
        raise ValueError(f"workload {mod.NAME!r} has {e}") from None
    except ValueError as e:
        raise ValueError(f"workload {mod.NAME!r}: {e}") from None


def generate(name: str, procs: int = 1, seed: int = 0, scale: float = 1.0, **params):
    if name.startswith("trace:"):
        from alloclab.workloads import trace

        return trace.load(name[len("trace:"):])
    mod = get(name)
    if not (0 < scale <= 1000):
        raise ValueError(f"scale {scale} outside (0, 1000]")
    if not 1 <= procs <= MAX_PROCS:
        raise ValueError(f"procs {procs} outside 1..{MAX_PROCS}")
    return mod.generate(procs=procs, seed=seed, scale=scale, **params)
