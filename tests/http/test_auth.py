"""API keys, scopes and tenants: strangers are refused and tenants never see each other."""

from __future__ import annotations

import tomllib

import pytest
from structlog.testing import capture_logs

from bandit_router.config import parse
from bandit_router.config.tomlcheck import ConfigError
from bandit_router.core.settings import Config
from bandit_router.http.auth import KeyRing
from tests.calls import KEYS, auth
from tests.conftest import ROOT


def _document() -> dict:
    return tomllib.loads((ROOT / "config.toml").read_text())


async def route(c, name: str, prompt: str = "hello") -> tuple[int, dict]:
    r = await c.post("/v1/route", json={"prompt": prompt}, headers=auth(name))
    return r.status, await r.json()


async def test_without_a_key_requests_are_refused_with_401(keyed):
    for method, path in (("POST", "/v1/route"), ("POST", "/v1/feedback"), ("GET", "/v1/arms"),
                         ("POST", "/v1/admin/reset")):
        r = await keyed.request(method, path, json={})
        body = await r.json()
        assert r.status == 401, path
        assert body["error"]["code"] == "unauthorized" and "API key" in body["error"]["message"]


async def test_a_wrong_key_is_401_and_health_needs_none(keyed):
    r = await keyed.post("/v1/route", json={"prompt": "x"},
                         headers={"Authorization": "Bearer not-a-real-key-0123456789"})
    assert r.status == 401
    r = await keyed.post("/v1/route", json={"prompt": "x"}, headers={"X-API-Key": "nope"})
    assert r.status == 401
    assert (await keyed.get("/healthz")).status == 200


async def test_both_header_forms_are_accepted(keyed):
    r = await keyed.post("/v1/route", json={"prompt": "x"},
                         headers={"X-API-Key": KEYS["acme-app"][2]})
    assert r.status == 200
    status, _ = await route(keyed, "acme-app")
    assert status == 200


async def test_scopes_are_enforced_with_403(keyed):
    status, body = await route(keyed, "acme-admin")
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, d = await route(keyed, "acme-router-only")
    assert status == 200
    r = await keyed.post("/v1/feedback", json={"route_id": d["route_id"], "quality": 1.0},
                         headers=auth("acme-router-only"))
    assert r.status == 403
    r = await keyed.post("/v1/admin/reset", json={}, headers=auth("acme-app"))
    assert r.status == 403
    r = await keyed.post("/v1/admin/reset", json={}, headers=auth("acme-admin"))
    assert r.status == 200


async def test_a_tenant_cannot_touch_another_tenants_feedback_or_arms(keyed):
    _, acme = await route(keyed, "acme-app")
    _, globex = await route(keyed, "globex-app")
    # globex's key cannot give feedback on acme's decision: it does not exist for globex
    r = await keyed.post("/v1/feedback", json={"route_id": acme["route_id"], "quality": 0.0},
                         headers=auth("globex-app"))
    assert r.status == 404 and (await r.json())["error"]["field"] == "route_id"
    r = await keyed.post("/v1/feedback", json={"route_id": acme["route_id"], "quality": 1.0},
                         headers=auth("acme-app"))
    assert r.status == 200
    acme_arms = (await (await keyed.get("/v1/arms", headers=auth("acme-app"))).json())["arms"]
    globex_arms = (await (await keyed.get("/v1/arms", headers=auth("globex-app"))).json())[
        "arms"]
    assert {a["tenant"] for a in acme_arms} == {"acme"}
    assert {a["tenant"] for a in globex_arms} == {"globex"}
    assert sum(a["evidence"] for a in acme_arms) == pytest.approx(1.0, rel=1e-3)
    assert sum(a["evidence"] for a in globex_arms) == 0.0
    # the admin of acme resets acme's arms only
    r = await keyed.post("/v1/admin/reset", json={}, headers=auth("acme-admin"))
    assert r.status == 200 and len((await r.json())["reset"]) == 1
    assert globex["route_id"] != acme["route_id"]


async def test_keys_never_reach_the_logs(keyed):
    with capture_logs() as events:
        for name in KEYS:
            await route(keyed, name)
        await keyed.post("/v1/route", json={"prompt": "x"},
                         headers={"Authorization": "Bearer wrong-key-but-secret-too-123"})
    text = repr(events)
    for _, _, secret in KEYS.values():
        assert secret not in text
    assert "wrong-key-but-secret-too-123" not in text


def test_key_lookup_is_by_digest_and_complete(keyed_config: Config):
    ring = KeyRing(keyed_config.auth)
    assert ring.find(KEYS["acme-app"][2]).tenant == "acme"
    assert ring.find(KEYS["acme-app"][2] + "x") is None
    assert ring.find("") is None
    assert "secret" not in repr(keyed_config.auth)  # secrets are kept out of reprs


@pytest.mark.parametrize(("entry", "dotted", "problem"), [
    ({"name": "a", "scopes": ["route"], "key_env": "UNSET_VARIABLE_FOR_TEST"},
     "auth.keys[0].key_env", "is not set"),
    ({"name": "a", "scopes": ["route"], "key": "short"}, "auth.keys[0].key", "16 characters"),
    ({"name": "a", "scopes": ["fly"], "key": "k" * 20}, "auth.keys[0].scopes", "unknown"),
    ({"name": "a", "scopes": ["route"]}, "auth.keys[0].key_env", "exactly one"),
    ({"name": "a", "scopes": ["route"], "key": "k" * 20, "tenantt": "x"},
     "auth.keys[0].tenantt", "unknown key"),
])
def test_bad_key_entries_name_the_key(entry, dotted, problem, monkeypatch):
    monkeypatch.delenv("UNSET_VARIABLE_FOR_TEST", raising=False)
    doc = _document()
    doc["auth"] = {"keys": [entry]}
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert err.value.key == dotted and problem in str(err.value)


def test_duplicate_keys_are_refused():
    doc = _document()
    doc["auth"] = {"keys": [{"name": "a", "scopes": ["route"], "key": "k" * 20},
                            {"name": "b", "scopes": ["route"], "key": "k" * 20}]}
    with pytest.raises(ConfigError, match="same keys"):
        parse(doc)
