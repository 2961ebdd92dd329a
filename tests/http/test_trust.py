"""The tenant trust model, attack by attack, against the real server on a loopback port with
two tenants (acme, globex) and an operator key, and a capture server standing in for an
attacker's upstream: no tenant reaches the server's secrets, another tenant's traffic or
shared money, and no single message can evict a model or flip a well-observed bucket."""

from __future__ import annotations

import base64

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router.http.app import create_app
from tests.conftest import FakeClock
from tests.http.tenants import (
    CAPTURE_KEY,
    FREE_MODEL,
    SECRET,
    auth,
    call,
    decide,
    secret_of,
    spend,
    tell,
    trust_config,
)

# --- 1. operators and tenant admins are different things ------------------------------------

async def test_a_tenant_admin_cannot_change_the_shared_catalog(server):
    for method, path, body in (("POST", "/v1/admin/models", FREE_MODEL),
                               ("PATCH", "/v1/admin/models/gpt-5", {"enabled": False}),
                               ("PATCH", "/v1/admin/models/gpt-5", {"input_per_mtok": 0.0})):
        status, err = await call(server, method, path, "acme-admin", body)
        assert status == 403 and err["error"]["code"] == "forbidden", (method, path)
        assert "operator" in err["error"]["message"]
    status, models = await call(server, "GET", "/v1/admin/models", "acme-admin")
    assert status == 200 and "free-and-perfect" not in {m["name"] for m in models["models"]}
    assert all(m["enabled"] for m in models["models"])


async def test_another_tenants_auto_traffic_never_reaches_a_tenant_admins_model(server):
    await call(server, "POST", "/v1/admin/models", "acme-admin", FREE_MODEL)
    chosen = {(await decide(server, "globex-app"))["model"] for _ in range(200)}
    assert "free-and-perfect" not in chosen


async def test_the_audit_log_names_the_actor_and_a_tenant_admin_sees_its_own(server):
    assert (await call(server, "PATCH", "/v1/admin/models/gpt-5", "ops",
                       {"enabled": False}))[0] == 200
    d = await decide(server, "acme-app")
    assert (await tell(server, "acme-app", d["route_id"], quality=1.0))[0] == 200
    assert (await call(server, "POST", "/v1/admin/reset", "acme-admin", {}))[0] == 200
    _, everything = await call(server, "GET", "/v1/admin/audit", "ops")
    assert [(e["action"], e["actor"], e["tenant"]) for e in everything["entries"]] == [
        ("arms.reset", "acme-admin", "acme"), ("model.update", "ops", "*")]
    _, acme = await call(server, "GET", "/v1/admin/audit", "acme-admin")
    assert [(e["action"], e["tenant"]) for e in acme["entries"]] == [("arms.reset", "acme")]
    _, globex = await call(server, "GET", "/v1/admin/audit", "globex-admin")
    assert globex["entries"] == []


async def test_a_tenant_admin_resets_only_its_own_arms(server):
    d = await decide(server, "globex-app")
    assert (await tell(server, "globex-app", d["route_id"], quality=1.0))[0] == 200
    status, err = await call(server, "POST", "/v1/admin/reset", "acme-admin",
                             {"tenant": "globex"})
    assert status == 403 and err["error"]["field"] == "tenant"
    _, arms = await call(server, "GET", "/v1/arms", "globex-app")
    assert sum(a["evidence"] for a in arms["arms"]) > 0.99
    status, done = await call(server, "POST", "/v1/admin/reset", "ops", {"tenant": "globex"})
    assert status == 200 and len(done["reset"]) == 1


# --- 2. no caller can make the server reveal or send a secret --------------------------------

