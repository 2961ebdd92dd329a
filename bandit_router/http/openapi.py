"""The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.

The request bodies' schemas are those of the Structs the server validates with
(http/schemas/bodies.py, through msgspec's JSON Schema); the error answers come from the
errors table; the config's names (policies, buckets, models) are patched in as enums. Built
once at start (`Served`), again when the live catalog changes; tests/http/test_openapi.py holds
it to the server (every limit just past and at, and a schemathesis fuzz run).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from bandit_router import __version__
from bandit_router.core.settings import Config, ServerConfig
from bandit_router.http import catalog_wire, errors
from bandit_router.http.auth import PUBLIC_PATHS
from bandit_router.http.schemas.admin import (
    AT_LEAST_ONE,
    MAX_MODEL_NAME,
    AddModelBody,
    BucketChangeBody,
    UpdateModelBody,
)
from bandit_router.http.schemas.bodies import (
    MAX_RESET_NAME,
    ONE_FACT,
    PROMPT_OR_MESSAGES,
    Bodies,
    FeedbackBody,
    ResetBody,
    RouteConstraints,
)
from bandit_router.storage.stats import WINDOW_HOURS

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
# statuses of errors raised outside RouterError: aiohttp's HTTP exceptions (edge.py maps
# them to these codes; any other one is "http_error") and the catch-all 500
HTTP_ERROR_CODES = {404: ("not_found",), 405: ("method_not_allowed",), 413: ("body_too_large",),
                    500: ("internal",)}
# the error statuses each operation can answer (besides "default")
_BODY_ERRORS = (400, 401, 403, 408, 413, 415)
OPERATION_ERRORS = {
    ("post", "/v1/route"): (*_BODY_ERRORS, 422, 429, 503),
    ("post", "/v1/feedback"): (*_BODY_ERRORS, 404, 409, 503),
    ("get", "/v1/arms"): (400, 401),
    ("post", "/v1/admin/reset"): (*_BODY_ERRORS, 503),
    ("post", "/v1/chat/completions"): (*_BODY_ERRORS, 422, 429),
    ("get", "/v1/models"): (401,),
    ("get", "/v1/stats"): (400, 401, 403, 503),
    ("get", "/v1/admin/models"): (401, 403),
    ("post", "/v1/admin/models"): (*_BODY_ERRORS, 409, 503),
    ("patch", "/v1/admin/models/{name}"): (*_BODY_ERRORS, 404, 409, 503),
    ("get", "/v1/admin/audit"): (400, 401, 403, 503),
    ("get", "/v1/admin/buckets"): (400, 401, 403, 503),
    ("post", "/v1/admin/buckets"): (*_BODY_ERRORS, 503),
    ("get", "/metrics"): (401, 403),
}
# the codes an operation can answer with a status, where not every code of that status
OPERATION_CODES = {
    ("post", "/v1/feedback"): {404: ("unknown_route_id",),
                               409: ("duplicate_fact", "idempotency_conflict")},
    ("post", "/v1/admin/models"): {409: ("model_exists",)},
    ("patch", "/v1/admin/models/{name}"): {404: ("model_not_found",),
                                           409: ("last_enabled_model",)},
}
SCOPE_OF = {("post", "/v1/route"): "route", ("post", "/v1/feedback"): "feedback",
            ("get", "/v1/arms"): None, ("post", "/v1/admin/reset"): "admin",
            ("post", "/v1/chat/completions"): "route", ("get", "/v1/models"): None,
            ("get", "/v1/stats"): None, ("get", "/v1/admin/models"): "admin",
            ("post", "/v1/admin/models"): "operator",
            ("patch", "/v1/admin/models/{name}"): "operator",
            ("get", "/v1/admin/audit"): "admin", ("get", "/metrics"): "admin",
            ("get", "/v1/admin/buckets"): "admin", ("post", "/v1/admin/buckets"): "admin"}
UPSTREAM_FAILED = "upstream_failed"  # the gateway's 502, in OpenAI's error shape
_STATUS_TEXT = {400: "Bad request: the body or a field is invalid",
                401: "No API key, or an unknown one (only when keys are configured)",
                403: "The key lacks this operation's scope (only when keys are configured)",
                404: "Unknown, tampered, expired or another tenant's route_id; or a model "
                     "the catalog does not have",
                409: "A fact already counted for this route_id, or an idempotency_key resent "
                     "with different content; a model that already exists, or disabling the "
                     "last enabled one",
                408: "The body did not arrive within server.body_timeout_s of its headers",
                413: "Body larger than server.max_body_bytes (refused before it is read)",
                415: "Content-Type is not JSON",
                422: "No model satisfies the constraints (the message says why for each)",
                429: "A budget with when_spent = \"refuse\" is spent for its window "
                     "(Retry-After: seconds until it renews)",
                503: "Storage unavailable; nothing was acknowledged"}


def error_codes() -> dict[int, tuple[str, ...]]:
    """Every error code the server can answer, by HTTP status."""
    by_status: dict[int, set[str]] = {}
    for entry in errors.TABLE:
        by_status.setdefault(entry.status, set()).add(entry.error.code)
    for status, codes in HTTP_ERROR_CODES.items():
        by_status.setdefault(status, set()).update(codes)
    return {status: tuple(sorted(codes)) for status, codes in sorted(by_status.items())}


# --- small schema helpers -------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(max_len: int, description: str = "", **extra: Any) -> dict:
    out: dict[str, Any] = {"type": "string", "maxLength": max_len, **extra}
    if description:
        out["description"] = description
    return out


def _names(max_len: int, names: list[str] | None, description: str) -> dict:
    out = _string(max_len, description)
    if names is not None:
        out["enum"] = names
    return out


def _object(properties: dict, required: tuple[str, ...] = (), closed: bool = True,
            **extra: Any) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    out.update(extra)
    return out


def _json(schema: dict, description: str, **extra: Any) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
INTERVAL = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}


# --- request bodies ---------------------------------------------------------------------
# From the body Structs (http/schemas/bodies.py), which validation uses too; what the types
# cannot say (cross-field rules) and what the live catalog knows (names) are patched in.

REF = "#/components/schemas/{name}"


def _present(prop: dict) -> dict:
    """An optional field's schema without its null branch (null counts as absent)."""
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    return branches[0] if len(branches) == 1 else prop


