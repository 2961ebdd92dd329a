"""The OpenAI-compatible gateway: `POST /v1/chat/completions` routes a call like
`/v1/route`, forwards it to the chosen model's upstream (then to its fallbacks if it fails),
and feeds latency, tokens and success back without the client doing anything."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import structlog
from aiohttp import web

from bandit_router.core.bounds import cached_usage, clamped_usage
from bandit_router.core.catalog import Catalog
from bandit_router.core.errors import UnknownModel
from bandit_router.core.route_id import new_nonce
from bandit_router.core.settings import Config, Model
from bandit_router.core.types import (
    MAX_CALL_MS,
    Constraints,
    Decision,
    Facts,
    RouteRequest,
    RouteTicket,
)
from bandit_router.http import gateway_learning as learning
from bandit_router.http.appkeys import (
    BODIES,
    CONFIG,
    DRAIN,
    ENGINE,
    KEYS,
    METRICS,
    ROUTE_IDS,
    STORE,
)
from bandit_router.http.auth import authenticate
from bandit_router.http.edge import read_json
from bandit_router.http.errors import NoUpstream
from bandit_router.http.upstream import Call, Upstreams
from bandit_router.http.wire import parse_chat

log = structlog.get_logger("bandit_router.http.gateway")
ROUTES = web.RouteTableDef()
UPSTREAMS = web.AppKey("upstreams", Upstreams)
PENDING = web.AppKey("pending_feedback", set)
UPSTREAM_FAILED = "upstream_failed"  # the 502 when every attempt failed


def _openai_error(status: int, message: str, code: str, field: str | None = None,
                  **kw) -> web.Response:
    # OpenAI's error shape, which its SDKs parse, plus our `field`.
    return web.Response(status=status, content_type="application/json", body=orjson.dumps(
        {"error": {"message": message, "type": "upstream_error", "param": field, "code": code,
                   "field": field}}), **kw)


def _route_request(config: Config, model: str, request: RouteRequest, tenant: str,
                   session: str | None = None) -> RouteRequest:
    """The chat request (read by wire.parse_chat) as the gateway routes it; `model` is a
    policy's alias or one catalog model."""
    # Only models the gateway can call are eligible: one without an upstream is never
    # chosen, so it takes no share of the traffic and no decision it could not answer.
    request = replace(request, tenant=tenant, measured=True, needs_upstream=True,
                      session_id=session)
    policy = config.aliases().get(model)
    if policy is not None:
        return replace(request, policy=policy)
    if model not in {m.name for m in config.models}:
        raise UnknownModel(f"unknown model {model!r}: use an alias "
                           f"({', '.join(config.aliases())}) or a catalog model", "model")
    return replace(request, constraints=Constraints(models=frozenset({model})))


def _require_upstream(catalog: Catalog, request: RouteRequest) -> None:
    """400 when no enabled model the call may go to has an upstream (a disabled one is the
    engine's 422, as for /v1/route)."""
    allowed = catalog.enabled.copy()
    if request.constraints.models is not None:
        allowed &= catalog.mask(request.constraints.models)
    if allowed.any() and not (allowed & catalog.callable).any():
        named = ", ".join(n for n, ok in zip(catalog.names, allowed, strict=True) if ok)
        which = named if request.constraints.models is not None else "any model"
        raise NoUpstream(f"no upstream to call for {which} (models[].upstream in the "
                         "config)", "model")


def _ticket(decision: Decision, model: str) -> RouteTicket:
    nonce = "" if model == decision.model else new_nonce()
    return RouteTicket(decision.policy, decision.bucket, model, decision.created_at,
                       decision.input_tokens, nonce, decision.tenant, measured=True)


def _learn(app: web.Application, route_id: str, ticket: RouteTicket, call: Call,
           model: Model, max_tokens: int | None, implicit: float | None = None) -> None:
    """Feed the call's measurements back in the background; the answer does not wait. The
    upstream's usage is held to what the call could have used (its model's context window
    and output limit, the caller's max_tokens): clamped, counted and logged beyond it."""
    inputs, outputs, clamped = clamped_usage(model, call.input_tokens, call.output_tokens,
                                             max_tokens)
    if clamped:
        app[METRICS].usage_clamped(model.name)
        log.warning("upstream_usage_clamped", route_id=route_id, model=model.name,
                    input_tokens=call.input_tokens, output_tokens=call.output_tokens)
    cached, written = cached_usage(inputs, call.cached_input_tokens, call.cache_write_tokens)
    facts = Facts(latency_ms=min(call.latency_ms, MAX_CALL_MS), input_tokens=inputs,
                  output_tokens=outputs, success=call.ok, implicit_quality=implicit,
                  cached_input_tokens=cached, cache_write_tokens=written)

    async def record() -> None:
        try:
            result = await app[STORE].record_feedback(route_id, ticket, facts)
            app[METRICS].fed_back(ticket, result.spend_usd, result.cached_input_tokens,
                                  result.cache_savings_usd)
            if cached is not None:
                app[ENGINE].sessions.observe(route_id, cached)
        except Exception as exc:  # a storage fault must not fail the forwarded answer
            app[METRICS].background_failed("measured")
            log.error("gateway_feedback_failed", route_id=route_id, error=str(exc))

    task = asyncio.create_task(record())
    app[PENDING].add(task)
    task.add_done_callback(app[PENDING].discard)


