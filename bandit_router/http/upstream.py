"""Calling an OpenAI-compatible upstream: one shared pool of keep-alive connections
(upstream_client.py), one call per attempt, streamed answers passed through event by event
while they are measured.

An upstream is read like a client: its answer is bounded (`gateway.max_answer_bytes`, and
`max_event_bytes` per streamed line) and checked (upstream_answer.py). Whatever goes wrong
before the first byte reaches our client (an error status, a timeout, a body too large or
malformed, a stream whose first event is bad) is a retryable failure: the gateway tries the
next model. Once a stream has started, a failure ends it cleanly with an OpenAI-style error
event; either way it is recorded against that upstream.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

from bandit_router.core.cache_prices import prompt_usage
from bandit_router.core.settings import GatewayConfig, Upstream
from bandit_router.http import upstream_answer as checked
from bandit_router.http.drain import Drain
from bandit_router.http.upstream_answer import BadAnswer
from bandit_router.http.upstream_client import Client, Response, UpstreamError

RETRYABLE = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_ERROR_BYTES = 65_536  # an upstream's error answer, passed on to the client
_FAILURES = (TimeoutError, UpstreamError, BadAnswer)


@dataclass
class Call:
    """What one upstream call did: measured for feedback whatever its outcome."""

    ok: bool
    status: int | None  # HTTP status; None when no answer came (timeout, connection error)
    reason: str
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    # parts of input_tokens read from / written to the prompt cache (core/cache_prices.py)
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    retryable: bool = False  # worth trying the next model
    body: bytes | None = None  # a non-streamed answer (or the upstream's client error)
    streamed: web.StreamResponse | None = None  # a streamed answer, already sent
    ours: bool = False  # cut short by the router (shutdown), not the upstream's doing
    text: str = ""  # the answer's text (its first choice), up to MAX_TEXT_KEPT characters
    finish_reason: str | None = None


MAX_TEXT_KEPT = 65_536  # of an answer's text, for the judge and the implicit signals
MAX_JUDGE_REPLY = 1 << 20  # bytes of a judge's answer read


def _first_choice(data: dict) -> tuple[str, str | None]:
    """The text and finish_reason of a checked answer's first choice."""
    choices = data.get("choices") or ()
    first = choices[0] if choices else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    content = message.get("content")
    reason = first.get("finish_reason")
    return (content[:MAX_TEXT_KEPT] if isinstance(content, str) else "",
            reason if isinstance(reason, str) else None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadAnswer | UpstreamError):
        return str(exc)
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