def _enum(component: dict, name: str, names: list[str] | None, items: bool = False) -> None:
    if names is None:
        return
    prop = _present(component["properties"][name])
    (prop["items"] if items else prop)["enum"] = names


def _request_schemas(bodies: Bodies, config: Config | None) -> tuple[dict, dict[str, dict]]:
    """The request bodies' schemas, by path, and their components."""
    classes = {"/v1/route": bodies.route, "/v1/feedback": FeedbackBody,
               "/v1/admin/reset": ResetBody, "/v1/chat/completions": bodies.chat,
               "/v1/admin/models": AddModelBody, "/v1/admin/models/{name}": UpdateModelBody,
               "/v1/admin/buckets": BucketChangeBody}
    refs, components = msgspec.json.schema_components(tuple(classes.values()),
                                                       ref_template=REF)
    for rule_of, rule in ((bodies.route, PROMPT_OR_MESSAGES), (FeedbackBody, ONE_FACT),
                          (UpdateModelBody, AT_LEAST_ONE)):
        components[rule_of.__name__].update(rule)
    if config is not None:
        _patch_catalog(components, bodies, config)
    return dict(zip(classes, refs, strict=True)), components


def _patch_catalog(components: dict[str, dict], bodies: Bodies, config: Config) -> None:
    """The config's names as enums, and the feedback's token bounds as the catalog's
    largest (each call is held to its own model's): the catalog changes at run time, so
    the server checks these, not the types."""
    policies, buckets = list(config.policies), list(config.buckets.names)
    models = [m.name for m in config.models]
    route = components[bodies.route.__name__]
    _enum(route, "policy", policies)
    _enum(route, "bucket", buckets)
    for name in ("models", "exclude"):
        _enum(components[RouteConstraints.__name__], name, models or None, items=True)
    reset = components[ResetBody.__name__]
    _enum(reset, "policy", policies)
    _enum(reset, "bucket", buckets)
    _enum(components[bodies.chat.__name__], "model", [*config.aliases(), *models])
    _enum(components[BucketChangeBody.__name__], "policy", policies)
    for body in (AddModelBody, UpdateModelBody):
        _enum(components[body.__name__], "upstream", sorted(config.upstreams) or None)
    feedback = components[FeedbackBody.__name__]["properties"]
    most_in = max((m.context_tokens for m in config.models), default=0)
    most_out = max((m.output_limit for m in config.models), default=0)
    for fact, limit in (("input_tokens", most_in), ("output_tokens", most_out),
                        ("cached_input_tokens", most_in), ("cache_write_tokens", most_in)):
        if limit:
            _present(feedback[fact])["maximum"] = limit


def _learned_bucket() -> dict:
    return _object({
        "tenant": {"type": "string"}, "policy": {"type": "string"},
        "bucket": {"type": "string", "description": "task:level/k"},
        "parent": {"type": "string", "description": "its rule bucket (task:level)"},
        "label": {"type": "string", "description": "its most typical words"},
        "example": {"type": "string", "description": "the answer nearest its centre, cut"},
        "size": INTEGER, "pinned": {"type": "boolean"}, "version": INTEGER},
        required=("bucket", "parent", "label", "example", "size", "pinned"), closed=False)


