"""One storage contract, every backend: the same tests on a SQLite file and on PostgreSQL.

Each test opens the store the service uses (`Store`, whose SQL runs on either
backend) on a fresh store of each kind, and checks what it promises: the feedback log,
idempotency, the posterior snapshot, rebuilds, migrations, and replicas sharing one store.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bandit_router.core.errors import FactConflict, IdempotencyConflict
from bandit_router.core.location import locate
from bandit_router.core.posterior import Evidence
from bandit_router.core.settings import Config
from bandit_router.core.types import ArmKey, Decision, Facts, RouteTicket
from bandit_router.storage import migrations
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import Store, connect, read_arms, read_log
from tests.stores import off_loop
from tests.waiting import eventually

MODELS = ("gpt-5-nano", "gpt-5-mini", "gpt-5")


def _ticket(config: Config, i: int, tenant: str = "default") -> RouteTicket:
    return RouteTicket("default", "chat:low", MODELS[i % len(MODELS)], 0.0, 10, f"n{i}",
                       tenant)


class Opened:
    """A store opened like the service opens it, with what it published to the engine."""

    def __init__(self, config: Config, url: str) -> None:
        self.store = Store(config, path=url)
        self.published: dict[ArmKey, Evidence] = {}

    async def __aenter__(self) -> Opened:
        await self.store.open(publish=self.published.update)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.store.close()


def _read(url: str, fn):
    """`fn(db)` on a fresh connection to the store, off the test's event loop."""
    def run():
        db = connect(url)
        try:
            return fn(db)
        finally:
            db.conn.close()
    return off_loop(run)


@pytest.fixture
def url(store_url) -> str:
    return store_url("contract")


@pytest.fixture
def contract_config(config: Config) -> Config:
    return replace(config, storage=replace(config.storage, sync_interval_ms=20))


async def test_feedback_is_logged_once_in_commit_order(contract_config, url):
    async with Opened(contract_config, url) as o:
        results = [await o.store.record_feedback(f"route-{i}", _ticket(contract_config, i),
                                                 Facts(quality=i / 10, output_tokens=100 + i))
                   for i in range(10)]
        with pytest.raises(FactConflict):  # a fact, once told, cannot be told otherwise
            await o.store.record_feedback("route-3", _ticket(contract_config, 3),
                                          Facts(quality=0.99))
    log = _read(url, lambda db: list(read_log(db)))
    assert [fid for fid, _, _ in log] == [r.feedback_id for r in results]
    assert [fid for fid, _, _ in log] == sorted(fid for fid, _, _ in log)
    assert [e.route_id for _, e, _ in log] == [f"route-{i}" for i in range(10)]
    assert [dict(e.facts)["quality"] for _, e, _ in log] == [i / 10 for i in range(10)]
    assert all(spend > 0 for _, _, spend in log)  # priced from the catalog's token prices


async def test_idempotency_replays_the_answer_and_refuses_a_different_request(
        contract_config, url):
    async with Opened(contract_config, url) as o:
        ticket, facts = _ticket(contract_config, 1), Facts(quality=0.7)
        first = await o.store.record_feedback("route-1", ticket, facts, idempotency_key="k1")
        again = await o.store.record_feedback("route-1", ticket, facts, idempotency_key="k1")
        assert (again.feedback_id, again.resolution) == (first.feedback_id, first.resolution)
        assert again.replayed and not first.replayed
        with pytest.raises(IdempotencyConflict):
            await o.store.record_feedback("route-1", ticket, Facts(quality=0.1),
                                          idempotency_key="k1")
    assert _read(url, lambda db: len(list(read_log(db)))) == 1


