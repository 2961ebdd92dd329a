"""HTTP handlers: JSON in, engine or store, JSON out. Every failure is a JSON error."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson
import structlog
from aiohttp import web

from bandit_router import __version__
from bandit_router.core import palette
from bandit_router.core.errors import (
    InvalidField,
    RouteNotFound,
    RouterError,
    Unavailable,
    UnknownField,
    UnknownModel,
)
from bandit_router.core.learned import child_json, child_name, is_child, parent_of
from bandit_router.core.objective import pacing_base
from bandit_router.core.route_id import UnknownRoute
from bandit_router.core.settings import Config, Model
from bandit_router.http.appkeys import (
    BODIES,
    CONFIG,
    ENGINE,
    KEYS,
    LOG_SAMPLER,
    METRICS,
    OPENAPI,
    ROUTE_IDS,
    STORE,
)
from bandit_router.http.auth import Principal, authenticate
from bandit_router.http.errors import (
    BodyTimeout,
    BodyTooLarge,
    Forbidden,
    InvalidJson,
    UnreadableBody,
    UnsupportedMediaType,
    headers_of,
    status_of,
)
from bandit_router.http.wire import (
    ARMS_QUERY,
    arm_json,
    decision_json,
    parse_feedback,
    parse_reset,
    parse_route,
)
from bandit_router.storage import timeline
from bandit_router.storage.stats import (
    STATS_QUERY,
    WINDOW_HOURS,
    budget_json,
    commitment_json,
    stats_json,
    window_start,
)
from bandit_router.storage.writer import StorageError

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def json_response(payload: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json", **kwargs)


def _error(status: int, code: str, message: str, field: str | None = None,
           **kwargs: Any) -> web.Response:
    return json_response({"error": {"code": code, "message": message, "field": field}},
                         status=status, **kwargs)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    count = request.app[METRICS].error
    try:
        return await handler(request)
    except RouterError as exc:
        count(exc.code)
        response = json_response(exc.payload(), status=status_of(exc), headers=headers_of(exc))
        if isinstance(exc, UnreadableBody | BodyTimeout):
            response.force_close()  # the rest of the body is not worth waiting for
        return response
    except StorageError as exc:
        count(Unavailable.code)
        log.error("storage_unavailable", error=str(exc), path=request.path)
        return _error(503, Unavailable.code, f"storage unavailable: {exc}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        count(code)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error(exc.status, code, exc.reason, headers=headers)
    except Exception:
        count("internal")
        log.exception("internal_error", path=request.path)
        return _error(500, "internal", "internal error; the router keeps serving")


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.content_type!r})")
    server = request.app[CONFIG].server
    limit = server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"request body is {request.content_length} bytes; the limit "
                           f"(server.max_body_bytes) is {limit}")
    try:
        # a peer trickling its body would otherwise hold the handler (and memory) forever
        async with asyncio.timeout(server.body_timeout_s):
            body = await request.read()
    except TimeoutError as exc:
        raise BodyTimeout(f"the body did not arrive within {server.body_timeout_s:g} s "
                          "(server.body_timeout_s)") from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"request body exceeds server.max_body_bytes ({limit})") from exc
    except (web.RequestPayloadError, ConnectionResetError) as exc:
        # the caller's fault, not ours: data that does not match its Content-Encoding, or a
        # body cut short by a client that hung up; a 400, not a 500 and a logged traceback
        raise UnreadableBody("the request body could not be read: it does not match its "
                             "Content-Encoding, or the connection closed before it "
                             "ended") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"body is not valid JSON: {exc}") from exc


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    for key in request.query:
        if key not in allowed:
            raise UnknownField(f"unknown query parameter {key!r}; allowed: "
                               f"{', '.join(sorted(allowed))}", key)
    return {k: request.query[k] for k in allowed if k in request.query}


def _caller(request: web.Request, scope: str | None) -> Principal:
    return authenticate(request.app[KEYS], request, scope)


@ROUTES.post("/v1/route")
async def route(request: web.Request) -> web.Response:
    app = request.app
    caller = _caller(request, "route")
    req = parse_route(await read_json(request), app[BODIES])
    if caller.tenant != req.tenant:
        req = replace(req, tenant=caller.tenant)
    started = time.perf_counter()
    decision = app[ENGINE].decide(req)
    app[METRICS].decided(decision, time.perf_counter() - started)
    app[STORE].log_decision(decision)
    if app[LOG_SAMPLER].random() < app[CONFIG].logging.decision_sample_rate:
        log.info("decision", route_id=decision.route_id, tenant=decision.tenant,
                 policy=decision.policy, bucket=decision.bucket, model=decision.model,
                 expected_cost_usd=decision.expected_cost_usd,
                 expected_latency_ms=decision.expected_latency_ms)
    body = decision_json(decision, caller.operator)
    if req.explain:  # which learned bucket it went to, in words
        body["learned_bucket"] = learned_of(app[ENGINE], decision.tenant, decision.policy,
                                            decision.bucket)
    return json_response(body)


def learned_of(engine, tenant: str, policy: str, bucket: str) -> dict | None:
    """A learned bucket's label, example and size (None for a rule bucket)."""
    if not is_child(bucket):
        return None
    split = engine.learned.splits.get((tenant, policy, parent_of(bucket)))
    child = split.child(int(bucket.rpartition("/")[2])) if split is not None else None
    return child_json(split, child) if child is not None else None


