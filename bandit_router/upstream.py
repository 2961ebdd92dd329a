"""Calling an OpenAI-compatible upstream: one shared, pooled aiohttp session, one call per
attempt, streamed answers passed through chunk by chunk while they are measured."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from bandit_router.config import GatewayConfig, Upstream

RETRYABLE = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


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
    retryable: bool = False  # worth trying the next model
    body: bytes | None = None  # a non-streamed answer (or the upstream's client error)
    streamed: web.StreamResponse | None = None  # a streamed answer, already sent


class Upstreams:
    """The gateway's client side; open in the app's lifetime, closed at shutdown."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=self._config.connect_timeout_s,
                                        sock_read=self._config.timeout_s)
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
            json_serialize=lambda o: orjson.dumps(o).decode())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _headers(upstream: Upstream) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if upstream.api_key:
            headers["Authorization"] = f"Bearer {upstream.api_key}"
        return headers

    async def call(self, upstream: Upstream, body: dict, model: str, extra_headers: dict,
                   request: web.Request | None) -> Call:
        """One attempt. With `request` (a streaming call), a good answer is streamed to it."""
        assert self._session is not None, "Upstreams.start() was not awaited"
        payload = {**body, "model": upstream.model}
        started = time.monotonic()
        try:
            async with self._session.post(f"{upstream.base_url}/chat/completions",
                                          data=orjson.dumps(payload),
                                          headers=self._headers(upstream)) as resp:
                if resp.status >= 400:
                    error = await resp.read()
                    return Call(False, resp.status, f"HTTP {resp.status}",
                                _ms(started), retryable=resp.status in RETRYABLE, body=error)
                if request is not None:
                    return await _stream(resp, request, model, extra_headers, started)
                data = orjson.loads(await resp.read())
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            return Call(False, None, reason, _ms(started), retryable=True)
        usage = data.get("usage") or {}
        data["model"] = model
        return Call(True, 200, "ok", _ms(started), input_tokens=_int(usage.get("prompt_tokens")),
                    output_tokens=_int(usage.get("completion_tokens")), body=orjson.dumps(data))


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def _stream(resp: aiohttp.ClientResponse, request: web.Request, model: str,
                  extra_headers: dict, started: float) -> Call:
    """Pass the upstream's server-sent events through as they arrive, with `model` set to
    the catalog's name, noting time to first token, the usage chunk and the text's length."""
    out = web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", **extra_headers})
    await out.prepare(request)
    first: float | None = None
    usage: dict = {}
    chars = 0
    try:
        async for line in resp.content:
            if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                if first is None:
                    first = _ms(started)
                chunk = orjson.loads(line[5:])
                chunk["model"] = model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    chars += len((choice.get("delta") or {}).get("content") or "")
                line = b"data: " + orjson.dumps(chunk) + b"\n"
            await out.write(line)
        await out.write_eof()
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        # Already streaming: too late to try another model; the client sees the stream end.
        return Call(False, 200, f"stream broke: {type(exc).__name__}", _ms(started),
                    first_token_ms=first, streamed=out)
    output = _int(usage.get("completion_tokens"))
    return Call(True, 200, "ok", _ms(started), first_token_ms=first,
                input_tokens=_int(usage.get("prompt_tokens")),
                output_tokens=output if output is not None else -(-chars // 4), streamed=out)
