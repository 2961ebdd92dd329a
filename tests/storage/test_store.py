"""SQLite storage through the app and directly: commits, WAL, migrations, group commit, restart."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlite_utils import Database

from bandit_router.core import posterior
from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import Config
from bandit_router.core.types import ArmKey, Facts, RouteTicket
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE, STORE
from bandit_router.storage import migrations
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import Store, _RecordFeedback, connect, read_arms
from tests.calls import feedback, route

# --- helpers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(config, clock):
    """The app on a loopback port; the client may hold any number of requests in flight."""
    server = TestServer(create_app(config, clock=clock))
    async with TestClient(server, connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


def rows(db_path: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Read through a second, independent connection: it sees committed data only."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count(db_path: str, table: str) -> int:
    return rows(db_path, f"SELECT count(*) FROM {table}")[0][0]


def snapshot(db_path: str) -> dict[ArmKey, Evidence]:
    db = Database(sqlite3.connect(db_path))
    try:
        return read_arms(db)
    finally:
        db.conn.close()






async def get_arms(client, **query) -> list[dict]:
    resp = await client.get("/v1/arms", params=query)
    assert resp.status == 200
    return (await resp.json())["arms"]


class Gate:
    """A writer job that holds the writer thread until opened, so that work queues up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def run(self, db) -> None:
        self.entered.set()
        self.opened.wait(30)


class Noop:
    def run(self, db) -> str:
        return "done"


class Pragma:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, db):
        return db.execute(f"PRAGMA {self.name}").fetchone()[0]


class Poison:
    """A job whose SQL fails with a database error (not a refusal): its batch rolls back."""

    def run(self, db) -> None:
        db.execute("INSERT INTO no_such_table VALUES (1)")


async def drained(store: Store) -> None:
    """Await everything logged or queued before now (the writer runs jobs in order)."""
    store.flush_decisions()
    assert await asyncio.wrap_future(store._writer.submit(Noop())) == "done"


async def hold(store: Store) -> Gate:
    """Block the writer; returns once the writer thread is inside the gate job."""
    await drained(store)
    gate = Gate()
    store._writer.submit(gate)
    assert await asyncio.to_thread(gate.entered.wait, 10)
    return gate


def count_feedback_jobs(monkeypatch, store: Store, expected: int) -> asyncio.Event:
    """An event set once `expected` feedback jobs have been handed to the writer."""
    writer, original = store._writer, store._writer.submit
    queued = asyncio.Event()
    seen = 0

    def submit(job):
        nonlocal seen
        future = original(job)
        if isinstance(job, _RecordFeedback):
            seen += 1
            if seen == expected:
                queued.set()
        return future

    monkeypatch.setattr(writer, "submit", submit)
    return queued


# --- durability --------------------------------------------------------------------------

async def test_acknowledged_feedback_is_committed(client, db_path, clock):
    d = await route(client, prompt="hello")
    assert count(db_path, "feedback") == 0
    status, _ = await feedback(client, route_id=d["route_id"], quality=0.9, latency_ms=700,
                               input_tokens=12, output_tokens=34)
    assert status == 200
    # a second connection sees everything the acknowledgement promised
    assert rows(db_path, "SELECT route_id, policy, bucket, model FROM feedback") == [
        (d["route_id"], d["policy"], d["bucket"], d["model"])]
    facts = rows(db_path, "SELECT fact, value, derived FROM feedback_facts WHERE route_id = ?",
                 (d["route_id"],))
    assert sorted(facts) == sorted([("quality", 0.9, 0), ("latency_ms", 700.0, 0),
                                    ("input_tokens", 12.0, 0), ("output_tokens", 34.0, 0)])
    x = math.log(700.0)
    key = ArmKey(d["policy"], d["bucket"], d["model"])
    assert snapshot(db_path) == {key: Evidence(
        q_pos=0.9, q_neg=1.0 - 0.9, lat_n=1.0, lat_sum=x, lat_sumsq=x * x, in_n=1.0,
        in_sum=12.0, out_n=1.0, out_sum=34.0, recent_pos=0.9, recent_neg=1.0 - 0.9,
        q_sq=0.9 * 0.9, updated_at=clock())}


