"""Sessions and prompt caching on the real app and SQLite file: cached tokens priced at the
cached price (spend equal to an independent computation), a session turn priced with its
last model's cache, stickiness, the TTL, moving off a failing model, per-replica memory,
the gateway reading a provider's cached tokens, and commitments surviving a restart."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core.settings import BudgetConfig, CommitmentConfig, Config, Upstream
from bandit_router.core.spend import Prices
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE
from bandit_router.http.gateway import PENDING
from tests.calls import applied, feedback, route
from tests.conftest import FakeClock
from tests.fake_upstream import chat_server

CHAT = "Write a friendly haiku about the sea."
BIG = 120_000  # a long conversation: its input dominates each turn's price


def seeded(config: Config, seed: int = 11) -> Config:
    return replace(config, routing=replace(config.routing, seed=seed))


async def _stats(client) -> dict:
    r = await client.get("/v1/stats")
    assert r.status == 200, await r.text()
    return await r.json()


async def test_cached_tokens_are_spent_at_the_cached_price(client, app_config: Config):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], input_tokens=10_000, output_tokens=300,
                  cached_input_tokens=8_000)
    model = app_config.model(d["model"])
    fresh, cached = 2_000 * model.input_per_mtok, 8_000 * model.cached_input_per_mtok
    want = (fresh + cached + 300 * model.output_per_mtok) / 1e6
    stats = await _stats(client)
    assert stats["totals"]["spend_usd"] == pytest.approx(want)
    (row,) = stats["models"]
    assert row["cache_hit_rate"] == pytest.approx(0.8)
    assert row["cache_savings_usd"] == pytest.approx(
        8_000 * (model.input_per_mtok - model.cached_input_per_mtok) / 1e6)
    assert stats["groups"][0]["cached_input_tokens"] == 8_000
    metrics = await (await client.get("/metrics")).text()
    line = next(x for x in metrics.splitlines()
                if x.startswith("bandit_router_cached_input_tokens_total{"))
    assert float(line.rsplit(" ", 1)[1]) == 8_000


@pytest.mark.parametrize("body, field", [
    ({"input_tokens": 100, "cached_input_tokens": 101}, "cached_input_tokens"),
    ({"input_tokens": 100, "cached_input_tokens": 60, "cache_write_tokens": 50},
     "cached_input_tokens"),
    ({"cached_input_tokens": -1}, "cached_input_tokens"),
    ({"cached_input_tokens": 10_000_000}, "cached_input_tokens"),
])
async def test_impossible_cache_counts_are_refused_naming_the_field(client, body, field):
    d = await route(client, prompt=CHAT)
    status, answer = await feedback(client, route_id=d["route_id"], **body)
    assert status == 400 and answer["error"]["field"] == field


async def test_a_later_prompt_count_below_the_cached_one_is_refused(client):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], cached_input_tokens=500)
    status, answer = await feedback(client, route_id=d["route_id"], input_tokens=400)
    assert status == 400 and answer["error"]["field"] == "input_tokens"


@pytest.mark.parametrize("session", ["", "x" * 257, 5])
async def test_a_bad_session_id_is_refused(client, session):
    r = await client.post("/v1/route", json={"prompt": CHAT, "session_id": session})
    assert r.status == 400 and (await r.json())["error"]["field"] == "session_id"


async def test_a_session_turn_prices_its_last_models_cache(client, app_config: Config):
    first = await route(client, prompt=CHAT, session_id="s1", input_tokens=BIG)
    plain = await route(client, prompt=CHAT, input_tokens=BIG + 2000, explain=True)
    turn = await route(client, prompt=CHAT, session_id="s1", input_tokens=BIG + 2000,
                       explain=True)
    last = first["model"]
    assert turn["session"]["previous_model"] == last
    assert turn["session"]["cached_prefix_tokens"] == BIG
    rate = turn["session"]["hit_rate"]
    assert rate == pytest.approx(app_config.sessions.hit_prior)
    arm = turn["explanation"][last]
    assert arm["cached_input_tokens"] == pytest.approx(BIG * rate)
    model = app_config.model(last)
    discount = BIG * rate * (model.input_per_mtok - model.cached_input_per_mtok) / 1e6
    assert arm["expected_cost_usd"] == pytest.approx(
        plain["explanation"][last]["expected_cost_usd"] - discount)
    others = [m for m in turn["explanation"] if m != last]
    assert all(turn["explanation"][m]["cached_input_tokens"] == 0 for m in others)
    # a model that charges cache writes would write this turn's prompt: dearer to move to
    writer = next(m for m in others if app_config.model(m).cache_write_per_mtok is not None)
    w = app_config.model(writer)
    surcharge = (BIG + 2000) * rate * (w.cache_write_per_mtok - w.input_per_mtok) / 1e6
    assert turn["explanation"][writer]["expected_cost_usd"] == pytest.approx(
        plain["explanation"][writer]["expected_cost_usd"] + surcharge)


async def test_sessions_stay_where_their_cache_is(app_config: Config, clock: FakeClock):
    """Two models known to be as good and as cheap: a session's next turn stays on the model
    whose cache holds its prefix far more often than an unrelated request repeats a pick."""
    pair = {"models": ["gpt-5-nano", "gemini-2.5-flash-lite"]}
    async with TestClient(TestServer(create_app(seeded(app_config), clock=clock))) as c:
        for name in pair["models"]:
            for _ in range(40):  # in the long turns' bucket
                d = await route(c, prompt=CHAT, input_tokens=BIG,
                                constraints={"models": [name]})
                await applied(c, route_id=d["route_id"], quality=0.9)

        async def stays(session: str | None) -> int:
            kept = 0
            for i in range(40):
                extra = {"session_id": f"{session}-{i}"} if session else {}
                a = await route(c, prompt=CHAT, input_tokens=BIG, constraints=pair, **extra)
                b = await route(c, prompt=CHAT, input_tokens=BIG + 3000, constraints=pair,
                                **extra)
                if session:  # the provider served the remembered prefix from cache
                    await applied(c, route_id=b["route_id"], input_tokens=BIG + 3000,
                                  cached_input_tokens=BIG if a["model"] == b["model"] else 0)
                kept += a["model"] == b["model"]
            return kept
        with_sessions, without = await stays("s"), await stays(None)
    switched_with, switched_without = 40 - with_sessions, 40 - without
    assert switched_without >= 5 and switched_with * 3 <= switched_without, \
        (switched_with, switched_without)


async def test_a_session_is_forgotten_after_its_providers_cache_ttl(app_config: Config,
                                                                    clock: FakeClock):
    config = replace(app_config, sessions=replace(app_config.sessions, ttl_s=60.0))
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        await route(c, prompt=CHAT, session_id="t", input_tokens=BIG)
        clock.advance(59)
        kept = await route(c, prompt=CHAT, session_id="t", input_tokens=BIG, explain=True)
        assert kept["session"]["previous_model"] is not None
        clock.advance(61)
        gone = await route(c, prompt=CHAT, session_id="t", input_tokens=BIG, explain=True)
        assert gone["session"]["previous_model"] is None
        assert all(a["cached_input_tokens"] == 0 for a in gone["explanation"].values())


async def test_a_session_moves_when_its_model_fails(app_config: Config, clock: FakeClock):
    async with TestClient(TestServer(create_app(seeded(app_config), clock=clock))) as c:
        first = await route(c, prompt=CHAT, session_id="m", input_tokens=BIG)
        bad = first["model"]
        for _ in range(40):  # the session's model starts failing in its bucket
            d = await route(c, prompt=CHAT, constraints={"models": [bad]})
            await applied(c, route_id=d["route_id"], success=False)
        turn = await route(c, prompt=CHAT, session_id="m", input_tokens=BIG, explain=True)
    assert turn["session"]["previous_model"] == bad
    assert turn["model"] != bad


async def test_session_memory_is_per_replica(app_config: Config, clock: FakeClock):
    """Documented (docs/sessions.md): a replica remembers only the sessions it routed, and
    nothing of them survives a restart; the other replica prices the turn cache-blind."""
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as a:
        await route(a, prompt=CHAT, session_id="r", input_tokens=BIG)
        seen = await route(a, prompt=CHAT, session_id="r", input_tokens=BIG, explain=True)
        assert seen["session"]["previous_model"] is not None
    async with TestClient(TestServer(create_app(app_config, clock=clock))) as b:
        other = await route(b, prompt=CHAT, session_id="r", input_tokens=BIG, explain=True)
    assert other["session"]["previous_model"] is None


async def test_commitment_usage_survives_a_restart(app_config: Config, clock: FakeClock):
    provider = "anthropic"
    covered = [m.name for m in app_config.models if m.provider == provider]
    config = replace(app_config, commitments=(
        CommitmentConfig("prepaid", provider=provider, amount_usd=50.0, discount=0.3),))

    async def spend(c) -> float:
        total = 0.0
        for name in covered:
            d = await route(c, prompt=CHAT, constraints={"models": [name]})
            await applied(c, route_id=d["route_id"], input_tokens=20_000, output_tokens=500,
                          cached_input_tokens=5_000)
            total += Prices.of(config.model(name)).cost(20_000, 500, 5_000)
        return total

    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        used = await spend(c)
        before = (await _stats(c))["commitments"][0]
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        after = (await _stats(c))["commitments"][0]
    assert before["used_usd"] == pytest.approx(used) and used > 0
    assert after["used_usd"] == pytest.approx(used)
    assert after["capacity_usd"] == pytest.approx(50.0 / 0.7)
    assert after["remaining_usd"] == pytest.approx(50.0 / 0.7 - used)


class CachingProvider:
    """An OpenAI-style provider with automatic prompt caching: a prompt that starts with
    the previous prompt of the same prompt_cache_key is served from cache up to it."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], int] = {}
        self.keys: list[str | None] = []

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = body.get("prompt_cache_key")
        self.keys.append(key)
        prompt = sum(len(m["content"]) for m in body["messages"]) // 4
        cached = min(self.last.get((body["model"], key), 0), prompt) if key else 0
        self.last[(body["model"], key)] = prompt
        return web.json_response({
            "id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Fine."}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 5,
                      "prompt_tokens_details": {"cached_tokens": cached}}})


