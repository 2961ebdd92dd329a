"""`POST /v1/route`: a request in, a decision out (route scope)."""

from __future__ import annotations

import time
from dataclasses import replace

import structlog
from aiohttp import web

from bandit_router.core.learned import child_json, is_child, parent_of
from bandit_router.http.appkeys import (
    BODIES,
    CONFIG,
    ENGINE,
    LOG_SAMPLER,
    METRICS,
    STORE,
)
from bandit_router.http.edge import caller_of, json_response, read_json
from bandit_router.http.wire import (
    decision_json,
    parse_route,
)

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.post("/v1/route")
async def route(request: web.Request) -> web.Response:
    app = request.app
    caller = caller_of(request, "route")
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
