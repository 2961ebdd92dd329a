"""The world of the trust-model tests: two tenants (acme, globex) and an operator, their keys,
a capture server standing in for an attacker's upstream, and the calls each key makes."""

from __future__ import annotations

import tomllib
from dataclasses import replace

from aiohttp import web

from bandit_router.config import parse
from bandit_router.core.settings import Config
from tests.conftest import ROOT

SECRET = "pg-password-the-attacker-wants-0123"  # a secret of the server, in its environment
CAPTURE_KEY = "sk-capture-upstream-key-abcdef012"  # the declared upstream's own key
KEYS = {  # name: (tenant, scopes)
    "acme-app": ("acme", ["route", "feedback"]),
    "acme-route": ("acme", ["route"]),
    "acme-admin": ("acme", ["admin"]),
    "globex-app": ("globex", ["route", "feedback"]),
    "globex-admin": ("globex", ["admin"]),
    "ops": (None, ["operator"]),
}
FREE_MODEL = {"name": "free-and-perfect", "provider": "evil", "input_per_mtok": 0.0,
              "output_per_mtok": 0.0, "context_tokens": 1_000_000, "quality_prior": 0.99}


def secret_of(name: str) -> str:
    return f"secret-of-{name}-0123456789abcdef"


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret_of(name)}"}


class Capture:
    """An OpenAI-compatible upstream that records every request it is sent, and answers
    with the usage a test sets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.usage = {"prompt_tokens": 12, "completion_tokens": 30}
        self.status = 200

    async def completions(self, request: web.Request) -> web.Response:
        self.requests.append({"headers": dict(request.headers), "body": await request.text()})
        if self.status != 200:
            return web.json_response({"error": {"message": "bad request"}}, status=self.status)
        return web.json_response({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hello"}}],
            "usage": {**self.usage, "total_tokens": 1}})

    def seen(self) -> str:
        return repr(self.requests)


def trust_config(app_config: Config, capture: Capture, monkeypatch, **budget) -> Config:
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    monkeypatch.setenv("BANDIT_TEST_SERVER_SECRET", SECRET)
    monkeypatch.setenv("BANDIT_TEST_CAPTURE_KEY", CAPTURE_KEY)
    doc["auth"] = {"keys": []}
    for name, (tenant, scopes) in KEYS.items():
        variable = f"BANDIT_TEST_KEY_{name.upper().replace('-', '_')}"
        monkeypatch.setenv(variable, secret_of(name))
        entry = {"name": name, "scopes": scopes, "key_env": variable}
        if tenant:
            entry["tenant"] = tenant
        doc["auth"]["keys"].append(entry)
    doc["upstreams"] = {"capture": {"base_url": capture.url,
                                    "key_env": "BANDIT_TEST_CAPTURE_KEY"}}
    for model in doc["models"]:  # the catalog's models answer through the capture server
        model["upstream"] = "capture"
    if budget:
        doc["budgets"] = [{"name": "everyone", "window": "day", "limit_usd": 5.0,
                           "when_spent": "refuse", **budget}]
    return replace(parse(doc), storage=app_config.storage)


async def call(c, method: str, path: str, key: str, body=None) -> tuple[int, dict]:
    r = await c.request(method, path, json=body, headers=auth(key))
    return r.status, await r.json()


async def decide(c, key: str, **body) -> dict:
    status, d = await call(c, "POST", "/v1/route", key, {"prompt": "hello there", **body})
    assert status == 200, d
    return d


async def tell(c, key: str, route_id: str, **facts) -> tuple[int, dict]:
    return await call(c, "POST", "/v1/feedback", key, {"route_id": route_id, **facts})


async def spend(c, key: str, **query) -> dict:
    q = "&".join(f"{k}={v}" for k, v in {"window": "day", **query}.items())
    status, body = await call(c, "GET", f"/v1/stats?{q}", key)
    assert status == 200, body
    return body