async def test_the_gateway_prices_an_upstreams_cached_tokens(app_config: Config,
                                                              clock: FakeClock):
    provider = CachingProvider()
    async with _gateway_app(app_config, clock, provider) as (c, _served):
        messages = [{"role": "user", "content": "context " * 4000}]
        models = []
        for turn in range(4):
            messages = [*messages, {"role": "user", "content": f"turn {turn} " * 500}]
            r = await c.post("/v1/chat/completions", json={
                "model": "auto", "messages": messages, "prompt_cache_key": "conv-1"})
            assert r.status == 200, await r.text()
            models.append(r.headers["x-routed-model"])
        await asyncio.gather(*c.server.app[PENDING])  # the gateway's feedback, in background
        stats = await _stats(c)
        sessions = c.server.app[ENGINE].sessions
        state = sessions.get("default", "conv-1", clock())
    assert state is not None and state.model == models[-1]
    assert provider.keys == ["conv-1"] * 4  # passed upstream unchanged
    rows = {m["model"]: m for m in stats["models"]}
    cached = sum(m["cached_input_tokens"] for m in rows.values())
    assert cached > 0
    want = sum(m["spend_usd"] for m in rows.values())
    assert stats["totals"]["spend_usd"] == pytest.approx(want)


@contextlib.asynccontextmanager
async def _gateway_app(config: Config, clock: FakeClock, provider: CachingProvider):
    async with chat_server(provider.completions) as url:
        served = _with_upstreams(config, url)
        async with TestClient(TestServer(create_app(served, clock=clock))) as c:
            yield c, served


