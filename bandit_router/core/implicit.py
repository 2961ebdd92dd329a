"""Implicit quality: what an answer's form tells about it, for free, with no label.

Each signal present gives the call one bounded negative quality fact (source `implicit`,
weighted `implicit.weight`): an empty answer, one cut off at the model's own limit (not at
the caller's `max_tokens`), one a content filter stopped, a refusal, invalid JSON when the
caller asked for a JSON object, and (opt-in) the same conversation sent again soon after,
which is a regenerate. A call gets at most one such fact: the lowest of its signals.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from bandit_router.core.settings import ImplicitConfig
from bandit_router.core.types import RouteTicket

# The quality each signal stands for: a floor, not a grade. An empty answer or broken JSON
# is no answer; the others may hold something useful.
VALUES = {"empty": 0.0, "invalid_json": 0.0, "truncated": 0.25, "content_filter": 0.25,
          "refusal": 0.25, "regenerate": 0.25}
REMEMBERED = 10_000  # conversations remembered for regenerates (oldest forgotten first)
_REFUSAL_HEAD = 200  # characters of an answer's start a refusal phrase is looked for in


@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway saw of one answer."""

    text: str
    finish_reason: str | None
    asked_json: bool  # the caller sent response_format {"type": "json_object"}
    caller_max_tokens: bool  # the caller set max_tokens (a cut there is the caller's)


def asked_for_json(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_object"


def signals(config: ImplicitConfig, answer: Answer) -> list[str]:
    """The enabled signals present in `answer` (regenerate is found elsewhere)."""
    found = []
    text = answer.text.strip()
    if not text and answer.finish_reason != "tool_calls":
        found.append("empty")
    if answer.finish_reason == "length" and not answer.caller_max_tokens:
        found.append("truncated")
    if answer.finish_reason == "content_filter":
        found.append("content_filter")
    head = text[:_REFUSAL_HEAD].lower().replace("’", "'")
    if text and any(head.startswith(p) or f"\n{p}" in head for p in config.refusals):
        found.append("refusal")
    if answer.asked_json and text and not _is_json(text):
        found.append("invalid_json")
    return [s for s in found if s in config.signals]


def implicit_quality(found: list[str]) -> float | None:
    """The call's implicit quality fact: the lowest value of its signals, or None."""
    return min((VALUES[s] for s in found), default=None)


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def conversation_key(tenant: str, session: str | None, messages: Any) -> str:
    """Which conversation a call continues: a digest of its tenant, session and messages
    (never stored, never logged)."""
    data = orjson.dumps([tenant, session or "", messages], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Regenerates:
    """The last answered call of each recent conversation, bounded in count and age: a
    call whose conversation was answered within `window_s` is a regenerate of that one."""

    def __init__(self, window_s: float, clock=time.monotonic) -> None:
        self._window_s, self._clock = window_s, clock
        self._last: OrderedDict[str, tuple[float, str, RouteTicket]] = OrderedDict()

    def previous(self, key: str) -> tuple[str, RouteTicket] | None:
        """The earlier call of this conversation if it was answered within the window."""
        hit = self._last.pop(key, None)
        if hit is None or self._clock() - hit[0] > self._window_s:
            return None
        return hit[1], hit[2]

    def remember(self, key: str, route_id: str, ticket: RouteTicket) -> None:
        self._last[key] = (self._clock(), route_id, ticket)
        self._last.move_to_end(key)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
