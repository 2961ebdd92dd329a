"""Model changes at run time: add, disable, re-enable and reprice models through the admin
API of the real server (loopback port, aiohttp client, SQLite file), what routing, spend and
the gateway make of it, the audit log, and what a restart rebuilds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bandit_router.config import parse
from bandit_router.core.catalog_changes import (
    Change,
    Entry,
    apply,
    check,
    from_config,
    replay,
)
from bandit_router.core.errors import RouterError
from bandit_router.core.learner import ArmBook
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config, Model, UpstreamConfig
from bandit_router.core.types import FeedbackEvent, Message, RouteRequest, RouteTicket
from bandit_router.engine.router import Engine
from bandit_router.http.app import create_app
from bandit_router.http.appkeys import ENGINE
from tests.calls import auth
from tests.conftest import ROOT, FakeClock
from tests.fake_upstream import chat_server

NEW = {"name": "acme-small", "provider": "acme", "input_per_mtok": 0.2,
       "output_per_mtok": 0.8, "context_tokens": 128_000}
PROMPTS = ["hello", "Please refactor this python function: def f(x): return x  # bug",
           "Summarize the key points of this memo in three bullets.",
           "Solve for x: x^2 - 4 = 0, calculate step by step and prove it."]


async def call(c, method: str, path: str, body=None, **kw) -> tuple[int, dict]:
    r = await c.request(method, path, json=body, **kw)
    return r.status, await r.json()


async def models_of(c, **kw) -> dict[str, dict]:
    status, body = await call(c, "GET", "/v1/admin/models", **kw)
    assert status == 200, body
    return {m["name"]: m for m in body["models"]}


async def route(c, prompt: str = "hello", **body) -> dict:
    status, decision = await call(c, "POST", "/v1/route", {"prompt": prompt, **body})
    assert status == 200, decision
    return decision


async def arm_evidence(c, model: str) -> dict[tuple[str, str], float]:
    status, body = await call(c, "GET", "/v1/arms")
    assert status == 200
    return {(a["policy"], a["bucket"]): a["evidence"] for a in body["arms"]
            if a["model"] == model}


def restart(config: Config, clock) -> TestClient:
    return TestClient(TestServer(create_app(config, clock=clock)))


# --- the catalog as the API shows it ----------------------------------------------------------

async def test_the_catalog_lists_config_toml_models(client, config):
    listed = await models_of(client)
    assert list(listed) == [m.name for m in config.models]
    for m in config.models:
        entry = listed[m.name]
        assert entry["source"] == "config" and entry["enabled"] is True
        assert (entry["input_per_mtok"], entry["output_per_mtok"], entry["context_tokens"]) == \
            (m.input_per_mtok, m.output_per_mtok, m.context_tokens)
        assert entry["overridden"] == []


async def test_an_added_model_is_listed_offered_and_routable(client, config):
    status, body = await call(client, "POST", "/v1/admin/models", NEW)
    assert status == 200, body
    model = body["model"]
    assert model["source"] == "runtime" and model["enabled"] is True
    assert model["provider"] == "acme" and model["upstream"] is None
    # the latency prior defaults to the enabled models' median guess
    assert model["latency_ms"] == float(np.median([m.latency_ms for m in config.models]))
    assert list(await models_of(client))[-1] == "acme-small"
    status, offered = await call(client, "GET", "/v1/models")
    assert "acme-small" in {m["id"] for m in offered["data"]}
    decision = await route(client, constraints={"models": ["acme-small"]})
    assert decision["model"] == "acme-small"
    # its arm starts with no evidence; feedback teaches it like any other
    status, fb = await call(client, "POST", "/v1/feedback",
                            {"route_id": decision["route_id"], "quality": 1.0})
    assert status == 200 and fb["model"] == "acme-small"
    assert sum((await arm_evidence(client, "acme-small")).values()) == pytest.approx(1.0)


async def test_a_new_model_gets_explored_after_the_others_have_learned(client):
    for _ in range(150):  # every existing arm of the bucket is well informed first
        d = await route(client)
        status, _ = await call(client, "POST", "/v1/feedback",
                               {"route_id": d["route_id"], "quality": 0.8})
        assert status == 200
    assert (await call(client, "POST", "/v1/admin/models", NEW))[0] == 200
    chosen = [(await route(client))["model"] for _ in range(200)]
    assert "acme-small" in chosen[:20], "Thompson sampling did not try the new model soon"
    # explored, not handed all the traffic
    assert chosen.count("acme-small") < len(chosen)


def _states(config: Config) -> dict:
    """Evidence for several buckets and models, so pooling has something to borrow."""
    book, rng = ArmBook(config.policies), np.random.default_rng(3)
    for i in range(400):
        model = config.models[i % 4].name
        bucket = ("chat:low", "code:high", "math:low")[i % 3]
        ticket = RouteTicket("default", bucket, model, 0.0, 100, "", "default")
        facts = (("quality", float(rng.random() < 0.5 + 0.1 * (i % 4))), ("latency_ms", 900.0),
                 ("input_tokens", 100.0), ("output_tokens", 300.0))
        book.apply(FeedbackEvent(f"r{i}", ticket, facts, 1_800_000_000.0))
    return book.states()


def test_a_runtime_model_starts_from_the_prior_a_configured_one_would_have(config, route_ids):
    """Adding a model at run time gives its arms exactly the (pooled) prior they would have
    had if config.toml had listed it from the start, and leaves the others unchanged."""
    new = Model("acme-small", "acme", 0.2, 0.8, 128_000, 2000.0)
    clock, states = FakeClock(), _states(config)
    live = Engine(config, route_ids, np.random.default_rng(1), clock)
    live.absorb(states)
    before = {r.key: r for r in live.report()}
    live.set_catalog((*from_config(config.models), Entry(new, source="runtime")))
    configured = Engine(replace(config, models=(*config.models, new)), route_ids,
                        np.random.default_rng(1), clock)
    configured.absorb(states)
    after = live.report()
    assert after == configured.report()
    fresh = [r for r in after if r.key.model == "acme-small"]
    assert fresh and all(r.evidence == 0 for r in fresh)
    assert {r.key: r for r in after if r.key.model != "acme-small"}.keys() == before.keys()
    for r in after:  # the others' evidence is untouched (their priors may borrow differently)
        if r.key.model != "acme-small":
            assert r.evidence == before[r.key].evidence


# --- disable, re-enable ------------------------------------------------------------------------

async def test_a_disabled_model_gets_no_traffic_and_keeps_its_evidence(client, config):
    target = "gemini-2.5-flash-lite"
    for i in range(60):  # teach every model something, the target included
        d = await route(client, PROMPTS[i % len(PROMPTS)],
                        constraints={"models": [config.models[i % len(config.models)].name]})
        await call(client, "POST", "/v1/feedback", {"route_id": d["route_id"], "quality": 0.9})
    pending = await route(client, constraints={"models": [target]})  # decided before the switch
    learned = await arm_evidence(client, target)
    assert sum(learned.values()) > 0
    status, body = await call(client, "PATCH", f"/v1/admin/models/{target}", {"enabled": False})
    assert status == 200 and body["model"]["enabled"] is False
    for i in range(200):
        d = await route(client, PROMPTS[i % len(PROMPTS)], explain=i % 10 == 0,
                        max_output_tokens=50 + i, constraints={"exclude": ["gpt-5"]}
                        if i % 3 == 0 else None)
        assert d["model"] != target and target not in d["fallbacks"]
        if "explanation" in d:
            assert d["explanation"][target]["eligible"] is False
            assert d["explanation"][target]["reason"] == "disabled"
    status, err = await call(client, "POST", "/v1/route",
                             {"prompt": "hi", "constraints": {"models": [target]}})
    assert status == 422 and f"{target}: disabled" in err["error"]["message"]
    status, offered = await call(client, "GET", "/v1/models")
    assert target not in {m["id"] for m in offered["data"]}
    status, err = await call(client, "POST", "/v1/chat/completions",
                             {"model": target, "messages": [{"role": "user", "content": "x"}]})
    assert status == 422
    # feedback on a decision made before the switch is still learned (and priced)
    status, _ = await call(client, "POST", "/v1/feedback",
                           {"route_id": pending["route_id"], "quality": 0.2,
                            "input_tokens": 1000, "output_tokens": 1000})
    assert status == 200
    kept = await arm_evidence(client, target)
    assert sum(kept.values()) == pytest.approx(sum(learned.values()) + 1.0)
    status, body = await call(client, "PATCH", f"/v1/admin/models/{target}", {"enabled": True})
    assert status == 200 and body["model"]["enabled"] is True
    assert await arm_evidence(client, target) == kept  # nothing was lost while disabled
    d = await route(client, constraints={"models": [target]})
    assert d["model"] == target


async def test_the_last_enabled_model_cannot_be_disabled(client, config):
    *others, last = [m.name for m in config.models]
    for name in others:
        assert (await call(client, "PATCH", f"/v1/admin/models/{name}",
                           {"enabled": False}))[0] == 200
    status, err = await call(client, "PATCH", f"/v1/admin/models/{last}", {"enabled": False})
    assert status == 409 and err["error"]["code"] == "last_enabled_model"
    assert (await route(client))["model"] == last
    assert (await route(client))["fallbacks"] == []


# --- prices ------------------------------------------------------------------------------------

async def spend_of(c) -> float:
    status, stats = await call(c, "GET", "/v1/stats?window=day")
    assert status == 200
    return stats["totals"]["spend_usd"]


async def test_a_price_change_prices_calls_made_from_then_on(client, clock):
    name = "gpt-5-mini"
    # max_output_tokens below the expected answer (the prior's 400): the cost is exact
    body = {"prompt": "hello", "input_tokens": 2000, "max_output_tokens": 300,
            "constraints": {"models": [name]}}
    before = await route(client, **body)
    assert before["expected_cost_usd"] == pytest.approx(2000 * 0.25e-6 + 300 * 2.0e-6)
    await call(client, "POST", "/v1/feedback", {"route_id": before["route_id"],
                                                "input_tokens": 100_000})
    assert await spend_of(client) == pytest.approx(0.025)
    clock.advance(1.0)
    status, body_ = await call(client, "PATCH", f"/v1/admin/models/{name}",
                               {"input_per_mtok": 0.5, "output_per_mtok": 4.0})
    assert status == 200 and body_["model"]["overridden"] == ["input_per_mtok",
                                                              "output_per_mtok"]
    # the earlier call's remaining facts are priced as it was when it was made
    await call(client, "POST", "/v1/feedback", {"route_id": before["route_id"],
                                                "output_tokens": 100_000})
    assert await spend_of(client) == pytest.approx(0.025 + 0.2)
    clock.advance(1.0)
    after = await route(client, **body)
    assert after["expected_cost_usd"] == pytest.approx(2000 * 0.5e-6 + 300 * 4.0e-6)
    await call(client, "POST", "/v1/feedback", {"route_id": after["route_id"],
                                                "input_tokens": 100_000,
                                                "output_tokens": 100_000})
    assert await spend_of(client) == pytest.approx(0.025 + 0.2 + 0.05 + 0.4)


async def test_an_added_model_has_cache_prices_that_price_its_cached_input(client):
    """A model added at run time takes cache prices as config.toml's do; a PATCH changes
    them and the API shows them."""
    cached = {**NEW, "name": "acme-cached", "cached_input_per_mtok": 0.02,
              "cache_write_per_mtok": 0.25}
    status, body = await call(client, "POST", "/v1/admin/models", cached)
    assert status == 200, body
    assert (body["model"]["cached_input_per_mtok"], body["model"]["cache_write_per_mtok"]) == \
        (0.02, 0.25)
    d = await route(client, constraints={"models": ["acme-cached"]})
    status, fb = await call(client, "POST", "/v1/feedback", {
        "route_id": d["route_id"], "input_tokens": 100_000, "cached_input_tokens": 50_000})
    assert status == 200, fb
    # 50k fresh at 0.2 and 50k cached at 0.02 (USD per million), no output tokens
    assert await spend_of(client) == pytest.approx(0.05 * 0.2 + 0.05 * 0.02)
    status, body = await call(client, "PATCH", "/v1/admin/models/acme-cached",
                              {"cached_input_per_mtok": 0.1})
    assert status == 200 and body["model"]["cached_input_per_mtok"] == 0.1, body
    assert {"cache_write_per_mtok", "cached_input_per_mtok"} <= set(body["model"]["overridden"])
    status, body = await call(client, "PATCH", "/v1/admin/models/acme-cached",
                              {"cached_input_per_mtok": 0.3})  # dearer than its input price
    assert status == 400 and body["error"]["field"] == "cached_input_per_mtok", body


async def test_a_price_cut_moves_traffic_to_the_model(client):
    """The price term of the value reads the live prices: make the priciest model free and
    it wins the bucket it used to lose on price."""
    body = {"prompt": "hello", "input_tokens": 20_000, "max_output_tokens": 4000,
            "weights": {"points_per_price_doubling": 50.0}}
    share = [(await route(client, **body))["model"] for _ in range(100)].count(
        "claude-sonnet-4-5")
    free = {"input_per_mtok": 0.0, "output_per_mtok": 0.0, "cached_input_per_mtok": 0.0,
            "cache_write_per_mtok": 0.0}  # a cache price above the input price is refused
    status, _ = await call(client, "PATCH", "/v1/admin/models/claude-sonnet-4-5", free)
    assert status == 200
    share_after = [(await route(client, **body))["model"] for _ in range(100)].count(
        "claude-sonnet-4-5")
    assert share_after > share + 20


# --- the gateway -------------------------------------------------------------------------------

@pytest.fixture
async def upstream():
    """A tiny OpenAI-compatible upstream on a loopback port; it records the models asked."""
    asked: list[str] = []

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body["model"])
        return web.json_response({
            "id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    async with chat_server(completions) as url:
        yield url, asked


async def test_the_gateway_forwards_to_an_added_models_upstream(app_config, clock, upstream):
    base_url, asked = upstream
    declared = UpstreamConfig("acme", base_url, api_key="sk-acme-0123456789")
    config = replace(app_config, upstreams=MappingProxyType({"acme": declared}))
    async with restart(config, clock) as client:
        await _gateway_to_added_model(client, config, asked)


async def _gateway_to_added_model(client, config: Config, asked: list[str]) -> None:
    status, body = await call(client, "POST", "/v1/admin/models", {
        **NEW, "upstream": "acme", "upstream_model": "acme/small-v1"})
    assert status == 200, body
    assert body["model"]["upstream"] == {"name": "acme", "model": "acme/small-v1",
                                         "has_key": True}
    assert "sk-acme" not in str(body) and "sk-acme" not in str(await models_of(client))
    r = await client.post("/v1/chat/completions", json={
        "model": "acme-small", "messages": [{"role": "user", "content": "hello"}]})
    assert r.status == 200, await r.text()
    assert r.headers["x-routed-model"] == "acme-small" and asked == ["acme/small-v1"]
    status, offered = await call(client, "GET", "/v1/models")
    assert {"id": "acme-small", "object": "model", "owned_by": "acme", "routable": True} in \
        offered["data"]
    # auto routes to it too: with the others disabled, it is the only choice
    for m in config.models:
        assert (await call(client, "PATCH", f"/v1/admin/models/{m.name}",
                           {"enabled": False}))[0] == 200
    r = await client.post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "hello"}]})
    assert r.status == 200 and r.headers["x-routed-model"] == "acme-small"
    assert asked == ["acme/small-v1", "acme/small-v1"]


# --- validation --------------------------------------------------------------------------------

BAD_ADDS = [
    ({**NEW, "name": ""}, 400, "invalid_field", "name"),
    ({**NEW, "name": " padded"}, 400, "invalid_field", "name"),
    ({**NEW, "name": "tab\there"}, 400, "invalid_field", "name"),
    ({**NEW, "name": ".."}, 400, "invalid_field", "name"),
    ({k: v for k, v in NEW.items() if k != "name"}, 400, "missing_field", "name"),
    ({k: v for k, v in NEW.items() if k != "context_tokens"}, 400, "missing_field",
     "context_tokens"),
    ({**NEW, "input_per_mtok": -1}, 400, "invalid_field", "input_per_mtok"),
    ({**NEW, "output_per_mtok": "cheap"}, 400, "invalid_field", "output_per_mtok"),
    ({**NEW, "context_tokens": 0}, 400, "invalid_field", "context_tokens"),
    ({**NEW, "context_tokens": 1.5}, 400, "invalid_field", "context_tokens"),
    ({**NEW, "latency_ms": 0}, 400, "invalid_field", "latency_ms"),
    ({**NEW, "quality_prior": 1.0}, 400, "invalid_field", "quality_prior"),
    ({**NEW, "colour": "red"}, 400, "unknown_field", "colour"),
    # an upstream is a name from config.toml: never a URL, a key or an environment variable
    ({**NEW, "upstream": {"base_url": "http://169.254.169.254/v1", "key_env": "HOME"}}, 400,
     "invalid_field", "upstream"),
    ({**NEW, "upstream": "no-such-upstream"}, 400, "unknown_upstream", "upstream"),
    ({**NEW, "upstream": 7}, 400, "invalid_field", "upstream"),
    ({**NEW, "upstream_model": "m"}, 400, "invalid_field", "upstream_model"),
    ({**NEW, "max_output_tokens": 200_000}, 400, "invalid_field", "max_output_tokens"),
    # a model's name follows config.toml's rule (it rides in every route_id)
    *(({**NEW, "name": name}, 400, "invalid_field", "name")
      for name in ("a b", "50%", "é?#&", "a" * 65, "-lead", "a\nb")),
    # a cache read is never dearer than fresh input, a cache write at most twice it
    ({**NEW, "cached_input_per_mtok": 0.3}, 400, "invalid_field", "cached_input_per_mtok"),
    ({**NEW, "cache_write_per_mtok": 0.41}, 400, "invalid_field", "cache_write_per_mtok"),
    ({**NEW, "cached_input_per_mtok": -0.1}, 400, "invalid_field", "cached_input_per_mtok"),
    ({**NEW, "name": "gpt-5"}, 409, "model_exists", "name"),
    ({**NEW, "name": "auto"}, 409, "model_exists", "name"),
    ({**NEW, "name": "auto-cheap"}, 409, "model_exists", "name"),
    ([NEW], 400, "invalid_field", None),
]


@pytest.mark.parametrize("body,status,code,field", BAD_ADDS)
async def test_a_bad_add_is_refused_naming_the_field(client, config, body, status, code, field):
    got, err = await call(client, "POST", "/v1/admin/models", body)
    assert (got, err["error"]["code"], err["error"]["field"]) == (status, code, field), err
    assert list(await models_of(client)) == [m.name for m in config.models]
    assert (await call(client, "GET", "/v1/admin/audit"))[1]["entries"] == []


BAD_PATCHES = [
    ("gpt-5", {}, 400, "missing_field", None),
    ("gpt-5", {"enabled": None}, 400, "missing_field", None),
    ("gpt-5", {"enabled": "no"}, 400, "invalid_field", "enabled"),
    ("gpt-5", {"input_per_mtok": -0.5}, 400, "invalid_field", "input_per_mtok"),
    ("gpt-5", {"name": "gpt-6"}, 400, "unknown_field", "name"),
    ("gpt-5", {"provider": "x"}, 400, "unknown_field", "provider"),
    ("no-such-model", {"enabled": False}, 404, "model_not_found", "name"),
    ("gpt-5", {"upstream": {"base_url": "http://10.0.0.1"}}, 400, "invalid_field", "upstream"),
    # below its cached price (0.125): the prices change together or not at all
    ("gpt-5", {"input_per_mtok": 0.1}, 400, "invalid_field", "input_per_mtok"),
    ("gpt-5", {"cached_input_per_mtok": 2.0}, 400, "invalid_field", "cached_input_per_mtok"),
]


@pytest.mark.parametrize("name,body,status,code,field", BAD_PATCHES)
async def test_a_bad_patch_is_refused_naming_the_field(client, name, body, status, code, field):
    got, err = await call(client, "PATCH", f"/v1/admin/models/{name}", body)
    assert (got, err["error"]["code"], err["error"]["field"]) == (status, code, field), err
    assert (await models_of(client))["gpt-5"]["enabled"] is True


async def test_any_model_name_can_be_patched(client):
    """Every character the name rule allows, including the ones a URL path must quote."""
    odd = ["acme/small:v1", "a+b@c", "x.y_z-1", "a" * 64]
    for name in odd:
        assert (await call(client, "POST", "/v1/admin/models", {**NEW, "name": name}))[0] == 200
        status, body = await call(client, "PATCH", f"/v1/admin/models/{quote(name, safe='')}",
                                  {"enabled": False})
        assert status == 200 and body["model"]["name"] == name, body
    assert [m for m, e in (await models_of(client)).items() if not e["enabled"]] == odd


async def test_a_second_add_of_the_same_model_is_409_even_when_concurrent(client):
    answers = await asyncio.gather(*(call(client, "POST", "/v1/admin/models", NEW)
                                     for _ in range(5)))
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409, 409]
    assert list(await models_of(client)).count("acme-small") == 1
    assert len((await call(client, "GET", "/v1/admin/audit"))[1]["entries"]) == 1


async def test_a_patch_that_changes_nothing_is_not_recorded(client):
    first = await call(client, "PATCH", "/v1/admin/models/gpt-5", {"input_per_mtok": 2.0})
    again = await call(client, "PATCH", "/v1/admin/models/gpt-5", {"input_per_mtok": 2.0})
    assert first[0] == again[0] == 200
    assert first[1]["audit"] is not None and again[1]["audit"] is None
    assert first[1]["model"] == again[1]["model"]
    assert len((await call(client, "GET", "/v1/admin/audit"))[1]["entries"]) == 1


# --- the audit log -----------------------------------------------------------------------------

async def test_the_audit_log_says_who_when_what_before_and_after(keyed, clock):
    admin = auth("ops")
    assert (await call(keyed, "POST", "/v1/admin/models", NEW, headers=admin))[0] == 200
    clock.advance(60)
    assert (await call(keyed, "PATCH", "/v1/admin/models/acme-small", {"enabled": False},
                       headers=admin))[0] == 200
    clock.advance(60)
    assert (await call(keyed, "PATCH", "/v1/admin/models/gpt-5",
                       {"output_per_mtok": 12.0, "context_tokens": 300_000},
                       headers=admin))[0] == 200
    status, body = await call(keyed, "GET", "/v1/admin/audit", headers=admin)
    assert status == 200
    entries = body["entries"]
    assert [e["action"] for e in entries] == ["model.update", "model.update", "model.add"]
    assert [e["model"] for e in entries] == ["gpt-5", "acme-small", "acme-small"]
    assert [e["at"] for e in entries] == [clock.t, clock.t - 60, clock.t - 120]
    # the catalog is every tenant's: its changes are the operator's, shared ("*")
    assert all(e["actor"] == "ops" and e["tenant"] == "*" for e in entries)
    reprice, disable, add = entries
    assert add["before"] is None and add["after"]["name"] == "acme-small"
    assert add["change"]["input_per_mtok"] == 0.2
    assert disable["change"] == {"enabled": False}
    assert disable["before"]["enabled"] is True and disable["after"]["enabled"] is False
    assert reprice["change"] == {"output_per_mtok": 12.0, "context_tokens": 300_000}
    assert (reprice["before"]["output_per_mtok"], reprice["after"]["output_per_mtok"]) == \
        (10.0, 12.0)
    assert (reprice["before"]["context_tokens"], reprice["after"]["context_tokens"]) == \
        (400_000, 300_000)
    # filters and paging
    only = (await call(keyed, "GET", "/v1/admin/audit?model=acme-small", headers=admin))[1]
    assert [e["id"] for e in only["entries"]] == [disable["id"], add["id"]]
    page = (await call(keyed, "GET", f"/v1/admin/audit?limit=1&before={reprice['id']}",
                       headers=admin))[1]
    assert [e["id"] for e in page["entries"]] == [disable["id"]]
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("before=-1", "before"),
                         ("who=me", "who")):
        status, err = await call(keyed, "GET", f"/v1/admin/audit?{query}", headers=admin)
        assert status == 400 and err["error"]["field"] == field


async def test_the_change_and_its_audit_row_are_committed_before_the_answer(client, db_path):
    status, body = await call(client, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False})
    assert status == 200
    with sqlite3.connect(db_path) as other:  # another connection sees it at once
        rows = other.execute("SELECT id, action, model FROM audit").fetchall()
    assert rows == [(body["audit"]["id"], "model.update", "gpt-5")]


async def test_admin_endpoints_need_the_admin_scope_and_changes_the_operator(keyed):
    reads = [("GET", "/v1/admin/models", None), ("GET", "/v1/admin/audit", None)]
    changes = [("POST", "/v1/admin/models", NEW),
               ("PATCH", "/v1/admin/models/gpt-5", {"enabled": False})]
    for method, path, body in reads + changes:
        status, err = await call(keyed, method, path, body)
        assert status == 401 and err["error"]["code"] == "unauthorized"
        refused = ("acme-app", "acme-router-only", "globex-app") + \
            (("acme-admin",) if (method, path, body) in changes else ())
        for name in refused:
            status, err = await call(keyed, method, path, body, headers=auth(name))
            assert status == 403 and err["error"]["code"] == "forbidden", (name, path)
    assert "acme-small" not in await models_of(keyed, headers=auth("acme-admin"))
    assert (await models_of(keyed, headers=auth("acme-admin")))["gpt-5"]["enabled"] is True


# --- restart: persisted, replayed over config.toml ---------------------------------------------

async def test_changes_survive_a_restart(app_config, clock):
    async with restart(app_config, clock) as c:
        await call(c, "POST", "/v1/admin/models", NEW)
        await call(c, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False})
        await call(c, "PATCH", "/v1/admin/models/gpt-5-nano", {"output_per_mtok": 0.3})
        d = await route(c, constraints={"models": ["acme-small"]})
        await call(c, "POST", "/v1/feedback", {"route_id": d["route_id"], "quality": 1.0})
        listed, audit = await models_of(c), (await call(c, "GET", "/v1/admin/audit"))[1]
        arms = (await call(c, "GET", "/v1/arms"))[1]
    async with restart(app_config, clock) as c:
        assert await models_of(c) == listed
        assert (await call(c, "GET", "/v1/admin/audit"))[1] == audit
        assert (await call(c, "GET", "/v1/arms"))[1] == arms  # the new model's arm is not orphaned
        chosen = {(await route(c, p))["model"] for p in PROMPTS * 30}
        assert "gpt-5" not in chosen
        assert (await route(c, constraints={"models": ["acme-small"]}))["model"] == "acme-small"


def _config_with(document: dict, app_config: Config) -> Config:
    return replace(parse(document), storage=app_config.storage)


async def test_runtime_changes_win_over_config_toml_for_the_fields_they_set(app_config, clock):
    async with restart(app_config, clock) as c:
        await call(c, "PATCH", "/v1/admin/models/gpt-5-nano", {"input_per_mtok": 0.07})
        await call(c, "POST", "/v1/admin/models", NEW)
    document = tomllib.loads((ROOT / "config.toml").read_text())
    nano = next(m for m in document["models"] if m["name"] == "gpt-5-nano")
    nano["input_per_mtok"], nano["output_per_mtok"] = 0.06, 0.5  # edited in the file since
    document["models"].append({"name": "acme-small", "provider": "acme-inc",
                               "input_per_mtok": 9.0, "output_per_mtok": 9.0,
                               "context_tokens": 64_000, "latency_ms": 700})
    with capture_logs() as logs:
        async with restart(_config_with(document, app_config), clock) as c:
            listed = await models_of(c)
    # the runtime price wins; the field no change touched follows the file
    assert (listed["gpt-5-nano"]["input_per_mtok"], listed["gpt-5-nano"]["output_per_mtok"]) \
        == (0.07, 0.5)
    assert listed["gpt-5-nano"]["overridden"] == ["input_per_mtok"]
    # the runtime add's fields win over the file's later entry; latency_ms it set too
    small = listed["acme-small"]
    assert (small["source"], small["provider"], small["input_per_mtok"],
            small["context_tokens"]) == ("config", "acme", 0.2, 128_000)
    notes = [e["note"] for e in logs if e.get("event") == "catalog_change"]
    assert any("gpt-5-nano" in n and "input_per_mtok" in n and "0.06" in n for n in notes)
    assert any("acme-small" in n and "config.toml now has it" in n for n in notes)


async def test_changes_to_a_model_config_toml_dropped_do_not_apply(app_config, clock):
    async with restart(app_config, clock) as c:
        await call(c, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False})
    document = tomllib.loads((ROOT / "config.toml").read_text())
    document["models"] = [m for m in document["models"] if m["name"] != "gpt-5"]
    with capture_logs() as logs:
        async with restart(_config_with(document, app_config), clock) as c:
            assert "gpt-5" not in await models_of(c)
            assert (await route(c))["model"] != "gpt-5"
    assert any("gpt-5" in e.get("note", "") and "no longer in config.toml" in e["note"]
               for e in logs)


# --- property: any sequence of changes, restarted, gives the engine the persisted catalog -----

NAMES = ["gpt-5-nano", "gpt-5", "claude-haiku-4-5", "new-a", "new-b"]
OPS = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(NAMES),
              st.floats(0, 50, allow_nan=False), st.floats(0, 50, allow_nan=False)),
    st.tuples(st.sampled_from(["disable", "enable"]), st.sampled_from(NAMES)),
    st.tuples(st.just("price"), st.sampled_from(NAMES),
              st.floats(0, 50, allow_nan=False), st.floats(0, 50, allow_nan=False)),
)


def _request(op: tuple) -> tuple[str, str, dict]:
    kind, name, *rest = op
    if kind == "add":
        return "POST", "/v1/admin/models", {"name": name, "input_per_mtok": rest[0],
                                            "output_per_mtok": rest[1],
                                            "context_tokens": 200_000}
    if kind == "price":
        return "PATCH", f"/v1/admin/models/{name}", {"input_per_mtok": rest[0],
                                                     "output_per_mtok": rest[1]}
    return "PATCH", f"/v1/admin/models/{name}", {"enabled": kind == "enable"}


def _engine_view(app: web.Application) -> list[tuple]:
    cat = app[ENGINE].catalog
    return [(n, bool(e), round(float(pi) * 1e6, 9), round(float(po) * 1e6, 9))
            for n, e, pi, po in zip(cat.names, cat.enabled, cat.price_in, cat.price_out,
                                    strict=True)]


def _listed_view(listed: dict[str, dict]) -> list[tuple]:
    return [(n, m["enabled"], round(m["input_per_mtok"], 9), round(m["output_per_mtok"], 9))
            for n, m in listed.items()]


async def _run_ops(config: Config, ops: list[tuple]) -> None:
    clock = FakeClock()
    async with restart(config, clock) as c:
        for op in ops:
            method, path, body = _request(op)
            status, answer = await call(c, method, path, body)
            # refused ones change nothing; a price below the model's cached-input price is a
            # 400 on the price fields (config.toml's rule), any other 400 is a bug
            price_refused = (status == 400 and op[0] == "price"
                             and answer["error"]["field"] in ("input_per_mtok",
                                                              "output_per_mtok"))
            assert status in (200, 404, 409) or price_refused, answer
            assert _engine_view(c.server.app) == _listed_view(await models_of(c))
            for _ in range(3):  # a disabled model is never chosen, not even as a fallback
                d = await route(c)
                listed = await models_of(c)
                assert all(listed[m]["enabled"] for m in (d["model"], *d["fallbacks"]))
        before = await models_of(c)
    async with restart(config, clock) as c:
        assert await models_of(c) == before
        assert _engine_view(c.server.app) == _listed_view(before)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(OPS, min_size=1, max_size=8))
def test_any_sequence_of_changes_leaves_the_engine_as_persisted_after_restart(config, ops):
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "router.db")
        asyncio.run(_run_ops(replace(config, storage=replace(config.storage, url=db)), ops))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(OPS, min_size=1, max_size=20))
def test_replaying_the_accepted_changes_gives_the_same_catalog(config, ops):
    """The pure fold: applying changes one by one as the API does (refusing what it refuses)
    and replaying the accepted list over config.toml agree; an engine fed either agrees."""
    entries, accepted = from_config(config.models), []
    engine = Engine(config, RouteIds(b"k" * 32), np.random.default_rng(0), FakeClock())
    for op in ops:
        kind, name, *rest = op
        fields = ({"provider": "x", "input_per_mtok": rest[0], "output_per_mtok": rest[1],
                   "context_tokens": 200_000, "latency_ms": 1000.0, "quality_prior": None}
                  if kind == "add" else
                  {"input_per_mtok": rest[0], "output_per_mtok": rest[1]} if kind == "price"
                  else {"enabled": kind == "enable"})
        change = Change("add" if kind == "add" else "update", name, fields)
        try:
            check(entries, change, config.aliases())
        except RouterError:
            continue
        entries, note = apply(entries, change, {})
        assert note is None
        accepted.append(change)
        engine.set_catalog(entries)
        assert engine.catalog.enabled.any()
    replayed = replay(config.models, accepted, {})
    assert replayed.entries == entries
    assert list(engine.catalog.names) == [e.name for e in entries]
    assert engine.catalog.enabled.tolist() == [e.enabled for e in entries]
    enabled = {e.name for e in entries if e.enabled}
    for prompt in PROMPTS:
        d = engine.decide(RouteRequest((Message("user", prompt),)))
        assert {d.model, *d.fallbacks} == enabled


# --- bandit-router report reads the same catalog -----------------------------------------------

async def test_the_report_uses_the_runtime_catalog(app_config: Config):
    """A runtime-added model can be the savings reference, at its runtime price, in the API
    and in `bandit-router report` alike (the real clock: the report reads the last day)."""
    async with TestClient(TestServer(create_app(app_config))) as c:
        await call(c, "POST", "/v1/admin/models", {**NEW, "name": "acme-big",
                                                   "input_per_mtok": 20.0,
                                                   "output_per_mtok": 60.0})
        await call(c, "PATCH", "/v1/admin/models/acme-big", {"output_per_mtok": 80.0})
        d = await route(c)
        await call(c, "POST", "/v1/feedback", {"route_id": d["route_id"], "quality": 0.7,
                                               "input_tokens": 1000, "output_tokens": 1000})
        api = (await call(c, "GET", "/v1/stats?reference=acme-big"))[1]
    assert api["totals"]["reference_usd"] == pytest.approx(1000 * 20e-6 + 1000 * 80e-6)
    proc = subprocess.run([sys.executable, "-m", "bandit_router", "report", "--db",
                           app_config.storage.url, "--config", str(ROOT / "config.toml"),
                           "--reference", "acme-big", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = json.loads(proc.stdout)["totals"]
    assert cli.pop("judge") == api["totals"].pop("judge")
    assert cli == pytest.approx(api["totals"])


# --- storage faults ----------------------------------------------------------------------------

async def test_a_change_the_database_refuses_is_503_and_changes_nothing(client, db_path):
    """A full database: the change is not acknowledged, the catalog the engine routes with
    and the one listed stay as they were, no audit row; with space again it goes through."""
    from tests.storage.test_storage_faults import on_writer

    (pages,) = await on_writer(client, "PRAGMA page_count")
    await on_writer(client, f"PRAGMA max_page_count = {pages}")
    refused = 0
    for i in range(400):  # audit rows until the file would have to grow
        status, body = await call(client, "PATCH", "/v1/admin/models/gpt-5",
                                  {"input_per_mtok": 1.0 + i})
        if status == 503:
            refused = i
            break
        assert status == 200, body
    assert refused, "the page limit never filled the database"
    assert body["error"]["code"] == "unavailable"
    listed = await models_of(client)
    assert listed["gpt-5"]["input_per_mtok"] == 1.0 + refused - 1
    assert _engine_view(client.server.app) == _listed_view(listed)
    status, _ = await call(client, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False})
    assert status == 503
    assert (await route(client, constraints={"models": ["gpt-5"]}))["model"] == "gpt-5"
    await on_writer(client, "PRAGMA max_page_count = 1073741823")
    assert (await call(client, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False}))[0] == 200
    with sqlite3.connect(db_path) as other:
        (rows,) = other.execute("SELECT count(*) FROM audit").fetchone()
    assert rows == refused + 1


# --- replicas sharing one store ----------------------------------------------------------------

async def _until(predicate, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if await predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_change_on_one_replica_reaches_the_others(app_config, clock):
    """Two replicas on one database: a change made through one is checked against the other's
    (under the write lock) and routed with by the other from its next sync on."""
    async with restart(app_config, clock) as a, restart(app_config, clock) as b:
        assert (await call(a, "POST", "/v1/admin/models", NEW))[0] == 200
        # b has not synced yet, but its write transaction folds a's change first
        status, err = await call(b, "POST", "/v1/admin/models", NEW)
        assert status == 409 and err["error"]["code"] == "model_exists"
        assert (await call(a, "PATCH", "/v1/admin/models/gpt-5", {"enabled": False}))[0] == 200

        async def b_agrees() -> bool:
            return await models_of(b) == await models_of(a)

        assert await _until(b_agrees), "replica b never saw a's changes"
        assert _engine_view(b.server.app) == _listed_view(await models_of(a))
        chosen = {(await route(b, p))["model"] for p in PROMPTS * 25}
        assert "gpt-5" not in chosen
        assert (await route(b, constraints={"models": ["acme-small"]}))["model"] == "acme-small"
        # and back: b's change reaches a
        assert (await call(b, "PATCH", "/v1/admin/models/acme-small",
                           {"output_per_mtok": 0.5}))[0] == 200
        assert await _until(b_agrees)
        assert (await models_of(a))["acme-small"]["output_per_mtok"] == 0.5
        assert len((await call(a, "GET", "/v1/admin/audit"))[1]["entries"]) == 3


async def test_a_null_releases_an_override_and_its_shadow_warning(app_config, clock):
    """PATCH with null gives a field back to config.toml: the override is gone, the file's
    value applies again (after a restart too) and start-up no longer warns that the file's
    value is shadowed. A model added at run time has no file value to go back to."""
    document = tomllib.loads((ROOT / "config.toml").read_text())
    nano = next(m for m in document["models"] if m["name"] == "gpt-5-nano")
    async with restart(app_config, clock) as c:
        status, _ = await call(c, "PATCH", "/v1/admin/models/gpt-5-nano",
                               {"input_per_mtok": 0.07})
        assert status == 200
        assert (await models_of(c))["gpt-5-nano"]["overridden"] == ["input_per_mtok"]
        await call(c, "POST", "/v1/admin/models", NEW)
        status, body = await call(c, "PATCH", "/v1/admin/models/acme-small",
                                  {"input_per_mtok": None})
        assert status == 400 and body["error"]["field"] == "input_per_mtok"
    with capture_logs() as logs:
        async with restart(app_config, clock) as c:
            pass
    assert any("gpt-5-nano" in e.get("note", "") and "shadowed" in e.get("note", "")
               for e in logs)
    async with restart(app_config, clock) as c:
        status, _ = await call(c, "PATCH", "/v1/admin/models/gpt-5-nano",
                               {"input_per_mtok": None})
        assert status == 200
        listed = (await models_of(c))["gpt-5-nano"]
        assert listed["overridden"] == [] and listed["input_per_mtok"] == nano["input_per_mtok"]
    with capture_logs() as logs:
        async with restart(app_config, clock) as c:
            listed = (await models_of(c))["gpt-5-nano"]
    assert listed["overridden"] == [] and listed["input_per_mtok"] == nano["input_per_mtok"]
    assert not any("gpt-5-nano" in e.get("note", "") and "shadowed" in e.get("note", "")
                   for e in logs)