def _catalog_schemas() -> dict[str, dict]:
    text, nullable_text = {"type": "string"}, {"type": ["string", "null"]}
    entry = _object({
        "name": text, "provider": text, "enabled": {"type": "boolean"},
        "source": {"type": "string", "enum": ["config", "runtime"],
                   "description": "config: config.toml has it; runtime: added by an admin"},
        "input_per_mtok": NUMBER, "output_per_mtok": NUMBER, "context_tokens": INTEGER,
        "latency_ms": NUMBER, "quality_prior": NULLABLE_NUMBER,
        "cached_input_per_mtok": NULLABLE_NUMBER, "cache_write_per_mtok": NULLABLE_NUMBER,
        "max_output_tokens": {"type": ["integer", "null"]},
        "upstream": {"anyOf": [{"type": "null"}, _object({
            "name": nullable_text, "model": text, "has_key": {"type": "boolean"}},
            required=("name", "model", "has_key"), closed=False)]},
        "overridden": {"type": "array", "items": text,
                       "description": "fields a runtime change set: they win over "
                                      "config.toml"},
    }, required=("name", "provider", "enabled", "source", "input_per_mtok", "output_per_mtok",
                 "context_tokens", "latency_ms", "quality_prior", "upstream", "overridden"),
        closed=False)
    audit = _object({
        "id": INTEGER, "at": {**NUMBER, "description": "Unix time"},
        "actor": {**nullable_text, "description": "the API key's name; null without keys"},
        "tenant": {**text, "description": "the tenant a reset was for; * for a change to "
                                          "the shared catalog"},
        "action": {"type": "string", "enum": ["model.add", "model.update", "arms.reset"]},
        "model": text, "change": {"type": "object", "description": "the fields sent"},
        "before": {"anyOf": [{"type": "null"}, _ref("CatalogModel")]},
        "after": {"anyOf": [_ref("CatalogModel"), _object(
            {"reset": {"type": "array", "items": _ref("ArmKey")}}, required=("reset",))]},
    }, required=("id", "at", "actor", "tenant", "action", "model", "change", "before",
                 "after"), closed=False)
    return {
        "CatalogModel": entry, "AuditEntry": audit,
        "CatalogModels": _object({"models": {"type": "array", "items": _ref("CatalogModel")}},
                                 required=("models",), closed=False),
        "CatalogChange": _object({
            "model": _ref("CatalogModel"),
            "audit": {"anyOf": [{"type": "null"}, _ref("AuditEntry")],
                      "description": "null when nothing changed (nothing was recorded)"}},
            required=("model", "audit"), closed=False),
        "Audit": _object({"entries": {"type": "array", "items": _ref("AuditEntry")}},
                         required=("entries",), closed=False),
    }


# --- responses ------------------------------------------------------------------------------

