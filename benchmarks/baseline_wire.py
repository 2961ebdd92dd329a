"""The /v1/route reader before the msgspec schemas (bandit_router/http/wire.py and
validate.py at commit 56a7acb, the route part only), kept as the baseline that
benchmarks/micro_schema.py measures the service's path against. Not used by the service."""

from __future__ import annotations

import math
from typing import Any

from bandit_router.core.errors import InvalidField, MissingField, UnknownField
from bandit_router.core.types import (
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_TOKENS,
    NO_CONSTRAINTS,
    NO_OVERRIDE,
    Constraints,
    Message,
    RouteRequest,
    WeightsOverride,
)

ROUTE_FIELDS = frozenset({"prompt", "messages", "task", "bucket", "policy", "constraints",
                          "weights", "input_tokens", "max_output_tokens", "explain"})
CONSTRAINT_FIELDS = frozenset({"models", "exclude", "max_cost_usd", "max_latency_ms"})
WEIGHT_FIELDS = frozenset({"cost", "latency", "points_per_price_doubling",
                           "points_per_latency_doubling"})
WEIGHT_ORDER = ("cost", "latency", "points_per_price_doubling", "points_per_latency_doubling")
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


MAX_WEIGHT = 1000.0
MAX_TEXT = 1 << 30  # a prompt or a text part, in characters
MAX_ROLE = 64  # a message's role, a content part's type
MAX_TASK = 64
MAX_NAME = 128  # a bucket or policy name in a route request


def _content(value: Any, path: str) -> str:
    """A message's text: a string, or the text parts of an OpenAI content array."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidField(f"{path} must be a string or an array of content parts", path)
    texts = []
    for i, part in enumerate(value):
        text = part.get("text") if type(part) is dict and part.get("type") == "text" else None
        if type(text) is str:  # the usual part, without building a Fields for it
            texts.append(text)
            continue
        fields = Fields(part, f"{path}[{i}]")
        kind = fields.string("type", required=True, max_len=MAX_ROLE)
        if kind == "text":
            texts.append(fields.string("text", required=True, max_len=MAX_TEXT))
    return "\n".join(texts)


def _count_parts(messages: list, max_parts: int) -> None:
    """Refuse a request with too many content parts before any part is examined: each part
    costs event-loop time, and 35,000 tiny ones in a megabyte cost 30 ms."""
    parts = 0
    for i, item in enumerate(messages):
        content = item.get("content") if type(item) is dict else None
        if type(content) is list:
            parts += len(content)
            if parts > max_parts:
                raise InvalidField(f"messages[{i}].content: the request has more than "
                                   f"{max_parts} content parts in all "
                                   "(server.max_content_parts)", f"messages[{i}].content")


def _messages(body: Fields, max_messages: int, max_parts: int) -> tuple[Message, ...]:
    prompt = body.string("prompt", max_len=MAX_TEXT)
    raw = body.array("messages", max_messages)
    if prompt is not None and raw is not None:
        raise InvalidField("send either prompt or messages, not both", "messages")
    if prompt is not None:
        return (Message("user", prompt),)
    if not raw:
        raise MissingField("prompt (a string) or messages (a non-empty array) is required",
                           "prompt" if raw is None else "messages")
    _count_parts(raw, max_parts)
    out = []
    for i, item in enumerate(raw):
        fields = Fields(item, f"messages[{i}]")
        role = fields.string("role", required=True, max_len=MAX_ROLE)
        out.append(Message(role, _content(fields.raw("content"), f"messages[{i}].content")))
    return tuple(out)


def _constraints(body: Fields) -> Constraints:
    c = body.object("constraints", CONSTRAINT_FIELDS)
    if c is None:
        return NO_CONSTRAINTS
    models = c.strings("models")
    if models is not None and not models:
        raise InvalidField("constraints.models must name at least one model",
                           "constraints.models")
    return Constraints(
        models=frozenset(models) if models is not None else None,
        exclude=frozenset(c.strings("exclude") or ()),
        max_cost_usd=c.number("max_cost_usd", 0.0, MAX_COST_USD, above=True),
        max_latency_ms=c.number("max_latency_ms", 0.0, MAX_LATENCY_MS, above=True),
    )


def parse_route(data: Any, max_messages: int, max_parts: int = 4096) -> RouteRequest:
    body = Fields(data, allowed=ROUTE_FIELDS)
    weights = body.object("weights", WEIGHT_FIELDS)
    return RouteRequest(
        messages=_messages(body, max_messages, max_parts),
        task=body.string("task", max_len=MAX_TASK),
        bucket=body.string("bucket", max_len=MAX_NAME),
        policy=body.string("policy", max_len=MAX_NAME),
        constraints=_constraints(body),
        weights=WeightsOverride(**{name: weights.number(name, 0.0, MAX_WEIGHT)
                                   for name in WEIGHT_ORDER}) if weights else NO_OVERRIDE,
        input_tokens=body.integer("input_tokens", 0, MAX_TOKENS),
        max_output_tokens=body.integer("max_output_tokens", 1, MAX_TOKENS),
        explain=bool(body.boolean("explain")),
    )
