"""The Config contract: every tunable with its default, range and search space.

A strategy's ``Config`` is a frozen dataclass subclassing ``ConfigBase`` whose
fields are declared with ``param(...)``. The metadata there is the single
source for validation (``validate``), TOML/JSON loading (``from_dict``) and the
Optuna search space (``suggest``), so the three cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration value or key is invalid (a one-line message for the CLI)."""


def param(default, *, lo=None, hi=None, choices=None, log=False, tune=True, doc=""):
    """Declare a tunable: ``lo``/``hi`` bound ints and floats (inclusive),
    ``choices`` lists the allowed values, ``tune=False`` keeps it out of search."""
    return field(default=default, metadata=dict(lo=lo, hi=hi, choices=choices, log=log, tune=tune, doc=doc))


@dataclasses.dataclass(frozen=True)
class ConfigBase:
    def validate(self) -> "ConfigBase":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            want = type(f.default)
            if want is bool:
                if not isinstance(v, bool):
                    raise ConfigError(f"{f.name}: expected true/false, got {v!r}")
            elif want is int:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"{f.name}: expected an integer, got {v!r}")
            elif want is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{f.name}: expected a number, got {v!r}")
            elif want is str and not isinstance(v, str):
                raise ConfigError(f"{f.name}: expected a string, got {v!r}")
            if m.get("choices") is not None and v not in m["choices"]:
                raise ConfigError(f"{f.name}: {v!r} is not one of {list(m['choices'])}")
            if m.get("lo") is not None and v < m["lo"]:
                raise ConfigError(f"{f.name}: {v!r} is below the minimum {m['lo']}")
            if m.get("hi") is not None and v > m["hi"]:
                raise ConfigError(f"{f.name}: {v!r} is above the maximum {m['hi']}")
        self._validate_combination()
        return self

    def _validate_combination(self) -> None:
        """Cross-field rules; strategies override."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ConfigBase":
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        for f in dataclasses.fields(cls):
            if f.name in d and type(f.default) is float and isinstance(d[f.name], int) and not isinstance(d[f.name], bool):
                d[f.name] = float(d[f.name])
            if f.name in d and type(f.default) is tuple and isinstance(d[f.name], list):
                d[f.name] = tuple(d[f.name])
        return cls(**d).validate()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=list)

    def config_hash(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str, str]]:
        """(name, default, range, doc) for every field: ``alloclab list -v`` prints it."""
        out = []
        for f in dataclasses.fields(cls):
            m = f.metadata
            if m.get("choices") is not None:
                rng = "{" + ", ".join(map(str, m["choices"])) + "}"
            elif m.get("lo") is not None or m.get("hi") is not None:
                rng = f"[{m.get('lo')}, {m.get('hi')}]"
            else:
                rng = ""
            out.append((f.name, f.default, rng, m.get("doc", "")))
        return out

    @classmethod
    def suggest(cls, trial, fixed: dict[str, Any] | None = None) -> "ConfigBase":
        """Sample a config from the declared space with an Optuna trial.

        Raises ``ConfigError`` for invalid combinations; the tuner prunes those.
        """
        vals: dict[str, Any] = dict(fixed or {})
        for f in dataclasses.fields(cls):
            m = f.metadata
            if f.name in vals or not m.get("tune", True):
                continue
            if m.get("choices") is not None:
                vals[f.name] = trial.suggest_categorical(f.name, list(m["choices"]))
            elif type(f.default) is bool:
                vals[f.name] = trial.suggest_categorical(f.name, [False, True])
            elif type(f.default) is int and m.get("lo") is not None and m.get("hi") is not None:
                vals[f.name] = trial.suggest_int(f.name, m["lo"], m["hi"], log=m.get("log", False))
            elif type(f.default) is float and m.get("lo") is not None and m.get("hi") is not None:
                vals[f.name] = trial.suggest_float(f.name, m["lo"], m["hi"], log=m.get("log", False))
        return cls.from_dict(vals)