ATTACKS = [  # upstreams a caller might try to name at run time
    {"base_url": "CAPTURE", "model": "x", "key_env": "BANDIT_TEST_SERVER_SECRET"},
    {"base_url": "http://169.254.169.254/latest", "model": "x"},
    "http://127.0.0.1:5432/",
]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_no_runtime_model_can_carry_a_secret_or_an_address(server, capture, attack):
    if isinstance(attack, dict) and attack["base_url"] == "CAPTURE":
        attack = {**attack, "base_url": capture.url}
    for key in ("acme-admin", "ops"):  # refused to a tenant (403), and even to the operator
        status, err = await call(server, "POST", "/v1/admin/models", key,
                                 {**FREE_MODEL, "upstream": attack})
        assert status in (400, 403) and err["error"]["field"] in ("upstream", None), err
    r = await server.post("/v1/chat/completions", headers=auth("acme-app"), json={
        "model": "free-and-perfect", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 400  # no such model
    assert SECRET not in capture.seen()


async def test_errors_never_tell_which_environment_variables_exist(server):
    answers = set()
    for variable in ("BANDIT_TEST_SERVER_SECRET", "HOME", "SURELY_NOT_SET_ANYWHERE_42"):
        status, err = await call(server, "POST", "/v1/admin/models", "ops", {
            **FREE_MODEL, "upstream": {"base_url": "http://x.example", "key_env": variable}})
        assert status == 400
        answers.add(err["error"]["message"])
    assert len(answers) == 1 and "environment" not in answers.pop()


async def test_a_declared_upstream_gets_its_own_key_and_nothing_else(server, capture):
    status, added = await call(server, "POST", "/v1/admin/models", "ops",
                               {**FREE_MODEL, "upstream": "capture", "upstream_model": "m1"})
    assert status == 200, added
    assert added["model"]["upstream"] == {"name": "capture", "model": "m1", "has_key": True}
    r = await server.post("/v1/chat/completions", headers=auth("acme-app"), json={
        "model": "free-and-perfect", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    (sent,) = capture.requests
    assert sent["headers"]["Authorization"] == f"Bearer {CAPTURE_KEY}"
    assert SECRET not in capture.seen() and secret_of("acme-app") not in capture.seen()


# --- 3. client numbers are bounded by what is possible ---------------------------------------

@pytest.mark.parametrize(("facts", "field"), [
    ({"cost_usd": 1e6}, "cost_usd"),
    ({"output_tokens": 100_000_000}, "output_tokens"),
    ({"input_tokens": 100_000_000}, "input_tokens"),
    ({"input_tokens": 1000, "output_tokens": 1000, "cost_usd": 10.0}, "cost_usd"),
    ({"latency_ms": 86_400_000}, "latency_ms"),
])
async def test_impossible_numbers_are_refused_naming_the_field(server, facts, field):
    d = await decide(server, "acme-app", constraints={"models": ["gpt-5-mini"]})
    status, err = await tell(server, "acme-app", d["route_id"], **facts)
    assert status == 400 and err["error"]["field"] == field, err
    assert (await spend(server, "acme-app"))["totals"]["spend_usd"] == 0.0


async def test_one_tenants_message_cannot_exhaust_a_shared_budget(app_config, capture,
                                                                 monkeypatch, clock):
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=0.5)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        d = await decide(c, "acme-app", constraints={"models": ["claude-sonnet-4-5"]})
        assert (await tell(c, "acme-app", d["route_id"], cost_usd=1e6))[0] == 400
        # the most one call can cost: its whole context and longest answer at list price
        assert (await tell(c, "acme-app", d["route_id"], input_tokens=200_000,
                           output_tokens=64_000))[0] == 200
        assert (await decide(c, "globex-app"))["model"]
        # acme keeps spending: past its share (half of 5 USD), acme alone is refused
        while (await call(c, "POST", "/v1/route", "acme-app", {"prompt": "x"}))[0] == 200:
            d = await decide(c, "acme-app", constraints={"models": ["claude-sonnet-4-5"]})
            await tell(c, "acme-app", d["route_id"], input_tokens=200_000, output_tokens=64_000)
        status, err = await call(c, "POST", "/v1/route", "acme-app", {"prompt": "x"})
        assert status == 429 and err["error"]["code"] == "budget_exhausted"
        assert (await decide(c, "globex-app"))["model"]  # globex still routes
        budget = (await spend(c, "globex-app"))["budgets"][0]
        assert budget["spent_usd"] is None and budget["tenant_spent_usd"] == 0.0
        assert budget["exhausted"] is False


async def test_a_correction_after_a_price_raise_never_drives_spend_negative(server, clock):
    d = await decide(server, "acme-app", constraints={"models": ["gpt-5-mini"]})
    assert (await tell(server, "acme-app", d["route_id"], input_tokens=100_000,
                       output_tokens=10_000))[0] == 200
    before = (await spend(server, "acme-app"))["totals"]["spend_usd"]
    assert before == pytest.approx(100_000 * 0.25e-6 + 10_000 * 2e-6)
    clock.advance(10)
    assert (await call(server, "PATCH", "/v1/admin/models/gpt-5-mini", "ops",
                       {"input_per_mtok": 90_000.0, "output_per_mtok": 90_000.0}))[0] == 200
    # the provider's invoice: the call was free after all; priced at the call's own prices
    assert (await tell(server, "acme-app", d["route_id"], cost_usd=0.0))[0] == 200
    totals = (await spend(server, "acme-app"))["totals"]
    assert totals["spend_usd"] == 0.0
    assert (await spend(server, "ops"))["totals"]["spend_usd"] >= 0.0


async def test_the_gateway_bounds_an_upstreams_reported_usage(server, capture):
    capture.usage = {"prompt_tokens": 10**15, "completion_tokens": 10**15}
    r = await server.post("/v1/chat/completions", headers=auth("acme-app"), json={
        "model": "gpt-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    for _ in range(200):  # the gateway records its feedback after answering
        spent = (await spend(server, "acme-app"))["totals"]
        if spent["feedback"]:
            break
    # at most the whole context window in and the caller's max_tokens out, at list price
    assert 0 < spent["spend_usd"] <= 400_000 * 1.25e-6 + 1000 * 10e-6
    metrics = await (await server.get("/metrics", headers=auth("ops"))).text()
    assert 'bandit_router_usage_clamped_total{model="gpt-5"} 1.0' in metrics


# --- 4. one message cannot evict a model -----------------------------------------------------

async def test_one_claim_of_a_long_answer_cannot_make_a_model_ineligible(server):
    d = await decide(server, "acme-app", bucket="chat:low",
                     constraints={"models": ["claude-sonnet-4-5"]})
    # the longest answer the model can give, claimed once
    assert (await tell(server, "acme-app", d["route_id"], output_tokens=64_000))[0] == 200
    after = await decide(server, "acme-app", bucket="chat:low", input_tokens=190_000,
                         explain=True)
    sonnet = after["explanation"]["claude-sonnet-4-5"]
    assert sonnet["eligible"], sonnet["reason"]


async def _observe(c, clock: FakeClock, model: str, quality: float, n: int,
                   every_s: float) -> None:
    for _ in range(n):
        d = await decide(c, "acme-app", bucket="code:low", constraints={"models": [model]})
        assert (await tell(c, "acme-app", d["route_id"], quality=quality))[0] == 200
        clock.advance(every_s)


async def _mean(c, model: str) -> float:
    _, arms = await call(c, "GET", "/v1/arms?bucket=code:low", "acme-app")
    return next(a["quality_mean"] for a in arms["arms"] if a["model"] == model)


async def test_a_burst_of_zeros_cannot_flip_a_well_observed_bucket(server, clock):
    # 300 honest answers over five hours: gpt-5-mini is good here (0.9)
    await _observe(server, clock, "gpt-5-mini", 0.9, 300, 60.0)
    assert await _mean(server, "gpt-5-mini") == pytest.approx(0.9, abs=0.01)
    # one key sends 60 zeros in a minute: the posterior moves by what 60 of 360 weigh
    # (0.9 * 300 / 360 = 0.75), and change detection does not erase the 300 honest ones
    await _observe(server, clock, "gpt-5-mini", 0.0, 60, 1.0)
    assert await _mean(server, "gpt-5-mini") > 0.7


async def test_a_change_that_lasts_is_still_detected(server, clock):
    await _observe(server, clock, "gpt-5-mini", 0.9, 300, 60.0)
    # the model really got worse: every answer for the next two hours is bad
    await _observe(server, clock, "gpt-5-mini", 0.1, 120, 60.0)
    # the past was forgotten once the change had lasted an hour: the mean is the new one
    assert await _mean(server, "gpt-5-mini") < 0.3


# --- 5. scopes mean what they say ------------------------------------------------------------

async def test_a_route_only_key_cannot_teach_quality(server, capture):
    r = await server.post("/v1/chat/completions", headers=auth("acme-route"), json={
        "model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    status, err = await tell(server, "acme-route", r.headers["x-route-id"], quality=0.0)
    assert status == 403 and err["error"]["code"] == "forbidden"


async def test_an_upstream_4xx_caused_by_the_caller_is_not_the_models_failure(server,
                                                                             capture):
    capture.status = 400
    r = await server.post("/v1/chat/completions", headers=auth("acme-route"), json={
        "model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 400 and len(capture.requests) == 1
    capture.status = 200  # a later, good call: its feedback is written after the first's
    r = await server.post("/v1/chat/completions", headers=auth("acme-route"), json={
        "model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    for _ in range(200):
        _, arms = await call(server, "GET", "/v1/arms", "acme-app")
        gpt5 = [a for a in arms["arms"] if a["model"] == "gpt-5"]
        if gpt5 and gpt5[0]["latency_observations"] > 0:
            break
    assert gpt5[0]["latency_observations"] == pytest.approx(1.0, abs=1e-3)  # the good one only
    assert gpt5[0]["evidence"] == 0.0  # and no quality 0 from the refused one


# --- 6. small leaks ---------------------------------------------------------------------------

async def test_a_route_id_names_no_tenant_and_a_foreign_one_reads_as_forged(server):
    d = await decide(server, "acme-app")
    payload = d["route_id"].split(".")[1]
    assert b"acme" not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    foreign = await tell(server, "globex-app", d["route_id"], quality=0.0)
    prefix, body, mac = d["route_id"].split(".")
    forged = await tell(server, "globex-app", f"{prefix}.{body}.{'A' * len(mac)}", quality=0.0)
    assert foreign == forged and foreign[0] == 404


async def test_stats_never_show_one_tenant_another_tenants_spend(app_config, capture,
                                                                monkeypatch, clock):
    config = trust_config(app_config, capture, monkeypatch, max_tenant_share=1.0)
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        d = await decide(c, "acme-app", constraints={"models": ["gpt-5"]})
        assert (await tell(c, "acme-app", d["route_id"], input_tokens=1000,
                           output_tokens=1000))[0] == 200
        globex = await spend(c, "globex-app")
        assert globex["totals"]["spend_usd"] == 0.0 and globex["groups"] == []
        (budget,) = globex["budgets"]
        assert budget["spent_usd"] is None and budget["remaining_usd"] is None
        assert budget["tenant_spent_usd"] == 0.0 and budget["pace"] is None
        status, err = await call(c, "GET", "/v1/stats?tenant=acme", "globex-app")
        assert status == 403 and err["error"]["field"] == "tenant"
        everyone = await spend(c, "ops", tenant="*")
        assert everyone["totals"]["spend_usd"] == pytest.approx(1000 * 1.25e-6 + 1000 * 10e-6)
        assert everyone["budgets"][0]["spent_usd"] == everyone["totals"]["spend_usd"]
        scraped = await (await c.get("/metrics", headers=auth("globex-admin"))).text()
        assert "budget_spent_usd{" not in scraped and 'spender="acme"' not in scraped
