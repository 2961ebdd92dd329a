"""GET /v1/stats on the real app and SQLite file: spend priced from feedback, savings against
the reference model, quality and shares; windows; tenants; surviving a restart; budgets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core.settings import BudgetConfig, Config, SpendConfig
from bandit_router.core.spend import Prices
from bandit_router.http.app import create_app
from tests.calls import applied, auth, route
from tests.conftest import FakeClock

CHAT = "Write a friendly haiku about the sea."


async def _stats(client, headers=None, **query) -> dict:
    r = await client.get("/v1/stats", params=query, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


def _price(config: Config, model: str, tokens_in: float, tokens_out: float) -> float:
    return Prices.of(config.model(model)).cost(tokens_in, tokens_out)


async def _served(config: Config, clock: FakeClock, steps) -> dict:
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        return await steps(c)


async def test_spend_savings_quality_and_shares(client, app_config: Config):
    calls = [(1000, 200, 0.9), (3000, 800, 0.5), (500, 100, 1.0)]
    decisions = []
    for tokens_in, tokens_out, quality in calls:
        d = await route(client, prompt=CHAT)
        await applied(client, route_id=d["route_id"], input_tokens=tokens_in,
                        output_tokens=tokens_out, quality=quality)
        decisions.append(d)
    silent = await route(client, prompt=CHAT)  # a decision that never gets feedback
    stats = await _stats(client)
    spend = sum(_price(app_config, d["model"], i, o)
                for d, (i, o, _) in zip(decisions, calls, strict=True))
    reference = app_config.reference_model()
    ref = sum(_price(app_config, reference.name, i, o) for i, o, _ in calls)
    totals = stats["totals"]
    assert stats["reference_model"] == reference.name == "claude-sonnet-4-5"
    assert totals["decisions"] == 4 and totals["feedback"] == 3
    assert totals["feedback_rate"] == pytest.approx(0.75)
    assert totals["spend_usd"] == pytest.approx(spend)
    assert totals["reference_usd"] == pytest.approx(ref)
    assert totals["savings_usd"] == pytest.approx(ref - spend)
    assert totals["savings_pct"] == pytest.approx(100 * (ref - spend) / ref)
    assert totals["mean_quality"] == pytest.approx((0.9 + 0.5 + 1.0) / 3)
    (group,) = stats["groups"]
    assert (group["policy"], group["bucket"]) == ("default", decisions[0]["bucket"])
    every = [d["model"] for d in (*decisions, silent)]
    assert group["share"] == {m: pytest.approx(every.count(m) / 4) for m in set(every)}
    assert sum(p["decisions"] for p in stats["series"]) == 4
    assert stats["budgets"] == []


async def test_a_reported_cost_wins_and_a_late_one_corrects_the_spend(client,
                                                                      app_config: Config):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], input_tokens=2000, output_tokens=500)
    priced = _price(app_config, d["model"], 2000, 500)
    assert (await _stats(client))["totals"]["spend_usd"] == pytest.approx(priced)
    invoiced = priced * 0.6  # the provider's invoice says so (cached tokens, a discount)
    await applied(client, route_id=d["route_id"], cost_usd=invoiced)
    totals = (await _stats(client))["totals"]
    assert totals["spend_usd"] == pytest.approx(invoiced)
    ref = _price(app_config, "claude-sonnet-4-5", 2000, 500)
    assert totals["savings_usd"] == pytest.approx(ref - invoiced)
    assert totals["feedback"] == 1  # one routed call, told in two messages


async def test_reference_model_can_be_chosen(client, app_config: Config):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], input_tokens=1000, output_tokens=1000)
    stats = await _stats(client, reference="gpt-5-nano")
    assert stats["reference_model"] == "gpt-5-nano"
    assert stats["totals"]["reference_usd"] == pytest.approx(
        _price(app_config, "gpt-5-nano", 1000, 1000))
    configured = replace(app_config, spend=SpendConfig(reference_model="gpt-5"))
    assert configured.reference_model().name == "gpt-5"


@pytest.mark.parametrize(("query", "code", "field"), [
    ({"window": "year"}, "invalid_field", "window"),
    ({"policy": "nope"}, "unknown_policy", "policy"),
    ({"bucket": "nope:x"}, "unknown_bucket", "bucket"),
    ({"reference": "gpt-0"}, "unknown_model", "reference"),
    ({"owner": "other"}, "unknown_field", "owner"),
])
async def test_bad_queries_name_the_field(client, query, code, field):
    r = await client.get("/v1/stats", params=query)
    body = await r.json()
    assert r.status == 400 and (body["error"]["code"], body["error"]["field"]) == (code, field)
    assert (await client.get("/healthz")).status == 200


async def test_windows_count_whole_hours(client, clock: FakeClock):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], input_tokens=100, output_tokens=100)
    clock.advance(2 * 3600)
    assert (await _stats(client, window="hour"))["totals"]["decisions"] == 0
    assert (await _stats(client, window="day"))["totals"]["decisions"] == 1
    clock.advance(30 * 86400)
    assert (await _stats(client, window="month"))["totals"]["spend_usd"] == 0.0


async def test_stats_and_budget_spend_survive_a_restart(app_config: Config, clock: FakeClock):
    config = replace(app_config, budgets=(BudgetConfig("daily", 100.0),))

    async def first(c):
        for _ in range(5):
            d = await route(c, prompt=CHAT)
            await applied(c, route_id=d["route_id"], input_tokens=4000, output_tokens=1000,
                            quality=0.8)
        return await _stats(c)

    async def second(c):
        return await _stats(c)

    before = await _served(config, clock, first)
    after = await _served(config, clock, second)
    assert after["totals"] == before["totals"] and after["groups"] == before["groups"]
    assert after["budgets"][0]["spent_usd"] == pytest.approx(before["totals"]["spend_usd"])
    assert after["budgets"][0]["spent_usd"] > 0


async def test_tenants_see_only_their_own_spend(keyed):
    d = await route(keyed, prompt=CHAT, headers=auth("acme-app"))
    await applied(keyed, route_id=d["route_id"], headers=auth("acme-app"), input_tokens=1000,
                    output_tokens=100)
    acme = await _stats(keyed, headers=auth("acme-admin"))
    globex = await _stats(keyed, headers=auth("globex-app"))
    assert acme["totals"]["decisions"] == 1 and acme["totals"]["spend_usd"] > 0
    assert {g["tenant"] for g in acme["groups"]} == {"acme"}
    assert globex["totals"]["decisions"] == 0 and globex["groups"] == []
    assert (await keyed.get("/v1/stats")).status == 401


async def test_a_spent_refusing_budget_answers_429_and_keeps_serving(app_config: Config,
                                                                     clock: FakeClock):
    config = replace(app_config, budgets=(BudgetConfig("tiny", 0.001, when_spent="refuse"),))

    async def steps(c):
        d = await route(c, prompt=CHAT)
        await applied(c, route_id=d["route_id"], input_tokens=100_000, output_tokens=10_000)
        r = await c.post("/v1/route", json={"prompt": CHAT})
        body = await r.json()
        assert r.status == 429 and body["error"]["code"] == "budget_exhausted"
        assert "tiny" in body["error"]["message"]
        assert 0 < int(r.headers["Retry-After"]) <= 86400
        # feedback for decisions already made is still taken (and counted)
        late = await c.post("/v1/feedback", json={"route_id": d["route_id"], "quality": 1.0})
        assert late.status == 200
        stats = await _stats(c)
        (budget,) = stats["budgets"]
        assert budget["exhausted"] and budget["remaining_usd"] == 0.0
        assert budget["spent_usd"] == pytest.approx(stats["totals"]["spend_usd"])
        return (await c.get("/healthz")).status

    assert await _served(config, clock, steps) == 200


async def test_a_spent_cheapest_budget_routes_cheaply_and_says_so(app_config: Config,
                                                                  clock: FakeClock):
    config = replace(app_config, budgets=(BudgetConfig("tiny", 0.001),))

    async def steps(c):
        d = await route(c, prompt=CHAT)
        await applied(c, route_id=d["route_id"], input_tokens=100_000, output_tokens=10_000)
        return [await route(c, prompt=CHAT) for _ in range(5)]

    for d in await _served(config, clock, steps):
        assert d["model"] == "gpt-5-nano"
        assert (d["budget"]["name"], d["budget"]["spent"]) == ("tiny", True)
