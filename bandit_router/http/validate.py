"""Reading untrusted JSON objects field by field, with errors that name the field."""

from __future__ import annotations

import math
from typing import Any

from bandit_router.core.errors import InvalidField, MissingField, UnknownField

MAX_STRING = 256  # the default longest string field, in characters
MAX_STRINGS = 256  # the default longest array of strings


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


class Fields:
    """One JSON object being read. `allowed=None` accepts extra keys (OpenAI-style objects)."""

    def __init__(self, data: Any, path: str = "", allowed: frozenset[str] | None = None) -> None:
        if not isinstance(data, dict):
            raise InvalidField(f"{path or 'the body'} must be a JSON object, got {_kind(data)}",
                               path or None)
        self.data = data
        self.path = path
        if allowed is not None:
            extra = sorted(k for k in data if k not in allowed)
            if extra:
                raise UnknownField(f"unknown field {self.name(extra[0])!r}; allowed: "
                                   f"{', '.join(sorted(allowed))}", self.name(extra[0]))

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, required: bool = False) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise MissingField(f"{self.name(key)} is required", self.name(key))
        return value

    def string(self, key: str, required: bool = False, max_len: int = MAX_STRING) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidField(f"{self.name(key)} must be a string, got {_kind(value)}",
                               self.name(key))
        if len(value) > max_len:
            raise InvalidField(f"{self.name(key)} is longer than {max_len} characters",
                               self.name(key))
        return value

    def number(self, key: str, lo: float, hi: float, required: bool = False,
               above: bool = False) -> float | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise InvalidField(f"{self.name(key)} must be a finite number, got {_kind(value)}",
                               self.name(key))
        if value < lo or value > hi or (above and value == lo):
            low = f"greater than {lo}" if above else f"at least {lo}"
            raise InvalidField(f"{self.name(key)} must be {low} and at most {hi}; got {value}",
                               self.name(key))
        return float(value)

    def integer(self, key: str, lo: int, hi: int, required: bool = False) -> int | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(f"{self.name(key)} must be an integer, got {_kind(value)}",
                               self.name(key))
        if value < lo or value > hi:
            raise InvalidField(f"{self.name(key)} must be between {lo} and {hi}; got {value}",
                               self.name(key))
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise InvalidField(f"{self.name(key)} must be true or false, got {_kind(value)}",
                               self.name(key))
        return value

    def object(self, key: str, allowed: frozenset[str] | None) -> Fields | None:
        value = self.raw(key)
        return None if value is None else Fields(value, self.name(key), allowed)

    def array(self, key: str, max_items: int, required: bool = False) -> list | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise InvalidField(f"{self.name(key)} must be an array, got {_kind(value)}",
                               self.name(key))
        if len(value) > max_items:
            raise InvalidField(f"{self.name(key)} has {len(value)} items; at most {max_items} "
                               f"are accepted", self.name(key))
        return value

    def strings(self, key: str, max_items: int = MAX_STRINGS) -> list[str] | None:
        items = self.array(key, max_items)
        if items is None:
            return None
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidField(f"{self.name(key)}[{i}] must be a string, got {_kind(item)}",
                                   f"{self.name(key)}[{i}]")
        return items
