"""The JSON wire format: request bodies into core types, core types into answers."""

from __future__ import annotations

from typing import Any

from bandit_router.core.errors import InvalidField, MissingField
from bandit_router.core.types import (
    CLIENT_FACTS,
    NO_CONSTRAINTS,
    NO_OVERRIDE,
    ArmExplanation,
    ArmReport,
    Constraints,
    Decision,
    Facts,
    Message,
    Objective,
    RouteRequest,
    WeightsOverride,
)
from bandit_router.http.schemas.bodies import (
    CONSTRAINT_FIELDS,
    FEEDBACK_FIELDS,
    RESET_FIELDS,
    ROUTE_FIELDS,
    WEIGHT_FIELDS,
    Bodies,
    ChatMessage,
    FeedbackBody,
    ResetBody,
)
from bandit_router.http.schemas.decode import convert

__all__ = [
    "ARMS_QUERY",
    "CONSTRAINT_FIELDS",
    "FEEDBACK_FIELDS",
    "RESET_FIELDS",
    "ROUTE_FIELDS",
    "WEIGHT_FIELDS",
    "arm_json",
    "decision_json",
    "parse_feedback",
    "parse_reset",
    "parse_route",
]
ARMS_QUERY = frozenset({"policy", "bucket"})


def _count_parts(messages: Any, max_parts: int) -> None:
    """Refuse a request with too many content parts before any part is examined: each part
    costs event-loop time, and 35,000 tiny ones in a megabyte cost 30 ms."""
    if type(messages) is not list:
        return
    parts = 0
    for i, item in enumerate(messages):
        content = item.get("content") if type(item) is dict else None
        if type(content) is list:
            parts += len(content)
            if parts > max_parts:
                raise InvalidField(f"messages[{i}].content: the request has more than "
                                   f"{max_parts} content parts in all "
                                   "(server.max_content_parts)", f"messages[{i}].content")


def _text(content: Any) -> str:
    """A message's text: the string, or its text parts joined."""
    if content is None:
        return ""
    if type(content) is str:
        return content
    return "\n".join(p.text for p in content if p.type == "text")


def _messages(prompt: str | None, raw: list[ChatMessage] | None) -> tuple[Message, ...]:
    if prompt is not None and raw is not None:
        raise InvalidField("send either prompt or messages, not both", "messages")
    if prompt is not None:
        return (Message("user", prompt),)
    if not raw:
        raise MissingField("prompt (a string) or messages (a non-empty array) is required",
                           "prompt" if raw is None else "messages")
    return tuple(Message(m.role, _text(m.content)) for m in raw)


def _precheck(data: Any, bodies: Bodies) -> None:
    """The part budget, counted on the parsed JSON before msgspec reads each part (a
    messages array over its own limit is msgspec's error)."""
    messages = data.get("messages") if type(data) is dict else None
    if type(messages) is list and len(messages) <= bodies.max_messages:
        _count_parts(messages, bodies.max_parts)


def parse_route(data: Any, bodies: Bodies) -> RouteRequest:
    _precheck(data, bodies)
    body = convert(data, bodies.route)
    c, w = body.constraints, body.weights
    return RouteRequest(
        messages=_messages(body.prompt, body.messages),
        task=body.task, bucket=body.bucket, policy=body.policy,
        constraints=NO_CONSTRAINTS if c is None else Constraints(
            models=frozenset(c.models) if c.models is not None else None,
            exclude=frozenset(c.exclude or ()), max_cost_usd=c.max_cost_usd,
            max_latency_ms=c.max_latency_ms),
        weights=NO_OVERRIDE if w is None else WeightsOverride(
            cost=w.cost, latency=w.latency,
            points_per_price_doubling=w.points_per_price_doubling,
            points_per_latency_doubling=w.points_per_latency_doubling),
        input_tokens=body.input_tokens, max_output_tokens=body.max_output_tokens,
        explain=bool(body.explain), session_id=body.session_id,
    )