async def test_the_snapshot_is_what_was_published_and_what_a_rebuild_gives(
        contract_config, url):
    async with Opened(contract_config, url) as o:
        await asyncio.gather(*(o.store.record_feedback(
            f"route-{i}", _ticket(contract_config, i), Facts(quality=(i % 7) / 7,
                                                             latency_ms=100.0 + i))
            for i in range(60)))
        await o.store.reset("default", model=MODELS[0])  # resets are in the log too
        published = dict(o.published)
    snapshot = _read(url, read_arms)
    assert snapshot == published and len(snapshot) == len(MODELS)
    result = _read(url, lambda db: rebuild(db, contract_config, write=False))
    assert result.events == 61 and result.differing == []


async def test_migrations_are_applied_once_and_reopening_changes_nothing(
        contract_config, url):
    async with Opened(contract_config, url) as o:
        await o.store.record_feedback("route-1", _ticket(contract_config, 1),
                                      Facts(quality=1.0))

    def pending(db) -> list[str]:
        if locate(url).kind == "sqlite":
            return migrations.pending(db)
        from bandit_router.storage import postgres
        return postgres.pending(db)

    assert _read(url, pending) == []
    assert _read(url, pending) == []  # a second connect migrated nothing again
    async with Opened(contract_config, url):  # the service starts on it again ...
        pass
    assert _read(url, lambda db: len(list(read_log(db)))) == 1  # ... and nothing was lost


async def test_two_replicas_on_one_store_fold_each_others_feedback(contract_config, url):
    async with Opened(contract_config, url) as a, Opened(contract_config, url) as b:
        for i in range(30):
            replica = (a, b)[i % 2]
            await replica.store.record_feedback(f"route-{i}", _ticket(contract_config, i),
                                                Facts(quality=(i % 5) / 5))
        for _ in range(200):  # what the service's sync task does every interval
            if a.published == b.published and len(a.published) == len(MODELS):
                break
            a.store.sync()
            b.store.sync()
            await asyncio.sleep(0.02)
        assert a.published == b.published
        # every message counted once: 30 quality observations in all (decay over the
        # test's few seconds is negligible)
        assert sum(ev.q_pos + ev.q_neg for ev in a.published.values()) == pytest.approx(
            30, rel=1e-3)
    assert _read(url, read_arms) == a.published


async def test_usage_adds_up_spend_and_quality_per_hour(contract_config, url):
    async with Opened(contract_config, url) as o:
        results = [await o.store.record_feedback(
            f"route-{i}", _ticket(contract_config, i, tenant="acme" if i % 2 else "default"),
            Facts(quality=0.5, input_tokens=1000, output_tokens=500)) for i in range(12)]
        usage = await o.store.usage(since=0.0, tenant="acme")
    assert len(results) == 12
    assert {row.tenant for row in usage} == {"acme"}
    assert sum(row.tally.quality_n for row in usage) == 6
    assert sum(row.tally.quality_sum for row in usage) == pytest.approx(3.0)
    logged = _read(url, lambda db: [spend for _, e, spend in read_log(db)
                                    if e.ticket.tenant == "acme"])
    assert sum(row.tally.spend_usd for row in usage) == pytest.approx(sum(logged))


async def test_usage_by_model_sums_every_tenant_per_hour_and_model(contract_config, url):
    # what a commitment's replay reads: one row per (hour, model), however many tenants
    async with Opened(contract_config, url) as o:
        for i in range(12):
            await o.store.record_feedback(
                f"route-{i}", _ticket(contract_config, i, tenant="acme" if i % 2 else "default"),
                Facts(quality=0.5, input_tokens=1000, output_tokens=500))
        every = await o.store.usage(since=0.0)
        summed = await o.store.usage_by_model(since=0.0)
    keys = [(r.hour, r.model) for r in summed]
    assert keys == sorted(set((r.hour, r.model) for r in every))
    for hour, model in keys:
        (row,) = [r for r in summed if (r.hour, r.model) == (hour, model)]
        parts = [r for r in every if (r.hour, r.model) == (hour, model)]
        assert row.tally.spend_usd == pytest.approx(sum(r.tally.spend_usd for r in parts))
        assert row.tally.input_tokens == sum(r.tally.input_tokens for r in parts)


