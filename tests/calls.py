"""The one set of HTTP calls the tests make on a live app (an aiohttp TestClient): route,
feedback, arms, and the API keys of the keyed app (conftest's `keyed` fixture)."""

from __future__ import annotations

import json

JSON = {"Content-Type": "application/json"}

KEYS = {  # name: (tenant, scopes, secret)
    "acme-app": ("acme", ["route", "feedback"], "acme-app-secret-0123456789"),
    "acme-admin": ("acme", ["admin"], "acme-admin-secret-0123456789"),
    "acme-router-only": ("acme", ["route"], "acme-route-only-0123456789"),
    "globex-app": ("globex", ["route", "feedback"], "globex-app-secret-0123456789"),
    "globex-admin": ("globex", ["admin"], "globex-admin-secret-0123456789"),
    "ops": ("default", ["operator"], "operator-secret-0123456789abcdef"),
}


def auth(name: str) -> dict[str, str]:
    """The Authorization header of key `name` in KEYS."""
    return {"Authorization": f"Bearer {KEYS[name][2]}"}


async def post(client, path: str, body, headers: dict | None = None) -> tuple[int, dict]:
    """POST `body` as JSON; the status and the JSON answer (every answer is JSON)."""
    resp = await client.post(path, data=json.dumps(body), headers={**JSON, **(headers or {})})
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


async def route(client, headers: dict | None = None, **body) -> dict:
    """A decision; the test fails unless the router answers 200."""
    resp = await client.post("/v1/route", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def feedback(client, headers: dict | None = None, **body) -> tuple[int, dict]:
    return await post(client, "/v1/feedback", body, headers)


async def applied(client, headers: dict | None = None, **body) -> dict:
    """Feedback the router must accept (200)."""
    status, answer = await feedback(client, headers, **body)
    assert status == 200, answer
    return answer


async def arms(client, headers: dict | None = None, **query) -> list[dict]:
    resp = await client.get("/v1/arms", params=query, headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["arms"]


def assert_error(status: int, body: dict, want_status: int, code: str,
                 field: str | None) -> None:
    assert status == want_status, body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "field"}, body
    assert err["code"] == code, body
    assert err["field"] == field, body
    assert isinstance(err["message"], str) and err["message"], body


async def error_of(resp, want_status: int, code: str, field: str | None) -> dict:
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    assert_error(resp.status, body, want_status, code, field)
    return body["error"]


async def still_serves(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    decision = await route(client, prompt="are you still there?")
    assert decision["model"]
