"""The upstream client against a raw TCP server on loopback that answers with exactly the
bytes each test needs: framing (Content-Length, chunked, to the connection's end), reuse of
keep-alive connections, and every way an upstream can misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bandit_router.http.upstream_client import HIGH_WATER, MAX_HEAD, Client, Target, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Accepts connections and hands each request to `answer`; counts connections."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                await self.answer(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"


@pytest.fixture
async def raw():
    servers: list[RawServer] = []

    async def start(answer: Handler) -> RawServer:
        server = RawServer(answer)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()


@pytest.fixture
async def client():
    c = Client(connect_timeout_s=2.0, read_timeout_s=0.5, max_connections=4)
    yield c
    await c.close()


def sends(*pieces: bytes, close: bool = False, pause: float = 0.0) -> Handler:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        if close:
            writer.close()
    return answer


def sized(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body


async def fetch(client: Client, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    async with client.post(url, body, {"Content-Type": "application/json"}) as resp:
        return resp.status, b"".join([piece async for piece in resp.chunks()])


async def test_a_sized_answer_is_read_and_its_connection_reused(raw, client):
    server = await raw(sends(sized(b'{"ok": true}')))
    for _ in range(3):
        assert await fetch(client, server.url) == (200, b'{"ok": true}')
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Accept-Encoding: identity" in first and first.endswith(b"\r\n\r\n{}")


async def test_a_chunked_answer_is_joined_and_trailers_skipped(raw, client):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: y\r\n\r\n")
    server = await raw(sends(chunked[:40], chunked[40:61], chunked[61:], pause=0.01))
    assert await fetch(client, server.url) == (200, b"hello world")
    assert await fetch(client, server.url) == (200, b"hello world")
    assert server.connections == 1  # the trailers were read to the end: reusable


async def test_an_answer_ended_by_closing_is_read_and_not_reused(raw, client):
    server = await raw(sends(b"HTTP/1.1 200 OK\r\n\r\nto the end", close=True))
    assert await fetch(client, server.url) == (200, b"to the end")
    assert await fetch(client, server.url) == (200, b"to the end")
    assert server.connections == 2


async def test_informational_answers_are_skipped(raw, client):
    server = await raw(sends(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", sized(b"{}")))
    assert await fetch(client, server.url) == (200, b"{}")


async def test_a_redirect_is_returned_not_followed(raw, client):
    server = await raw(sends(sized(b"", "302 Found", b"Location: http://127.0.0.1:1/\r\n")))
    assert await fetch(client, server.url) == (302, b"")
    assert len(server.requests) == 1


async def test_a_connection_the_upstream_closed_while_idle_is_replaced(raw, client):
    server = await raw(sends(sized(b"{}"), close=True))  # answers, then hangs up
    # the close races the next request: whichever comes first, the call must succeed
    for _ in range(5):
        assert await fetch(client, server.url) == (200, b"{}")
    assert server.connections == 5


async def test_a_reused_connection_that_ends_unanswered_is_retried_once_on_a_new_one(
        raw, client):
    """The race of an idle close with our next request, made certain: each connection
    answers its first request and hangs up on its second without a byte."""
    answered: set[int] = set()

    async def first_only(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if id(writer) in answered:
            writer.close()
            return
        answered.add(id(writer))
        writer.write(sized(b"{}"))
        await writer.drain()

    server = await raw(first_only)
    for _ in range(3):
        assert await fetch(client, server.url) == (200, b"{}")
    assert (server.connections, len(server.requests)) == (3, 5)


async def test_a_connection_closed_without_answering_fails_clearly(raw, client):
    server = await raw(sends(close=True))
    with pytest.raises(UpstreamError, match="closed the connection without answering"):
        await fetch(client, server.url)


async def test_a_trickle_times_out_on_each_wait(raw, client):
    server = await raw(sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", pause=5))
    with pytest.raises(TimeoutError):
        await fetch(client, server.url)


@pytest.mark.parametrize(("answer", "problem"), [
    (b"SMTP ready\r\n\r\n", "not an HTTP/1.x response"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
     "encoded \\(gzip\\)"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk-size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
     "longer than its size line"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,
     "chunk-size line over"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * MAX_HEAD, "headers over"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed the connection mid-answer"),
])
async def test_a_malformed_answer_is_refused_with_its_reason(raw, client, answer, problem):
    server = await raw(sends(answer, close=True))
    with pytest.raises(UpstreamError, match=problem):
        await fetch(client, server.url)


async def test_a_large_answer_is_held_to_the_high_water_mark(raw, client):
    body = b"x" * (HIGH_WATER * 8)
    server = await raw(sends(sized(body)))
    async with client.post(server.url, b"{}", {}) as resp:
        await asyncio.sleep(0.2)  # the upstream has sent all it can; we read nothing yet
        held = len(resp._conn.buffer)
        got = b"".join([piece async for piece in resp.chunks()])
    # reading paused once the buffer passed the mark; one more read may have landed
    assert held <= HIGH_WATER + 262_144
    assert got == body


async def test_calls_beyond_max_connections_wait_for_a_slot(raw, client):
    server = await raw(sends(sized(b"{}"), pause=0.05))
    results = await asyncio.gather(*(fetch(client, server.url) for _ in range(12)))
    assert results == [(200, b"{}")] * 12
    assert server.connections <= 4


async def test_an_unreachable_upstream_names_why_without_its_address(client):
    with pytest.raises(UpstreamError, match="cannot connect") as caught:
        await fetch(client, "http://127.0.0.1:1/v1/chat/completions")
    assert "127.0.0.1" not in str(caught.value)


async def test_a_header_with_a_line_break_is_refused(raw, client):
    server = await raw(sends(sized(b"{}")))
    with pytest.raises(UpstreamError, match="line break"):
        async with client.post(server.url, b"{}", {"Authorization": "Bearer x\r\nX-Evil: 1"}):
            pass
    assert server.requests == []


@pytest.mark.parametrize(("url", "authority", "path"), [
    ("https://api.openai.com/v1/chat/completions", "api.openai.com", "/v1/chat/completions"),
    ("http://10.0.0.1:8080/v1/chat/completions?x=1", "10.0.0.1:8080",
     "/v1/chat/completions?x=1"),
    ("http://[::1]:9000/chat/completions", "[::1]:9000", "/chat/completions"),
])
def test_a_target_is_read_from_its_url(url, authority, path):
    target = Target.of(url)
    assert (target.authority, target.path) == (authority, path)
