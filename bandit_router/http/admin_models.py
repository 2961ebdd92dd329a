"""Admin endpoints for the catalog at run time: list, add, enable/disable, reprice; and the
audit log. The catalog is what every tenant shares, so changing it takes an operator key;
each change is committed with its audit row before it is answered, and the engine routes
with it from the next decision on."""

from __future__ import annotations

import numpy as np
import structlog
from aiohttp import web

from bandit_router.core.catalog_changes import Change, entry_json
from bandit_router.core.settings import OPERATOR
from bandit_router.http.appkeys import CONFIG, ENGINE, STORE
from bandit_router.http.catalog_wire import AUDIT_QUERY, parse_add, parse_audit_query, parse_update
from bandit_router.http.edge import caller_of, json_response, query_of, read_json

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.get("/v1/admin/models")
async def list_models(request: web.Request) -> web.Response:
    """The live catalog (a tenant's admin may read what it is routed over)."""
    caller_of(request, "admin")
    return json_response({"models": [entry_json(e) for e in request.app[STORE].catalog]})


async def _change(request: web.Request, change: Change, caller) -> web.Response:
    app = request.app
    applied = await app[STORE].change_catalog(change, caller.name, app[CONFIG].aliases())
    if applied.audit is not None:
        log.info("catalog_changed", key=caller.name, op=change.op, model=change.name,
                 audit_id=applied.audit["id"], change=dict(change.fields))
    return json_response({"model": entry_json(applied.entry), "audit": applied.audit})


@ROUTES.post("/v1/admin/models")
async def add_model(request: web.Request) -> web.Response:
    """Add a model: enabled at once, its arms start from the prior (operator scope)."""
    caller = caller_of(request, OPERATOR)
    catalog = request.app[ENGINE].catalog
    # a new model's latency prior, unless given: the enabled models' median guess
    latency = float(np.median(catalog.prior_latency_ms[catalog.every])) if catalog.every.size \
        else float(np.median(catalog.prior_latency_ms))
    change = parse_add(await read_json(request), latency, request.app[CONFIG].upstreams)
    return await _change(request, change, caller)


@ROUTES.patch(r"/v1/admin/models/{name:[\s\S]+}")  # any name, slashes and all
async def update_model(request: web.Request) -> web.Response:
    """Enable or disable a model, change or release its prices, context window, upstream
    (operator scope)."""
    caller = caller_of(request, OPERATOR)
    change = parse_update(request.match_info["name"], await read_json(request),
                          request.app[CONFIG].upstreams)
    return await _change(request, change, caller)


@ROUTES.get("/v1/admin/audit")
async def audit(request: web.Request) -> web.Response:
    """Admin changes, newest first: who, when, what, before and after. An operator sees
    every row; a tenant's admin its own tenant's (its resets)."""
    caller = caller_of(request, "admin")
    limit, model, before = parse_audit_query(query_of(request, set(AUDIT_QUERY)))
    tenant = None if caller.operator else caller.tenant
    return json_response({"entries": await request.app[STORE].audit(limit, model, before,
                                                                     tenant)})
