"""The admin bodies: a model to add to the catalog, a change to one, a learned bucket's pin,
unpin or reset. Bounds as config.toml's (config/ checks a model with the same numbers); the
rules across fields (a name's form, max_output_tokens within context_tokens, an upstream
declared in config.toml) are in http/catalog_wire.py.

No `from __future__ import annotations`: msgspec reads these annotations."""

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from bandit_router.core.types import MAX_LATENCY_MS, MAX_TOKENS
from bandit_router.http.schemas.bodies import MAX_RESET_NAME
from bandit_router.storage.learned_store import ACTIONS

MAX_MODEL_NAME = 128
MAX_PROVIDER = 64
MAX_PRICE = 100_000.0  # USD per million tokens; beyond it is a unit mistake
QUALITY_PRIOR = (0.01, 0.99)  # as in the config: keeps the Beta prior numerically sound
DEFAULT_PROVIDER = "custom"
AT_LEAST_ONE = {"minProperties": 1}  # a change of nothing is refused (catalog_wire)
RELEASE = "null: release the runtime value (config.toml's applies)"

_Price = Annotated[float, Meta(ge=0.0, le=MAX_PRICE)]
_Tokens = Annotated[int, Meta(ge=1, le=MAX_TOKENS)]
_Upstream = Annotated[str, Meta(min_length=1, max_length=MAX_MODEL_NAME, description=(
    "for the gateway: the name of an upstream declared in config.toml ([upstreams.<name>])"))]
_UpstreamModel = Annotated[str, Meta(min_length=1, max_length=MAX_MODEL_NAME * 2, description=(
    "the model's name at the upstream (default: name)"))]


class AddModelBody(Struct, forbid_unknown_fields=True):
    """A model to add to the catalog, checked as config.toml is."""

    name: Annotated[str, Meta(min_length=1, max_length=MAX_MODEL_NAME,
                              description="the model's name in the catalog (unique)")]
    input_per_mtok: Annotated[_Price, Meta(description="USD per million input tokens")]
    output_per_mtok: Annotated[_Price, Meta(description="USD per million output tokens")]
    context_tokens: _Tokens
    provider: Annotated[str, Meta(min_length=1, max_length=MAX_PROVIDER,
                                  description=f"default {DEFAULT_PROVIDER!r}")] | None = None
    max_output_tokens: Annotated[_Tokens, Meta(
        description="the longest answer (default: context_tokens)")] | None = None
    latency_ms: Annotated[float, Meta(gt=0.0, le=MAX_LATENCY_MS, description=(
        "prior guess of a typical latency (default: the enabled models' median)"))] | None = None
    quality_prior: Annotated[float, Meta(ge=QUALITY_PRIOR[0], le=QUALITY_PRIOR[1], description=(
        "prior mean quality (default: the policy's)"))] | None = None
    upstream: _Upstream | None = None
    upstream_model: _UpstreamModel | None = None


class UpdateModelBody(Struct, forbid_unknown_fields=True):
    """What to change; at least one field. A price, token limit or upstream set to null
    returns to config.toml's."""

    input_per_mtok: Annotated[_Price | None, Meta(description=RELEASE)] | UnsetType = UNSET
    output_per_mtok: Annotated[_Price | None, Meta(description=RELEASE)] | UnsetType = UNSET
    context_tokens: Annotated[_Tokens | None, Meta(description=RELEASE)] | UnsetType = UNSET
    max_output_tokens: Annotated[_Tokens | None, Meta(description=RELEASE)] | UnsetType = UNSET
    upstream: Annotated[_Upstream | None, Meta(description=RELEASE)] | UnsetType = UNSET
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
