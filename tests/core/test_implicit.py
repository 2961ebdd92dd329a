"""Implicit quality signals: which answers say something about themselves, and what."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bandit_router.core.implicit import (
    VALUES,
    Answer,
    Regenerates,
    conversation_key,
    implicit_quality,
    signals,
)
from bandit_router.core.settings import IMPLICIT_SIGNALS, ImplicitConfig
from bandit_router.core.types import RouteTicket

ALL = replace(ImplicitConfig(), signals=IMPLICIT_SIGNALS)


def answer(text="Paris.", finish="stop", asked_json=False, max_tokens=False) -> Answer:
    return Answer(text, finish, asked_json, max_tokens)


@pytest.mark.parametrize(("seen", "found"), [
    (answer(), []),
    (answer(""), ["empty"]),
    (answer("   \n"), ["empty"]),
    (answer("", finish="tool_calls"), []),  # a tool call has no text, and is no failure
    (answer("Paris is the", finish="length"), ["truncated"]),
    (answer("Paris is the", finish="length", max_tokens=True), []),  # the caller's limit
    (answer("", finish="content_filter"), ["empty", "content_filter"]),
    (answer("I'm sorry, but I can't help with that."), ["refusal"]),
    (answer("I’m sorry, but I can’t help with that."), ["refusal"]),  # curly quotes
    (answer("Here is why I can't help with fear: ..."), []),  # not at the start
    (answer('{"city": "Paris"}', asked_json=True), []),
    (answer("city: Paris", asked_json=True), ["invalid_json"]),
    (answer("city: Paris"), []),  # no JSON was asked for
])
def test_signals(seen: Answer, found: list[str]):
    assert signals(ALL, seen) == found


def test_only_enabled_signals_count():
    config = replace(ImplicitConfig(), signals=("empty",))
    assert signals(config, answer("I cannot help with that.", finish="length")) == []
    assert "regenerate" not in ImplicitConfig().signals  # a caller's act: opt in


def test_a_call_gets_the_lowest_value_of_its_signals():
    assert implicit_quality(["truncated", "empty"]) == 0.0
    assert implicit_quality(["refusal"]) == VALUES["refusal"] == 0.25
    assert implicit_quality([]) is None
    assert all(0.0 <= v <= 0.25 for v in VALUES.values())  # bounded negatives only


def test_a_regenerate_is_the_same_conversation_again_within_the_window():
    now = [0.0]
    ticket = RouteTicket("default", "chat:low", "gpt-5-nano", 0.0, 5, "n", "acme")
    seen = Regenerates(window_s=300, clock=lambda: now[0])
    key = conversation_key("acme", None, [{"role": "user", "content": "hi"}])
    assert seen.previous(key) is None
    seen.remember(key, "r1", ticket)
    now[0] = 200.0
    assert seen.previous(key) == ("r1", ticket)
    seen.remember(key, "r2", ticket)
    now[0] = 600.0  # past the window: a new question, not a retry
    assert seen.previous(key) is None


def test_conversations_differ_by_tenant_session_and_messages():
    m = [{"role": "user", "content": "hi"}]
    keys = {conversation_key("acme", None, m), conversation_key("globex", None, m),
            conversation_key("acme", "s1", m),
            conversation_key("acme", None, [{"role": "user", "content": "hi!"}])}
    assert len(keys) == 4