async def test_success_false_is_logged_as_a_derived_quality(client, db_path):
    d = await route(client, prompt="hello")
    assert (await feedback(client, route_id=d["route_id"], success=False))[0] == 200
    assert sorted(rows(db_path, "SELECT fact, value, derived FROM feedback_facts")) == [
        ("quality", 0.0, 1), ("success", 0.0, 0)]


async def test_wal_mode_and_synchronous_full(client, db_path, app_config):
    await route(client, prompt="hello")
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert Path(db_path + "-wal").exists()
    store = client.app[STORE]
    synchronous = await asyncio.wrap_future(store._writer.submit(Pragma("synchronous")))
    assert app_config.storage.synchronous == "full" and synchronous == 2  # 2 = FULL


async def test_migrations_are_recorded_and_applied_once(app_config, clock, db_path):
    every = [m.name for m in migrations.migrations.pending(Database(memory=True))]
    assert every  # the schema has at least one migration
    async with serving(app_config, clock) as c:
        d = await route(c, prompt="hello")
        assert (await feedback(c, route_id=d["route_id"], quality=0.5))[0] == 200
    applied = rows(db_path, "SELECT migration_set, name, applied_at FROM _sqlite_migrations "
                            "ORDER BY rowid")
    assert [(s, n) for s, n, _ in applied] == [("bandit_router", n) for n in every]

    for again in (False, True):  # reopening applies nothing again and keeps every row
        async with serving(app_config, clock) as c:
            # the route_id key survived, and so did the log: the old route still takes feedback
            status, _ = await feedback(c, route_id=d["route_id"], latency_ms=100)
            assert status == (409 if again else 200)
            status, body = await feedback(c, route_id=d["route_id"], quality=0.5)
            assert (status, body["error"]["field"]) == (409, "quality")
    db = connect(db_path)
    try:
        assert migrations.pending(db) == []
    finally:
        db.conn.close()
    assert rows(db_path, "SELECT migration_set, name, applied_at FROM _sqlite_migrations "
                         "ORDER BY rowid") == applied
    assert count(db_path, "feedback") == 2
    assert count(db_path, "decisions") == 1


def test_arms_learned_before_the_quality_spread_decide_as_before(tmp_path: Path):
    """The migration that adds the sum of squared quality gives old arms the widest spread
    their mean allows, so their posteriors are what they were (0/1-like evidence)."""
    db = Database(str(tmp_path / "old.db"))
    for m in migrations.migrations._migrations:
        if m.name == "m010_quality_spread":
            break
        m.fn(db)
    old = {"q_pos": 30.0, "q_neg": 10.0, "lat_n": 0.0, "lat_sum": 0.0, "lat_sumsq": 0.0,
           "in_n": 0.0, "in_sum": 0.0, "out_n": 0.0, "out_sum": 0.0, "updated_at": 1.0,
           "recent_pos": 0.0, "recent_neg": 0.0}
    db["arms"].insert({"tenant": "default", "policy": "default", "bucket": "chat:low",
                       "model": "gpt-5-nano", **old})
    migrations.m010_quality_spread(db)
    (q_pos, q_neg, q_sq), = db.execute("SELECT q_pos, q_neg, q_sq FROM arms").fetchall()
    assert q_sq == q_pos == 30.0
    assert posterior.dispersion(q_pos, q_neg, q_sq, 2.0) == 1.0
    db.conn.close()


# --- group commit ------------------------------------------------------------------------

def without_idle_syncs(config: Config) -> Config:
    """For tests that count commits: no idle sync transactions of their own, and no learned
    buckets (a refinement commits its split)."""
    rules = replace(config.buckets, learned=replace(config.buckets.learned, enabled=False))
    return replace(config, storage=replace(config.storage, sync_interval_ms=60_000),
                   buckets=rules)


