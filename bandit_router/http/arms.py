"""`GET /v1/arms`: what the caller's tenant has learned, arm by arm."""

from __future__ import annotations

import structlog
from aiohttp import web

from bandit_router.http.appkeys import (
    ENGINE,
)
from bandit_router.http.edge import caller_of, json_response, query_of
from bandit_router.http.route import learned_of
from bandit_router.http.wire import (
    ARMS_QUERY,
    arm_json,
)

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.get("/v1/arms")
async def arms(request: web.Request) -> web.Response:
    caller = caller_of(request, None)  # any key may read its own tenant's arms
    query = query_of(request, ARMS_QUERY)
    reports = request.app[ENGINE].report(policy=query.get("policy"), bucket=query.get("bucket"),
                                         tenant=caller.tenant)
    engine = request.app[ENGINE]
    return json_response({"arms": [
        {**arm_json(r), "learned": learned_of(engine, r.key.tenant, r.key.policy, r.key.bucket)}
        for r in reports]})
