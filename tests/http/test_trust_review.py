"""An outside review of the tenant trust model (issue 12): attacks that tests/http/py
does not cover, each against the real server on a loopback port with two tenants (acme,
globex), an operator key and a capture server standing in for the upstream. Each test
states what must hold; they fail on the commit under review (0952413)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.core.settings import Config
from bandit_router.http.app import create_app
from tests.conftest import FakeClock
from tests.fake_upstream import chat_server
from tests.http.tenants import FREE_MODEL, auth, call, decide, spend, tell, trust_config

# test_trust's fixtures: the capture upstream, and the server with two tenants and an operator

# the most one call to claude-sonnet-4-5 can cost: its context in, its longest answer out
SONNET_MAX = {"input_tokens": 200_000, "output_tokens": 64_000}


async def _routes(c, key: str) -> int:
    return (await call(c, "POST", "/v1/route", key, {"prompt": "x"}))[0]


# --- shared budgets -----------------------------------------------------------------------

async def test_route_ids_taken_before_the_share_was_spent_cannot_exhaust_a_shared_budget(
        app_config, capture, monkeypatch, clock):
    """max_tenant_share caps a tenant's routing, not its feedback: route_ids taken while
    acme was under its share are charged later in full, and the shared total passes the
    limit for everyone."""
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=0.5)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        ids = [(await decide(c, "acme-app", constraints={"models": ["claude-sonnet-4-5"]}))
               ["route_id"] for _ in range(4)]  # acme has spent nothing yet
        for route_id in ids:  # each within what one call can cost (1.56 USD of 5)
            assert (await tell(c, "acme-app", route_id, **SONNET_MAX))[0] == 200
        assert await _routes(c, "acme-app") == 429  # acme is past its half, rightly
        assert await _routes(c, "globex-app") == 200, \
            "one tenant spent the whole shared budget through route_ids taken under its share"


async def test_correcting_an_old_call_cannot_reopen_todays_shared_budget(app_config, capture,
                                                                        monkeypatch, clock):
    """A correction is charged when it arrives, not to the window of the call it corrects:
    acme's cost_usd=0 for yesterday's calls takes today's shared total down, re-opening
    a budget that today's traffic (globex's and acme's) had spent."""
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=1.0)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        yesterday = []
        for _ in range(3):
            d = await decide(c, "acme-app", constraints={"models": ["claude-sonnet-4-5"]})
            assert (await tell(c, "acme-app", d["route_id"], **SONNET_MAX))[0] == 200
            yesterday.append(d["route_id"])
        clock.advance(86_400.0)  # the next UTC day: the budget's window renewed
        for key in ("globex-app", "globex-app", "acme-app", "acme-app"):  # 4 x 1.56 > 5
            d = await decide(c, key, constraints={"models": ["claude-sonnet-4-5"]})
            assert (await tell(c, key, d["route_id"], **SONNET_MAX))[0] == 200
        assert await _routes(c, "globex-app") == 429  # spent for today
        for route_id in yesterday:  # "those were free after all"
            assert (await tell(c, "acme-app", route_id, cost_usd=0.0))[0] == 200
        assert await _routes(c, "globex-app") == 429, "yesterday's corrections re-opened today"
        assert (await spend(c, "ops", tenant="*"))["budgets"][0]["spent_usd"] >= 4 * 1.56 - 1e-9


async def test_stats_never_show_negative_spend_after_a_late_correction(server, clock):
    d = await decide(server, "acme-app", constraints={"models": ["claude-sonnet-4-5"]})
    assert (await tell(server, "acme-app", d["route_id"], **SONNET_MAX))[0] == 200
    clock.advance(2 * 86_400.0)  # within the feedback TTL (168 h), outside a day's window
    assert (await tell(server, "acme-app", d["route_id"], cost_usd=0.0))[0] == 200
    totals = (await spend(server, "acme-app"))["totals"]
    assert totals["spend_usd"] >= 0.0, totals


async def test_a_tenant_cannot_read_a_shared_budgets_total_from_its_pacing_price(
        app_config, capture, monkeypatch, clock):
    """/v1/stats hides a shared budget's total from a tenant, but shows the cost weight
    pacing adds, which is 10 x (spent / limit - elapsed fraction) while the integral is 0:
    globex reads acme's spend back exactly (also in /metrics and in its own decisions)."""
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=1.0)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        before = (await spend(c, "globex-app"))["budgets"][0]
        d = await decide(c, "acme-app", constraints={"models": ["gpt-5"]})
        assert (await tell(c, "acme-app", d["route_id"], cost_usd=2.0))[0] == 200
        after = (await spend(c, "globex-app"))["budgets"][0]
        elapsed = (clock() - after["start"]) / (after["end"] - after["start"])
        if after["cost_weight_added"]:
            inferred = after["limit_usd"] * (after["cost_weight_added"] / 10.0 + elapsed)
            assert inferred != pytest.approx(2.0), "globex read acme's spend: 2.0 USD"
        assert after == before, "acme's spend moved what globex sees of the shared budget"


