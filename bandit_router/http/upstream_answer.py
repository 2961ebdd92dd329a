"""What an upstream sends back, checked like client input: a bounded read, then the shape
of an OpenAI chat answer (or of one streamed event). An answer that fails is the
upstream's failure: the gateway tries the next model, or ends a started stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from bandit_router.http.upstream_client import Response


class BadAnswer(Exception):
    """The upstream's answer is too large, endless or malformed (the reason is the text)."""


async def read_capped(resp: Response, limit: int) -> bytes:
    """The whole body, or BadAnswer once it passes `limit` bytes (the rest is not read)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise BadAnswer(f"answer of {resp.content_length} bytes is over the limit "
                        f"(gateway.max_answer_bytes, {limit})")
    body = bytearray()
    async for chunk in resp.chunks():
        body += chunk
        if len(body) > limit:
            raise BadAnswer(f"answer over the limit (gateway.max_answer_bytes, {limit} bytes)")
    return bytes(body)


async def lines(resp: Response, max_line: int,
                max_total: int) -> AsyncIterator[bytes]:
    """A streamed answer's lines (with their newline), each at most `max_line` bytes and
    all together at most `max_total`."""
    buffer, total = bytearray(), 0
    async for chunk in resp.chunks():
        total += len(chunk)
        if total > max_total:
            raise BadAnswer(f"streamed answer over the limit (gateway.max_answer_bytes, "
                            f"{max_total} bytes)")
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            yield bytes(buffer[start:end + 1])
            start = end + 1
        del buffer[:start]
        if len(buffer) > max_line:
            raise BadAnswer(f"a streamed line over the limit (gateway.max_event_bytes, "
                            f"{max_line} bytes)")
    if buffer:
        yield bytes(buffer)


def _token_problem(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if value is not None and (type(value) is not int or value < 0):
            return f"usage.{key} is not a non-negative integer"
    return None


def _object(raw: bytes, what: str) -> dict:
    """`raw` parsed as a JSON object, or BadAnswer naming `what` it was."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadAnswer(f"{what} is not a JSON object")
    return data


def answer(body: bytes) -> dict:
    """A non-streamed answer as an object, or BadAnswer saying what is wrong with it."""
    data = _object(body, "answer")
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise BadAnswer("answer's choices is not an array of objects")
    problem = _token_problem(data.get("usage"))
    if problem:
        raise BadAnswer(f"answer's {problem}")
    return data


def event(data: bytes) -> dict:
    """One streamed event's data as an object, or BadAnswer."""
    chunk = _object(data, "stream event")
    if "error" in chunk:
        raise BadAnswer("the upstream sent an error event")
    choices = chunk.get("choices")
    if choices is not None and (not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("delta") or {}, dict) for c in choices)):
        raise BadAnswer("stream event's choices is not an array of objects with a delta")
    problem = _token_problem(chunk.get("usage"))
    if problem:
        raise BadAnswer(f"stream event's {problem}")
    return chunk


def text_chars(chunk: dict) -> int:
    """Characters of answer text in a checked event (for a length estimate)."""
    out = 0
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str):
            out += len(content)
    return out