async def test_hundreds_of_concurrent_feedbacks_share_few_commits(app_config, clock, db_path,
                                                                  monkeypatch):
    n = 300
    async with serving(without_idle_syncs(app_config), clock) as c:
        store = c.app[STORE]
        decisions = [await route(c, prompt=f"question {i}") for i in range(n)]
        gate = await hold(store)
        queued = count_feedback_jobs(monkeypatch, store, n)
        before = store._writer.commits
        try:
            tasks = [asyncio.create_task(feedback(c, route_id=d["route_id"], quality=i / n,
                                                  latency_ms=100 + i))
                     for i, d in enumerate(decisions)]
            await asyncio.wait_for(queued.wait(), 30)
            # all submitted, none committed, so none acknowledged
            assert not any(t.done() for t in tasks)
            assert count(db_path, "feedback") == 0
        finally:
            gate.opened.set()
        results = await asyncio.gather(*tasks)
        assert [s for s, _ in results] == [200] * n
        commits = store._writer.commits - before
        assert commits == 2  # the gate's batch, then every feedback in one transaction
        assert count(db_path, "feedback") == n
        assert count(db_path, "feedback_facts") == 2 * n
        arms = await get_arms(c)
        assert sum(a["evidence"] for a in arms) == pytest.approx(n)
        assert sum(a["latency_observations"] for a in arms) == pytest.approx(n)


async def test_gathered_feedbacks_on_the_store_commit_in_groups(app_config, clock, db_path):
    n = 500
    store = Store(app_config, clock=clock)
    published: dict[ArmKey, Evidence] = {}
    await store.open(publish=published.update)
    try:
        models = [m.name for m in app_config.models]
        tickets = [RouteTicket("default", "chat:low", models[i % len(models)], clock(), 10,
                               f"n{i}") for i in range(n)]
        before = store._writer.commits
        results = await asyncio.gather(*(
            store.record_feedback(f"route-{i}", t, Facts(quality=1.0, output_tokens=i))
            for i, t in enumerate(tickets)))
        commits = store._writer.commits - before
        assert 1 <= commits < n
        assert len({r.feedback_id for r in results}) == n
        await drained(store)
    finally:
        await store.close()
    assert count(db_path, "feedback") == n
    live = snapshot(db_path)
    assert published == live  # every commit's evidence was published to the engine
    assert sum(ev.q_pos for ev in live.values()) == pytest.approx(n)


async def test_a_duplicate_in_the_same_batch_is_refused_alone(app_config, clock, db_path,
                                                             monkeypatch, config):
    # without pooling, an arm's prior is the configured one, so its mean can be checked exactly
    policies = {n: replace(p, pooling="off") for n, p in app_config.policies.items()}
    app_config = replace(app_config, policies=MappingProxyType(policies))
    async with serving(without_idle_syncs(app_config), clock) as c:
        store = c.app[STORE]
        target = await route(c, prompt="hello")
        others = [await route(c, prompt=f"other {i}") for i in range(20)]
        rid = target["route_id"]
        contenders = [{"quality": 0.2}, {"quality": 0.9}, {"quality": 0.5, "output_tokens": 10}]
        gate = await hold(store)
        queued = count_feedback_jobs(monkeypatch, store, 4 + len(others))
        before = store._writer.commits
        try:
            tasks = [asyncio.create_task(feedback(c, route_id=rid, **body))
                     for body in contenders]
            tasks.append(asyncio.create_task(feedback(c, route_id=rid, latency_ms=321)))
            tasks += [asyncio.create_task(feedback(c, route_id=d["route_id"], quality=1.0))
                      for d in others]
            await asyncio.wait_for(queued.wait(), 30)
        finally:
            gate.opened.set()
        results = await asyncio.gather(*tasks)
        assert store._writer.commits - before == 2  # one batch held all of them
        first = [i for i in range(3) if results[i][0] == 200]
        assert len(first) == 1
        winner = contenders[first[0]]
        for i in range(3):
            if i != first[0]:
                status, body = results[i]
                assert (status, body["error"]["code"], body["error"]["field"]) == (
                    409, "duplicate_fact", "quality")
        assert results[3][0] == 200  # a new fact of the same route in the same batch
        assert [s for s, _ in results[4:]] == [200] * len(others)

        facts = dict(rows(db_path, "SELECT fact, value FROM feedback_facts WHERE route_id = ?",
                          (rid,)))
        assert facts == {"latency_ms": 321.0, **{k: float(v) for k, v in winner.items()}}
        assert count(db_path, "feedback") == 2 + len(others)
        # the refused messages left nothing behind: log, snapshot and memory agree
        prior = config.policies["default"].prior
        (mine,) = [a for a in await get_arms(c, policy="default", bucket=target["bucket"])
                   if a["model"] == target["model"]]
        others_same_arm = sum(1 for d in others if (d["bucket"], d["model"]) ==
                              (target["bucket"], target["model"]))
        assert mine["latency_observations"] == 1
        assert mine["evidence"] == pytest.approx(1 + others_same_arm)
        assert mine["quality_mean"] == pytest.approx(
            (prior.alpha + winner["quality"] + others_same_arm)
            / (prior.quality_strength + 1 + others_same_arm))
        db = connect(db_path)
        try:
            assert rebuild(db, app_config, write=False).differing == []
        finally:
            db.conn.close()


