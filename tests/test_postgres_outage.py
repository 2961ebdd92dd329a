"""PostgreSQL briefly unreachable: decisions go on from memory, feedback is refused with 503
(never acknowledged and lost), and the service recovers by itself when the store is back.

The router reaches its real PostgreSQL server through a TCP relay the test can cut, so
"unreachable" is a real lost connection and a refused reconnect, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.app import create_app
from tests.stores import count_rows, create_database, drop_database, postgres_or_skip


class Relay:
    """A TCP relay to the PostgreSQL server that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._pipes |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                             return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture
def pg_url():
    postgres_or_skip()
    url = create_database("outage")
    yield url
    drop_database(url)


async def _route(c: TestClient, i: int) -> tuple[int, dict]:
    async with c.post("/v1/route", json={"prompt": f"question {i}"}) as r:
        return r.status, await r.json()


async def _feedback(c: TestClient, route_id: str, key: str) -> tuple[int, dict]:
    async with c.post("/v1/feedback", json={"route_id": route_id, "quality": 0.8,
                                            "idempotency_key": key}) as r:
        return r.status, await r.json()


async def test_an_unreachable_store_refuses_feedback_keeps_routing_and_recovers(
        config, pg_url):
    parts = urlsplit(pg_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    via_relay = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
    app_config = replace(config, storage=replace(config.storage, url=via_relay,
                                                 sync_interval_ms=50))
    async with TestClient(TestServer(create_app(app_config))) as c:
        status, before = await _route(c, 0)
        assert status == 200
        assert (await _feedback(c, before["route_id"], "k0"))[0] == 200

        await relay.cut()
        status, during = await _route(c, 1)
        assert status == 200  # decisions are served from memory
        status, body = await _feedback(c, during["route_id"], "k1")
        assert status == 503 and body["error"]["code"] == "unavailable"
        async with c.get("/healthz") as r:
            health = await r.json()
        assert health["storage"] != "ok"
        for i in range(2, 22):
            assert (await _route(c, i))[0] == 200

        await relay.start()  # the store is back: the client's retry now lands, once
        for _ in range(100):
            status, body = await _feedback(c, during["route_id"], "k1")
            if status == 200:
                break
            assert status == 503
            await asyncio.sleep(0.05)
        assert status == 200
        assert (await _feedback(c, during["route_id"], "k1"))[0] == 200  # replayed
    await relay.cut()
    assert count_rows(pg_url, "SELECT count(*) FROM feedback") == 2