@ROUTES.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[ENGINE].config  # the live catalog: models added or changed at run time
    caller = authenticate(app[KEYS], request, "route")
    raw = await read_json(request)
    model, route = parse_chat(raw, app[BODIES])  # an object: session_of may read it
    session = learning.session_of(request, raw)
    route = _route_request(config, model, route, caller.tenant, session)
    stream = raw.get("stream") is True  # a bool, or absent: parse_chat checked it
    _require_upstream(app[ENGINE].catalog, route)
    started = time.perf_counter()
    decision = app[ENGINE].decide(route)
    app[METRICS].decided(decision, time.perf_counter() - started)
    app[STORE].log_decision(decision)
    models = [m for m in (decision.model, *decision.fallbacks)
              if config.model(m).upstream is not None][:config.gateway.attempts]
    if not models:
        raise NoUpstream(f"no upstream is configured for {decision.model} or its fallbacks "
                         "(models[].upstream in the config)", "model")
    failures = []
    for model in models:
        ticket = _ticket(decision, model)
        route_id = decision.route_id if model == decision.model else app[ROUTE_IDS].issue(ticket)
        headers = {"x-route-id": route_id, "x-routed-model": model,
                   "x-route-bucket": decision.bucket}
        call = await app[UPSTREAMS].call(config.model(model).upstream, raw, model, headers,
                                         request if stream else None)
        log.info("gateway_call", route_id=route_id, model=model, ok=call.ok,
                 status=call.status, reason=call.reason, latency_ms=round(call.latency_ms, 1),
                 first_token_ms=call.first_token_ms, stream=stream)
        if (call.ok or call.retryable or call.streamed is not None) and not call.ours:
            # a client error (4xx) is the caller's request's, not the model's failure
            implicit = learning.implicit_of(app, call, raw, route.max_output_tokens is not None) \
                if call.ok else None
            _learn(app, route_id, ticket, call, config.model(model), route.max_output_tokens,
                   implicit)
            if call.ok:
                if session is not None and model != decision.model:  # a fallback answered
                    app[ENGINE].turn(decision.tenant, session, model, decision.input_tokens)
                learning.after_answer(app, route_id, ticket, call, raw, session,
                                      decision.favourite)
        if call.streamed is not None:
            return call.streamed
        if call.ok:
            return web.Response(body=call.body, content_type="application/json", headers=headers)
        if not call.retryable:  # the upstream refused the request itself: pass it on
            return web.Response(status=call.status or 502, body=call.body,
                                content_type="application/json", headers=headers)
        failures.append(f"{model}: {call.reason}")
    app[METRICS].error(UPSTREAM_FAILED)
    return _openai_error(502, "every upstream attempt failed: " + "; ".join(failures),
                         UPSTREAM_FAILED, headers={"x-route-bucket": decision.bucket})


@ROUTES.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    authenticate(request.app[KEYS], request, None)
    engine = request.app[ENGINE]
    config = engine.config  # the live catalog; a disabled model is not offered
    data = [{"id": alias, "object": "model", "owned_by": "bandit-router",
             "policy": policy} for alias, policy in config.aliases().items()]
    data += [{"id": m.name, "object": "model", "owned_by": m.provider,
              "routable": m.upstream is not None}
             for m, enabled in zip(config.models, engine.catalog.enabled, strict=True)
             if enabled]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                        content_type="application/json")


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The shared client session; at shutdown, pending feedback is written first."""
    app[UPSTREAMS] = Upstreams(app[CONFIG].gateway, app[DRAIN])
    app[PENDING] = set()
    await app[UPSTREAMS].start()
    learned = learning.lifecycle(app, app[UPSTREAMS])
    await anext(learned)
    yield
    if app[PENDING]:
        with contextlib.suppress(Exception):
            await asyncio.gather(*app[PENDING], return_exceptions=True)
    with contextlib.suppress(StopAsyncIteration):  # the judge's calls, then what they learned
        await anext(learned)
    await app[UPSTREAMS].close()