def _response_schemas() -> dict[str, dict]:
    explanation = _object({
        "eligible": {"type": "boolean"}, "reason": {"type": ["string", "null"]},
        "quality_mean": NUMBER, "quality_interval": INTERVAL,
        "quality_sample": NULLABLE_NUMBER, "expected_cost_usd": NUMBER,
        "expected_latency_ms": NUMBER,
        "utility": {**NULLABLE_NUMBER, "description": "utility mode: what ranked the model"},
        "value": {**NULLABLE_NUMBER, "description": "value mode: sampled quality minus the "
                  "price (and latency) penalty, counted from the chosen model's price; what "
                  "ranked the model"},
        "contending": {"type": ["boolean", "null"], "description": "value mode: false when "
                       "the model was set aside (it cannot matter at the policy's "
                       "contention_level)"},
        "cached_input_tokens": {**NUMBER, "description": "a session turn only: the input "
                                "this model's prompt cache likely holds, priced at its cached "
                                "price in expected_cost_usd"},
    }, required=("eligible", "reason", "quality_mean", "quality_interval", "quality_sample",
                 "expected_cost_usd", "expected_latency_ms", "utility", "value", "contending"),
        closed=False)
    decision = _object({
        "route_id": {"type": "string", "description": "opaque; send it back with feedback"},
        "model": {"type": "string"}, "bucket": {"type": "string"},
        "policy": {"type": "string"}, "expected_cost_usd": NUMBER,
        "expected_latency_ms": NUMBER,
        "fallbacks": {"type": "array", "items": {"type": "string"},
                      "description": "the other eligible models, best first"},
        "learned_bucket": {"anyOf": [_ref("LearnedBucket"), {"type": "null"}],
                           "description": "only with explain: the learned bucket the request "
                                          "went to (null: its rule bucket)"},
        "explanation": {"type": "object", "additionalProperties": _ref("ArmExplanation"),
                        "description": "per model, only with explain: true"},
        "session": _object({
            "session_id": {"type": "string"},
            "previous_model": {"type": ["string", "null"], "description": "the last turn's "
                               "model; null for a new or forgotten session"},
            "cached_prefix_tokens": {**INTEGER, "description": "of this prompt, what "
                                     "previous_model's cache may hold"},
            "hit_rate": {**NULLABLE_NUMBER, "description": "previous_model's learned share "
                         "of such a prefix served from cache"},
            "expires_in_s": {**NULLABLE_NUMBER, "description": "until the session is "
                             "forgotten (the provider's cache lifetime)"},
        }, required=("session_id", "previous_model", "cached_prefix_tokens"), closed=False,
            description="only with explain, for a request with session_id; this replica's "
                        "memory"),
        "objective": _object({
            "mode": {"type": "string", "enum": ["value", "utility", "cheapest_adequate"]},
            "points_per_price_doubling": NUMBER, "points_per_latency_doubling": NUMBER,
            "cost_weight": NUMBER, "latency_weight": NUMBER, "quality_target": NUMBER,
        }, required=("mode",), closed=False,
            description="only with explain: what the decision optimised, pacing included "
                        "(the weights of the policy's mode)"),
        "budget": _object({
            "name": {"type": "string"},
            "cost_weight": {**NUMBER, "description": "the cost weight used, pacing included "
                            "(for a value-mode policy: points_per_price_doubling / 10)"},
            "points_per_price_doubling": {**NUMBER, "description": "value mode: the points "
                                          "per price doubling used, pacing included"},
            "spent": {"type": "boolean", "description": "the budget is spent: the cheapest "
                                                        "eligible model was chosen"},
        }, required=("name", "cost_weight", "spent"), closed=False,
            description="only when a budget shaped the decision"),
    }, required=("route_id", "model", "bucket", "policy", "expected_cost_usd",
                 "expected_latency_ms", "fallbacks"), closed=False)
    applied = _object({
        "quality": NUMBER, "latency_ms": NUMBER, "input_tokens": INTEGER,
        "output_tokens": INTEGER, "success": {"type": "boolean"}, "cost_usd": NUMBER,
        "cached_input_tokens": INTEGER, "cache_write_tokens": INTEGER},
        description="the facts applied (quality may come from success: false)")
    feedback = _object({
        "route_id": {"type": "string"}, "policy": {"type": "string"},
        "bucket": {"type": "string"}, "model": {"type": "string"},
        "applied": applied, "quality_from_success": {"type": "boolean"},
    }, required=("route_id", "policy", "bucket", "model", "applied", "quality_from_success"),
        closed=False)
    arm = _object({
        "tenant": {"type": "string"}, "policy": {"type": "string"},
        "bucket": {"type": "string"}, "model": {"type": "string"},
        "quality_mean": NUMBER, "quality_interval": INTERVAL, "evidence": NUMBER,
        "latency_observations": NUMBER, "mean_latency_ms": NUMBER,
        "mean_cost_usd": NULLABLE_NUMBER, "share": NUMBER, "recent_decisions": INTEGER,
        "learned": {"anyOf": [_ref("LearnedBucket"), {"type": "null"}],
                    "description": "a learned bucket's label, example and size; null for a "
                                   "rule bucket"},
    }, required=("tenant", "policy", "bucket", "model", "quality_mean", "quality_interval",
                 "evidence", "latency_observations", "mean_latency_ms", "mean_cost_usd",
                 "share", "recent_decisions"), closed=False)
    arm_key = _object({"policy": {"type": "string"}, "bucket": {"type": "string"},
                       "model": {"type": "string"}}, required=("policy", "bucket", "model"),
                      closed=False)
    health = _object({
        "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
        "version": {"type": "string"},
        "storage": {"type": "string"},
        "storage_error": {"type": ["string", "null"]},
        "write_queue": INTEGER, "decisions_buffered": INTEGER, "decisions_dropped": INTEGER,
    }, required=("status", "version", "storage", "write_queue"), closed=False)
    every_code = sorted({c for codes in error_codes().values() for c in codes} | {"http_error"})
    error = _object({"error": _object({
        "code": {"type": "string", "description": "stable, machine-readable: "
                                                  + ", ".join(every_code)},
        "message": {"type": "string", "description": "for humans"},
        "field": {"type": ["string", "null"],
                  "description": "the offending field, dotted with indexes "
                                 "(constraints.models, messages[2].role), or null"},
    }, required=("code", "message", "field"))}, required=("error",),
        description="Every error the API answers, whatever the status.")
    return {"Decision": decision, "ArmExplanation": explanation, "FeedbackResult": feedback,
            **_stats_schemas(), **_catalog_schemas(),
            "LearnedBucket": _learned_bucket(), "LearnedBuckets": _object({
                "enabled": {"type": "boolean"},
                "buckets": {"type": "array", "items": _ref("LearnedBucket")}},
                required=("buckets",), closed=False),
            "Arm": arm, "Arms": _object({"arms": {"type": "array", "items": _ref("Arm")}},
                                        required=("arms",), closed=False),
            "ArmKey": arm_key,
            "ResetResult": _object({"reset": {"type": "array", "items": _ref("ArmKey")}},
                                   required=("reset",), closed=False),
            "Health": health, "Error": error,
            "ModelList": _object({
                "object": {"const": "list"},
                "data": {"type": "array", "items": _object({
                    "id": {"type": "string"}, "object": {"const": "model"},
                    "owned_by": {"type": "string"},
                    "policy": {"type": "string", "description": "for an alias"},
                    "routable": {"type": "boolean",
                                 "description": "for a model: it has an upstream"},
                }, required=("id", "object", "owned_by"), closed=False)}},
                required=("object", "data"), closed=False),
            "UpstreamError": _object({"error": _object({
                "code": {"type": "string", "enum": [UPSTREAM_FAILED]},
                "message": {"type": "string"}, "field": {"type": ["string", "null"]},
                "type": {"type": "string"}, "param": {"type": ["string", "null"]},
            }, required=("code", "message", "field"), closed=False)}, required=("error",),
                description="OpenAI's error shape, which its SDKs read, with our code and "
                            "field")}


