"""Strict reading of a parsed TOML document: every key is typed, checked and accounted for.

A `Table` hands out values by key and remembers which keys were read; `done()` then
rejects whatever was left over, so a misspelt key is an error instead of a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bandit_router.core.setting import REQUIRED as _REQUIRED


class ConfigError(ValueError):
    """A configuration problem, naming the dotted key it is about."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key '{key}': {problem}")
        self.key = key
        self.problem = problem


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class Table:
    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return name in self._data

    def names(self) -> list[str]:
        return list(self._data)

    def is_string(self, name: str) -> bool:
        """Whether the key holds a string (for keys that take a name or a table)."""
        return isinstance(self._data.get(name), str)

    def _raw(self, name: str, default: Any) -> Any:
        self._read.add(name)
        if name in self._data:
            return self._data[name]
        if default is _REQUIRED:
            raise ConfigError(self.key(name), "is required")
        return default

    def string(self, name: str, default: Any = _REQUIRED, choices: tuple[str, ...] = ()) -> str:
        value = self._raw(name, default)
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, got {_type_name(value)}")
        if choices and value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def integer(self, name: str, default: Any = _REQUIRED, lo: int | None = None,
                hi: int | None = None) -> int:
        value = self._raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, got {_type_name(value)}")
        _check_range(self.key(name), value, lo, hi)
        return value

    def boolean(self, name: str, default: Any = _REQUIRED) -> bool:
        value = self._raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {_type_name(value)}")
        return value

    def raw_none(self, name: str) -> None:
        """Mark an absent optional key as read; its value is None."""
        self._read.add(name)
        return None

    def number(self, name: str, default: Any = _REQUIRED, lo: float | None = None,
               hi: float | None = None, above: float | None = None) -> float:
        value = self._raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise ConfigError(self.key(name), "must be a finite number")
        if above is not None and value <= above:
            raise ConfigError(self.key(name), f"must be greater than {above}; got {value}")
        _check_range(self.key(name), value, lo, hi)
        return float(value)

    def strings(self, name: str, default: Any = _REQUIRED) -> tuple[str, ...]:
        value = self._raw(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be an array of strings")
        return tuple(value)

    def numbers(self, name: str, default: Any = _REQUIRED) -> tuple[float, ...]:
        value = self._raw(name, default)
        ok = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value)
        if not ok:
            raise ConfigError(self.key(name), "must be an array of finite numbers")
        return tuple(float(v) for v in value)

    def table(self, name: str, required: bool = False) -> Table:
        value = self._raw(name, _REQUIRED if required else {})
        if not isinstance(value, dict):
            raise ConfigError(self.key(name), f"must be a table, got {_type_name(value)}")
        return Table(value, self.key(name))

    def tables(self, name: str, required: bool = False) -> dict[str, Table]:
        """A table of tables (``[name.x]``, ``[name.y]``), keyed by sub-table name."""
        outer = self.table(name, required)
        return {sub: outer.table(sub, required=True) for sub in outer.names()}

    def array_of_tables(self, name: str) -> list[Table]:
        value = self._raw(name, _REQUIRED)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(self.key(name), "must be an array of tables ([[...]])")
        return [Table(v, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]

    def done(self) -> None:
        extra = [k for k in self._data if k not in self._read]
        if extra:
            raise ConfigError(self.key(extra[0]), "unknown key")

    def read(self, build: Callable[[Table], Any]) -> Any:
        """Build a value from this table, then insist every key was used."""
        value = build(self)
        self.done()
        return value


def _check_range(key: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise ConfigError(key, f"must be at least {lo}; got {value}")
    if hi is not None and value > hi:
        raise ConfigError(key, f"must be at most {hi}; got {value}")