async def test_decisions_per_minute_count_each_tenant_s_own(contract_config, url):
    """The dashboard's short timeline: whole minutes on both backends (a BIGINT divided by
    an integer truncates on both; a float cast would round on PostgreSQL)."""
    t0 = 1_800_000_000.0 // 60 * 60
    at = [t0 + 5, t0 + 59.9, t0 + 60.0, t0 + 61, t0 + 185.5]
    async with Opened(contract_config, url) as o:
        for i, t in enumerate(at):
            for tenant in ("default", "acme"):
                o.store.log_decision(Decision(f"r{i}-{tenant}", MODELS[i % 2], "chat:low",
                                              "default", 0.001, 100.0, (), 10, t,
                                              tenant=tenant))
        o.store.log_decision(Decision("r-late", "gpt-5", "code:high", "default", 0.001,
                                      100.0, (), 10, t0 + 70, tenant="acme"))
        o.store.flush_decisions()
        counts = await o.store.decisions_per_minute(t0, tenant="default")
        since = await o.store.decisions_per_minute(t0 + 60, tenant="acme", bucket="chat:low")
    assert {(c.at - t0, c.model, c.decisions) for c in counts} == {
        (0.0, MODELS[0], 1), (0.0, MODELS[1], 1), (60.0, MODELS[0], 1), (60.0, MODELS[1], 1),
        (180.0, MODELS[0], 1)}
    assert {c.bucket for c in counts} == {"chat:low"}
    assert sum(c.decisions for c in since) == 3  # from t0 + 60 on, acme's chat:low only


async def test_a_reset_after_feedback_in_the_same_transaction_stays_reset(
        contract_config, url):
    """The snapshot is written once per transaction: the reset, the later of the two, must
    be what it holds (and what a rebuild gives)."""
    from tests.storage.test_store import hold

    async with Opened(contract_config, url) as o:
        await o.store.record_feedback("route-0", _ticket(contract_config, 0),
                                      Facts(quality=1.0))
        gate = await hold(o.store)  # both jobs below wait, then run in one transaction
        feedback = asyncio.ensure_future(o.store.record_feedback(
            "route-3", _ticket(contract_config, 3), Facts(quality=1.0)))
        reset = asyncio.ensure_future(o.store.reset("default", model=MODELS[0]))

        async def both_queued() -> bool:  # behind the gate's job, which holds the writer
            return o.store.queue_depth >= 2
        await eventually(both_queued, "the feedback and the reset queued")
        commits = o.store._writer.commits
        gate.opened.set()
        await asyncio.gather(feedback, reset)
        assert o.store._writer.commits - commits == 2  # the gate's, then both together
        published = dict(o.published)
    snapshot = _read(url, read_arms)
    key = ArmKey("default", "chat:low", MODELS[0])
    assert snapshot[key].q_pos == 0 and snapshot[key] == published[key]
    assert _read(url, lambda db: rebuild(db, contract_config, write=False)).differing == []


async def test_cached_input_is_priced_and_summed_on_every_backend(contract_config, url):
    async with Opened(contract_config, url) as o:
        for i in range(3):
            await o.store.record_feedback(
                f"cached-{i}", _ticket(contract_config, 0),
                Facts(input_tokens=10_000, output_tokens=100, cached_input_tokens=9_000))
        usage = await o.store.usage(since=0.0)
    model = contract_config.model(MODELS[0])
    per_call = (1_000 * model.input_per_mtok + 9_000 * model.cached_input_per_mtok
                + 100 * model.output_per_mtok) / 1e6
    assert sum(r.tally.cached_input_tokens for r in usage) == 27_000
    assert sum(r.tally.spend_usd for r in usage) == pytest.approx(3 * per_call)
    saved = 3 * 9_000 * (model.input_per_mtok - model.cached_input_per_mtok) / 1e6
    assert sum(r.tally.cache_savings_usd for r in usage) == pytest.approx(saved)
