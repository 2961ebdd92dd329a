"""Reading a table's scalar keys from their settings (core/setting.py): one loop, the type,
bounds and default of each key taken from its one definition."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from bandit_router.config.tomlcheck import ConfigError, Table
from bandit_router.core.setting import REQUIRED, Setting, fields_of


def read_one(t: Table, s: Setting, default: Any = REQUIRED) -> Any:
    """One key's value, checked against its setting; `default` overrides the setting's (a
    default that depends on another key, e.g. a policy's pooling on its mode)."""
    name = s.name
    if s.optional and not t.has(name):
        return t.raw_none(name)
    fallback = s.default if default is REQUIRED else default  # REQUIRED: Table insists
    value = _typed(t, s, name, fallback)
    problem = s.check(value) if s.check is not None else None
    if problem is not None:
        raise ConfigError(t.key(name), problem)
    return value


def _typed(t: Table, s: Setting, name: str, fallback: Any) -> Any:
    if s.kind == "string":
        return t.string(name, fallback, choices=s.choices)
    if s.kind == "integer":
        return t.integer(name, fallback, lo=s.lo, hi=s.hi)  # type: ignore[arg-type]
    if s.kind == "number":
        return t.number(name, fallback, lo=s.lo, hi=s.hi, above=s.above)
    if s.kind == "boolean":
        return t.boolean(name, fallback)
    if s.kind == "strings":
        values = t.strings(name, list(fallback) if isinstance(fallback, tuple) else fallback)
        return tuple(v.lower() for v in values) if s.lower else values
    raise TypeError(f"{s.key} is structural: its table has its own reader")


def read_scalars(t: Table, cls: type, skip: Iterable[str] = (),
                 defaults: Mapping[str, Any] | None = None,
                 bounds: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every scalar field of `cls` read from `t`, in field order, by field name (`skip`: read
    by the caller; `bounds`: a limit that depends on another key, e.g. a model's output on
    its context)."""
    skipped = set(skip)
    out: dict[str, Any] = {}
    for s in fields_of(cls):
        if s.kind == "structural" or s.key in skipped:
            continue
        if bounds and s.key in bounds:
            s = dataclasses.replace(s, **bounds[s.key])
        out[s.key] = read_one(t, s, (defaults or {}).get(s.key, REQUIRED))
    return out


def setting_of(cls: type, name: str) -> Setting:
    return next(s for s in fields_of(cls) if s.key == name)
