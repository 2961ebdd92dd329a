"""The admin model endpoints' bodies, read into `Change`s with the config file's rules (the
same bounds `config._model` applies), and errors that name the field.

A model's upstream is named, never given: `upstream` must be one of config.toml's
[upstreams], so no caller can choose where the gateway sends a call or which credential it
carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bandit_router.core.catalog_changes import RELEASABLE, UPDATE_FIELDS, Change, Upstreams
from bandit_router.core.errors import InvalidField, MissingField, UnknownUpstream
from bandit_router.core.types import MAX_LATENCY_MS, MAX_TOKENS
from bandit_router.http.validate import Fields

ADD_FIELDS = frozenset({"name", "provider", "input_per_mtok", "output_per_mtok",
                        "context_tokens", "max_output_tokens", "latency_ms", "quality_prior",
                        "upstream", "upstream_model"})
PATCH_FIELDS = UPDATE_FIELDS | {"upstream_model"}
AUDIT_QUERY = frozenset({"limit", "model", "before"})
MAX_MODEL_NAME = 128
MAX_PROVIDER = 64
MAX_PRICE = 100_000.0  # USD per million tokens; beyond it is a unit mistake
MAX_AUDIT_LIMIT = 1000
DEFAULT_AUDIT_LIMIT = 100
DEFAULT_PROVIDER = "custom"
QUALITY_PRIOR = (0.01, 0.99)  # as in the config: keeps the Beta prior numerically sound


def _name(value: str | None, field: str) -> str:
    # "." and ".." could not be named in a URL path (clients resolve them away)
    if value is None or not value or value != value.strip() or value in (".", "..") or \
            any(not c.isprintable() for c in value):
        raise InvalidField(f"{field} must be a non-empty name without surrounding spaces or "
                           f"control characters, and not '.' or '..'", field)
    return value


def _prices(body: Fields, required: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("input_per_mtok", "output_per_mtok"):
        value = body.number(key, 0.0, MAX_PRICE, required=required)
        if value is not None:
            out[key] = value
    context = body.integer("context_tokens", 1, MAX_TOKENS, required=required)
    if context is not None:
        out["context_tokens"] = context
    longest = body.integer("max_output_tokens", 1, context or MAX_TOKENS)
    if longest is not None:
        out["max_output_tokens"] = longest
    return out


def _upstream(body: Fields, upstreams: Upstreams) -> dict[str, Any] | None:
    """{name, model} of a declared upstream, or None when the body names none."""
    raw = body.raw("upstream")
    if raw is None:
        if body.raw("upstream_model") is not None:
            raise InvalidField("upstream_model goes with upstream", "upstream_model")
        return None
    if not isinstance(raw, str):
        raise InvalidField("upstream must be the name of an upstream declared in config.toml "
                           "([upstreams.<name>]); URLs and keys are not accepted at run time",
                           "upstream")
    if not raw or len(raw) > MAX_MODEL_NAME:
        raise InvalidField(f"upstream must be a name of 1 to {MAX_MODEL_NAME} characters",
                           "upstream")
    if raw not in upstreams:
        declared = ", ".join(sorted(upstreams)) or "none is declared"
        raise UnknownUpstream(f"upstream {raw[:MAX_MODEL_NAME]!r} is not declared in config.toml "
                           f"([upstreams]: {declared})", "upstream")
    spec: dict[str, Any] = {"name": raw}
    model = body.string("upstream_model", max_len=MAX_MODEL_NAME * 2)
    if model is not None:
        spec["model"] = _name(model, "upstream_model")
    return spec


def parse_add(data: Any, default_latency_ms: float, upstreams: Upstreams) -> Change:
    """POST /v1/admin/models. The stored change is complete (defaults filled in), so a
    replay never depends on the catalog it is replayed over."""
    body = Fields(data, allowed=ADD_FIELDS)
    name = _name(body.string("name", required=True, max_len=MAX_MODEL_NAME), "name")
    fields: dict[str, Any] = {
        "provider": _name(body.string("provider", max_len=MAX_PROVIDER), "provider")
        if body.raw("provider") is not None else DEFAULT_PROVIDER,
        **_prices(body, required=True),
        "latency_ms": body.number("latency_ms", 0.0, MAX_LATENCY_MS, above=True)
        or default_latency_ms,
        "quality_prior": body.number("quality_prior", *QUALITY_PRIOR),
    }
    upstream = _upstream(body, upstreams)
    if upstream is not None:
        fields["upstream"] = upstream
    return Change("add", name, fields)


def parse_update(name: str, data: Any, upstreams: Upstreams) -> Change:
    """PATCH /v1/admin/models/{name}: enable/disable, prices, context window, upstream. A
    field sent as null releases its runtime override: config.toml's value applies again."""
    body = Fields(data, allowed=PATCH_FIELDS)
    released = {key: None for key in sorted(RELEASABLE) if key in data and data[key] is None}
    fields: dict[str, Any] = {**_prices(body, required=False), **released}
    upstream = _upstream(body, upstreams)
    if upstream is not None:
        fields["upstream"] = upstream
    enabled = body.boolean("enabled")
    if enabled is not None:
        fields["enabled"] = enabled
    if not fields:
        raise MissingField(f"send at least one of {', '.join(sorted(UPDATE_FIELDS))}")
    return Change("update", name, fields)


def parse_audit_query(query: Mapping[str, str]) -> tuple[int, str | None, int | None]:
    """(limit, model, before id) of GET /v1/admin/audit."""
    def integer(key: str, lo: int, hi: int) -> int | None:
        raw = query.get(key)
        if raw is None:
            return None
        if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
            raise InvalidField(f"{key} must be an integer between {lo} and {hi}", key)
        return int(raw)

    limit = integer("limit", 1, MAX_AUDIT_LIMIT) or DEFAULT_AUDIT_LIMIT
    model = query.get("model")
    if model is not None and len(model) > MAX_MODEL_NAME:
        raise InvalidField(f"model is longer than {MAX_MODEL_NAME} characters", "model")
    return limit, model, integer("before", 1, 2**62)
