"""`POST /v1/feedback`: facts about a routed call, acknowledged once committed (feedback
scope)."""

from __future__ import annotations

import structlog
from aiohttp import web

from bandit_router.core.errors import (
    InvalidField,
    RouteNotFound,
)
from bandit_router.core.route_id import UnknownRoute
from bandit_router.http.appkeys import (
    CONFIG,
    ENGINE,
    METRICS,
    ROUTE_IDS,
    STORE,
)
from bandit_router.http.edge import caller_of, json_response, read_json
from bandit_router.http.wire import (
    parse_feedback,
)

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.post("/v1/feedback")
async def feedback(request: web.Request) -> web.Response:
    app = request.app
    caller = caller_of(request, "feedback")
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
