"""The body Structs and the reading of msgspec's errors (bandit_router/http/schemas/).

msgspec reports an error as text only; these cases pin, for each kind of message the mapping
reads, the code and the field it gives, so a msgspec release that rewords one fails here
(and in tests/http/test_handlers.py's tables) rather than in production."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bandit_router.core.errors import RouterError
from bandit_router.core.settings import ServerConfig
from bandit_router.http.schemas.admin import BucketChangeBody, UpdateModelBody
from bandit_router.http.schemas.bodies import Bodies, FeedbackBody, ResetBody
from bandit_router.http.schemas.decode import convert
from bandit_router.http.wire import parse_chat, parse_route


def refused(data, cls) -> RouterError:
    with pytest.raises(RouterError) as caught:
        convert(data, cls)
    return caught.value


@pytest.mark.parametrize(("data", "cls", "code", "field", "words"), [
    ([], ResetBody, "invalid_field", None, "must be a JSON object, got an array"),
    ({"policy": 5}, ResetBody, "invalid_field", "policy", "must be a string, got an integer"),
    ({"policy": "p" * 257}, ResetBody, "invalid_field", "policy", "at most 256 characters"),
    ({"quality": 1.0}, FeedbackBody, "missing_field", "route_id", "is required"),
    ({"route_id": None}, FeedbackBody, "missing_field", "route_id", "is required"),
    ({"route_id": "r", "quality": 2}, FeedbackBody, "invalid_field", "quality", "at most 1.0"),
    ({"route_id": "r", "input_tokens": -1}, FeedbackBody, "invalid_field", "input_tokens",
     "at least 0"),
    ({"route_id": "r", "idempotency_key": ""}, FeedbackBody, "invalid_field",
     "idempotency_key", "at least 1 characters"),
    ({"route_id": "r", "success": 1}, FeedbackBody, "invalid_field", "success",
     "must be a boolean, got an integer"),
    ({"zz": 1, "aa": 2}, ResetBody, "unknown_field", "aa", "allowed: bucket, model, policy"),
    ({"action": "pin", "bucket": "b", "x": 1}, BucketChangeBody, "unknown_field", "x",
     "allowed: action, bucket"),
    ({"action": "shout", "bucket": "b"}, BucketChangeBody, "invalid_field", "action",
     "invalid enum value 'shout'"),
    ({"enabled": "yes"}, UpdateModelBody, "invalid_field", "enabled", "must be a boolean"),
])
def test_each_kind_of_msgspec_error_gives_its_code_and_field(data, cls, code, field, words):
    err = refused(data, cls)
    assert (err.code, err.field) == (code, field)
    assert words in str(err)
    assert field is None or str(err).startswith(field) or repr(field) in str(err)


def test_unknown_keys_are_named_before_any_value_and_nested_ones_with_their_path():
    bodies = Bodies.build(ServerConfig())
    with pytest.raises(RouterError) as caught:  # a bad prompt too: the unknown key is named
        parse_route({"prompt": 5, "temperature": 0.2}, bodies)
    assert (caught.value.code, caught.value.field) == ("unknown_field", "temperature")
    with pytest.raises(RouterError) as caught:
        parse_route({"prompt": "hi", "constraints": {"model": "x"}}, bodies)
    assert caught.value.field == "constraints.model"
    assert "allowed: exclude, max_cost_usd, max_latency_ms, models" in str(caught.value)


def test_a_null_inside_an_array_is_a_wrong_value_not_an_absent_one():
    bodies = Bodies.build(ServerConfig())
    with pytest.raises(RouterError) as caught:
        parse_route({"prompt": "hi", "constraints": {"exclude": [None]}}, bodies)
    assert (caught.value.code, caught.value.field) == ("invalid_field", "constraints.exclude[0]")


def test_the_configs_limits_are_built_into_the_classes():
    bodies = Bodies.build(replace(ServerConfig(), max_messages=2, max_content_parts=3))
    two = [{"role": "user", "content": "hi"}] * 2
    assert len(parse_route({"messages": two}, bodies).messages) == 2
    with pytest.raises(RouterError) as caught:
        parse_route({"messages": two + two[:1]}, bodies)
    assert (caught.value.field, str(caught.value)) == (
        "messages", "messages must be an array of at most 2 items")
    parts = [{"type": "text", "text": "a"}] * 4  # the part budget, counted first
    with pytest.raises(RouterError) as caught:
        parse_route({"messages": [{"role": "user", "content": parts}]}, bodies)
    assert caught.value.field == "messages[0].content" and "max_content_parts" in str(
        caught.value)
    with pytest.raises(RouterError) as caught:  # the gateway's body, the same limit
        parse_chat({"model": "auto", "messages": two + two[:1]}, bodies)
    assert caught.value.field == "messages"


def test_a_released_field_is_told_from_an_absent_one():
    body = convert({"input_per_mtok": None, "enabled": False}, UpdateModelBody)
    assert body.input_per_mtok is None  # released: config.toml's applies again
    assert not body.output_per_mtok  # UNSET: not sent, not changed
    assert body.enabled is False


def test_the_chat_bodys_older_max_tokens_is_not_read_when_the_newer_one_is_sent():
    bodies = Bodies.build(ServerConfig())
    messages = [{"role": "user", "content": "hi"}]
    _, request = parse_chat({"model": "auto", "messages": messages,
                             "max_completion_tokens": 7, "max_tokens": "ignored"}, bodies)
    assert request.max_output_tokens == 7
    _, request = parse_chat({"model": "auto", "messages": messages, "max_tokens": 9}, bodies)
    assert request.max_output_tokens == 9