def _with_upstreams(config: Config, url: str) -> Config:
    models = tuple(replace(m, upstream=Upstream(base_url=url, model=m.name))
                   for m in config.models)
    return seeded(replace(config, models=models))


async def test_budgets_and_savings_count_what_the_commitments_charge(app_config: Config,
                                                                    clock: FakeClock):
    haiku, flash = app_config.model("claude-haiku-4-5"), app_config.model("gemini-2.5-flash")
    call = Prices.of(haiku).cost(20_000, 500, 5_000)
    config = replace(app_config, budgets=(BudgetConfig("daily", limit_usd=100.0),),
                     commitments=(
        CommitmentConfig("prepaid", provider="anthropic", amount_usd=0.7 * 1.5 * call,
                         discount=0.3, window="day"),  # capacity: one and a half calls
        CommitmentConfig("flat", model=flash.name, discount=0.15)))
    calls = [haiku.name, haiku.name, flash.name]
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        for name in calls:
            d = await route(c, prompt=CHAT, constraints={"models": [name]})
            await applied(c, route_id=d["route_id"], input_tokens=20_000, output_tokens=500,
                          cached_input_tokens=5_000)
        live = await _stats(c)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        restarted = await _stats(c)
    capacity, g = 1.5 * call, Prices.of(flash).cost(20_000, 500, 5_000)
    want = 0.7 * capacity + (2 * call - capacity) + 0.85 * g  # the second call runs out
    reference = 3 * Prices.of(config.reference_model()).cost(20_000, 500, 5_000)
    # the reference is an Anthropic model: as if it had served all three, past the capacity
    want_reference = 0.7 * capacity + (reference - capacity)
    for stats in (live, restarted):
        totals = stats["totals"]
        assert totals["spend_usd"] == pytest.approx(2 * call + g)
        assert totals["effective_spend_usd"] == pytest.approx(want)
        assert totals["effective_reference_usd"] == pytest.approx(want_reference)
        assert totals["effective_savings_usd"] == pytest.approx(want_reference - want)
        assert totals["savings_usd"] == pytest.approx(reference - 2 * call - g)
        assert stats["budgets"][0]["spent_usd"] == pytest.approx(want)
        assert stats["prices"]["budgets"] == "effective prices"
        by_model = {m["model"]: m["effective_spend_usd"] for m in stats["models"]}
        assert by_model[flash.name] == pytest.approx(0.85 * g)


async def test_without_commitments_the_effective_figures_are_the_list_ones(client):
    d = await route(client, prompt=CHAT)
    await applied(client, route_id=d["route_id"], input_tokens=10_000, output_tokens=300)
    totals = (await _stats(client))["totals"]
    assert totals["effective_spend_usd"] == totals["spend_usd"] > 0
    assert totals["effective_savings_usd"] == totals["savings_usd"]
