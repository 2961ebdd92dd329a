"""What the gateway learns about an answer's quality by itself, with no label from anyone:
the implicit signals in its form, a regenerate of the same conversation, and (sampled) a
judge model's grade. All of it after the answer was sent, none of it on the request path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from bandit_router.core.errors import RouterError
from bandit_router.core.implicit import (
    VALUES,
    Answer,
    Regenerates,
    asked_for_json,
    conversation_key,
    implicit_quality,
    signals,
)
from bandit_router.core.types import Facts, RouteTicket
from bandit_router.engine.judge import Judge, Verdict
from bandit_router.http.appkeys import CONFIG, ENGINE, METRICS, STORE
from bandit_router.http.upstream import Call
from bandit_router.storage.stats import Tally

log = structlog.get_logger("bandit_router.http.gateway")
JUDGE = web.AppKey("judge", object)  # a Judge, or None when [judge] is not configured
REGENERATES = web.AppKey("regenerates", Regenerates)
LEARNING = web.AppKey("learning_tasks", set)
MAX_SESSION = 256


def session_of(request: web.Request, body: dict[str, Any]) -> str | None:
    """The caller's session: OpenAI's prompt_cache_key, else an x-session-id header; never
    derived from the content."""
    key = body.get("prompt_cache_key")
    if not isinstance(key, str) or not key:
        key = request.headers.get("x-session-id") or None
    return key[:MAX_SESSION] if key else None


def implicit_of(app: web.Application, call: Call, body: dict[str, Any],
                caller_max_tokens: bool) -> float | None:
    """The implicit quality of an answered call (None: its form says nothing)."""
    found = signals(app[CONFIG].implicit, Answer(call.text, call.finish_reason,
                                                 asked_for_json(body), caller_max_tokens))
    for signal in found:
        app[METRICS].implicit(signal)
    return implicit_quality(found)


def after_answer(app: web.Application, route_id: str, ticket: RouteTicket, call: Call,
                 body: dict[str, Any], session: str | None, favourite: str | None) -> None:
    """Once an answer was sent: note a regenerate of its conversation, and maybe judge it
    (more likely when it came from another model than the `favourite`, the one the router
    believed best)."""
    messages = body.get("messages") or []
    if "regenerate" in app[CONFIG].implicit.signals:
        key = conversation_key(ticket.tenant, session, messages)
        earlier = app[REGENERATES].previous(key)
        if earlier is not None:
            app[METRICS].implicit("regenerate")
            _background(app, _record(app, *earlier, Facts(implicit_quality=VALUES["regenerate"])))
        app[REGENERATES].remember(key, route_id, ticket)
    judge = app[JUDGE]
    if judge is not None and call.ok:
        evidence = app[ENGINE].evidence(ticket.tenant, ticket.policy, ticket.bucket,
                                        ticket.model)
        judge.consider(route_id, ticket, messages, call.text, evidence,
                       explored=favourite is not None and ticket.model != favourite)


async def _record(app: web.Application, route_id: str, ticket: RouteTicket,
                  facts: Facts) -> None:
    try:
        await app[STORE].record_feedback(route_id, ticket, facts)
    except RouterError as exc:  # a fact of this source already counted: once per route
        log.info("implicit_not_counted", route_id=route_id, reason=exc.message)
    except Exception as exc:  # a storage fault must not go unnoticed
        app[METRICS].background_failed("implicit")
        log.error("implicit_feedback_failed", route_id=route_id, error=str(exc))


def _background(app: web.Application, work) -> None:
    task = asyncio.create_task(work)
    app[LEARNING].add(task)
    task.add_done_callback(app[LEARNING].discard)


def _judge(app: web.Application, upstreams) -> Judge | None:
    config = app[CONFIG]
    if not config.judge.enabled:
        return None
    model = app[ENGINE].config.model(config.judge.model)
    metrics, store = app[METRICS], app[STORE]

    async def complete(body: dict, timeout_s: float):
        return await upstreams.complete(model.upstream, body, timeout_s)

    async def account(ticket: RouteTicket, at: float, verdict: Verdict) -> None:
        await store.add_usage(ticket, at, Tally(
            judge_calls=1, judge_failed=0 if verdict.score is not None else 1,
            judge_spend_usd=verdict.spend_usd))

    judge = Judge(config.judge, model, complete, store.record_feedback, account,
                  lambda v: metrics.judged(v.outcome, v.spend_usd), config.routing.seed,
                  app[ENGINE].now)
    for usd, hour in store.judge_spend_at_start:
        judge.spent(usd, hour)
    return judge


async def lifecycle(app: web.Application, upstreams) -> AsyncIterator[None]:
    """The judge and the regenerate memory; at shutdown, what they started is finished."""
    app[JUDGE] = _judge(app, upstreams)
    app[REGENERATES] = Regenerates(app[CONFIG].implicit.regenerate_window_s)
    app[LEARNING] = set()
    yield
    pending = set(app[LEARNING]) | (set(app[JUDGE].pending) if app[JUDGE] else set())
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
