"""Retries with an idempotency key are applied once and answered the same; admin resets."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bandit_router.http.appkeys import STORE
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import connect


async def _route(client) -> dict:
    r = await client.post("/v1/route", json={"prompt": "hello there"})
    return await r.json()


async def _feedback(client, **body) -> tuple[int, dict, dict]:
    r = await client.post("/v1/feedback", json=body)
    return r.status, await r.json(), dict(r.headers)


async def test_a_retry_with_the_same_key_is_applied_once_and_answered_the_same(client, db_path):
    d = await _route(client)
    body = {"route_id": d["route_id"], "quality": 0.75, "latency_ms": 900,
            "idempotency_key": "retry-1"}
    first = await _feedback(client, **body)
    second = await _feedback(client, **body)
    assert first[0] == second[0] == 200
    assert first[1] == second[1]  # the same answer
    assert "Idempotent-Replayed" not in first[2] and second[2]["Idempotent-Replayed"] == "true"
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1
    arms = (await (await client.get("/v1/arms", params={"bucket": d["bucket"]})).json())["arms"]
    assert sum(a["evidence"] for a in arms) == pytest.approx(1.0, rel=1e-6)


async def test_concurrent_retries_are_applied_once(client, db_path):
    d = await _route(client)
    body = {"route_id": d["route_id"], "quality": 0.5, "idempotency_key": "burst"}
    results = await asyncio.gather(*(_feedback(client, **body) for _ in range(20)))
    assert {status for status, _, _ in results} == {200}
    assert len({str(answer) for _, answer, _ in results}) == 1
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM feedback_facts").fetchone()[0] == 1


async def test_the_same_key_for_different_feedback_is_a_409(client):
    d = await _route(client)
    status, _, _ = await _feedback(client, route_id=d["route_id"], quality=0.2,
                                   idempotency_key="k")
    assert status == 200
    status, body, _ = await _feedback(client, route_id=d["route_id"], quality=0.9,
                                      idempotency_key="k")
    assert status == 409
    assert body["error"]["code"] == "idempotency_conflict"
    assert body["error"]["field"] == "idempotency_key"


async def test_without_a_key_a_resent_fact_is_still_a_409(client):
    d = await _route(client)
    assert (await _feedback(client, route_id=d["route_id"], quality=0.2))[0] == 200
    status, body, _ = await _feedback(client, route_id=d["route_id"], quality=0.2)
    assert status == 409 and body["error"]["code"] == "duplicate_fact"


async def test_a_reset_forgets_and_a_rebuild_agrees(client, db_path, app_config, clock):
    for _ in range(5):
        d = await _route(client)
        await _feedback(client, route_id=d["route_id"], quality=1.0, latency_ms=500)
    r = await client.post("/v1/admin/reset", json={"bucket": d["bucket"]})
    reset = (await r.json())["reset"]
    assert r.status == 200 and reset
    arms = (await (await client.get("/v1/arms", params={"bucket": d["bucket"]})).json())["arms"]
    assert all(a["evidence"] == 0.0 and a["latency_observations"] == 0.0 for a in arms)
    clock.advance(10)
    d = await _route(client)  # learning goes on after a reset
    await _feedback(client, route_id=d["route_id"], quality=0.5)
    await client.app[STORE].close()  # everything committed
    db = connect(db_path)
    try:
        assert rebuild(db, app_config, write=False).differing == []
    finally:
        db.conn.close()


async def test_reset_validates_its_filters(client):
    r = await client.post("/v1/admin/reset", json={"policy": "nope"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "policy"
    r = await client.post("/v1/admin/reset", json={"bucket": "x:y"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "bucket"
    r = await client.post("/v1/admin/reset", json={"everything": True})
    assert r.status == 400 and (await r.json())["error"]["code"] == "unknown_field"
