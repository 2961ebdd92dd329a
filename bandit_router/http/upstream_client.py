"""A small HTTP/1.1 client for upstream calls: pooled keep-alive connections on asyncio
protocols, answers handed over as their bytes arrive, every wait bounded.

Why not aiohttp's client: on the load benchmark's machine it costs about 270 µs of CPU per
call against a fast local upstream, as much as the rest of a gateway request together; this
costs about 100 µs (`bandit-router bench load`, the gateway rows). It does only what a call
to an OpenAI-compatible API needs: a POST with a body; answers framed by Content-Length,
chunked or by the connection's end; TLS. It follows no redirect (the caller sees the 3xx),
keeps no cookies, uses no proxy, and asks for no compression (an encoded answer is refused).

What an upstream sends is bounded like client input: the status line and headers together
at most MAX_HEAD bytes, a chunk's size line at most MAX_LINE, at most HIGH_WATER bytes held
unread (reading pauses until the caller takes them), and every wait at most `read_timeout_s`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 65_536  # bytes of a response's status line and headers
MAX_HEADERS = 128
MAX_LINE = 4_096  # a chunk-size line, or one trailer line
HIGH_WATER = 262_144  # bytes received but not yet taken before reading pauses
IDLE_S = 4.0  # below the shortest keep-alive servers commonly allow (uvicorn's 5 s)


class UpstreamError(Exception):
    """The call failed on the upstream's side or on the way there (the text says how)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go: one pool of connections per (scheme, host, port)."""

    host: str
    port: int
    tls: bool
    path: str  # with its query, if any
    authority: str  # the Host header

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = port == (443 if tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host, port, tls, path, shown if default else f"{shown}:{port}")

    @property
    def origin(self) -> tuple[str, int, bool]:
        return self.host, self.port, self.tls


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes in a buffer, one waiter for more."""

    def __init__(self, origin: tuple[str, int, bool]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the peer closed its side, or the connection is gone
        self.lost: Exception | None = None
        self.paused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.lost = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def usable(self) -> bool:
        return not self.ended and self.transport is not None \
            and not self.transport.is_closing()

    async def more(self, timeout_s: float) -> None:
        """Wait until more bytes arrive or the peer ends; TimeoutError after `timeout_s`."""
        if self.ended:
            raise UpstreamError("the upstream closed the connection mid-answer")
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self, n: int) -> bytes:
        piece = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self.paused and len(self.buffer) <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """A response whose head has been read; its body is read with `chunks()`."""

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str],
                 read_timeout_s: float, release) -> None:
        self.status = status
        self.headers = headers
        self._conn, self._timeout, self._release = conn, read_timeout_s, release
        self._done = False
        self.content_length: int | None = None
        self._chunked = False
        self._keep = headers.get("connection", "").lower() != "close"
        framing = headers.get("transfer-encoding")
        if status in (204, 304):
            self.content_length = 0
        elif framing is not None:
            if framing.replace(" ", "").lower().split(",")[-1] != "chunked":
                raise UpstreamError(f"unsupported Transfer-Encoding {framing!r}")
            self._chunked = True
        elif "content-length" in headers:
            self.content_length = _length(headers["content-length"])
        else:
            self._keep = False  # the body ends when the connection does
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            raise UpstreamError(f"the answer is encoded ({encoding}), which was not asked for")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; the connection goes back to the pool at its end."""
        if self._chunked:
            pieces = self._chunked_body()
        elif self.content_length is not None:
            pieces = self._sized(self.content_length)
        else:
            pieces = self._until_closed()
        async for piece in pieces:
            yield piece
        self._done = True
        self.close()

    async def _sized(self, left: int) -> AsyncIterator[bytes]:
        conn = self._conn
        while left:
            if not conn.buffer:
                await conn.more(self._timeout)
                continue
            piece = conn.take(left)
            left -= len(piece)
            yield piece

    async def _until_closed(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.buffer:
                yield conn.take(len(conn.buffer))
            elif conn.ended:
                return
            else:
                await conn.more(self._timeout)

    async def _line(self) -> bytes:
        conn = self._conn
        while (end := conn.buffer.find(b"\r\n")) < 0:
            if len(conn.buffer) > MAX_LINE:
                raise UpstreamError(f"a chunk-size line over {MAX_LINE} bytes")
            await conn.more(self._timeout)
        if end > MAX_LINE:
            raise UpstreamError(f"a chunk-size line over {MAX_LINE} bytes")
        return conn.take(end + 2)[:-2]

    async def _chunked_body(self) -> AsyncIterator[bytes]:
        while (size := _chunk_size(await self._line())) > 0:
            async for piece in self._sized(size):
                yield piece
            if await self._line() != b"":
                raise UpstreamError("a chunk is longer than its size line says")
        for _ in range(MAX_HEADERS):  # trailers, ignored, up to the empty line
            if await self._line() == b"":
                return
        raise UpstreamError(f"more than {MAX_HEADERS} trailer lines")

    def close(self) -> None:
        """Back to the pool when the body was read to its end; otherwise the connection
        closes (its unread rest would corrupt the next answer)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn, self._done and self._keep and not conn.buffer)


def _length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not (only := values.pop()).isdigit():
        raise UpstreamError(f"bad Content-Length {value!r}")
    return int(only)


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    try:
        if not size or len(size) > 16:
            raise ValueError
        return int(size, 16)
    except ValueError:
        raise UpstreamError(f"bad chunk-size line {line[:40]!r}") from None


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    """The status and headers (names lower-cased; repeats joined with commas)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit() or len(lines) > MAX_HEADERS:
        raise UpstreamError(f"not an HTTP/1.x response: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise UpstreamError(f"a malformed header line {line[:60]!r}")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(code), headers


class Client:
    """The gateway's upstream connections: at most `max_connections` calls at once, idle
    connections kept for IDLE_S, closed at `close()`."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float,
                 max_connections: int = 256) -> None:
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._tls: ssl.SSLContext | None = None
        self._targets: dict[str, Target] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> _Call:
        """`async with client.post(...) as response:`; the head has been read inside."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = Target.of(url)
        return _Call(self, target, body, headers)

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if target.tls:
            context = self._tls = self._tls or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(target.origin), target.host, target.port,
                    ssl=context, server_hostname=target.host if target.tls else None)
        except TimeoutError:
            raise UpstreamError(f"connecting took over {self._connect_timeout} s") from None
        except OSError as exc:  # refused, unreachable, a TLS certificate refused
            raise UpstreamError(f"cannot connect: {_why(exc)}") from None
        self._open.add(conn)
        return conn

    def _reused(self, target: Target) -> _Connection | None:
        idle = self._idle.get(target.origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < IDLE_S:
                return conn
            self._drop(conn)
        return None

    def _release(self, conn: _Connection, keep: bool) -> None:
        self._slots.release()
        if keep and conn.usable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    async def _exchange(self, target: Target, body: bytes,
                        headers: dict[str, str]) -> Response:
        """Send the request and read the response's head. A reused connection that the
        upstream had closed while it idled (nothing of an answer came back) is replaced
        by a new one once: the request never reached an open connection."""
        request = _request(target, body, headers)
        conn = self._reused(target)
        if conn is not None:
            try:
                return await self._send(conn, request)
            except _Stale:
                self._drop(conn)
        conn = await self._connect(target)
        try:
            return await self._send(conn, request)
        except _Stale:
            self._drop(conn)
            raise UpstreamError("the upstream closed the connection without answering") \
                from None

    async def _send(self, conn: _Connection, request: bytes) -> Response:
        assert conn.transport is not None
        conn.transport.write(request)
        try:
            while True:
                status, headers = await self._read_head(conn)
                if not 100 <= status < 200:  # informational answers (103 hints) skipped
                    return Response(conn, status, headers, self._read_timeout, self._release)
        except BaseException:
            self._drop(conn)
            raise

    async def _read_head(self, conn: _Connection) -> tuple[int, dict[str, str]]:
        while (end := conn.buffer.find(b"\r\n\r\n")) < 0:
            if len(conn.buffer) > MAX_HEAD:
                raise UpstreamError(f"response headers over {MAX_HEAD} bytes")
            if conn.ended:
                if not conn.buffer:
                    raise _Stale
                raise UpstreamError("the upstream closed the connection mid-headers")
            await conn.more(self._read_timeout)
        if end > MAX_HEAD:
            raise UpstreamError(f"response headers over {MAX_HEAD} bytes")
        return _head(conn.take(end + 4)[:-4])


def _why(exc: OSError) -> str:
    """Why a connection failed, without the address (callers see this text)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS {exc.reason or type(exc).__name__}"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "name not resolved"
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__


class _Stale(Exception):
    """The connection ended before a byte of the answer came back."""


class _Call:
    """One request's lifetime: a slot among `max_connections`, its connection released
    (or closed) on the way out, whatever happened."""

    def __init__(self, client: Client, target: Target, body: bytes,
                 headers: dict[str, str]) -> None:
        self._client, self._target, self._body, self._headers = client, target, body, headers
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        await self._client._slots.acquire()
        try:
            self._response = await self._client._exchange(self._target, self._body,
                                                           self._headers)
        except BaseException:
            self._client._slots.release()
            raise
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.close()


def _request(target: Target, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.authority}",
             f"Content-Length: {len(body)}", "Accept-Encoding: identity",
             "User-Agent: bandit-router"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise UpstreamError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    except UnicodeEncodeError:
        raise UpstreamError("a header holds a character HTTP cannot carry") from None