# --- the gateway's own measurement ----------------------------------------------------------

async def _gateway_spend(c, key: str) -> float:
    for _ in range(200):  # the gateway records its feedback after answering
        totals = (await spend(c, key))["totals"]
        if totals["feedback"]:
            return totals["spend_usd"]
    return 0.0


async def test_a_tenant_cannot_zero_the_spend_the_gateway_measured(server, capture):
    """The operator's upstream key paid for this call; the tenant's cost_usd=0 erases it
    from every spend total and budget."""
    capture.usage = {"prompt_tokens": 100_000, "completion_tokens": 10_000}
    r = await server.post("/v1/chat/completions", headers=auth("acme-app"), json={
        "model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    measured = await _gateway_spend(server, "acme-app")
    assert measured == pytest.approx(100_000 * 1.25e-6 + 10_000 * 10e-6)
    await tell(server, "acme-app", r.headers["x-route-id"], cost_usd=0.0)
    assert (await spend(server, "acme-app"))["totals"]["spend_usd"] == pytest.approx(measured)


class StreamingCapture:
    """An upstream that streams one chunk, waits until the test opens `gate`, then sends
    the rest with its usage."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def completions(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        delta = {**base, "choices": [{"index": 0, "delta": {"content": "hel"},
                                      "finish_reason": None}]}
        await out.write(b"data: " + orjson.dumps(delta) + b"\n\n")
        await self.gate.wait()
        usage = {**base, "choices": [],
                 "usage": {"prompt_tokens": 100_000, "completion_tokens": 10_000}}
        await out.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await out.write_eof()
        return out


async def test_a_tenant_cannot_preempt_the_gateways_measurement_of_a_stream(
        app_config, monkeypatch, clock):
    """x-route-id arrives with the stream's headers, before the gateway has measured
    anything: facts sent then win, and the gateway's own record is refused as duplicate."""
    upstream = StreamingCapture()
    async with chat_server(upstream.completions) as url:
        holder = type("Url", (), {"url": url})()
        config = trust_config(app_config, holder, monkeypatch)
        async with TestClient(TestServer(create_app(config, clock=clock))) as c:
            r = await c.post("/v1/chat/completions", headers=auth("acme-app"), json={
                "model": "gpt-5", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]})
            assert r.status == 200
            await tell(c, "acme-app", r.headers["x-route-id"], input_tokens=0,
                       output_tokens=0, latency_ms=1.0, success=True)
            upstream.gate.set()
            await r.read()
            spent = 0.0
            for _ in range(200):
                spent = (await spend(c, "acme-app"))["totals"]["spend_usd"]
                if spent:
                    break
            assert spent == pytest.approx(100_000 * 1.25e-6 + 10_000 * 10e-6), \
                "the tenant's own numbers replaced what the gateway measured"


async def test_the_gateway_does_not_follow_an_upstreams_redirect_elsewhere(app_config,
                                                                         monkeypatch, clock):
    """Only declared upstreams are called, yet aiohttp follows redirects by default: a
    declared upstream's 307 sends the caller's prompt on to any address (aiohttp drops the
    Authorization header across hosts, so the key stays home)."""
    elsewhere: list[str] = []

    async def other(request: web.Request) -> web.Response:
        elsewhere.append(await request.text())
        return web.json_response({"choices": [], "usage": {}})

    target = web.Application()
    target.router.add_post("/{tail:.*}", other)
    async with TestServer(target, host="127.0.0.2") as internal:
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(str(internal.make_url("/internal")))

        declared = web.Application()
        declared.router.add_post("/v1/chat/completions", redirect)
        async with TestServer(declared) as ts:
            holder = type("Url", (), {"url": str(ts.make_url("/v1"))})()
            config = trust_config(app_config, holder, monkeypatch)
            async with TestClient(TestServer(create_app(config, clock=clock))) as c:
                await c.post("/v1/chat/completions", headers=auth("acme-app"), json={
                    "model": "gpt-5", "messages": [{"role": "user", "content": "secret plan"}]})
    assert elsewhere == [], "the gateway posted the prompt to an address nobody declared"


# --- bounds --------------------------------------------------------------------------------

async def test_feedback_for_a_model_retired_from_config_is_still_bounded(app_config, capture,
                                                                        monkeypatch, clock):
    """A model taken out of config.toml (within the feedback TTL of its decisions) loses
    every bound: cost_usd 1e6 is charged to the shared budget, past max_tenant_share."""
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=0.5)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        d = await decide(c, "acme-app", constraints={"models": ["gpt-5"]})
    retired = replace(config, models=tuple(m for m in config.models if m.name != "gpt-5"))
    async with TestClient(TestServer(create_app(retired, clock=clock))) as c:
        status, _ = await tell(c, "acme-app", d["route_id"], cost_usd=1e6)
        assert status == 400 or (await spend(c, "ops", tenant="*"))["totals"][
            "spend_usd"] <= 400_000 * 1.25e-6 * 2 + 128_000 * 10e-6 * 2
        assert await _routes(c, "globex-app") == 200