CACHE_FIGURES = {
    "cached_input_tokens": {"type": "number", "description": "input tokens read from a "
                            "provider's prompt cache (part of input_tokens)"},
    "cache_hit_rate": {"type": ["number", "null"],
                       "description": "cached_input_tokens / input_tokens"},
    "cache_savings_usd": {"type": "number", "description": "what the cache saved against "
                          "full input price (cache writes dearer than input count against "
                          "it)"},
}


EFFECTIVE_FIGURES = {
    "effective_spend_usd": {**NUMBER, "description": "at the [[commitments]]' prices: "
                            "discounted inside a commitment's capacity, list price past it "
                            "(spend_usd without commitments)"},
    "effective_reference_usd": {**NUMBER, "description": "reference_usd at the commitments' "
                                "prices, as if the reference model had served the traffic"},
    "effective_savings_usd": NUMBER, "effective_savings_pct": NULLABLE_NUMBER,
}


def _stats_schemas() -> dict[str, dict]:
    figures = {
        "decisions": INTEGER, "feedback": {**INTEGER, "description": "routes with feedback"},
        "feedback_rate": NULLABLE_NUMBER,
        "spend_usd": {**NUMBER, "description": "at list prices"},
        "reference_usd": {**NUMBER, "description": "the same tokens at the reference model's "
                                                   "prices"},
        "savings_usd": {**NUMBER, "description": "reference_usd minus the spend of calls "
                                                 "with token counts"},
        "savings_pct": NULLABLE_NUMBER, **EFFECTIVE_FIGURES, "mean_quality": NULLABLE_NUMBER,
        "input_tokens": NUMBER, "output_tokens": NUMBER, **CACHE_FIGURES}
    shares = {"type": "object", "additionalProperties": NUMBER}
    group = _object({"tenant": {"type": "string"}, "policy": {"type": "string"},
                     "bucket": {"type": "string"}, **figures, "share": shares,
                     "spend_by_model": shares},
                    required=("tenant", "policy", "bucket", *figures, "share"), closed=False)
    point = _object({"hour": NUMBER, "tenant": {"type": "string"},
                     "policy": {"type": "string"}, "bucket": {"type": "string"},
                     "model": {"type": "string"}, "decisions": INTEGER, "spend_usd": NUMBER},
                    required=("hour", "policy", "bucket", "model", "decisions"), closed=False)
    budget = _object({
        "name": {"type": "string"}, "tenant": {"type": ["string", "null"]},
        "policy": {"type": ["string", "null"]},
        "window": {"type": "string", "enum": ["hour", "day", "month"]},
        "start": NUMBER, "end": NUMBER, "limit_usd": NUMBER,
        "spent_usd": {**NULLABLE_NUMBER, "description": "every covered tenant's spend at "
                                                        "effective prices; null for a "
                                                        "shared budget unless the caller "
                                                        "is an operator"},
        "remaining_usd": NULLABLE_NUMBER,
        "tenant_spent_usd": {**NULLABLE_NUMBER, "description": "the caller's tenant's share "
                                                               "of spent_usd"},
        "max_tenant_share": NUMBER,
        "pace": NULLABLE_NUMBER, "pacing": {"type": "boolean"},
        "cost_weight_added": NULLABLE_NUMBER, "cost_weight": NULLABLE_NUMBER,
        "exhausted": {"type": "boolean"},
        "when_spent": {"type": "string", "enum": ["cheapest", "refuse"]},
    }, required=("name", "window", "limit_usd", "spent_usd", "remaining_usd", "exhausted"),
        closed=False)
    model = _object({"model": {"type": "string"}, "decisions": INTEGER, "share": NUMBER,
                     "spend_usd": NUMBER,
                     "effective_spend_usd": EFFECTIVE_FIGURES["effective_spend_usd"],
                     "mean_quality": NULLABLE_NUMBER,
                     "cost_per_request_usd": NULLABLE_NUMBER, **CACHE_FIGURES},
                    required=("model", "decisions", "share", "spend_usd"), closed=False)
    commitment = _object({
        "name": {"type": "string"}, "provider": {"type": ["string", "null"]},
        "model": {"type": ["string", "null"]},
        "window": {"type": "string", "enum": ["hour", "day", "month"]},
        "start": NUMBER, "end": NUMBER, "amount_usd": NULLABLE_NUMBER, "discount": NUMBER,
        "capacity_usd": {**NULLABLE_NUMBER, "description": "list-price usage the amount "
                         "buys: amount_usd / (1 - discount); null for a flat discount"},
        "used_usd": {**NUMBER, "description": "list-price usage of the covered models in the "
                     "window"},
        "remaining_usd": NULLABLE_NUMBER,
        "forecast_usd": {**NULLABLE_NUMBER, "description": "usage by the window's end at the "
                         "pace so far"},
        "left_on_table_usd": {**NULLABLE_NUMBER, "description": "paid for and forecast "
                              "unused: (capacity - forecast) x (1 - discount)"},
        "price_factor": {**NUMBER, "description": "the multiple of list price the covered "
                         "models are priced at in decisions now"},
        "pacing": {"type": "boolean"},
    }, required=("name", "window", "used_usd", "price_factor"), closed=False)
    lane = _object({
        "key": {"type": "string"}, "policy": {"type": ["string", "null"]},
        "bucket": {"type": "string"},
        "label": {"type": ["string", "null"], "description": "a name to show for the bucket "
                                                             "(a learned bucket's), if any"},
        "decisions": INTEGER,
        "folded": {"type": "array", "items": {"type": "string"},
                   "description": "for \"other\": the quieter buckets summed into it"},
        "models": {"type": "object", "additionalProperties": {"type": "array",
                                                               "items": INTEGER}},
    }, required=("key", "bucket", "decisions", "models"), closed=False)
    timeline = _object({
        "slot_s": INTEGER, "unit": {"type": "string"}, "start": NUMBER, "slots": INTEGER,
        "buckets": {"type": "array", "items": lane,
                    "description": "busiest first; the quietest summed into \"other\""},
    }, required=("slot_s", "unit", "start", "slots", "buckets"), closed=False,
        description="decisions per slot, bucket and model from the first decision on; the "
                    "slot fits the history (a minute for a short one, up to a day)")
    stats = _object({
        "window": {"type": "string"}, "since": NUMBER, "until": NUMBER,
        "reference_model": {"type": "string"},
        "prices": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "which prices each figure is at: spend_usd at list, "
                                  "effective_spend_usd at the commitments', budgets at "
                                  "effective"},
        "totals": _object(figures, closed=False),
        "groups": {"type": "array", "items": group},
        "models": {"type": "array", "items": model, "description": "per model, busiest first"},
        "series": {"type": "array", "items": point},
        "timeline": timeline,
        "colors": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "each model's colour (bandit_router/core/palette.py), the same "
                                  "as in the benchmark figures"},
        "budgets": {"type": "array", "items": _ref("BudgetStatus")},
        "commitments": {"type": "array", "items": commitment,
                        "description": "operator keys only: each [[commitments]] entry's "
                                       "utilisation in its current window (docs/sessions.md)"},
        "learned_buckets": {"type": "array", "items": _ref("LearnedBucket")},
    }, required=("window", "since", "until", "reference_model", "prices", "totals", "groups",
                 "models", "series", "timeline", "colors", "budgets"), closed=False)
    return {"Stats": stats, "BudgetStatus": budget}