@ROUTES.post("/v1/feedback")
async def feedback(request: web.Request) -> web.Response:
    app = request.app
    caller = _caller(request, "feedback")
    route_id, facts, idempotency_key = parse_feedback(await read_json(request))
    try:  # another tenant's route_id is as unknown as a forged one, and reads the same
        ticket = app[ROUTE_IDS].read(route_id, caller.tenant)
    except UnknownRoute as exc:
        raise RouteNotFound(str(exc), "route_id") from exc
    if ticket.measured:  # the gateway measured the call itself: a client adds quality only
        told = [name for name, _ in facts.items() if name != "quality"]
        if told:
            raise InvalidField(f"{told[0]} of a gateway call is the router's own measurement; "
                               f"send its quality only", told[0])
    ttl_h = app[CONFIG].storage.decision_ttl_hours
    if app[ENGINE].now() - ticket.created_at > ttl_h * 3600.0:
        raise RouteNotFound(f"route_id expired: decisions older than {ttl_h:g} h "
                            f"(storage.decision_ttl_hours) take no feedback", "route_id")
    result = await app[STORE].record_feedback(route_id, ticket, facts, idempotency_key)
    if facts.cached_input_tokens is not None and not result.replayed:
        app[ENGINE].sessions.observe(route_id, facts.cached_input_tokens)
    if not result.replayed:
        app[METRICS].fed_back(ticket, result.spend_usd, result.cached_input_tokens,
                              result.cache_savings_usd)
        quality = dict(result.resolution.applied).get("quality")
        if quality is not None:  # joins its rule bucket's sample, for refinement
            app[ENGINE].learned.answered(route_id, ticket.model, quality)
    applied = {fact: int(v) if fact.endswith("_tokens") else bool(v) if fact == "success" else v
               for fact, v in result.resolution.applied}
    log.info("feedback", route_id=route_id, tenant=ticket.tenant, policy=ticket.policy,
             bucket=ticket.bucket, model=ticket.model, applied=applied,
             feedback_id=result.feedback_id, replayed=result.replayed)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response({
        "route_id": route_id, "policy": ticket.policy, "bucket": ticket.bucket,
        "model": ticket.model, "applied": applied,
        "quality_from_success": result.resolution.derived_quality,
    }, headers=headers)


@ROUTES.get("/v1/arms")
async def arms(request: web.Request) -> web.Response:
    caller = _caller(request, None)  # any key may read its own tenant's arms
    query = _query(request, ARMS_QUERY)
    reports = request.app[ENGINE].report(policy=query.get("policy"), bucket=query.get("bucket"),
                                         tenant=caller.tenant)
    engine = request.app[ENGINE]
    return json_response({"arms": [
        {**arm_json(r), "learned": learned_of(engine, r.key.tenant, r.key.policy, r.key.bucket)}
        for r in reports]})


@ROUTES.get("/v1/stats")
async def stats(request: web.Request) -> web.Response:
    """Spend, savings against a reference model, quality and traffic shares over a window,
    for the caller's tenant; and the budgets that cover it."""
    app = request.app
    caller = _caller(request, None)
    query = _query(request, STATS_QUERY)
    engine = app[ENGINE]
    config = engine.config  # the live catalog's prices: a runtime model may be the reference
    window = query.get("window", "day")
    if window not in WINDOW_HOURS:
        raise InvalidField(f"window must be one of {', '.join(WINDOW_HOURS)}", "window")
    policy, bucket = query.get("policy"), query.get("bucket")
    if policy is not None:
        engine.policy(policy)
    if bucket is not None:
        engine.check_bucket(bucket, learned=True)
    reference = _reference(config, query.get("reference"))
    tenant = _stats_tenant(caller, query.get("tenant"))
    now = engine.now()
    since = window_start(window, now)
    app[STORE].flush_decisions()  # queued ahead of the read: every answered route counts
    rows = await app[STORE].usage(since, tenant, policy, bucket)
    body = stats_json(rows, window, since, now, reference, app[CONFIG].judge.disagreement)
    body["timeline"] = await _timeline(app, rows, since, now, tenant, policy, bucket)
    body["colors"] = palette.colors([*(m.name for m in config.models),
                                     *(m["model"] for m in body["models"])])
    viewer = None if caller.operator else caller.tenant
    body["budgets"] = [
        budget_json(s, pacing_base(engine.policy(s.budget.policy)), viewer)
        for s in engine.budgets.status(now)
        if s.budget.tenant in (None, caller.tenant) or viewer is None]
    # commitments are the operator's contracts with providers: every tenant's spend fills them
    body["commitments"] = [commitment_json(s) for s in engine.commitments.status(now)] \
        if viewer is None else []
    body["learned_buckets"] = [
        {"tenant": sp.tenant, "policy": sp.policy, **child_json(sp, c)}
        for _, sp in sorted(engine.learned.splits.items())
        if (tenant is None or sp.tenant == tenant) and (policy is None or sp.policy == policy)
        for c in sp.children]
    return json_response(body)


