"""A parsed JSON value into a body Struct, or the 400 that names the field.

orjson parses first (its messages are the invalid_json answers, word for word); then
`msgspec.convert` checks the types and bounds. Unknown keys of closed objects are looked for
before, so they are named as before: the first in sorted order, with the allowed keys."""

from __future__ import annotations

import re
import typing
from functools import lru_cache
from typing import Any, TypeVar

import msgspec

from bandit_router.core.errors import InvalidField, MissingField, RouterError, UnknownField
from bandit_router.http.schemas.bodies import PartProblem

S = TypeVar("S", bound=msgspec.Struct)
_QUOTED = re.compile(r"`([^`]*)`")
_MISMATCH = re.compile(r"Expected `([^`]*)`, got `([^`]*)`")
_BOUND = re.compile(r"Expected `([^`]*)` (of length )?([<>]=?) (\S+)")
_OPS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "greater than"}
_KIND = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
         "array": "an array", "object": "a JSON object", "null": "null"}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@lru_cache(maxsize=64)  # bounded: every app built (tests build many) has its own RouteBody
def _shape(cls: type[msgspec.Struct]) -> tuple[frozenset[str], tuple[tuple[str, type], ...]]:
    """The keys of `cls`, and its fields that hold a closed Struct (forbid_unknown_fields).
    The classes are few and immutable, so this is worked out once per class."""
    out = []
    for field in msgspec.structs.fields(cls):
        for arg in (field.type, *typing.get_args(field.type)):
            arg = typing.get_args(arg)[0] if typing.get_origin(arg) is typing.Annotated else arg
            if isinstance(arg, type) and issubclass(arg, msgspec.Struct) \
                    and arg.__struct_config__.forbid_unknown_fields:
                out.append((field.name, arg))
    return frozenset(cls.__struct_fields__), tuple(out)


def check_keys(data: Any, cls: type[msgspec.Struct], path: str = "") -> None:
    """Refuse a key a closed object does not have (before any value is looked at)."""
    if type(data) is not dict or not cls.__struct_config__.forbid_unknown_fields:
        return
    allowed, children = _shape(cls)
    if not data.keys() <= allowed:
        name = _join(path, min(data.keys() - allowed))
        raise UnknownField(f"unknown field {name!r}; allowed: {', '.join(sorted(allowed))}",
                           name)
    for key, child in children:
        if key in data:
            check_keys(data[key], child, _join(path, key))


def _null_is_absent(path: str) -> bool:
    """A null at a key counts as absent; in an array it is a wrong value."""
    return bool(path) and not path.endswith("]")


def _kinds(expected: str) -> str:
    names = [_KIND.get(k, k) for k in expected.split(" | ") if k != "null"]
    return " or ".join(names)


def mapped(exc: msgspec.ValidationError) -> RouterError:
    """msgspec's error as ours. msgspec gives a message only ("Expected `int`, got `str` - at
    `$.messages[2].content`"), so the path and the kind are read from it; the table of bad
    bodies in tests/http/test_handlers.py (code and field each) holds the mapping to the
    msgspec release pinned in pyproject.toml."""
    msg, at, path = str(exc).rpartition(" - at `$")
    if not at:  # at the body's top level
        msg, path = path, ""
    path = path.rstrip("`").lstrip(".")
    cause = exc.__cause__
    if isinstance(cause, PartProblem):
        field = _join(path, cause.key)
        kind = MissingField if cause.code == MissingField.code else InvalidField
        return kind(f"{field} {cause}", field)
    if msg.startswith("Object missing required field"):
        field = _join(path, _QUOTED.search(msg)[1])
        return MissingField(f"{field} is required", field)
    if msg.startswith("Object contains unknown field"):  # check_keys names them first
        field = _join(path, _QUOTED.search(msg)[1])
        return UnknownField(f"unknown field {field!r}", field)
    mismatch = _MISMATCH.fullmatch(msg)
    if mismatch and mismatch[2] == "null" and _null_is_absent(path):
        return MissingField(f"{path} is required", path)
    if mismatch:
        got = _KIND.get(mismatch[2], mismatch[2])
        return InvalidField(f"{path or 'the body'} must be {_kinds(mismatch[1])}, got {got}",
                            path or None)
    if msg.startswith("Invalid enum value"):
        return InvalidField(f"{path}: {msg.replace('Invalid', 'invalid', 1)}", path or None)
    bound = _BOUND.fullmatch(msg)
    if bound:
        kind, length, op, limit = bound.groups()
        what = ("a string of" if kind == "str" else "an array of") if length else "a number"
        unit = " characters" if kind == "str" else " items" if length else ""
        return InvalidField(f"{path} must be {what} {_OPS[op]} {limit}{unit}", path or None)
    return InvalidField(f"{path or 'the body'}: {msg.replace('Expected', 'expected', 1)}",
                        path or None)


def convert(data: Any, cls: type[S]) -> S:
    """`data` (parsed JSON) as a `cls`, strictly: no "1" for 1, no 1.0 for 1, no 1 for true."""
    check_keys(data, cls)
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise mapped(exc) from exc
