"""The admin model endpoints' bodies, read into `Change`s with the config file's rules (the
same bounds `config._model` applies), and errors that name the field."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bandit_router.catalog_changes import UPDATE_FIELDS, Change
from bandit_router.errors import InvalidField, MissingField
from bandit_router.types import MAX_LATENCY_MS, MAX_TOKENS
from bandit_router.validate import Fields

ADD_FIELDS = frozenset({"name", "provider", "input_per_mtok", "output_per_mtok",
                        "context_tokens", "latency_ms", "quality_prior", "upstream"})
UPSTREAM_FIELDS = frozenset({"base_url", "model", "key_env"})
AUDIT_QUERY = frozenset({"limit", "model", "before"})
MAX_MODEL_NAME = 128
MAX_PROVIDER = 64
MAX_URL = 2048
MAX_ENV_NAME = 256
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
    return out


def _upstream(body: Fields, environ: Mapping[str, str]) -> dict[str, Any] | None:
    spec = body.object("upstream", UPSTREAM_FIELDS)
    if spec is None:
        return None
    base_url = spec.string("base_url", required=True, max_len=MAX_URL)
    if not base_url.startswith(("http://", "https://")) or len(base_url) < 9:
        raise InvalidField("upstream.base_url must be an http:// or https:// URL",
                           "upstream.base_url")
    out: dict[str, Any] = {"base_url": base_url.rstrip("/")}
    model = spec.string("model", max_len=MAX_MODEL_NAME * 2)
    if model is not None:
        out["model"] = _name(model, "upstream.model")
    key_env = spec.string("key_env", max_len=MAX_ENV_NAME)
    if key_env is not None:
        # as the config file: a key the server cannot read is a mistake to report now
        if not environ.get(_name(key_env, "upstream.key_env")):
            raise InvalidField(f"environment variable {key_env} is not set on the server",
                               "upstream.key_env")
        out["key_env"] = key_env
    return out


def parse_add(data: Any, default_latency_ms: float,
              environ: Mapping[str, str] = os.environ) -> Change:
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
    upstream = _upstream(body, environ)
    if upstream is not None:
        fields["upstream"] = upstream
    return Change("add", name, fields)


def parse_update(name: str, data: Any) -> Change:
    """PATCH /v1/admin/models/{name}: enable/disable, prices, context window."""
    body = Fields(data, allowed=UPDATE_FIELDS)
    fields = _prices(body, required=False)
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
