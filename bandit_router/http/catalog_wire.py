"""The admin model endpoints' bodies, read into `Change`s with the config file's rules (the
same bounds `config._model` applies), and errors that name the field.

A model's upstream is named, never given: `upstream` must be one of config.toml's
[upstreams], so no caller can choose where the gateway sends a call or which credential it
carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import UNSET

from bandit_router.core.cache_prices import cache_price_problem
from bandit_router.core.catalog_changes import UPDATE_FIELDS, Change, Upstreams
from bandit_router.core.errors import InvalidField, MissingField, UnknownUpstream
from bandit_router.core.names import name_problem
from bandit_router.http.schemas.admin import (
    ADD_FIELDS,
    DEFAULT_PROVIDER,
    MAX_MODEL_NAME,
    PATCH_FIELDS,
    AddModelBody,
    UpdateModelBody,
)
from bandit_router.http.schemas.decode import convert

__all__ = ["ADD_FIELDS", "AUDIT_QUERY", "PATCH_FIELDS", "parse_add", "parse_audit_query",
           "parse_update"]
AUDIT_QUERY = frozenset({"limit", "model", "before"})
MAX_AUDIT_LIMIT = 1000
DEFAULT_AUDIT_LIMIT = 100


def _model_name(value: str) -> str:
    """A model's name follows the rule config.toml's do (core/names.py): it rides in every
    route_id, so it is short and plain."""
    problem = name_problem(value)
    if problem is not None:
        raise InvalidField(f"name {problem}", "name")
    return value


def _name(value: str, field: str) -> str:
    # "." and ".." could not be named in a URL path (clients resolve them away)
    if not value or value != value.strip() or value in (".", "..") or \
            any(not c.isprintable() for c in value):
        raise InvalidField(f"{field} must be a non-empty name without surrounding spaces or "
                           f"control characters, and not '.' or '..'", field)
    return value


def _longest(longest: int | None, context: int | None) -> int | None:
    """max_output_tokens, within the context window sent with it."""
    if longest is not None and context is not None and longest > context:
        raise InvalidField(f"max_output_tokens must be between 1 and {context} (its "
                           f"context_tokens); got {longest}", "max_output_tokens")
    return longest


def _cache_prices(fields: dict[str, Any]) -> None:
    problem = cache_price_problem(fields["input_per_mtok"], fields)
    if problem is not None:
        raise InvalidField(f"{problem[0]} {problem[1]}", problem[0])


def _upstream(name: Any, model: str | None, upstreams: Upstreams) -> dict[str, Any] | None:
    """{name, model} of a declared upstream, or None when the body names none."""
    if name is None or name is UNSET:
        if model is not None:
            raise InvalidField("upstream_model goes with upstream", "upstream_model")
        return None
    if name not in upstreams:
        declared = ", ".join(sorted(upstreams)) or "none is declared"
        raise UnknownUpstream(f"upstream {name!r} is not declared in config.toml "
                              f"([upstreams]: {declared})", "upstream")
    spec: dict[str, Any] = {"name": name}
    if model is not None:
        spec["model"] = _name(model, "upstream_model")
    return spec


def parse_add(data: Any, default_latency_ms: float, upstreams: Upstreams) -> Change:
    """POST /v1/admin/models. The stored change is complete (defaults filled in), so a
    replay never depends on the catalog it is replayed over."""
    body = convert(data, AddModelBody)
    name = _model_name(body.name)
    fields: dict[str, Any] = {
        "provider": DEFAULT_PROVIDER if body.provider is None else
        _name(body.provider, "provider"),
        "input_per_mtok": float(body.input_per_mtok),
        "output_per_mtok": float(body.output_per_mtok),
        "context_tokens": body.context_tokens,
    }
    longest = _longest(body.max_output_tokens, body.context_tokens)
    if longest is not None:
        fields["max_output_tokens"] = longest
    for key in ("cached_input_per_mtok", "cache_write_per_mtok"):
        value = getattr(body, key)
        if value is not None:
            fields[key] = float(value)
    _cache_prices(fields)
    fields["latency_ms"] = body.latency_ms or default_latency_ms
    fields["quality_prior"] = body.quality_prior
    upstream = _upstream(body.upstream, body.upstream_model, upstreams)
    if upstream is not None:
        fields["upstream"] = upstream
    return Change("add", name, fields)


def parse_update(name: str, data: Any, upstreams: Upstreams) -> Change:
    """PATCH /v1/admin/models/{name}: enable/disable, prices, context window, upstream. A
    field sent as null releases its runtime override: config.toml's value applies again."""
    body = convert(data, UpdateModelBody)
    context = body.context_tokens or None
    _longest(body.max_output_tokens or None, context)
    fields: dict[str, Any] = {}
    for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                "cache_write_per_mtok", "context_tokens", "max_output_tokens"):
        value = getattr(body, key)
        if value is not UNSET:  # null releases
            fields[key] = float(value) if key.endswith("_mtok") and value is not None \
                else value
    released = {key: None for key in sorted(fields) if fields[key] is None}
    fields = {**{k: v for k, v in fields.items() if v is not None}, **released}
    if body.upstream is None:
        fields["upstream"] = None  # released
    upstream = _upstream(body.upstream, body.upstream_model, upstreams)
    if upstream is not None:
        fields["upstream"] = upstream
    if body.enabled is not None:
        fields["enabled"] = body.enabled
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