async def test_tokens_reported_after_the_cost_still_bound_it(server):
    """cost_usd is checked against the tokens known when it arrives; reported first, it
    may claim the largest call, and the tokens sent next (10 in, 10 out) never re-check it."""
    d = await decide(server, "acme-app", constraints={"models": ["claude-sonnet-4-5"]})
    assert (await tell(server, "acme-app", d["route_id"], cost_usd=3.0))[0] == 200
    status, _ = await tell(server, "acme-app", d["route_id"], input_tokens=10, output_tokens=10)
    spent = (await spend(server, "acme-app"))["totals"]["spend_usd"]
    assert status == 400 or spent <= 2 * (10 * 3e-6 + 10 * 15e-6) + 1e-12, spent


async def test_patch_cannot_set_an_output_limit_beyond_the_context_window(server):
    """config.toml refuses max_output_tokens > context_tokens; PATCH does not, so the
    output bound on feedback can exceed the model's whole window."""
    for body in ({"max_output_tokens": 999_999}, {"context_tokens": 1000}):
        status, answer = await call(server, "PATCH", "/v1/admin/models/gpt-5", "ops", body)
        if status == 200:
            model = answer["model"]
            assert model["max_output_tokens"] <= model["context_tokens"], (body, model)
        else:
            assert status == 400


# --- the shared catalog across the upgrade ---------------------------------------------------

async def test_a_model_a_tenant_admin_added_before_the_upgrade_gets_no_other_tenants_traffic(
        trusted: Config, clock: FakeClock):
    """The audit row as 0.1 wrote it when acme's admin added a free model claiming quality
    0.99 (inline upstream, tenant "acme"). After the upgrade it is no longer callable
    through the gateway, but it stays enabled in the shared catalog, and /v1/route sends
    globex's traffic to it."""
    async with TestClient(TestServer(create_app(trusted, clock=clock))):
        pass  # creates the schema
    change = {k: v for k, v in FREE_MODEL.items() if k != "name"}
    change.update(latency_ms=3000.0, upstream={"base_url": "http://127.0.0.1:9/v1",
                                               "model": "x"})
    with sqlite3.connect(trusted.storage.url) as db:
        db.execute("INSERT INTO audit (at, actor, tenant, action, model, change, before, "
                   "after) VALUES (?, 'acme-admin', 'acme', 'model.add', ?, ?, NULL, '{}')",
                   [clock() - 86_400.0, FREE_MODEL["name"], orjson.dumps(change).decode()])
    async with TestClient(TestServer(create_app(trusted, clock=clock))) as c:
        chosen = [(await decide(c, "globex-app"))["model"] for _ in range(50)]
        assert FREE_MODEL["name"] not in chosen, \
            f"{chosen.count(FREE_MODEL['name'])} of 50 globex decisions went to acme's model"


# --- change detection -----------------------------------------------------------------------

async def _observe(c, clock: FakeClock, quality: float, n: int, every_s: float) -> None:
    for _ in range(n):
        d = await decide(c, "acme-app", bucket="code:low", constraints={"models": ["gpt-5-mini"]})
        assert (await tell(c, "acme-app", d["route_id"], quality=quality))[0] == 200
        clock.advance(every_s)


async def test_two_bursts_an_hour_apart_cannot_erase_a_well_observed_arm(server, clock):
    """change_min_hours is checked only when an answer arrives: a burst that makes recent
    quality stray, an hour in which the arm gets no feedback, and a second burst count as
    a change that lasted, and the 300 honest answers are forgotten. 30 messages move the
    mean from 0.9 to 0.5, where test_trust's single burst of 60 leaves it above 0.7."""
    await _observe(server, clock, 0.9, 300, 60.0)
    await _observe(server, clock, 0.0, 20, 1.0)
    clock.advance(3601.0)  # a quiet hour for this arm
    await _observe(server, clock, 0.0, 10, 1.0)
    _, arms = await call(server, "GET", "/v1/arms?bucket=code:low", "acme-app")
    (mini,) = [a for a in arms["arms"] if a["model"] == "gpt-5-mini"]
    assert mini["evidence"] > 300, mini  # the honest history is still there
    assert mini["quality_mean"] > 0.7, mini


# --- small leaks ----------------------------------------------------------------------------

async def test_metrics_do_not_count_another_tenants_decisions(server):
    """decision_seconds has no tenant label, so every admin's scrape counts every tenant's
    decisions: globex reads acme's traffic volume."""
    for _ in range(7):
        await decide(server, "acme-app")
    scraped = await (await server.get("/metrics", headers=auth("globex-admin"))).text()
    counts = [line for line in scraped.splitlines()
              if line.startswith("bandit_router_decision_seconds_count")]
    assert all(line.endswith(" 0.0") for line in counts), counts
