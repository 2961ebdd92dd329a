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

from bandit_router.http.app import create_app
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


async def test_a_failed_wait_for_the_write_lock_is_rolled_back_and_writes_go_on(config, pg_url):
    """A lock_timeout (common on managed PostgreSQL) ends the wait for the write lock with an
    error inside the transaction: that batch gets 503 and the next one must work."""
    import asyncpg

    from bandit_router.storage.postgres import WRITE_LOCK

    database = urlsplit(pg_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'ALTER DATABASE "{database}" SET lock_timeout = \'200ms\'')
    app_config = replace(config, storage=replace(config.storage, url=pg_url,
                                                 sync_interval_ms=60_000))
    try:
        async with TestClient(TestServer(create_app(app_config))) as c:
            decisions = [(await _route(c, i))[1] for i in range(3)]
            await admin.execute("SELECT pg_advisory_lock($1)", WRITE_LOCK)  # another writer
            status, body = await _feedback(c, decisions[0]["route_id"], "a")
            assert status == 503 and body["error"]["code"] == "unavailable"
            await admin.execute("SELECT pg_advisory_unlock($1)", WRITE_LOCK)
            assert (await _feedback(c, decisions[1]["route_id"], "b"))[0] == 200
            assert (await _feedback(c, decisions[0]["route_id"], "a"))[0] == 200  # the retry
    finally:
        await admin.close()
    assert count_rows(pg_url, "SELECT count(*) FROM feedback") == 2


async def test_a_replica_that_reconnects_still_counts_the_spend_it_missed(config, pg_url):
    """Budgets see every replica's spend: one whose connection was cut folds the spend
    committed meanwhile when it reconnects (its arms come from the snapshot)."""
    import asyncpg

    from bandit_router.core.types import Facts, RouteTicket
    from bandit_router.storage.store import Store

    app_config = replace(config, storage=replace(config.storage, url=pg_url))
    seen: list[float] = []
    a, b = Store(app_config), Store(app_config)
    await a.open(publish=lambda changes: None,
                 on_spend=lambda spent: seen.extend(usd for *_, usd, _ in spent))
    await b.open(publish=lambda changes: None)
    try:
        ticket = RouteTicket("default", "chat:low", "gpt-5", 0.0, 10, "n")
        admin = await asyncpg.connect(pg_url)
        try:  # cut every connection of the store's database: replica A's included
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        # B reconnects on its first write after a failed one; so does A on its next sync
        for _ in range(20):
            try:
                done = await b.record_feedback("route-b", ticket, Facts(
                    input_tokens=1000, output_tokens=1000))
                break
            except Exception:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("replica B never reconnected")
        assert done.spend_usd > 0
        for _ in range(100):
            a.sync()
            await asyncio.sleep(0.05)
            if seen:
                break
        assert seen == [pytest.approx(done.spend_usd)]
    finally:
        await a.close()
        await b.close()