async def test_a_failed_commit_acknowledges_nothing_and_loses_nothing(app_config, clock,
                                                                     db_path, monkeypatch):
    async with serving(app_config, clock) as c:
        store = c.app[STORE]
        decisions = [await route(c, prompt=f"q {i}") for i in range(5)]
        gate = await hold(store)
        poisoned = store._writer.submit(Poison())
        queued = count_feedback_jobs(monkeypatch, store, len(decisions))
        try:
            tasks = [asyncio.create_task(feedback(c, route_id=d["route_id"], quality=1.0))
                     for d in decisions]
            await asyncio.wait_for(queued.wait(), 30)
        finally:
            gate.opened.set()
        results = await asyncio.gather(*tasks)
        assert isinstance(poisoned.exception(timeout=10), Exception)
        for status, body in results:
            assert (status, body["error"]["code"]) == (503, "unavailable")
        assert count(db_path, "feedback") == 0
        assert snapshot(db_path) == {}
        assert all(a["evidence"] == 0 for a in await get_arms(c))
        # the writer lives on, and the refused facts were not counted: resending works
        assert (await c.get("/healthz")).status == 200
        for d in decisions:
            assert (await feedback(c, route_id=d["route_id"], quality=1.0))[0] == 200
        assert sum(a["evidence"] for a in await get_arms(c)) == pytest.approx(len(decisions))
        assert count(db_path, "feedback") == len(decisions)


async def test_a_cancelled_waiter_does_not_stop_the_writer(client, db_path, clock):
    """Regression: the writer resolved a cancelled future, died, and dropped its queue."""
    store = client.app[STORE]
    d = await route(client, prompt="hello")
    store.flush_decisions()  # decisions are written in batches; write this one now
    gate = await hold(store)
    try:
        pruning = asyncio.create_task(store.prune(before=clock() + 1))
        await asyncio.sleep(0)  # one loop turn: the task submits its job, then waits
        pruning.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pruning
    finally:
        gate.opened.set()
    status, _ = await asyncio.wait_for(feedback(client, route_id=d["route_id"], quality=1.0), 10)
    assert status == 200
    assert store.healthy
    assert (await client.get("/healthz")).status == 200
    assert count(db_path, "decisions") == 1  # the cancelled prune was not run


# --- the decision log --------------------------------------------------------------------

async def test_decisions_are_logged_asynchronously_and_flushed_on_close(app_config, clock,
                                                                       db_path, monkeypatch):
    async with serving(app_config, clock) as c:
        store = c.app[STORE]
        gate = await hold(store)
        stop = store._writer.stop

        def open_then_stop() -> None:  # the gate opens only once the app is closing
            gate.opened.set()
            stop()

        monkeypatch.setattr(store._writer, "stop", open_then_stop)
        # routes are answered while the writer is held: they do not wait for the log
        decisions = [await route(c, prompt=f"q {i}", policy=("cheap", "default")[i % 2])
                     for i in range(40)]
        assert count(db_path, "decisions") == 0
        health = await (await c.get("/healthz")).json()
        assert health["decisions_buffered"] + health["write_queue"] >= 1
        store.flush_decisions()  # queued behind the held writer, written when it resumes
        assert count(db_path, "decisions") == 0
    logged = rows(db_path, "SELECT route_id, policy, bucket, model, expected_cost_usd, "
                           "expected_latency_ms FROM decisions ORDER BY rowid")
    assert logged == [(d["route_id"], d["policy"], d["bucket"], d["model"],
                       d["expected_cost_usd"], d["expected_latency_ms"]) for d in decisions]