async def _timeline(app: web.Application, rows: list, since: float, now: float,
                    tenant: str | None, policy: str | None, bucket: str | None) -> dict:
    """Traffic over time in slots that fit the history: per minute (from the decisions
    table) when it is short, else from the hourly rows already read."""
    counts, grain = timeline.from_usage(rows), timeline.HOUR_S
    if timeline.is_short(counts, now):
        # from the hour of its first row, not the window's start: a quiet tenant's short
        # history must not read every tenant's decisions of the week
        first = max(since, min(c.at for c in counts)) if counts else since
        fine = await app[STORE].decisions_per_minute(first, tenant, policy, bucket)
        if fine:  # the decisions may be pruned sooner than the hourly rows
            counts, grain = fine, timeline.MINUTE_S
    labels = {(sp.policy, child_name(sp.bucket, c.id)): f"{child_name(sp.bucket, c.id)} "
              f"({c.label})" for sp in app[ENGINE].learned.splits.values()
              if tenant is None or sp.tenant == tenant for c in sp.children if c.label}
    return timeline.timeline_json(counts, now, grain, labels=labels)


def _stats_tenant(caller: Principal, asked: str | None) -> str | None:
    """Whose usage the caller reads: its own tenant's; an operator may name another, or
    "*" for every tenant (None)."""
    if asked is None or asked == caller.tenant:
        return caller.tenant
    if not caller.operator:
        raise Forbidden("a tenant's key reads its own tenant's stats only; another "
                        "tenant's take an operator key", "tenant")
    return None if asked == "*" else asked


def _reference(config: Config, name: str | None) -> Model:
    if name is None:
        return config.reference_model()
    try:
        return config.model(name)
    except StopIteration:
        raise UnknownModel(f"unknown model {name!r}; the catalog has "
                           f"{', '.join(m.name for m in config.models)}", "reference") from None


@ROUTES.post("/v1/admin/reset")
async def reset(request: web.Request) -> web.Response:
    """Forget what the caller's tenant learned for the matching arms (admin scope)."""
    app = request.app
    caller = _caller(request, "admin")
    body = parse_reset(await read_json(request))
    policy, bucket, model, tenant = body.policy, body.bucket, body.model, body.tenant
    if tenant is not None and tenant != caller.tenant and not caller.operator:
        raise Forbidden("a tenant's admin resets its own tenant's arms only; resetting "
                        "another tenant's takes an operator key", "tenant")
    tenant = tenant or caller.tenant
    if policy is not None:
        app[ENGINE].policy(policy)
    if bucket is not None:
        app[ENGINE].check_bucket(bucket)
    keys = await app[STORE].reset(tenant, policy, bucket, model, actor=caller.name)
    log.info("arms_reset", tenant=tenant, key=caller.name, arms=len(keys),
             policy=policy, bucket=bucket, model=model)
    return json_response({"reset": [{"policy": k.policy, "bucket": k.bucket, "model": k.model}
                                    for k in keys]})


@ROUTES.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the service routes; "degraded" (still 200: routing needs no database) while
    writes fail, with the reason; 503 once the storage writer has stopped."""
    store = request.app[STORE]
    alive, error = store.healthy, store.storage_error
    status = "unavailable" if not alive else "degraded" if error else "ok"
    return json_response({"status": status, "version": __version__,
                          "storage": "writer stopped" if not alive else
                                     "failing" if error else "ok",
                          "storage_error": error,
                          "write_queue": store.queue_depth,
                          "decisions_buffered": store.decisions_buffered,
                          "decisions_dropped": store.dropped_decisions},
                         status=200 if alive else 503)


@ROUTES.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics. With keys configured: admin scope, and only the caller's tenant's
    series (tenants never see each other); the process-wide ones (errors, decision time,
    the write queue) are shown to every admin."""
    caller = _caller(request, "admin")
    tenant = None if caller.operator else caller.tenant  # an operator sees every tenant
    body, content_type = request.app[METRICS].exposition(tenant, request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


@ROUTES.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document of this API, for this server's config (public)."""
    app = request.app
    return web.Response(body=app[OPENAPI].body(app[ENGINE].config),  # the live catalog
                        content_type="application/json")