class Upstreams:
    """The gateway's client side; open in the app's lifetime, closed at shutdown."""

    def __init__(self, config: GatewayConfig, drain: Drain) -> None:
        self._config = config
        self._drain = drain
        self._client: Client | None = None

    async def start(self) -> None:
        self._client = Client(self._config.connect_timeout_s, self._config.timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @staticmethod
    def _headers(upstream: Upstream) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if upstream.api_key:
            headers["Authorization"] = f"Bearer {upstream.api_key}"
        return headers

    async def call(self, upstream: Upstream, body: dict, model: str, extra_headers: dict,
                   request: web.Request | None) -> Call:
        """One attempt. With `request` (a streaming call), a good answer is streamed to it."""
        assert self._client is not None, "Upstreams.start() was not awaited"
        payload = {**body, "model": upstream.model}
        started = time.monotonic()
        try:
            # the client follows no redirect: only declared upstreams are called, and a
            # redirect would carry the caller's prompt to an address nobody declared
            async with self._client.post(f"{upstream.base_url}/chat/completions",
                                         orjson.dumps(payload),
                                         self._headers(upstream)) as resp:
                if 300 <= resp.status < 400:
                    return Call(False, resp.status, f"redirect (HTTP {resp.status}) refused",
                                _ms(started), retryable=True)
                if resp.status >= 400:
                    return await _refused(resp, started)
                if request is not None:
                    stream = _Stream(resp, request, model, extra_headers, started)
                    return await stream.run(self._config, self._drain)
                # the whole answer within timeout_s: a trickle must not hold the call
                async with asyncio.timeout(self._config.timeout_s):
                    raw = await checked.read_capped(resp, self._config.max_answer_bytes)
                data = checked.answer(raw)
        except _FAILURES as exc:
            return Call(False, None if not isinstance(exc, BadAnswer) else 200, _reason(exc),
                        _ms(started), retryable=True)
        usage = data.get("usage") or {}
        data["model"] = model
        text, finish = _first_choice(data)
        prompt = prompt_usage(usage)
        return Call(True, 200, "ok", _ms(started), input_tokens=prompt.input_tokens,
                    output_tokens=usage.get("completion_tokens"), body=orjson.dumps(data),
                    text=text, finish_reason=finish,
                    cached_input_tokens=prompt.cached_input_tokens,
                    cache_write_tokens=prompt.cache_write_tokens)

    async def complete(self, upstream: Upstream, body: dict,
                       timeout_s: float) -> tuple[int | None, dict | None, str]:
        """One plain, non-streamed call (the judge's): (status, answer, reason)."""
        assert self._client is not None, "Upstreams.start() was not awaited"
        try:
            async with asyncio.timeout(timeout_s), self._client.post(
                    f"{upstream.base_url}/chat/completions",
                    orjson.dumps({**body, "model": upstream.model}),
                    self._headers(upstream)) as resp:
                if resp.status != 200:
                    return resp.status, None, f"HTTP {resp.status}"
                return 200, checked.answer(await checked.read_capped(resp, MAX_JUDGE_REPLY)), \
                    "ok"
        except _FAILURES as exc:
            return None, None, _reason(exc)


async def _refused(resp: Response, started: float) -> Call:
    try:
        error = await checked.read_capped(resp, MAX_ERROR_BYTES)
    except BadAnswer:
        error = orjson.dumps({"error": {"message": f"upstream answered HTTP {resp.status} "
                                                   "with an error body too large to pass on",
                                        "type": "upstream_error"}})
    return Call(False, resp.status, f"HTTP {resp.status}", _ms(started),
                retryable=resp.status in RETRYABLE, body=error)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


class _ClientGone(Exception):
    """Our own client hung up mid-stream: nobody's failure to learn from."""


def error_event(message: str) -> bytes:
    """The event that ends a broken stream: OpenAI's SDKs raise it as an APIError."""
    return b"data: " + orjson.dumps({"error": {
        "message": message, "type": "upstream_error", "code": "upstream_failed",
        "param": None}}) + b"\n\n"


class _Stream:
    """One streamed answer: its server-sent events passed through with `model` set to the
    catalog's name, noting time to first token, the usage event and the text's length.
    Nothing is sent to our client until the first event has arrived and checked out."""

    def __init__(self, resp: Response, request: web.Request, model: str,
                 headers: dict, started: float) -> None:
        self.resp, self.request, self.model = resp, request, model
        self.headers, self.started = headers, started
        self.out: web.StreamResponse | None = None
        self.first: float | None = None
        self.usage: dict = {}
        self.chars = 0
        self.text: list[str] = []  # the first choice's text, up to MAX_TEXT_KEPT
        self.finish_reason: str | None = None

    def _line(self, line: bytes) -> bytes:
        data = line[5:].strip() if line.startswith(b"data:") else None
        if data is None or data in (b"", b"[DONE]"):
            return line
        chunk = checked.event(data)
        if self.first is None:
            self.first = _ms(self.started)
        chunk["model"] = self.model
        self.usage = chunk.get("usage") or self.usage
        self.chars += checked.text_chars(chunk)
        self._keep(chunk)
        return b"data: " + orjson.dumps(chunk) + b"\n"

    def _keep(self, chunk: dict) -> None:
        """Keep the first choice's text (bounded) and its finish_reason."""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and self.chars <= MAX_TEXT_KEPT:
                self.text.append(content)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason

    async def _start(self, held: list[bytes]) -> None:
        self.out = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", **self.headers})
        try:
            await self.out.prepare(self.request)
        except ConnectionError as exc:
            raise _ClientGone from exc
        await self._write(b"".join(held))

    async def _write(self, data: bytes) -> None:
        assert self.out is not None
        try:
            await self.out.write(data)
        except ConnectionError as exc:  # our client's reset: not the upstream's doing
            raise _ClientGone from exc

    async def run(self, config: GatewayConfig, drain: Drain) -> Call:
        held: list[bytes] = []  # lines before the first event (comments, blank lines)
        try:
            async with drain.stream():
                async for line in checked.lines(self.resp, config.max_event_bytes,
                                                config.max_answer_bytes):
                    line = self._line(line)
                    if self.out is not None:
                        await self._write(line)
                    elif self.first is not None:
                        await self._start([*held, line])
                    else:
                        held.append(line)
                if self.out is None:
                    raise BadAnswer("the stream ended before its first event")
                await self.out.write_eof()
        except _ClientGone:
            return Call(False, 200, "the client left", _ms(self.started),
                        first_token_ms=self.first, streamed=self.out, ours=True)
        except _FAILURES as exc:
            return await self._broken(exc, drain)
        output = self.usage.get("completion_tokens")
        prompt = prompt_usage(self.usage)
        return Call(True, 200, "ok", _ms(self.started), first_token_ms=self.first,
                    input_tokens=prompt.input_tokens,
                    cached_input_tokens=prompt.cached_input_tokens,
                    cache_write_tokens=prompt.cache_write_tokens,
                    output_tokens=output if output is not None else -(-self.chars // 4),
                    streamed=self.out, text="".join(self.text)[:MAX_TEXT_KEPT],
                    finish_reason=self.finish_reason)

    async def _broken(self, exc: BaseException, drain: Drain) -> Call:
        ours = isinstance(exc, TimeoutError) and drain.expired()
        reason = "the router is shutting down" if ours else _reason(exc)
        if self.out is None and not ours:  # nothing sent yet: the next model may answer
            return Call(False, 200, reason, _ms(self.started), retryable=True)
        try:
            if self.out is None:
                await self._start([])
            await self._write(error_event(f"the stream broke: {reason}"))
            assert self.out is not None
            await self.out.write_eof()
        except (_ClientGone, ConnectionError):
            pass  # our client left too
        return Call(False, 200, f"stream broke: {reason}", _ms(self.started),
                    first_token_ms=self.first, streamed=self.out, ours=ours)
