"""Connections in front of aiohttp: a cap with a clear refusal, and logs that a flood of
errors cannot turn into a flood of lines.

`Guard` is the listening socket's protocol factory. Each accepted connection gets a thin
`_Connection` that hands everything to aiohttp's own protocol, made only once the
connection is admitted; past `limit` open connections a new one is answered
`503 too_many_connections` and closed, without ever reaching aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

REFUSAL_LINGER_S = 1.0  # a refused peer may finish sending its request, so it reads our 503
ACCEPT_ERROR = "socket.accept() out of system resource"  # asyncio's message for EMFILE etc.


class Throttled:
    """Logs an event at once, then at most once per `every_s`, with how many it left out."""

    def __init__(self, write: Callable[..., None], every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._write, self._every_s, self._clock = write, every_s, clock
        self._next = 0.0
        self.suppressed = 0

    def __call__(self, **fields: Any) -> None:
        now = self._clock()
        if now < self._next:
            self.suppressed += 1
            return
        self._write(suppressed=self.suppressed, **fields)
        self.suppressed, self._next = 0, now + self._every_s


def _refusal(limit: int) -> bytes:
    body = orjson.dumps({"error": {
        "code": "too_many_connections", "field": None,
        "message": f"the router has {limit} connections open (server.max_connections); "
                   "retry shortly"}})
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class Guard:
    """The protocol factory: admits up to `limit` connections at a time."""

    def __init__(self, make: Callable[[], asyncio.Protocol], limit: int,
                 on_refused: Callable[..., None]) -> None:
        self._make, self.limit, self._on_refused = make, limit, on_refused
        self._refusal = _refusal(limit)
        self.open = 0
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)


class _Connection(asyncio.Protocol):
    __slots__ = ("_guard", "_inner", "_linger", "_transport")

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.limit:
            self._refuse(transport)
            return
        guard.open += 1
        self._inner = guard._make()
        self._inner.connection_made(transport)

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        guard.refused += 1
        guard._on_refused(open=guard.open, refused_total=guard.refused)
        self._transport = transport
        transport.write(guard._refusal)  # type: ignore[attr-defined]
        # Closing at once, with the peer's request unread, would reset the connection and
        # the peer might never read the answer: half-close, then close on its EOF.
        transport.write_eof()  # type: ignore[attr-defined]
        self._linger = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S,
                                                             transport.close)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        if self._transport is not None:
            self._transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._guard.open -= 1
            self._inner.connection_lost(exc)
        elif self._linger is not None:
            self._linger.cancel()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def exception_handler(accept_failed: Callable[..., None]) -> Callable:
    """The loop's exception handler: accept errors (out of file descriptors, say) go to
    `accept_failed` as one line, without the traceback asyncio would print for each of
    them; everything else to asyncio's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_ERROR):
            accept_failed(error=str(context.get("exception")),
                          why="cannot accept connections (asyncio retries in 1 s): raise the "
                              "open-file limit (ulimit -n) or lower server.max_connections")
            return
        callback = getattr(context.get("handle"), "_callback", None)
        if getattr(callback, "__name__", "") == "_start_serving":
            # asyncio schedules one accept retry per failed accept; those still pending
            # when the listener closes at shutdown fail on its closed socket: harmless
            return
        loop.default_exception_handler(context)

    return handle