def _stats_parameters(config: Config | None) -> list[dict]:
    models = [m.name for m in config.models] if config else None
    return [
        {"name": "window", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(WINDOW_HOURS), "default": "day"}},
        *({"name": name, "in": "query", "required": False,
           "schema": _names(MAX_RESET_NAME, names, text)}
          for name, names, text in (
              ("policy", list(config.policies) if config else None, "only this policy"),
              ("bucket", list(config.buckets.names) if config else None, "only this bucket"),
              ("reference", models, "the model savings are measured against"),
              ("tenant", None, "another tenant's usage, or * for every tenant's (operator "
                               "keys only)")))]


def _error_response(status: int, codes: tuple[str, ...]) -> dict:
    schema = {"allOf": [_ref("Error"), {"properties": {"error": {"properties": {
        "code": {"enum": list(codes)}}}}}]}
    return _json(schema, f"{_STATUS_TEXT[status]}. Codes: {', '.join(codes)}.")


# --- the document ---------------------------------------------------------------------------

def _security(config: Config | None) -> list[dict]:
    """Either key form; with no keys configured, none is needed (the empty requirement)."""
    keyed = [{"bearerAuth": []}, {"apiKeyHeader": []}]
    return keyed if config is not None and not config.auth.open else [*keyed, {}]


def _operation(op_id: str, summary: str, ok: dict, method: str, path: str,
               config: Config | None, codes: dict[int, tuple[str, ...]],
               body: dict | None = None, **extra: Any) -> dict:
    out: dict[str, Any] = {"operationId": op_id, "summary": summary, **extra}
    if body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    responses = {"200": ok}
    if path in PUBLIC_PATHS:
        out["security"] = []
    else:
        scope = SCOPE_OF[(method, path)]
        out["security"] = _security(config)
        out["x-scope"] = scope
        for status in OPERATION_ERRORS[(method, path)]:
            wanted = OPERATION_CODES.get((method, path), {}).get(status, codes[status])
            if status == 404:
                wanted = tuple(c for c in wanted if c != "not_found")
            responses[str(status)] = _error_response(status, wanted)
    responses["default"] = {"$ref": "#/components/responses/Error"}
    out["responses"] = responses
    return out


