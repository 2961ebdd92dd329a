"""`GET /v1/stats`: spend, savings, traffic, budgets and commitments over a window."""

from __future__ import annotations

import structlog
from aiohttp import web

from bandit_router.core import palette
from bandit_router.core.errors import (
    InvalidField,
    UnknownModel,
)
from bandit_router.core.learned import child_json, child_name
from bandit_router.core.objective import pacing_base
from bandit_router.core.settings import Config, Model
from bandit_router.http.appkeys import (
    CONFIG,
    ENGINE,
    STORE,
)
from bandit_router.http.auth import Principal
from bandit_router.http.edge import caller_of, json_response, query_of
from bandit_router.http.errors import (
    Forbidden,
)
from bandit_router.storage import effective_prices, timeline
from bandit_router.storage.stats import (
    STATS_QUERY,
    WINDOW_HOURS,
    budget_json,
    commitment_json,
    stats_json,
    window_start,
)

log = structlog.get_logger("bandit_router")
ROUTES = web.RouteTableDef()


@ROUTES.get("/v1/stats")
async def stats(request: web.Request) -> web.Response:
    """Spend, savings against a reference model, quality and traffic shares over a window,
    for the caller's tenant; and the budgets that cover it."""
    app = request.app
    caller = caller_of(request, None)
    query = query_of(request, STATS_QUERY)
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
    body = stats_json(rows, window, since, now, reference, app[CONFIG].judge.disagreement,
                      await _rates(app, config, since, reference))
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


async def _rates(app: web.Application, config: Config, since: float, reference: Model
                 ) -> effective_prices.Rates | None:
    """The commitments' rates from every tenant's usage (None without commitments): a
    commitment is filled by all of them, so a tenant's effective price depends on it."""
    if not config.commitments:
        return None
    start = effective_prices.replay_start(config.commitments, since)
    return effective_prices.rates(await app[STORE].usage_by_model(start), config.commitments,
                                  config.models, reference)


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