def parse_chat(data: Any, bodies: Bodies) -> tuple[str, RouteRequest]:
    """The gateway's chat body: its `model`, and its routing fields as a route request (its
    messages are the prompt; `max_completion_tokens`, or the older `max_tokens`, bounds the
    expected answer). Its other fields are the upstream's."""
    _precheck(data, bodies)
    if type(data) is dict and data.get("max_completion_tokens") is not None \
            and "max_tokens" in data:  # the older name is not read then, nor checked
        data = {k: v for k, v in data.items() if k != "max_tokens"}
    body = convert(data, bodies.chat)
    return body.model, RouteRequest(
        messages=_messages(None, body.messages),
        max_output_tokens=body.max_completion_tokens or body.max_tokens)


def parse_feedback(data: Any) -> tuple[str, Facts, str | None]:
    """The route_id, the facts, and the client's idempotency key (if any)."""
    body = convert(data, FeedbackBody)
    facts = Facts(**{name: getattr(body, name) for name in CLIENT_FACTS})
    if not facts.items():
        raise MissingField(f"feedback needs at least one of {', '.join(CLIENT_FACTS)}",
                           "quality")
    return body.route_id, facts, body.idempotency_key


def parse_reset(data: Any) -> ResetBody:
    return convert(data, ResetBody)


def _explanation(arm: ArmExplanation) -> dict:
    return {
        "eligible": arm.eligible, "reason": arm.reason,
        "quality_mean": arm.quality_mean, "quality_interval": list(arm.quality_interval),
        "quality_sample": arm.quality_sample, "expected_cost_usd": arm.expected_cost_usd,
        "expected_latency_ms": arm.expected_latency_ms, "utility": arm.utility,
        "value": arm.value, "contending": arm.contending,
        **({} if arm.cached_input_tokens is None
           else {"cached_input_tokens": arm.cached_input_tokens}),
    }


def _objective(o: Objective) -> dict:
    out: dict[str, Any] = {"mode": o.mode}
    for name in ("points_per_price_doubling", "points_per_latency_doubling", "cost_weight",
                 "latency_weight", "quality_target"):
        if getattr(o, name) is not None:
            out[name] = getattr(o, name)
    return out


def decision_json(d: Decision, operator: bool = True) -> dict:
    """A decision's answer; a tenant (not an `operator`) is not shown a shared budget's
    pacing weight, which follows every tenant's spend."""
    out: dict[str, Any] = {
        "route_id": d.route_id, "model": d.model, "bucket": d.bucket, "policy": d.policy,
        "expected_cost_usd": d.expected_cost_usd, "expected_latency_ms": d.expected_latency_ms,
        "fallbacks": list(d.fallbacks),
    }
    if d.budget is not None:
        hidden = d.budget.shared and not operator
        out["budget"] = {"name": d.budget.budget,
                         "cost_weight": None if hidden else d.budget.cost_weight,
                         "spent": d.budget.spent}
        if d.budget.points_per_price_doubling is not None and not hidden:
            out["budget"]["points_per_price_doubling"] = d.budget.points_per_price_doubling
    if d.objective is not None:
        out["objective"] = _objective(d.objective)
        if d.budget is not None and d.budget.shared and not operator:
            # its weights include the shared budget's pacing price: keep only the mode
            out["objective"] = {"mode": d.objective.mode}
    if d.explanation is not None:
        out["explanation"] = {arm.model: _explanation(arm) for arm in d.explanation}
    if d.session is not None:
        s = d.session
        out["session"] = {"session_id": s.session_id, "previous_model": s.previous_model,
                          "cached_prefix_tokens": s.cached_prefix_tokens,
                          "hit_rate": s.hit_rate, "expires_in_s": s.expires_in_s}
    return out


def arm_json(r: ArmReport) -> dict:
    return {
        "tenant": r.key.tenant, "policy": r.key.policy, "bucket": r.key.bucket,
        "model": r.key.model,
        "quality_mean": r.quality_mean, "quality_interval": list(r.quality_interval),
        "evidence": r.evidence, "latency_observations": r.latency_observations,
        "mean_latency_ms": r.mean_latency_ms, "mean_cost_usd": r.mean_cost_usd,
        "share": r.share, "recent_decisions": r.recent_decisions,
    }
