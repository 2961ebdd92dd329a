"""The admin bodies: a model to add to the catalog, a change to one, a learned bucket's pin,
unpin or reset. A model's bounds and help are read from `Model`'s settings (core/settings.py),
the one definition config.toml's reader also applies; the rules across fields (a name's
form, max_output_tokens within context_tokens, cache prices within the input price, an
upstream declared in config.toml) are in http/catalog_wire.py and core/catalog_changes.py.

No `from __future__ import annotations`: msgspec reads these annotations."""

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from bandit_router.core.names import MAX_NAME
from bandit_router.core.setting import fields_of
from bandit_router.core.settings import Model
from bandit_router.http.schemas.bodies import MAX_RESET_NAME
from bandit_router.storage.learned_store import ACTIONS

MAX_MODEL_NAME = MAX_NAME
MAX_PROVIDER = 64
MAX_UPSTREAM_MODEL = 256  # the model's name at the upstream: not in route_ids, so longer
DEFAULT_PROVIDER = "custom"
AT_LEAST_ONE = {"minProperties": 1}  # a change of nothing is refused (catalog_wire)
RELEASE = "; null: release the runtime value (config.toml's applies)"
_RULES = {s.key: s for s in fields_of(Model)}


def _field(key: str, kind: Any, default: str = "", nullable: bool = False) -> Any:
    """`kind` with Model's bounds and help for `key`, as msgspec constraints and an OpenAPI
    description; `default`: what an absent field becomes on the API (not always config.toml's
    default); `nullable`: a PATCH field, whose null releases the runtime value."""
    s = _RULES[key]
    bounds = {name: value for name, value in (("ge", s.lo), ("le", s.hi), ("gt", s.above))
              if value is not None}
    text = s.help + (f" (default: {default})" if default else "") + (RELEASE if nullable else "")
    bounded = Annotated[kind, Meta(**bounds)]
    return Annotated[bounded | None if nullable else bounded, Meta(description=text)]


_Upstream = Annotated[str, Meta(min_length=1, max_length=MAX_MODEL_NAME, description=(
    "for the gateway: the name of an upstream declared in config.toml ([upstreams.<name>])"))]
_UpstreamModel = Annotated[str, Meta(min_length=1, max_length=MAX_UPSTREAM_MODEL, description=(
    "the model's name at the upstream (default: name)"))]


class AddModelBody(Struct, forbid_unknown_fields=True):
    """A model to add to the catalog, checked as config.toml is."""

    name: Annotated[str, Meta(min_length=1, max_length=MAX_MODEL_NAME,
                              description=_RULES["name"].help + " (unique)")]
    input_per_mtok: _field("input_per_mtok", float)
    output_per_mtok: _field("output_per_mtok", float)
    context_tokens: _field("context_tokens", int)
    provider: Annotated[str, Meta(min_length=1, max_length=MAX_PROVIDER, description=(
        f"{_RULES['provider'].help} (default {DEFAULT_PROVIDER!r})"))] | None = None
    max_output_tokens: _field("max_output_tokens", int, "context_tokens") | None = None
    latency_ms: _field("latency_ms", float, "the enabled models' median") | None = None
    quality_prior: _field("quality_prior", float, "the policy's") | None = None
    cached_input_per_mtok: _field("cached_input_per_mtok", float, "input_per_mtok") | None = None
    cache_write_per_mtok: _field("cache_write_per_mtok", float, "input_per_mtok") | None = None
    upstream: _Upstream | None = None
    upstream_model: _UpstreamModel | None = None


def _change(key: str, kind: Any) -> Any:
    return _field(key, kind, nullable=True) | UnsetType


class UpdateModelBody(Struct, forbid_unknown_fields=True):
    """What to change; at least one field. A price, token limit or upstream set to null
    returns to config.toml's."""

    input_per_mtok: _change("input_per_mtok", float) = UNSET
    output_per_mtok: _change("output_per_mtok", float) = UNSET
    cached_input_per_mtok: _change("cached_input_per_mtok", float) = UNSET
    cache_write_per_mtok: _change("cache_write_per_mtok", float) = UNSET
    context_tokens: _change("context_tokens", int) = UNSET
    max_output_tokens: _change("max_output_tokens", int) = UNSET
    upstream: Annotated[_Upstream | None, Meta(description=RELEASE[2:])] | UnsetType = UNSET
    upstream_model: _UpstreamModel | None = None
    enabled: Annotated[bool, Meta(description="false: no traffic from the next decision on; "
                                              "evidence is kept")] | None = None


class BucketChangeBody(Struct, forbid_unknown_fields=True):
    """Pin, unpin or reset a learned bucket."""

    action: Annotated[Literal[tuple(ACTIONS)], Meta(description=(
        "pin: refinement leaves it as it is; reset: forget the learned bucket (or, naming a "
        "rule bucket, all of its children); evidence is kept in the rule bucket"))]
    bucket: Annotated[str, Meta(max_length=MAX_RESET_NAME, description=(
        "a learned bucket (task:level/k), or a rule bucket to reset"))]
    policy: Annotated[str, Meta(max_length=MAX_RESET_NAME,
                                description="default: the default policy")] | None = None
    tenant: Annotated[str, Meta(max_length=MAX_RESET_NAME, description=(
        "another tenant's (operator keys only)"))] | None = None


ADD_FIELDS = frozenset(AddModelBody.__struct_fields__)
PATCH_FIELDS = frozenset(UpdateModelBody.__struct_fields__)
BUCKET_FIELDS = frozenset(BucketChangeBody.__struct_fields__)
