"""The service's own endpoints: `/healthz`, `/metrics` and `/openapi.json`."""

from __future__ import annotations

import structlog
from aiohttp import web

from bandit_router import __version__
from bandit_router.http.appkeys import (
    ENGINE,
    METRICS,
    OPENAPI,
    STORE,
)
from bandit_router.http.edge import caller_of, json_response

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


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
    caller = caller_of(request, "admin")
    tenant = None if caller.operator else caller.tenant  # an operator sees every tenant
    body, content_type = request.app[METRICS].exposition(tenant, request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


@ROUTES.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document of this API, for this server's config (public)."""
    app = request.app
    return web.Response(body=app[OPENAPI].body(app[ENGINE].config),  # the live catalog
                        content_type="application/json")