async def test_prune_removes_old_decisions(app_config, clock, db_path, config):
    ttl_s = config.storage.decision_ttl_hours * 3600
    async with serving(app_config, clock) as c:
        for _ in range(3):
            await route(c, prompt="old")
        clock.advance(2 * 86400)
        new = [await route(c, prompt="new") for _ in range(2)]
        await drained(c.app[STORE])
        assert count(db_path, "decisions") == 5
        assert await c.app[STORE].prune(before=clock() - 86400) == 3
        assert {r for (r,) in rows(db_path, "SELECT route_id FROM decisions")} == {
            d["route_id"] for d in new}
        assert await c.app[STORE].prune(before=clock() - 86400) == 0
    # the service prunes decisions older than storage.decision_ttl_hours when it starts
    clock.advance(ttl_s + 60)
    async with serving(app_config, clock) as c:
        await drained(c.app[STORE])  # the start-up prune was queued before this
        assert count(db_path, "decisions") == 0


# --- restart -----------------------------------------------------------------------------

async def drive(client, clock, rng: random.Random, steps: int) -> list[dict]:
    """A seeded mix of routes and partial feedback over HTTP; returns the decisions."""
    prompts = ["hello", "Write a poem about the sea", "def f(x): return x  # python bug",
               "Summarize the key points of this text", "Prove it step by step, rigorously"]
    decisions, pending = [], []
    for _ in range(steps):
        clock.advance(rng.uniform(0, 1800))
        if not pending or rng.random() < 0.6:
            body = {"prompt": rng.choice(prompts), "policy": rng.choice(["default", "cheap"])}
            if rng.random() < 0.2:
                body["bucket"] = rng.choice(["math:high", "code:low"])
            d = await route(client, **body)
            decisions.append(d)
            pending.append((d["route_id"], {"quality", "latency_ms", "input_tokens",
                                            "output_tokens", "success"}))
        else:
            i = rng.randrange(len(pending))
            rid, left = pending[i]
            facts = rng.sample(sorted(left), rng.randint(1, len(left)))
            body = {"route_id": rid}
            for f in facts:
                body[f] = {"quality": round(rng.random(), 3), "success": rng.random() < 0.8,
                           "latency_ms": rng.uniform(50, 20000),
                           "input_tokens": rng.randint(0, 5000),
                           "output_tokens": rng.randint(0, 3000)}[f]
            status, answer = await feedback(client, **body)
            assert status == 200, answer
            left = left - set(answer["applied"])
            if left:
                pending[i] = (rid, left)
            else:
                pending.pop(i)
    return decisions


async def test_restart_restores_arms_and_recent_shares_exactly(app_config, clock):
    window = 5
    cfg = replace(app_config, routing=replace(app_config.routing, recent_window=window))
    async with serving(cfg, clock) as c:
        decisions = await drive(c, clock, random.Random(7), 120)
        # refused requests leave nothing that a restart would lose
        resp = await c.post("/v1/route", json={"prompt": "x", "bucket": "write:high",
                                               "constraints": {"max_cost_usd": 1e-12}})
        assert resp.status == 422
        before = await get_arms(c)
        engine_tables = set(c.app[ENGINE]._tables)
    per_table: dict[tuple[str, str], int] = {}
    for d in decisions:
        per_table[(d["policy"], d["bucket"])] = per_table.get((d["policy"], d["bucket"]), 0) + 1
    assert any(n > window for n in per_table.values())  # the window matters in this run
    for (p, b), n in per_table.items():
        shown = [a for a in before if (a["policy"], a["bucket"]) == (p, b)]
        assert sum(a["recent_decisions"] for a in shown) == min(n, window)
        assert sum(a["share"] for a in shown) == pytest.approx(1.0)
    assert any(a["evidence"] > 0 for a in before)
    assert any(a["mean_cost_usd"] is not None for a in before)

    for _ in range(2):
        async with serving(cfg, clock) as c:
            assert await get_arms(c) == before
            assert set(c.app[ENGINE]._tables) == engine_tables
            for p, b in per_table:
                assert await get_arms(c, policy=p, bucket=b) == [
                    a for a in before if (a["policy"], a["bucket"]) == (p, b)]
