"""The JSON wire format: request bodies into core types, core types into answers."""

from __future__ import annotations

from typing import Any

from bandit_router.core.errors import InvalidField, MissingField
from bandit_router.core.types import (
    CLIENT_FACTS,
    MAX_CALL_MS,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_TOKENS,
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
from bandit_router.http.validate import Fields

ROUTE_FIELDS = frozenset({"prompt", "messages", "task", "bucket", "policy", "constraints",
                          "weights", "input_tokens", "max_output_tokens", "explain",
                          "session_id"})
CONSTRAINT_FIELDS = frozenset({"models", "exclude", "max_cost_usd", "max_latency_ms"})
WEIGHT_FIELDS = frozenset({"cost", "latency", "points_per_price_doubling",
                           "points_per_latency_doubling"})
FEEDBACK_FIELDS = frozenset({"route_id", "idempotency_key", *CLIENT_FACTS})
WEIGHT_ORDER = ("cost", "latency", "points_per_price_doubling", "points_per_latency_doubling")
MAX_IDEMPOTENCY_KEY = 128

RESET_FIELDS = frozenset({"policy", "bucket", "model", "tenant"})
ARMS_QUERY = frozenset({"policy", "bucket"})

MAX_WEIGHT = 1000.0
MAX_ROUTE_ID = 512
MAX_TEXT = 1 << 30  # a prompt or a text part, in characters
MAX_ROLE = 64  # a message's role, a content part's type
MAX_TASK = 64
MAX_NAME = 128  # a bucket or policy name in a route request
MAX_RESET_NAME = 256
MAX_SESSION_ID = 256  # a session_id (the gateway's prompt_cache_key, x-session-id)


def _content(value: Any, path: str) -> str:
    """A message's text: a string, or the text parts of an OpenAI content array."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidField(f"{path} must be a string or an array of content parts", path)
    texts = []
    for i, part in enumerate(value):
        text = part.get("text") if type(part) is dict and part.get("type") == "text" else None
        if type(text) is str:  # the usual part, without building a Fields for it
            texts.append(text)
            continue
        fields = Fields(part, f"{path}[{i}]")
        kind = fields.string("type", required=True, max_len=MAX_ROLE)
        if kind == "text":
            texts.append(fields.string("text", required=True, max_len=MAX_TEXT))
    return "\n".join(texts)


def _count_parts(messages: list, max_parts: int) -> None:
    """Refuse a request with too many content parts before any part is examined: each part
    costs event-loop time, and 35,000 tiny ones in a megabyte cost 30 ms."""
    parts = 0
    for i, item in enumerate(messages):
        content = item.get("content") if type(item) is dict else None
        if type(content) is list:
            parts += len(content)
            if parts > max_parts:
                raise InvalidField(f"messages[{i}].content: the request has more than "
                                   f"{max_parts} content parts in all "
                                   "(server.max_content_parts)", f"messages[{i}].content")


def _messages(body: Fields, max_messages: int, max_parts: int) -> tuple[Message, ...]:
    prompt = body.string("prompt", max_len=MAX_TEXT)
    raw = body.array("messages", max_messages)
    if prompt is not None and raw is not None:
        raise InvalidField("send either prompt or messages, not both", "messages")
    if prompt is not None:
        return (Message("user", prompt),)
    if not raw:
        raise MissingField("prompt (a string) or messages (a non-empty array) is required",
                           "prompt" if raw is None else "messages")
    _count_parts(raw, max_parts)
    out = []
    for i, item in enumerate(raw):
        fields = Fields(item, f"messages[{i}]")
        role = fields.string("role", required=True, max_len=MAX_ROLE)
        out.append(Message(role, _content(fields.raw("content"), f"messages[{i}].content")))
    return tuple(out)


def _constraints(body: Fields) -> Constraints:
    c = body.object("constraints", CONSTRAINT_FIELDS)
    if c is None:
        return NO_CONSTRAINTS
    models = c.strings("models")
    if models is not None and not models:
        raise InvalidField("constraints.models must name at least one model",
                           "constraints.models")
    return Constraints(
        models=frozenset(models) if models is not None else None,
        exclude=frozenset(c.strings("exclude") or ()),
        max_cost_usd=c.number("max_cost_usd", 0.0, MAX_COST_USD, above=True),
        max_latency_ms=c.number("max_latency_ms", 0.0, MAX_LATENCY_MS, above=True),
    )


def parse_route(data: Any, max_messages: int, max_parts: int = 4096) -> RouteRequest:
    body = Fields(data, allowed=ROUTE_FIELDS)
    weights = body.object("weights", WEIGHT_FIELDS)
    return RouteRequest(
        messages=_messages(body, max_messages, max_parts),
        task=body.string("task", max_len=MAX_TASK),
        bucket=body.string("bucket", max_len=MAX_NAME),
        policy=body.string("policy", max_len=MAX_NAME),
        constraints=_constraints(body),
        weights=WeightsOverride(**{name: weights.number(name, 0.0, MAX_WEIGHT)
                                   for name in WEIGHT_ORDER}) if weights else NO_OVERRIDE,
        input_tokens=body.integer("input_tokens", 0, MAX_TOKENS),
        max_output_tokens=body.integer("max_output_tokens", 1, MAX_TOKENS),
        explain=bool(body.boolean("explain")),
        session_id=_session_id(body),
    )


def _session_id(body: Fields) -> str | None:
    session = body.string("session_id", max_len=MAX_SESSION_ID)
    if session == "":
        raise InvalidField("session_id must not be empty", "session_id")
    return session


def parse_feedback(data: Any) -> tuple[str, Facts, str | None]:
    """The route_id, the facts, and the client's idempotency key (if any)."""
    body = Fields(data, allowed=FEEDBACK_FIELDS)
    route_id = body.string("route_id", required=True, max_len=MAX_ROUTE_ID)
    idempotency_key = body.string("idempotency_key", max_len=MAX_IDEMPOTENCY_KEY)
    if idempotency_key == "":
        raise InvalidField("idempotency_key must not be empty", "idempotency_key")
    facts = Facts(
        quality=body.number("quality", 0.0, 1.0),
        latency_ms=body.number("latency_ms", 0.0, MAX_CALL_MS),
        input_tokens=body.integer("input_tokens", 0, MAX_TOKENS),
        output_tokens=body.integer("output_tokens", 0, MAX_TOKENS),
        success=body.boolean("success"),
        cost_usd=body.number("cost_usd", 0.0, MAX_COST_USD),
        cached_input_tokens=body.integer("cached_input_tokens", 0, MAX_TOKENS),
        cache_write_tokens=body.integer("cache_write_tokens", 0, MAX_TOKENS),
    )
    if not facts.items():
        raise MissingField(f"feedback needs at least one of {', '.join(CLIENT_FACTS)}",
                           "quality")
    return route_id, facts, idempotency_key


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
