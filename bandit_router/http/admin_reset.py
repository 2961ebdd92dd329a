"""`POST /v1/admin/reset`: forget what a tenant learned for the matching arms (admin scope)."""

from __future__ import annotations

import structlog
from aiohttp import web

from bandit_router.http.appkeys import (
    ENGINE,
    STORE,
)
from bandit_router.http.edge import caller_of, json_response, read_json
from bandit_router.http.errors import (
    Forbidden,
)
from bandit_router.http.wire import (
    parse_reset,
)

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.post("/v1/admin/reset")
async def reset(request: web.Request) -> web.Response:
    """Forget what the caller's tenant learned for the matching arms (admin scope)."""
    app = request.app
    caller = caller_of(request, "admin")
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
