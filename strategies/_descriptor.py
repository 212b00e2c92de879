"""The strategy descriptor: what the registry declares about each strategy.

A descriptor is one registry line. It names the strategy's module (imported
only when the strategy is used, so ``alloclab list`` loads no numba kernel),
its kind, what an external strategy needs installed, and which optional hooks
the module provides. The harness calls the hooks through the descriptor,
which supplies each one's default; nothing outside the registry asks a
strategy module what it happens to define.

Capabilities read from the module's contract (``strategies/__init__.py``):
``align16`` (its ``ALIGN16``: malloc's promise that objects of 16 B or more
are 16-aligned, which check mode verifies) and ``extra_counters``; and from
its kernel registration, ``real_pointers`` (addresses are process pointers,
not arena offsets: ``_dispatch.register(..., real_ptrs=True)``).
"""
from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, Callable

KINDS = ("kernel", "external")


@dataclasses.dataclass(frozen=True)
class Hooks:
    """Optional functions of a strategy, each named by an attribute of its module
    (or ``"module:function"`` elsewhere); "" = the default, in brackets."""

    sample_memory: str = ""       # (state) -> None, between serial slices and after a threads run [nothing]
    sampled_mapped: str = ""      # (state) -> int, the bytes the last sample_memory found held from the OS,
                                  #   for a memory that is not the Heap's (real pointers): a serial
                                  #   timeline's mapped column [none: the Heap's, read in the kernel]
    peak_mapped_bytes: str = ""   # (state) -> int, peak memory mapped for the heap [the Heap's own peak]
    peak_inuse_bytes: str = ""    # (state) -> int, peak bytes held for objects, garbage included [peak mapped]
    mapped_floor: str = ""        # (config, live bytes) -> int, the least it could map for that live peak [live]
    size_classes: str = ""        # (config) -> list of row dicts for the report's waste plot [no table]
    run_external: str = ""        # externals: (config, trace, *, mode, reps, check, progress, instrument)
                                  #   -> [(rep, RunResult)]
    unavailable_reason: str = ""  # externals: () -> why it cannot run here, or None [always available]


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    module: str                   # import path of the module implementing the contract
    description: str              # one line, shown by `alloclab list`
    kind: str = "kernel"          # "kernel": numba alloc/free under the executor; "external": replays traces itself
    requires: str = ""            # externals: the package or toolchain a user must install
    hooks: Hooks = Hooks()
    external_probes: tuple[str, ...] = ()   # externals: what run_external records itself ("latency", "timeline")

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"strategy {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "external" and not self.hooks.run_external:
            raise ValueError(f"external strategy {self.name!r} declares no run_external hook")

    # ------------------------------------------------------------- the module

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def hook(self, name: str) -> Callable[..., Any] | None:
        ref = getattr(self.hooks, name)
        if not ref:
            return None
        mod, _, attr = ref.rpartition(":")
        return getattr(importlib.import_module(mod) if mod else self.load(), attr)

    @property
    def is_external(self) -> bool:
        return self.kind == "external"

    def records(self, probe: str) -> bool:
        """Whether its latency/timeline repetitions record ``probe`` ("latency" or "timeline"), in
        either mode: a kernel strategy's always (the executor's Probe), an external's if it declares
        it (``external_probes``)."""
        return not self.is_external or probe in self.external_probes

    @property
    def align16(self) -> bool:
        return bool(self.load().ALIGN16)

    @property
    def extra_counters(self) -> tuple[str, ...]:
        return tuple(self.load().EXTRA_COUNTERS)

    @property
    def real_pointers(self) -> bool:
        if self.is_external:
            return False
        from alloclab.strategies import _dispatch

        return _dispatch.real_pointers(self.load().State)

    # ------------------------------------------------------------- hooks with their defaults

    def unavailable_reason(self) -> str | None:
        fn = self.hook("unavailable_reason")
        return None if fn is None else fn()

    def sample_memory(self, state) -> None:
        fn = self.hook("sample_memory")
        if fn is not None:
            fn(state)

    @property
    def samples_mapped(self) -> bool:
        """Whether its timeline's mapped bytes come from ``sample_memory`` between slices (serial
        mode) rather than from the Heap in the kernel."""
        return bool(self.hooks.sampled_mapped)

    def sampled_mapped(self, state) -> int:
        return int(self.hook("sampled_mapped")(state))

    def peak_mapped_bytes(self, state, heap) -> int:
        fn = self.hook("peak_mapped_bytes")
        return heap.peak_mapped_bytes if fn is None else int(fn(state))

    def peak_inuse_bytes(self, result) -> int:
        """From a RunResult: the hook on its state, else its peak mapped bytes."""
        fn = self.hook("peak_inuse_bytes")
        return result.peak_mapped_bytes if fn is None else int(fn(result.state))

    def mapped_floor(self, config, live_bytes: int) -> int:
        fn = self.hook("mapped_floor")
        return live_bytes if fn is None else int(fn(config, live_bytes))

    def size_classes(self, config) -> list[dict] | None:
        fn = self.hook("size_classes")
        return None if fn is None else fn(config)

    def run_external(self, config, trace, **kw):
        return self.hook("run_external")(config, trace, **kw)
