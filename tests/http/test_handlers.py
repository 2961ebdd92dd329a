"""HTTP tests through the aiohttp test client: every endpoint, every answer shape, every error."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bandit_router import __version__
from bandit_router.core.route_id import RouteIds
from bandit_router.core.types import RouteTicket
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE, STORE
from bandit_router.storage.writer import StorageError
from tests.calls import JSON, arms, assert_error, error_of, feedback, post, route, still_serves

ROUTE_KEYS = {"route_id", "model", "bucket", "policy", "expected_cost_usd",
              "expected_latency_ms", "fallbacks"}
EXPLAIN_KEYS = {"eligible", "reason", "quality_mean", "quality_interval", "quality_sample",
                "expected_cost_usd", "expected_latency_ms", "utility", "value", "contending"}
ARM_KEYS = {"tenant", "policy", "bucket", "model", "quality_mean", "quality_interval", "evidence",
            "latency_observations", "mean_latency_ms", "mean_cost_usd", "share",
            "recent_decisions", "learned"}
FACT_NAMES = ("quality", "latency_ms", "input_tokens", "output_tokens", "success", "cost_usd")
SMALL_BODY = 4096
SMALL_MESSAGES = 3


# --- helpers -----------------------------------------------------------------------------

def names(config) -> list[str]:
    return [m.name for m in config.models]


def prices(config) -> dict[str, tuple[float, float]]:
    return {m.name: (m.input_per_mtok * 1e-6, m.output_per_mtok * 1e-6) for m in config.models}










async def arm(client, decision: dict, model: str | None = None) -> dict:
    rows = await arms(client, policy=decision["policy"], bucket=decision["bucket"])
    (row,) = [r for r in rows if r["model"] == (model or decision["model"])]
    return row


@pytest.fixture
async def small_client(app_config, clock):
    """The app with a 4 KiB body limit and at most 3 messages per request."""
    config = replace(app_config, server=replace(app_config.server, max_body_bytes=SMALL_BODY,
                                                max_messages=SMALL_MESSAGES))
    async with TestClient(TestServer(create_app(config, clock=clock))) as c:
        yield c


# --- /healthz ----------------------------------------------------------------------------

async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["storage"] == "ok"
    assert body["version"] == __version__
    assert isinstance(body["write_queue"], int) and body["write_queue"] >= 0


# --- POST /v1/route ----------------------------------------------------------------------

async def test_route_with_prompt_has_the_documented_shape(client, config):
    catalog = names(config)
    d = await route(client, prompt="hello there")
    assert set(d) == ROUTE_KEYS  # no explanation unless asked
    assert d["route_id"].startswith("r3.")
    assert d["model"] in catalog
    assert d["bucket"] == "chat:low"
    assert d["policy"] == "default"
    assert d["expected_cost_usd"] > 0
    assert d["expected_latency_ms"] > 0
    # fallbacks: every other eligible model, once each, never the chosen one
    assert d["model"] not in d["fallbacks"]
    assert len(d["fallbacks"]) == len(set(d["fallbacks"]))
    assert sorted([d["model"], *d["fallbacks"]]) == sorted(catalog)


async def test_route_ids_are_unique(client):
    ids = {(await route(client, prompt="same prompt"))["route_id"] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("content", [
    "Please refactor this python function: def f(x): return x  # it has a bug",
    [{"type": "text", "text": "Please refactor this python function:"},
     {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
     {"type": "text", "text": "def f(x): return x  # it has a bug"}],
])
async def test_route_with_openai_messages(client, content):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": content}]
    d = await route(client, messages=messages)
    assert d["bucket"] == "code:low"  # the content (string or text parts) was read
    assert set(d) == ROUTE_KEYS


async def test_message_content_may_be_null_or_have_extra_keys(client):
    d = await route(client, messages=[
        {"role": "user", "content": "hi", "name": "alice"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "what's new?"}])
    assert d["bucket"] == "chat:low"


@pytest.mark.parametrize(("task", "bucket"), [
    ("code", "code:low"), ("summarize", "summarize:low"), ("Summarization", "summarize:low"),
    ("math", "math:low"), ("no-such-task", "chat:low"),
])
async def test_task_hint_picks_the_bucket(client, task, bucket):
    d = await route(client, prompt="hello", task=task)
    assert d["bucket"] == bucket


async def test_complexity_lifts_the_level(client):
    hard = "Prove this rigorously, step by step, and justify each trade-off."
    assert (await route(client, prompt=hard))["bucket"] == "chat:high"
    assert (await route(client, prompt="hi", max_output_tokens=3000))["bucket"] == "chat:high"
    assert (await route(client, prompt="hi", input_tokens=5000))["bucket"] == "chat:high"
    assert (await route(client, prompt="hi", input_tokens=10, max_output_tokens=10))[
        "bucket"] == "chat:low"


@pytest.mark.parametrize("bucket", ["math:high", "write:low", "classify:high"])
async def test_bucket_override(client, bucket):
    d = await route(client, prompt="hello", task="code", bucket=bucket)
    assert d["bucket"] == bucket


@pytest.mark.parametrize(("policy", "want"), [(None, "default"), ("default", "default"),
                                              ("cheap", "cheap")])
async def test_policy_selection(client, policy, want):
    body = {"prompt": "hello"} if policy is None else {"prompt": "hello", "policy": policy}
    d = await route(client, **body)
    assert d["policy"] == want


async def test_explain_covers_every_catalog_model(client, config):
    d = await route(client, prompt="hello", explain=True, constraints={"exclude": ["gpt-5"]})
    assert set(d) == ROUTE_KEYS | {"explanation", "objective", "learned_bucket"}
    assert d["objective"] == {"mode": "value", "points_per_price_doubling": 2.0,
                              "points_per_latency_doubling": 0.0}
    ex = d["explanation"]
    assert sorted(ex) == sorted(names(config))
    for model, e in ex.items():
        assert set(e) == EXPLAIN_KEYS, model
        lo, hi = e["quality_interval"]
        assert 0 < lo < e["quality_mean"] < hi < 1
        assert e["expected_cost_usd"] > 0 and e["expected_latency_ms"] > 0
    assert ex["gpt-5"]["eligible"] is False
    assert ex["gpt-5"]["reason"] == "in constraints.exclude"
    assert ex["gpt-5"]["quality_sample"] is None and ex["gpt-5"]["value"] is None
    eligible = {m: e for m, e in ex.items() if m != "gpt-5"}
    for e in eligible.values():
        assert e["eligible"] is True and e["reason"] is None and e["utility"] is None
        assert 0 <= e["quality_sample"] <= 1
    # value mode: the chosen model has the best value, fallbacks follow in value order (a
    # new router has learned nothing: every model is a contender)
    assert all(e["contending"] for e in eligible.values())
    order = sorted(eligible, key=lambda m: -eligible[m]["value"])
    assert [d["model"], *d["fallbacks"]] == order
    assert ex[d["model"]]["value"] == pytest.approx(ex[d["model"]]["quality_sample"])
    assert ex[d["model"]]["expected_cost_usd"] == d["expected_cost_usd"]
    assert ex[d["model"]]["expected_latency_ms"] == d["expected_latency_ms"]


async def test_explain_false_omits_the_explanation(client):
    assert "explanation" not in await route(client, prompt="hello", explain=False)


async def test_cheap_policy_picks_the_cheapest_adequate_model(client, config):
    target = config.policies["cheap"].target_for("chat:low")
    for _ in range(10):
        d = await route(client, prompt="hello", policy="cheap", explain=True)
        assert d["bucket"] == "chat:low"
        ex = d["explanation"]
        adequate = [m for m, e in ex.items() if e["quality_sample"] >= target]
        if adequate:
            want = min(adequate, key=lambda m: ex[m]["expected_cost_usd"])
        else:
            want = max(ex, key=lambda m: ex[m]["quality_sample"])
        assert d["model"] == want


async def test_input_and_output_tokens_price_the_request(client, config):
    d = await route(client, prompt="hi", input_tokens=1000, max_output_tokens=100, explain=True)
    for model, (p_in, p_out) in prices(config).items():
        # no feedback yet: the prior expects 400 output tokens, capped by max_output_tokens
        assert d["explanation"][model]["expected_cost_usd"] == pytest.approx(
            1000 * p_in + 100 * p_out, rel=1e-9)
    bigger = await route(client, prompt="hi", input_tokens=2000, max_output_tokens=100,
                         explain=True)
    for model, (p_in, p_out) in prices(config).items():
        assert bigger["explanation"][model]["expected_cost_usd"] == pytest.approx(
            2000 * p_in + 100 * p_out, rel=1e-9)


async def test_weights_override(client, config):
    cheapest = min(names(config),
                   key=lambda m: 1000 * prices(config)[m][0] + 400 * prices(config)[m][1])
    # price dominates: the cheapest model always wins
    picks = [(await route(client, prompt="hi", input_tokens=1000,
                          weights={"points_per_price_doubling": 1000,
                                   "points_per_latency_doubling": 0}))["model"]
             for _ in range(15)]
    assert set(picks) == {cheapest}
    # no price or latency term: the value is the sampled quality itself
    d = await route(client, prompt="hi", explain=True, weights={
        "points_per_price_doubling": 0, "points_per_latency_doubling": 0})
    assert d["objective"]["points_per_price_doubling"] == 0
    for e in d["explanation"].values():
        assert e["value"] == pytest.approx(e["quality_sample"])
    # a partial override keeps the policy's other weight (its price weight still counts)
    assert config.policies["default"].weights.points_per_price_doubling > 0
    d = await route(client, prompt="hi", explain=True,
                    weights={"points_per_latency_doubling": 0})
    assert any(e["value"] < e["quality_sample"] for e in d["explanation"].values())
    # the older modes' weights do not apply to a value-mode policy: refused, not ignored
    status, answer = await post(client, "/v1/route", {"prompt": "hi", "weights": {"cost": 1}})
    assert_error(status, answer, 400, "invalid_field", "weights.cost")
    # ... and do to a policy in an older mode
    d = await route(client, prompt="hi", policy="cheap", weights={"cost": 1})
    assert d["policy"] == "cheap"


async def test_constraint_models_allow_list(client):
    allowed = ["gpt-5-nano", "claude-haiku-4-5"]
    for _ in range(10):
        d = await route(client, prompt="hi", constraints={"models": allowed})
        assert d["model"] in allowed
        assert sorted([d["model"], *d["fallbacks"]]) == sorted(allowed)
    d = await route(client, prompt="hi", constraints={"models": ["gpt-5"]})
    assert (d["model"], d["fallbacks"]) == ("gpt-5", [])


async def test_constraint_exclude(client, config):
    excluded = ["gpt-5-nano", "gemini-2.5-flash-lite", "claude-sonnet-4-5"]
    for _ in range(10):
        d = await route(client, prompt="hi", constraints={"exclude": excluded})
        assert sorted([d["model"], *d["fallbacks"]]) == sorted(set(names(config)) - set(excluded))
    d = await route(client, prompt="hi", constraints={"models": ["gpt-5", "gpt-5-mini"],
                                                      "exclude": ["gpt-5"]})
    assert (d["model"], d["fallbacks"]) == ("gpt-5-mini", [])


@pytest.mark.parametrize(("key", "what"), [("max_cost_usd", "expected_cost_usd"),
                                           ("max_latency_ms", "expected_latency_ms")])
async def test_constraint_max_cost_and_latency(client, key, what):
    ask = {"prompt": "hi", "input_tokens": 1000, "max_output_tokens": 200}
    ex = (await route(client, **ask, explain=True))["explanation"]
    values = sorted(e[what] for e in ex.values())
    limit = (values[2] + values[3]) / 2  # lets exactly the three lowest through
    fits = {m for m, e in ex.items() if e[what] <= limit}
    assert len(fits) == 3
    for _ in range(5):
        d = await route(client, **ask, constraints={key: limit}, explain=True)
        assert set([d["model"], *d["fallbacks"]]) == fits
        assert d[what] <= limit
        for m, e in d["explanation"].items():
            assert e["eligible"] is (m in fits)
            if m not in fits:
                assert key in e["reason"]


@pytest.mark.parametrize(("constraints", "extra", "reasons"), [
    ({"max_cost_usd": 1e-12}, {}, {"expected cost"}),
    ({"max_latency_ms": 1}, {}, {"expected latency"}),
    ({"models": ["gpt-5"], "exclude": ["gpt-5"]}, {},
     {"not in constraints.models", "in constraints.exclude"}),
    ({"models": ["gpt-5", "claude-sonnet-4-5"], "max_latency_ms": 5000}, {},
     {"not in constraints.models", "expected latency"}),
    ({}, {"input_tokens": 2_000_000}, {"context is"}),
])
async def test_impossible_constraints_are_422_naming_why_per_model(client, config, constraints,
                                                                  extra, reasons):
    status, body = await post(client, "/v1/route",
                              {"prompt": "hi", "constraints": constraints, **extra})
    assert_error(status, body, 422, "no_eligible_model", "constraints")
    message = body["error"]["message"]
    for model in names(config):
        assert f"{model}: " in message
    for reason in reasons:
        assert reason in message
    await still_serves(client)


async def test_refused_routes_leave_no_trace_in_arms(client):
    for body in ({"prompt": "hi", "bucket": "math:high", "constraints": {"max_cost_usd": 1e-12}},
                 {"prompt": "hi", "bucket": "code:high", "constraints": {"models": ["gpt-6"]}},
                 {"prompt": "hi", "policy": "cheap", "input_tokens": 2_000_000}):
        status, _ = await post(client, "/v1/route", body)
        assert status in (400, 422)
    assert await arms(client) == []  # no decision was made, so no arms to show


async def test_context_length_filters_models(client, config):
    small = {m.name for m in config.models if m.context_tokens < 300_000}
    assert small  # the bundled catalog has 200k-context models
    d = await route(client, prompt="hi", input_tokens=250_000, max_output_tokens=1000)
    assert not small & {d["model"], *d["fallbacks"]}
    assert sorted([d["model"], *d["fallbacks"]]) == sorted(set(names(config)) - small)


# --- POST /v1/feedback -------------------------------------------------------------------

async def test_full_feedback_is_applied_and_visible_at_once(client, config):
    d = await route(client, prompt="hello")
    before = await arm(client, d)
    assert before["evidence"] == 0 and before["mean_cost_usd"] is None
    status, body = await feedback(client, route_id=d["route_id"], quality=0.9, latency_ms=800,
                                  input_tokens=120, output_tokens=300, success=True)
    assert status == 200, body
    assert body == {"route_id": d["route_id"], "policy": "default", "bucket": d["bucket"],
                    "model": d["model"], "quality_from_success": False,
                    "applied": {"quality": 0.9, "latency_ms": 800.0, "input_tokens": 120,
                                "output_tokens": 300, "success": True}}
    assert body["applied"]["success"] is True  # a boolean, as sent (True == 1.0 in Python)
    after = await arm(client, d)
    assert set(after) == ARM_KEYS
    assert after["evidence"] == pytest.approx(1.0)
    prior = config.policies["default"].prior
    assert after["quality_mean"] == pytest.approx(
        (prior.alpha + 0.9) / (prior.quality_strength + 1))
    assert after["quality_mean"] > before["quality_mean"]
    assert after["latency_observations"] == pytest.approx(1.0)
    assert after["mean_latency_ms"] < before["mean_latency_ms"]  # 800 ms is fast for any model
    p_in, p_out = prices(config)[d["model"]]
    assert after["mean_cost_usd"] == pytest.approx(120 * p_in + 300 * p_out)
    assert after["recent_decisions"] == 1 and after["share"] == 1.0
    lo, hi = after["quality_interval"]
    assert lo < after["quality_mean"] < hi


async def test_feedback_in_parts_each_fact_counted_once(client, config):
    d = await route(client, prompt="hello")
    rid = d["route_id"]
    status, body = await feedback(client, route_id=rid, latency_ms=1500, input_tokens=50)
    assert status == 200
    assert body["applied"] == {"latency_ms": 1500.0, "input_tokens": 50}
    a = await arm(client, d)
    assert (a["evidence"], a["latency_observations"], a["mean_cost_usd"]) == (0, 1, None)

    status, body = await feedback(client, route_id=rid, output_tokens=200)
    assert (status, body["applied"]) == (200, {"output_tokens": 200})
    p_in, p_out = prices(config)[d["model"]]
    assert (await arm(client, d))["mean_cost_usd"] == pytest.approx(50 * p_in + 200 * p_out)

    # quality later
    status, body = await feedback(client, route_id=rid, quality=0.25)
    assert (status, body["applied"]) == (200, {"quality": 0.25})
    a = await arm(client, d)
    assert a["evidence"] == pytest.approx(1.0) and a["latency_observations"] == 1

    # resending any fact is a 409 naming it, and changes nothing
    for fact, value in [("latency_ms", 10), ("quality", 1.0), ("input_tokens", 1),
                        ("output_tokens", 1)]:
        status, body = await feedback(client, route_id=rid, **{fact: value})
        assert_error(status, body, 409, "duplicate_fact", fact)
        assert fact in body["error"]["message"]
    # a message mixing a new fact with a repeated one is refused as a whole
    status, body = await feedback(client, route_id=rid, quality=0.5, success=True)
    assert_error(status, body, 409, "duplicate_fact", "quality")
    assert await arm(client, d) == a
    # ...so the new fact can still be sent on its own
    status, body = await feedback(client, route_id=rid, success=True)
    assert (status, body["applied"]) == (200, {"success": True})
    assert body["applied"]["success"] is True
    assert await arm(client, d) == a  # success=true teaches nothing by itself
    status, body = await feedback(client, route_id=rid, success=False)
    assert_error(status, body, 409, "duplicate_fact", "success")


async def test_success_false_counts_as_quality_zero(client, config):
    prior = config.policies["default"].prior
    d = await route(client, prompt="hello")
    status, body = await feedback(client, route_id=d["route_id"], success=False, latency_ms=900)
    assert status == 200
    assert body["applied"] == {"quality": 0.0, "latency_ms": 900.0, "success": False}
    assert body["applied"]["success"] is False
    assert body["quality_from_success"] is True
    a = await arm(client, d)
    assert a["evidence"] == pytest.approx(1.0)
    assert a["quality_mean"] == pytest.approx(prior.alpha / (prior.quality_strength + 1))
    # a quality sent later is a duplicate of the derived one
    status, body = await feedback(client, route_id=d["route_id"], quality=1.0)
    assert_error(status, body, 409, "duplicate_fact", "quality")
    assert "success=false" in body["error"]["message"]
    assert await arm(client, d) == a


async def test_success_false_with_quality_uses_the_quality(client, config):
    prior = config.policies["default"].prior
    d = await route(client, prompt="hello")
    status, body = await feedback(client, route_id=d["route_id"], success=False, quality=0.8)
    assert status == 200
    assert body["applied"] == {"quality": 0.8, "success": False}
    assert body["quality_from_success"] is False
    assert (await arm(client, d))["quality_mean"] == pytest.approx(
        (prior.alpha + 0.8) / (prior.quality_strength + 1))


async def test_success_false_after_quality_adds_no_quality(client):
    d = await route(client, prompt="hello")
    assert (await feedback(client, route_id=d["route_id"], quality=0.7))[0] == 200
    a = await arm(client, d)
    status, body = await feedback(client, route_id=d["route_id"], success=False)
    assert (status, body["applied"], body["quality_from_success"]) == (
        200, {"success": False}, False)
    assert await arm(client, d) == a


async def test_feedback_for_the_cheap_policy_lands_on_its_own_arms(client):
    d = await route(client, prompt="hello", policy="cheap")
    status, body = await feedback(client, route_id=d["route_id"], quality=1.0)
    assert (status, body["policy"]) == (200, "cheap")
    assert (await arm(client, d))["evidence"] == pytest.approx(1.0)
    default_rows = await arms(client, policy="default")
    assert all(r["evidence"] == 0 for r in default_rows)


def _tamper_body(rid: str) -> str:
    prefix, body, mac = rid.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[3] = "gpt-5"  # claim another model, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{prefix}.{forged}.{mac}"


def _other_key(rid: str) -> str:
    ticket = RouteTicket("default", "chat:low", "gpt-5", 1_800_000_000.0, 10, "abc")
    return RouteIds(b"z" * 32).issue(ticket)


@pytest.mark.parametrize("make", [
    pytest.param(lambda rid: "nonsense", id="garbage"),
    pytest.param(lambda rid: "", id="empty"),
    pytest.param(lambda rid: "r2..", id="empty-parts"),
    pytest.param(lambda rid: "r2.%%%.###", id="not-base64"),
    pytest.param(lambda rid: "r1" + rid[2:], id="wrong-prefix"),
    pytest.param(lambda rid: rid[:-3], id="truncated-mac"),
    pytest.param(lambda rid: rid[:-2] + ("AA" if rid[-2:] != "AA" else "BB"), id="altered-mac"),
    pytest.param(lambda rid: rid[:-2] + "é", id="non-ascii"),
    pytest.param(lambda rid: rid.split(".")[0] + ".é." + rid.split(".")[2], id="non-ascii-body"),
    pytest.param(_tamper_body, id="tampered-body"),
    pytest.param(_other_key, id="other-key"),
])
async def test_unknown_or_tampered_route_id_is_404(client, make):
    d = await route(client, prompt="hello")
    status, body = await feedback(client, route_id=make(d["route_id"]), quality=1.0)
    assert_error(status, body, 404, "unknown_route_id", "route_id")
    assert all(r["evidence"] == 0 for r in await arms(client))
    await still_serves(client)


async def test_expired_route_id_is_404(client, clock, config):
    ttl_s = config.storage.decision_ttl_hours * 3600
    old = await route(client, prompt="hello")
    young = await route(client, prompt="hello")
    clock.advance(ttl_s - 60)
    status, _ = await feedback(client, route_id=young["route_id"], latency_ms=100)
    assert status == 200  # inside the window
    clock.advance(120)
    status, body = await feedback(client, route_id=old["route_id"], quality=1.0)
    assert_error(status, body, 404, "unknown_route_id", "route_id")
    assert "expired" in body["error"]["message"]
    await still_serves(client)


# --- GET /v1/arms ------------------------------------------------------------------------

async def test_arms_filters_by_bucket_and_policy(client, config):
    assert await arms(client) == []
    await route(client, prompt="hello")
    await route(client, prompt="hello", bucket="math:high")
    await route(client, prompt="hello", bucket="math:high", policy="cheap")
    await route(client, prompt="hello", bucket="math:high", policy="cheap")
    n = len(config.models)
    every = await arms(client)
    assert len(every) == 3 * n
    assert {(r["policy"], r["bucket"]) for r in every} == {
        ("default", "chat:low"), ("default", "math:high"), ("cheap", "math:high")}
    assert all(set(r) == ARM_KEYS for r in every)
    by_bucket = await arms(client, bucket="math:high")
    assert {(r["policy"], r["bucket"]) for r in by_bucket} == {
        ("default", "math:high"), ("cheap", "math:high")}
    by_policy = await arms(client, policy="cheap")
    assert {(r["policy"], r["bucket"]) for r in by_policy} == {("cheap", "math:high")}
    assert sum(r["recent_decisions"] for r in by_policy) == 2
    assert sum(r["share"] for r in by_policy) == pytest.approx(1.0)
    both = await arms(client, policy="default", bucket="chat:low")
    assert [r["model"] for r in both] == names(config)
    assert await arms(client, policy="cheap", bucket="chat:low") == []  # known, unseen


@pytest.mark.parametrize(("query", "code", "field"), [
    ({"bucket": "nope:low"}, "unknown_bucket", "bucket"),
    ({"bucket": ""}, "unknown_bucket", "bucket"),
    ({"policy": "nope"}, "unknown_policy", "policy"),
    ({"policy": "cheap", "bucket": "chat"}, "unknown_bucket", "bucket"),
    ({"model": "gpt-5"}, "unknown_field", "model"),
    ({"policy": "default", "limit": "3"}, "unknown_field", "limit"),
])
async def test_arms_bad_query_is_400(client, query, code, field):
    await route(client, prompt="hello")
    resp = await client.get("/v1/arms", params=query)
    await error_of(resp, 400, code, field)
    await still_serves(client)


# --- errors: request bodies --------------------------------------------------------------

def _messages(n: int) -> list[dict]:
    return [{"role": "user", "content": f"m{i}"} for i in range(n)]


ROUTE_BODY_ERRORS = [
    # (body, code, field)
    ([], "invalid_field", None),
    ("prompt", "invalid_field", None),
    (42, "invalid_field", None),
    (None, "invalid_field", None),
    ({}, "missing_field", "prompt"),
    ({"task": "code"}, "missing_field", "prompt"),
    ({"prompt": None}, "missing_field", "prompt"),
    ({"prompt": "hi", "messages": _messages(1)}, "invalid_field", "messages"),
    ({"messages": []}, "missing_field", "messages"),
    ({"prompt": 5}, "invalid_field", "prompt"),
    ({"prompt": ["hi"]}, "invalid_field", "prompt"),
    ({"messages": "hi"}, "invalid_field", "messages"),
    ({"messages": {"role": "user"}}, "invalid_field", "messages"),
    ({"messages": [1]}, "invalid_field", "messages[0]"),
    ({"messages": [{"content": "x"}]}, "missing_field", "messages[0].role"),
    ({"messages": [{"role": 1, "content": "x"}]}, "invalid_field", "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "invalid_field", "messages[0].content"),
    ({"messages": [{"role": "user", "content": {"text": "x"}}]},
     "invalid_field", "messages[0].content"),
    ({"messages": [{"role": "user", "content": ["x"]}]},
     "invalid_field", "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]},
     "missing_field", "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "invalid_field", "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "missing_field", "messages[0].content[0].text"),
    ({"messages": [*_messages(1), {"role": "user", "content": 1.5}]},
     "invalid_field", "messages[1].content"),
    ({"prompt": "hi", "temperature": 0.2}, "unknown_field", "temperature"),
    ({"prompt": "hi", "model": "gpt-5"}, "unknown_field", "model"),
    ({"prompt": "hi", "task": 3}, "invalid_field", "task"),
    ({"prompt": "hi", "task": "x" * 65}, "invalid_field", "task"),
    ({"prompt": "hi", "bucket": ["code:low"]}, "invalid_field", "bucket"),
    ({"prompt": "hi", "bucket": "nope:low"}, "unknown_bucket", "bucket"),
    ({"prompt": "hi", "bucket": "code"}, "unknown_bucket", "bucket"),
    ({"prompt": "hi", "policy": True}, "invalid_field", "policy"),
    ({"prompt": "hi", "policy": "fastest"}, "unknown_policy", "policy"),
    ({"prompt": "hi", "explain": "yes"}, "invalid_field", "explain"),
    ({"prompt": "hi", "explain": 1}, "invalid_field", "explain"),
    ({"prompt": "hi", "session_id": ""}, "invalid_field", "session_id"),
    ({"prompt": "hi", "session_id": 7}, "invalid_field", "session_id"),
    ({"prompt": "hi", "session_id": "s" * 257}, "invalid_field", "session_id"),
    ({"prompt": "hi", "input_tokens": "100"}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "input_tokens": True}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "input_tokens": 1.5}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "input_tokens": -1}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "input_tokens": 10**30}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "input_tokens": 10**12}, "invalid_field", "input_tokens"),
    ({"prompt": "hi", "max_output_tokens": 0}, "invalid_field", "max_output_tokens"),
    ({"prompt": "hi", "max_output_tokens": -5}, "invalid_field", "max_output_tokens"),
    ({"prompt": "hi", "max_output_tokens": False}, "invalid_field", "max_output_tokens"),
    ({"prompt": "hi", "max_output_tokens": "5"}, "invalid_field", "max_output_tokens"),
    ({"prompt": "hi", "constraints": "cheap"}, "invalid_field", "constraints"),
    ({"prompt": "hi", "constraints": ["gpt-5"]}, "invalid_field", "constraints"),
    ({"prompt": "hi", "constraints": {"model": "gpt-5"}}, "unknown_field", "constraints.model"),
    ({"prompt": "hi", "constraints": {"models": "gpt-5"}}, "invalid_field", "constraints.models"),
    ({"prompt": "hi", "constraints": {"models": []}}, "invalid_field", "constraints.models"),
    ({"prompt": "hi", "constraints": {"models": ["gpt-5", 7]}},
     "invalid_field", "constraints.models[1]"),
    ({"prompt": "hi", "constraints": {"models": ["gpt-6"]}}, "unknown_model", "constraints.models"),
    ({"prompt": "hi", "constraints": {"models": ["gpt-5", "gpt-6"]}},
     "unknown_model", "constraints.models"),
    ({"prompt": "hi", "constraints": {"exclude": "gpt-5"}}, "invalid_field", "constraints.exclude"),
    ({"prompt": "hi", "constraints": {"exclude": [None]}},
     "invalid_field", "constraints.exclude[0]"),
    ({"prompt": "hi", "constraints": {"exclude": ["gpt-6"]}},
     "unknown_model", "constraints.exclude"),
    ({"prompt": "hi", "constraints": {"models": ["gpt-5"], "exclude": ["gpt-6"]}},
     "unknown_model", "constraints.exclude"),
    ({"prompt": "hi", "constraints": {"max_cost_usd": "1"}},
     "invalid_field", "constraints.max_cost_usd"),
    ({"prompt": "hi", "constraints": {"max_cost_usd": True}},
     "invalid_field", "constraints.max_cost_usd"),
    ({"prompt": "hi", "constraints": {"max_cost_usd": 0}},
     "invalid_field", "constraints.max_cost_usd"),
    ({"prompt": "hi", "constraints": {"max_cost_usd": -1}},
     "invalid_field", "constraints.max_cost_usd"),
    ({"prompt": "hi", "constraints": {"max_cost_usd": 1e300}},
     "invalid_field", "constraints.max_cost_usd"),
    ({"prompt": "hi", "constraints": {"max_latency_ms": "fast"}},
     "invalid_field", "constraints.max_latency_ms"),
    ({"prompt": "hi", "constraints": {"max_latency_ms": -5}},
     "invalid_field", "constraints.max_latency_ms"),
    ({"prompt": "hi", "constraints": {"max_latency_ms": 1e300}},
     "invalid_field", "constraints.max_latency_ms"),
    ({"prompt": "hi", "weights": 0.5}, "invalid_field", "weights"),
    ({"prompt": "hi", "weights": {"quality": 1}}, "unknown_field", "weights.quality"),
    ({"prompt": "hi", "weights": {"cost": "high"}}, "invalid_field", "weights.cost"),
    ({"prompt": "hi", "weights": {"cost": False}}, "invalid_field", "weights.cost"),
    ({"prompt": "hi", "weights": {"cost": -0.1}}, "invalid_field", "weights.cost"),
    ({"prompt": "hi", "weights": {"latency": 1e9}}, "invalid_field", "weights.latency"),
    ({"prompt": "hi", "weights": {"latency": [1]}}, "invalid_field", "weights.latency"),
    ({"prompt": "hi", "weights": {"points_per_price_doubling": -1}}, "invalid_field",
     "weights.points_per_price_doubling"),
    ({"prompt": "hi", "weights": {"points_per_latency_doubling": "fast"}}, "invalid_field",
     "weights.points_per_latency_doubling"),
]


@pytest.mark.parametrize(("body", "code", "field"), ROUTE_BODY_ERRORS,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(ROUTE_BODY_ERRORS)])
async def test_route_body_errors(client, body, code, field):
    status, answer = await post(client, "/v1/route", body)
    assert_error(status, answer, 400, code, field)
    await still_serves(client)


FEEDBACK_BODY_ERRORS = [
    # (body, with the real route_id merged in?, code, field)
    ([], False, "invalid_field", None),
    ("r1.x.y", False, "invalid_field", None),
    ({}, False, "missing_field", "route_id"),
    ({"quality": 1.0}, False, "missing_field", "route_id"),
    ({"route_id": None, "quality": 1.0}, False, "missing_field", "route_id"),
    ({"route_id": 5, "quality": 1.0}, False, "invalid_field", "route_id"),
    ({"route_id": ["r1"], "quality": 1.0}, False, "invalid_field", "route_id"),
    ({"route_id": "r" * 600, "quality": 1.0}, False, "invalid_field", "route_id"),
    ({"rating": 5}, True, "unknown_field", "rating"),
    ({"quality": 1.5}, True, "invalid_field", "quality"),
    ({"quality": -0.01}, True, "invalid_field", "quality"),
    ({"quality": 1.0000001}, True, "invalid_field", "quality"),
    ({"quality": "0.5"}, True, "invalid_field", "quality"),
    ({"quality": True}, True, "invalid_field", "quality"),
    ({"quality": [0.5]}, True, "invalid_field", "quality"),
    ({"quality": 10**30}, True, "invalid_field", "quality"),
    ({"latency_ms": -1}, True, "invalid_field", "latency_ms"),
    ({"latency_ms": "100"}, True, "invalid_field", "latency_ms"),
    ({"latency_ms": False}, True, "invalid_field", "latency_ms"),
    ({"latency_ms": 1e300}, True, "invalid_field", "latency_ms"),
    ({"input_tokens": -1}, True, "invalid_field", "input_tokens"),
    ({"input_tokens": 1.5}, True, "invalid_field", "input_tokens"),
    ({"input_tokens": True}, True, "invalid_field", "input_tokens"),
    ({"input_tokens": "10"}, True, "invalid_field", "input_tokens"),
    ({"input_tokens": 10**30}, True, "invalid_field", "input_tokens"),
    ({"output_tokens": -3}, True, "invalid_field", "output_tokens"),
    ({"output_tokens": {"n": 3}}, True, "invalid_field", "output_tokens"),
    ({"output_tokens": 10**12}, True, "invalid_field", "output_tokens"),
    ({"success": "false"}, True, "invalid_field", "success"),
    ({"idempotency_key": 7, "quality": 1.0}, True, "invalid_field", "idempotency_key"),
    ({"idempotency_key": "", "quality": 1.0}, True, "invalid_field", "idempotency_key"),
    ({"idempotency_key": "k" * 129, "quality": 1.0}, True, "invalid_field", "idempotency_key"),
    ({"success": 0}, True, "invalid_field", "success"),
    ({"cost_usd": -0.01}, True, "invalid_field", "cost_usd"),
    ({"cached_input_tokens": -1}, True, "invalid_field", "cached_input_tokens"),
    ({"cached_input_tokens": 1.5}, True, "invalid_field", "cached_input_tokens"),
    ({"input_tokens": 10, "cached_input_tokens": 11}, True, "invalid_field",
     "cached_input_tokens"),
    ({"cache_write_tokens": "3"}, True, "invalid_field", "cache_write_tokens"),
    ({"input_tokens": 10, "cached_input_tokens": 5, "cache_write_tokens": 6}, True,
     "invalid_field", "cached_input_tokens"),
    ({"cost_usd": "0.01"}, True, "invalid_field", "cost_usd"),
    ({"cost_usd": 1e7}, True, "invalid_field", "cost_usd"),
    ({"quality": 0.5, "latency_ms": -2}, True, "invalid_field", "latency_ms"),
]


@pytest.mark.parametrize(("body", "merge", "code", "field"), FEEDBACK_BODY_ERRORS,
                         ids=[f"{i}-{c[3]}" for i, c in enumerate(FEEDBACK_BODY_ERRORS)])
async def test_feedback_body_errors(client, body, merge, code, field):
    d = await route(client, prompt="hello")
    if merge:
        body = {"route_id": d["route_id"], **body}
    status, answer = await post(client, "/v1/feedback", body)
    assert_error(status, answer, 400, code, field)
    assert all(r["evidence"] == 0 and r["latency_observations"] == 0
               for r in await arms(client))  # nothing was applied
    # the refused message did not use up the facts: a valid one is still accepted
    status, _ = await feedback(client, route_id=d["route_id"], quality=0.5, latency_ms=10,
                               input_tokens=1, output_tokens=1, success=True)
    assert status == 200
    await still_serves(client)


async def test_feedback_without_facts_is_400(client):
    d = await route(client, prompt="hello")
    for body in ({"route_id": d["route_id"]},
                 {"route_id": d["route_id"], "quality": None, "success": None}):
        status, answer = await post(client, "/v1/feedback", body)
        assert status == 400
        assert answer["error"]["code"] == "missing_field"
        assert answer["error"]["field"] in FACT_NAMES
        for fact in FACT_NAMES:
            assert fact in answer["error"]["message"]
    await still_serves(client)


RAW_BODY_ERRORS = [
    pytest.param(b'{"prompt": ', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"{'prompt': 'hi'}", id="single-quotes"),
    pytest.param(b'{"prompt": "hi",}', id="trailing-comma"),
    pytest.param(b'{"prompt": "caf\xe9"}', id="latin-1"),
    pytest.param(b'\xff\xfe{\x00"\x00', id="utf-16"),
    pytest.param(b'{"prompt": "\xed\xa0\x80"}', id="utf-8-surrogate"),
    pytest.param(b'{"prompt": "hi", "input_tokens": NaN}', id="NaN"),
    pytest.param(b'{"prompt": "hi", "input_tokens": Infinity}', id="Infinity"),
    pytest.param(b'{"prompt": "hi", "input_tokens": 1e400}', id="overflow"),
    pytest.param(b'{"prompt": "hi"} {"prompt": "again"}', id="two-documents"),
]


@pytest.mark.parametrize("path", ["/v1/route", "/v1/feedback"])
@pytest.mark.parametrize("raw", RAW_BODY_ERRORS)
async def test_unparseable_bodies_are_400(client, path, raw):
    resp = await client.post(path, data=raw, headers=JSON)
    await error_of(resp, 400, "invalid_json", None)
    await still_serves(client)


@pytest.mark.parametrize("path", ["/v1/route", "/v1/feedback"])
@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {},
])
async def test_wrong_content_type_is_415(client, path, headers):
    resp = await client.post(path, data=b'{"prompt": "hi"}', headers=headers)
    await error_of(resp, 415, "unsupported_media_type", None)
    await still_serves(client)


async def test_json_content_type_variants_are_accepted(client):
    for ctype in ("application/json; charset=utf-8", "application/vnd.api+json"):
        resp = await client.post("/v1/route", data=b'{"prompt": "hi"}',
                                 headers={"Content-Type": ctype})
        assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("path", ["/v1/route", "/v1/feedback"])
async def test_body_over_the_limit_is_413(small_client, path):
    body = orjson.dumps({"prompt": "x" * SMALL_BODY})
    resp = await small_client.post(path, data=body, headers=JSON)  # with Content-Length
    await error_of(resp, 413, "body_too_large", None)

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b" " * (SMALL_BODY // 2)
        yield b'{"prompt": "hi"}'

    resp = await small_client.post(path, data=chunks(), headers=JSON)
    await error_of(resp, 413, "body_too_large", None)
    await still_serves(small_client)
    # just under the limit is fine
    ok = orjson.dumps({"prompt": "x" * (SMALL_BODY - 100)})
    assert (await small_client.post("/v1/route", data=ok, headers=JSON)).status == 200


async def test_default_body_limit_is_413(client, config):
    body = b'{"prompt": "' + b"x" * config.server.max_body_bytes + b'"}'
    resp = await client.post("/v1/route", data=io.BytesIO(body), headers=JSON)
    error = await error_of(resp, 413, "body_too_large", None)
    assert str(config.server.max_body_bytes) in error["message"]
    await still_serves(client)


async def test_too_many_messages_is_400(small_client):
    d = await route(small_client, messages=_messages(SMALL_MESSAGES))
    assert d["model"]
    status, body = await post(small_client, "/v1/route",
                              {"messages": _messages(SMALL_MESSAGES + 1)})
    assert_error(status, body, 400, "invalid_field", "messages")
    assert str(SMALL_MESSAGES) in body["error"]["message"]
    await still_serves(small_client)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/v1"), ("GET", "/v1/nope"), ("POST", "/v1/routes"),
    ("GET", "/v1/arms/extra"), ("POST", "/v1/route/"), ("GET", "/healthz/x"),
])
async def test_unknown_path_is_404_json(client, method, path):
    resp = await client.request(method, path, json={"prompt": "hi"})
    await error_of(resp, 404, "not_found", None)
    await still_serves(client)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/route", "POST"), ("PUT", "/v1/route", "POST"),
    ("GET", "/v1/feedback", "POST"), ("DELETE", "/v1/feedback", "POST"),
    ("POST", "/v1/arms", "GET"), ("DELETE", "/v1/arms", "GET"), ("POST", "/healthz", "GET"),
])
async def test_wrong_method_is_405_json(client, method, path, allow):
    resp = await client.request(method, path)
    await error_of(resp, 405, "method_not_allowed", None)
    assert allow in resp.headers["Allow"]
    await still_serves(client)


# --- nothing crashes the server ----------------------------------------------------------

ODD_VALUES = [None, True, False, 0, -1, 1, 0.5, -0.0, 1.5, 1e308, -1e308, 2**63, 10**40, "",
              "x" * 300, "gpt-5", "code:low", "default", "\u0000", "📝", [], [1], ["gpt-5"],
              [{}], {}, {"a": 1}, {"role": "user"}]


async def test_odd_values_in_any_field_never_crash_the_router(client):
    """Every route and feedback field, each odd value: an answer or a 4xx JSON error."""
    decision = await route(client, prompt="hello")
    route_fields = ["prompt", "messages", "task", "bucket", "policy", "constraints", "weights",
                    "input_tokens", "max_output_tokens", "explain"]
    sub_fields = {"constraints": ["models", "exclude", "max_cost_usd", "max_latency_ms"],
                  "weights": ["cost", "latency"]}
    bodies = []
    for f in route_fields:
        for v in ODD_VALUES:
            bodies.append(("/v1/route", {"prompt": "hi", f: v} if f != "prompt" else {f: v}))
    for parent, children in sub_fields.items():
        for f in children:
            for v in ODD_VALUES:
                bodies.append(("/v1/route", {"prompt": "hi", parent: {f: v}}))
    for v in ODD_VALUES:
        bodies.append(("/v1/route", {"messages": [{"role": "user", "content": v}]}))
        bodies.append(("/v1/route", {"messages": [{"role": "user", "content": [
            {"type": "text", "text": v}]}]}))
    for f in ("route_id", *FACT_NAMES):
        for v in ODD_VALUES:
            body = ({"route_id": v, "quality": 0.5} if f == "route_id"
                    else {"route_id": decision["route_id"], f: v})
            bodies.append(("/v1/feedback", body))
    statuses = set()
    for path, body in bodies:
        status, answer = await post(client, path, body)
        statuses.add(status)
        if status != 200:
            assert 400 <= status < 500, (path, body, answer)
            err = answer["error"]
            assert set(err) == {"code", "message", "field"}, (path, body, answer)
    assert statuses >= {200, 400, 404, 409, 422}
    await still_serves(client)


async def test_internal_errors_are_json_500_and_the_server_keeps_serving(client, monkeypatch):
    engine = client.app[ENGINE]

    def boom(request):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(engine, "decide", boom)
    resp = await client.post("/v1/route", json={"prompt": "hi"})
    error = await error_of(resp, 500, "internal", None)
    assert "kaboom" not in error["message"]  # internals are logged, not shown
    monkeypatch.undo()
    await still_serves(client)


async def test_storage_failure_is_json_503(client, monkeypatch):
    d = await route(client, prompt="hello")

    async def broken(*args, **kwargs):
        raise StorageError("disk on fire")

    monkeypatch.setattr(client.app[STORE], "record_feedback", broken)
    status, body = await feedback(client, route_id=d["route_id"], quality=1.0)
    assert_error(status, body, 503, "unavailable", None)
    monkeypatch.undo()
    status, _ = await feedback(client, route_id=d["route_id"], quality=1.0)
    assert status == 200


def test_error_cases_cover_each_wire_field():
    """Every field of the wire format has at least one error case above."""
    from bandit_router.http.wire import (
        CONSTRAINT_FIELDS,
        FEEDBACK_FIELDS,
        ROUTE_FIELDS,
        WEIGHT_FIELDS,
    )

    route_fields = {f for body, _, f in ROUTE_BODY_ERRORS if f}
    for name in ROUTE_FIELDS:
        assert any(f == name or f.startswith(f"{name}.") or f.startswith(f"{name}[")
                   for f in route_fields), name
    for name in CONSTRAINT_FIELDS:
        assert f"constraints.{name}" in route_fields, name
    for name in WEIGHT_FIELDS:
        assert f"weights.{name}" in route_fields, name
    feedback_fields = {f for *_, f in FEEDBACK_BODY_ERRORS if f}
    assert set(FEEDBACK_FIELDS) <= feedback_fields