def build(config: Config | None = None, bodies: Bodies | None = None) -> dict:
    """The OpenAPI document. With a `config`, it names that deployment's policies, buckets
    and models and uses its limits; without, the defaults and free-form names. `bodies`:
    the server's body classes (built from the config's limits when not given)."""
    server = config.server if config is not None else ServerConfig()
    requests, request_components = _request_schemas(bodies or Bodies.build(server), config)
    codes = error_codes()
    keyed = config is not None and not config.auth.open
    auth_note = ("API keys are configured on this server: every /v1 operation needs one."
                 if keyed else
                 "No API keys are configured on this server: the security schemes apply only "
                 "when keys are configured, and requests without a key are served.")

    def op(*args: Any, **kwargs: Any) -> dict:
        return _operation(*args, config=config, codes=codes, **kwargs)

    paths = {
        "/v1/route": {"post": op(
            "route", "Pick a model for a prompt",
            _json(_ref("Decision"), "The decision"), "post", "/v1/route",
            body=requests["/v1/route"],
            description="Scope: route. The request body is at most server.max_body_bytes "
                        f"({server.max_body_bytes}) bytes.")},
        "/v1/feedback": {"post": op(
            "feedback", "Report how a routed call went",
            _json(_ref("FeedbackResult"), "The facts were committed and applied",
                  headers={"Idempotent-Replayed": {
                      "description": "true when this answers a resend of an idempotency_key",
                      "schema": {"type": "string", "enum": ["true"]}}}),
            "post", "/v1/feedback", body=requests["/v1/feedback"],
            description="Scope: feedback. Answered after the feedback is committed.")},
        "/v1/arms": {"get": op(
            "arms", "What the router has learned, for the caller's tenant",
            _json(_ref("Arms"), "One row per (policy, bucket, model) arm"), "get", "/v1/arms",
            parameters=[{"name": name, "in": "query", "required": False,
                         "schema": _names(MAX_RESET_NAME, names, f"only this {name}")}
                        for name, names in (
                            ("policy", list(config.policies) if config else None),
                            ("bucket", list(config.buckets.names) if config else None))],
            description="Any valid key. Other query parameters are refused (400).")},
        "/v1/stats": {"get": op(
            "stats", "Spend, savings, quality and traffic shares over a window; budgets",
            _json(_ref("Stats"), "For the caller's tenant"), "get", "/v1/stats",
            parameters=_stats_parameters(config),
            description="Any valid key. Windows are whole UTC hours, the current one "
                        "included: hour (1), day (24), week (168), month (720). Savings are "
                        "against spend.reference_model (default: the priciest model). Other "
                        "query parameters are refused (400).")},
        "/v1/admin/reset": {"post": op(
            "reset", "Forget what the caller's tenant learned for the matching arms",
            _json(_ref("ResetResult"), "The arms that were reset"), "post", "/v1/admin/reset",
            body=requests["/v1/admin/reset"], description="Scope: admin.")},
        "/v1/admin/models": {
            "get": op("list_models", "The live catalog: config.toml with runtime changes",
                      _json(_ref("CatalogModels"), "Every model, disabled ones included"),
                      "get", "/v1/admin/models", description="Scope: admin."),
            "post": op("add_model", "Add a model to the catalog",
                       _json(_ref("CatalogChange"), "Committed with its audit row; routed "
                                                    "from the next decision on"),
                       "post", "/v1/admin/models", body=requests["/v1/admin/models"],
                       description="Scope: admin. Its arms start from the prior, and "
                                   "Thompson sampling explores it.")},
        "/v1/admin/models/{name}": {"patch": op(
            "update_model", "Enable or disable a model, change its prices or context",
            _json(_ref("CatalogChange"), "Committed with its audit row; in effect from the "
                                         "next decision on"),
            "patch", "/v1/admin/models/{name}", body=requests["/v1/admin/models/{name}"],
            parameters=[{"name": "name", "in": "path", "required": True,
                         "schema": {"type": "string", "minLength": 1,
                                    "not": {"enum": [".", ".."]}}}],
            description="Scope: admin. A disabled model keeps its arms' evidence.")},
        "/v1/admin/buckets": {
            "get": op("learned_buckets", "The caller's tenant's learned buckets",
                      _json(_ref("LearnedBuckets"), "Each with its label, example and size"),
                      "get", "/v1/admin/buckets",
                      parameters=[{"name": "policy", "in": "query", "required": False,
                                   "schema": {"type": "string"}}],
                      description="Scope: admin."),
            "post": op("change_bucket", "Pin, unpin or reset a learned bucket",
                       _json(_ref("LearnedBuckets"), "Committed with its audit row"),
                       "post", "/v1/admin/buckets", body=requests["/v1/admin/buckets"],
                       description="Scope: admin (the caller's tenant).")},
        "/v1/admin/audit": {"get": op(
            "audit", "The audit log of admin changes, newest first",
            _json(_ref("Audit"), "Who, when, what, and the model before and after"),
            "get", "/v1/admin/audit",
            parameters=[
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1,
                            "maximum": catalog_wire.MAX_AUDIT_LIMIT,
                            "default": catalog_wire.DEFAULT_AUDIT_LIMIT}},
                {"name": "model", "in": "query", "required": False,
                 "schema": _string(MAX_MODEL_NAME, "only this model's")},
                {"name": "before", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 2**62,
                            "description": "only entries with a smaller id (paging)"}}],
            description="Scope: admin. Other query parameters are refused (400).")},
        "/v1/chat/completions": {"post": op(
            "chat_completions", "OpenAI-compatible: route, then forward to the model's upstream",
            {"description": "The upstream's answer, unchanged but for model (the one that "
                            "answered); an SSE stream with stream: true",
             "headers": {name: {"description": text, "schema": {"type": "string"}}
                         for name, text in (("x-route-id", "send it back with feedback"),
                                            ("x-routed-model", "the model that answered"),
                                            ("x-route-bucket", "the request's bucket"))},
             "content": {JSON: {"schema": {"type": "object"}},
                         "text/event-stream": {"schema": {"type": "string"}}}},
            "post", "/v1/chat/completions", body=requests["/v1/chat/completions"],
            description="Scope: route. Only models with an upstream (models[].upstream) are "
                        "eligible; 400 no_upstream when the named model, or every model, has "
                        "none. An upstream's own "
                        "refusal of the request (a 4xx other than 429) is passed on as it came, "
                        "with its status and body; 502 when every attempt failed.")},
        "/v1/models": {"get": op(
            "models", "The gateway's aliases and the catalog's models",
            _json(_ref("ModelList"), "OpenAI's model list"), "get", "/v1/models",
            description="Any valid key.")},
        "/metrics": {"get": op(
            "metrics", "Prometheus metrics",
            {"description": "The Prometheus text format (OpenMetrics when the Accept header "
                            "asks for it)",
             "content": {"text/plain": {"schema": {"type": "string"}},
                         "application/openmetrics-text": {"schema": {"type": "string"}}}},
            "get", "/metrics",
            description="Scope: admin. With keys configured, the series labelled with a "
                        "tenant are the caller's tenant's only; without keys, every "
                        "tenant's. docs/metrics.md lists the metrics.")},
        "/dashboard": {"get": op(
            "dashboard", "The dashboard page (public; its data needs a key)",
            {"description": "One self-contained HTML page that reads /v1/stats and /v1/arms",
             "content": {"text/html": {"schema": {"type": "string"}}}},
            "get", "/dashboard",
            description="Needs no key: the page holds no data. With keys configured it asks "
                        "for one (or takes #key=... from the URL fragment) and sends it with "
                        "its requests.")},
        "/healthz": {"get": op(
            "healthz", "Liveness and storage health (public)",
            _json(_ref("Health"), "Serving (status ok, or degraded while writes fail)"),
            "get", "/healthz", description="Needs no key.")},
        "/openapi.json": {"get": op(
            "openapi", "This document (public)",
            _json({"type": "object"}, "The OpenAPI document"), "get", "/openapi.json",
            description="Needs no key.")},
    }
    paths["/v1/chat/completions"]["post"]["responses"]["502"] = _json(
        _ref("UpstreamError"), "Every upstream attempt failed (429, 5xx, timeouts)")
    paths["/healthz"]["get"]["responses"]["503"] = _json(
        _ref("Health"), "The storage writer has stopped")
    paths["/v1/route"]["post"]["responses"]["200"]["links"] = {
        "feedback": {"operationId": "feedback",
                     "requestBody": {"route_id": "$response.body#/route_id", "quality": 1.0},
                     "description": "report how the routed call went"}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "bandit-router",
            "version": __version__,
            "description": "Self-hosted LLM router: picks the cheapest model that is good "
                           "enough, learning from live feedback. All bodies are JSON; every "
                           "error is {\"error\": {\"code\", \"message\", \"field\"}}. "
                           + auth_note,
        },
        "paths": paths,
        "components": {
            "schemas": {**request_components, **_response_schemas()},
            "responses": {"Error": _json(_ref("Error"), "Any other error (404 not_found for "
                                                        "an unknown path, 405 "
                                                        "method_not_allowed, 500 internal)")},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "'Authorization: Bearer <key>'. Applies only "
                                              "when [[auth.keys]] are configured."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": "'X-API-Key: <key>'. Applies only when "
                                                "[[auth.keys]] are configured."},
            },
        },
    }


class Served:
    """The document as served: built once at start, and again only when the live config
    changes (a model added or changed at run time, here or on another replica)."""

    def __init__(self, bodies: Bodies) -> None:
        self._bodies = bodies
        self._config: Config | None = None
        self._body = b""

    def body(self, config: Config) -> bytes:
        if config is not self._config:
            if self._config is None or config != self._config:
                self._body = orjson.dumps(build(config, self._bodies))
            self._config = config
        return self._body
