"""One setting, described once: its default, bounds and help text ride on the settings
dataclass field itself (`setting(...)`), and its type is the field's annotation.

Why the dataclass is the source and not a separate table: the frozen types are what the code
constructs (`LearnedBuckets(min_samples=40)` in a test, `ServerConfig()` in a fallback), so
their defaults must be real dataclass defaults; putting bounds and help in the field's
metadata keeps all of a key on one line beside its type, and the table (core/setting_table.py)
is read back from the fields, so it cannot disagree with them. Pure data: no I/O here."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["string", "integer", "number", "boolean", "strings", "structural"]


class _Required:
    """No default: the key must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
Check = Callable[[Any], "str | None"]  # a problem with a value the bounds do not catch


@dataclass(frozen=True, slots=True)
class Setting:
    """A config key: what it takes, what it is without it, and what it means."""

    key: str  # dotted, as the reference shows it: "server.port", "policies.<name>.mode"
    help: str  # one line of Markdown, the reference's "meaning"
    kind: Kind = "structural"  # structural: read by a hand-written reader
    default: Any = REQUIRED
    optional: bool = False  # absent means None
    lo: float | None = None
    hi: float | None = None
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] = ()
    check: Check | None = None
    lower: bool = False  # an array of phrases, matched lower-case
    shown: str | None = None  # the default as the reference words it, when not a literal

    @property
    def name(self) -> str:
        """The key inside its table."""
        return self.key.rsplit(".", 1)[-1]

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.optional


def setting(default: Any = REQUIRED, help: str = "", *, factory: Callable[[], Any] | None = None,
            structural: bool = False, **bounds: Any) -> Any:
    """A dataclass field that is also a config key (bounds: lo, hi, above, choices, check,
    lower, shown)."""
    spec = Setting(key="", help=help, kind="structural" if structural else "string", **bounds)
    metadata = {"setting": spec}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _kind(hint: Any) -> tuple[Kind, bool, tuple[str, ...]]:
    """The reader for an annotation: its kind, whether None is allowed, its Literal values."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        return _kind(inner)[0], True, _kind(inner)[2]
    if typing.get_origin(hint) is Literal:
        return "string", False, tuple(args)
    if typing.get_origin(hint) is tuple and args[0] is str:
        return "strings", False, ()
    simple: dict[Any, Kind] = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return simple[hint], False, ()


@functools.cache
def fields_of(cls: type) -> tuple[Setting, ...]:
    """The settings of a dataclass, in field order, each keyed by its field name."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue  # not a key (a name taken from the table's header, a derived value)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else REQUIRED if f.default is dataclasses.MISSING else f.default
        if spec.kind == "structural":
            out.append(dataclasses.replace(spec, key=f.name, default=default))
            continue
        kind, optional, literal = _kind(hints[f.name])
        out.append(dataclasses.replace(
            spec, key=f.name, kind=kind, default=default, optional=optional and default is None,
            choices=spec.choices or literal))
    return tuple(out)


def under(prefix: str, settings: tuple[Setting, ...]) -> tuple[Setting, ...]:
    """The same settings keyed under a table: `port` -> `server.port`."""
    return tuple(dataclasses.replace(s, key=f"{prefix}.{s.key}") for s in settings)


def zero_or_at_least(floor: float, zero: str, upto: float | None = None) -> Check:
    """A rule for keys where 0 turns a feature off and small positive values make no sense."""
    def check(value: float) -> str | None:
        if 0 < value < floor:
            if upto is not None:
                return f"must be 0 ({zero}) or between {floor} and {upto:g}"
            return f"must be 0 ({zero}) or at least {floor}"
        return None
    return check
