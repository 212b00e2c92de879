"""Workload parameters: one declaration per workload, with ranges and docs.

A workload's ``Params`` is a frozen dataclass subclassing ``WorkloadParams``
whose fields are declared with ``param(...)``, the mechanism of the
strategies' ``Config`` (strategies/_config.py). That declaration is the single
source for ``generate``'s checks, ``--param KEY=VALUE`` parsing, suite
validation and ``alloclab list -v``. Cross-field rules go in
``_validate_combination``. Workload parameters describe the program, not the
allocator, so the tuner never searches them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from alloclab.strategies._config import ConfigBase, ConfigError, param

__all__ = ["ConfigError", "UnknownParam", "WorkloadParams", "param", "share"]


class UnknownParam(ConfigError):
    """A parameter name the workload does not declare: args (name, declared names)."""

    def __str__(self):
        return f"no parameter {self.args[0]!r}; it has {', '.join(self.args[1]) or 'none'}"


def share(default: float, doc: str, hi: float = 1.0):
    """A share or a chance per step: a number in [0, hi]."""
    return param(default, lo=0.0, hi=hi, doc=doc)


def _range(f: dataclasses.Field) -> str:
    """The allowed values of a field, as errors and ``list -v`` print them."""
    m = f.metadata
    if m.get("choices") is not None:
        return "{" + ", ".join(map(str, m["choices"])) + "}"
    if type(f.default) is float:
        return f"[{m['lo']}, {m['hi']}]"
    if type(f.default) is int:
        return f"{m['lo']}..{m['hi']}"
    return ""


def _fits(f: dataclasses.Field, v: Any) -> bool:
    m = f.metadata
    want = type(f.default)
    if m.get("choices") is not None:
        return v in m["choices"]
    if want is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif want is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        return isinstance(v, want)
    return ok and m["lo"] <= v <= m["hi"]


@dataclasses.dataclass(frozen=True)
class WorkloadParams(ConfigBase):
    """Base of every workload's ``Params``; int and float fields need ``lo`` and ``hi``.

    A subclass is made a frozen dataclass when it is defined (no decorator:
    a second ``@dataclass`` would drop the fields' metadata)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True)(cls)

    def validate(self) -> "WorkloadParams":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if _fits(f, v):
                continue
            if f.metadata.get("choices") is not None:
                raise ConfigError(f"{f.name} {v!r}: choose from {_range(f)}")
            what = "an integer" if type(f.default) is int else "a number"
            raise ConfigError(f"{f.name}={v!r}: expected {what} in {_range(f)}")
        self._validate_combination()
        return self

    def _shares_of_one(self, *names: str) -> None:
        """For ``_validate_combination``: shares that split one whole must not sum above 1."""
        total = sum(getattr(self, n) for n in names)
        if total > 1.0:
            raise ConfigError(f"{' + '.join(names)} = {total} exceeds 1")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def _known(cls, keys) -> None:
        for k in keys:
            if k not in cls.names():
                raise UnknownParam(k, cls.names())

    @classmethod
    def of(cls, values: dict[str, Any] | None = None) -> "WorkloadParams":
        """The validated parameters from ``generate``'s keyword arguments (numpy scalars allowed)."""
        values = dict(values or {})
        cls._known(values)
        return cls.from_dict({k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()})

    @classmethod
    def parse(cls, pairs: dict[str, str]) -> dict[str, Any]:
        """``--param KEY=VALUE`` strings typed as their fields' defaults, then validated.

        Returns only the given keys (the run records what was asked for)."""
        cls._known(pairs)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out = {}
        for k, v in pairs.items():
            f = fields[k]
            want = type(f.default)
            try:
                out[k] = v if isinstance(v, want) else want(v)
            except (TypeError, ValueError):
                raise ConfigError(f"{k}={v!r}: expected {want.__name__} in {_range(f)}") from None
        cls.of(out)
        return out

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str, str]]:
        """(name, default, range, doc) for every field, the range as errors print it."""
        return [(f.name, f.default, _range(f), f.metadata.get("doc", "")) for f in dataclasses.fields(cls)]
