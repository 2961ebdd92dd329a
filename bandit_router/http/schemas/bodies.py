"""The bodies of /v1/route, /v1/feedback, /v1/admin/reset and the gateway's routing fields.

The classes whose limits come from the config (`server.max_messages`) are built once at
start by `Bodies.build`. Names the catalog knows (policies, buckets, models) are not part of
the types: the catalog changes at run time, so the engine checks them (unknown_policy...),
and the OpenAPI document lists them as enums.

No `from __future__ import annotations`: msgspec reads the annotations of the classes built
inside `Bodies.build`, which refer to its local limits."""

from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta, Struct

from bandit_router.core.errors import InvalidField, MissingField
from bandit_router.core.settings import ServerConfig
from bandit_router.core.types import (
    CLIENT_FACTS,
    MAX_CALL_MS,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_TOKENS,
)

MAX_STRING = 256  # the default longest string field, in characters
MAX_STRINGS = 256  # the default longest array of strings
MAX_WEIGHT = 1000.0
MAX_ROUTE_ID = 512
MAX_IDEMPOTENCY_KEY = 128
MAX_TEXT = 1 << 30  # a prompt or a text part, in characters
MAX_ROLE = 64  # a message's role, a content part's type
MAX_TASK = 64
MAX_NAME = 128  # a bucket or policy name in a route request
MAX_RESET_NAME = 256
MAX_CHAT_MODEL = 256  # the gateway's `model` field
MAX_SESSION_ID = 256  # a session_id (the gateway's prompt_cache_key, x-session-id)


def _text(max_length: int, description: str = "", **meta: Any) -> Any:
    return Annotated[str, Meta(max_length=max_length, **meta,
                               **({"description": description} if description else {}))]


def _number(description: str = "", **bounds: float) -> Any:
    return Annotated[float, Meta(**bounds, **({"description": description}
                                              if description else {}))]


def _integer(description: str = "", **bounds: int) -> Any:
    return Annotated[int, Meta(**bounds, **({"description": description}
                                            if description else {}))]


def _flag(description: str) -> Any:
    return Annotated[bool, Meta(description=description)]


class PartProblem(ValueError):
    """A text part without a string `text`: msgspec wraps it in its ValidationError with the
    part's path; `errors.mapped` reads the code and the key from it."""

    def __init__(self, code: str, key: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.key = key


# what the JSON Schema must say beyond the types: a text part needs its text; a body has
# prompt or messages (the "not both" is checked in code, wire.route_request)
TEXT_PART_RULE = {"if": {"properties": {"type": {"const": "text"}}},
                  "then": {"required": ["text"]}}
PROMPT_OR_MESSAGES = {"oneOf": [{"required": ["prompt"]}, {"required": ["messages"]}]}
ONE_FACT = {"anyOf": [{"required": [fact]} for fact in CLIENT_FACTS]}  # checked in wire


class Part(Struct):
    """A content part; other keys are accepted and ignored."""

    type: _text(MAX_ROLE, "\"text\"; other part types (images, audio...) are accepted and "
                          "ignored")
    # Any: checked in __post_init__, for "text" parts only (others may carry anything)
    text: Annotated[Any, Meta(extra_json_schema={"anyOf": [
        {"type": "string", "maxLength": MAX_TEXT}, {"type": "null"}]})] = None

    def __post_init__(self) -> None:
        if self.type != "text":
            return
        if self.text is None:
            raise PartProblem(MissingField.code, "text", "is required when type is \"text\"")
        if type(self.text) is not str:
            raise PartProblem(InvalidField.code, "text",
                              "must be a string when type is \"text\"")
        if len(self.text) > MAX_TEXT:
            raise PartProblem(InvalidField.code, "text",
                              f"is longer than {MAX_TEXT} characters")


class ChatMessage(Struct):
    """An OpenAI-style chat message; other keys (name, tool_calls...) are accepted and
    ignored."""

    role: _text(MAX_ROLE, "system, user, assistant, tool...")
    content: Annotated[
        _text(MAX_TEXT) | list[Annotated[Part, Meta(extra_json_schema=TEXT_PART_RULE)]] | None,
        Meta(description="a string, or an array of content parts; null counts as empty")] = None


class RouteConstraints(Struct, forbid_unknown_fields=True):
    """Which models the request may go to."""

    models: Annotated[list[str], Meta(min_length=1, max_length=MAX_STRINGS,
                                      description="allow-list of catalog models")] | None = None
    exclude: Annotated[list[str], Meta(max_length=MAX_STRINGS,
                                       description="models never to pick")] | None = None
    max_cost_usd: _number("only models whose expected cost is at most this",
                          gt=0.0, le=MAX_COST_USD) | None = None
    max_latency_ms: _number("only models whose typical latency is at most this",
                            gt=0.0, le=MAX_LATENCY_MS) | None = None


_WEIGHT = _number(ge=0.0, le=MAX_WEIGHT)


class RouteWeights(Struct, forbid_unknown_fields=True):
    """Override the policy's trade-off for this request: points_per_price_doubling and
    points_per_latency_doubling for a value-mode policy, cost and latency for the older
    modes (a weight the policy's mode does not read is a 400)."""

    cost: _WEIGHT | None = None
    latency: _WEIGHT | None = None
    points_per_price_doubling: _WEIGHT | None = None
    points_per_latency_doubling: _WEIGHT | None = None


class FeedbackBody(Struct, forbid_unknown_fields=True):
    """Facts about a routed call; at least one. Each fact counts once per route_id. A field
    set to null counts as absent."""

    route_id: _text(MAX_ROUTE_ID, "from the route answer")
    idempotency_key: _text(MAX_IDEMPOTENCY_KEY, "optional client key: a resend with the same "
                           "key and content is answered again, not re-applied",
                           min_length=1) | None = None
    quality: _number("how good the answer was", ge=0.0, le=1.0) | None = None
    latency_ms: _number(ge=0.0, le=MAX_CALL_MS) | None = None
    input_tokens: _integer("at most the routed model's context window",
                           ge=0, le=MAX_TOKENS) | None = None
    output_tokens: _integer("at most the routed model's max_output_tokens",
                            ge=0, le=MAX_TOKENS) | None = None
    success: _flag("false counts as quality 0 unless a quality is sent too") | None = None
    cost_usd: _number("what the call cost; wins over the tokens priced from the catalog; at "
                      "most twice its tokens at list price", ge=0.0, le=MAX_COST_USD) | None = None
    cached_input_tokens: _integer(
        "the part of input_tokens read from the provider's prompt cache, priced at the "
        "model's cached_input_per_mtok; needs input_tokens (now or before); with "
        "cache_write_tokens at most input_tokens", ge=0, le=MAX_TOKENS) | None = None
    cache_write_tokens: _integer(
        "the part of input_tokens written to the prompt cache, priced at "
        "cache_write_per_mtok", ge=0, le=MAX_TOKENS) | None = None


class ResetBody(Struct, forbid_unknown_fields=True):
    """Which of the caller's tenant's arms to reset; {} resets them all."""

    policy: _text(MAX_RESET_NAME, "only this policy's arms") | None = None
    bucket: _text(MAX_RESET_NAME, "only this bucket's arms") | None = None
    model: _text(MAX_RESET_NAME, "only this model's arms") | None = None
    tenant: _text(MAX_RESET_NAME, "another tenant's arms (operator keys only; default: the "
                                  "caller's tenant)") | None = None


def _messages(max_messages: int, description: str) -> Any:
    # an empty array is refused as missing (wire._messages): minItems is for the document
    return Annotated[list[ChatMessage], Meta(max_length=max_messages, description=description,
                                             extra_json_schema={"minItems": 1})]


def _route_body(max_messages: int) -> type[Struct]:
    listed = _messages(max_messages, "OpenAI-style messages (at most server.max_messages)")
    tokens = _integer(ge=1, le=MAX_TOKENS)

    class RouteBody(Struct, forbid_unknown_fields=True):
        """A request to route. A field set to null counts as absent."""

        prompt: _text(MAX_TEXT, "the prompt; or use messages (exactly one of the "
                                "two)") | None = None
        messages: listed | None = None
        task: _text(MAX_TASK, "optional task hint (\"code\", \"summarize\"...); an unknown "
                              "hint is ignored") | None = None
        bucket: _text(MAX_NAME, "explicit bucket, task:level") | None = None
        policy: _text(MAX_NAME, "policy name (default: routing.default_policy)") | None = None
        constraints: RouteConstraints | None = None
        weights: RouteWeights | None = None
        input_tokens: _integer("the prompt's token count, if known",
                               ge=0, le=MAX_TOKENS) | None = None
        max_output_tokens: Annotated[tokens, Meta(
            description="the caller's output limit")] | None = None
        explain: _flag("include the objective and every model's posterior, sample and the "
                       "value (or utility) that ranked it") | None = None
        session_id: _text(MAX_SESSION_ID, "the conversation this turn belongs to: its earlier "
                          "model's prompt cache is priced in (docs/sessions.md)",
                          min_length=1) | None = None

    return RouteBody


def _chat_body(max_messages: int) -> type[Struct]:
    tokens = _integer(ge=1, le=MAX_TOKENS)

    class ChatBody(Struct):
        """An OpenAI chat completion request. Other fields (temperature, tools...) are passed
        to the upstream as they are."""

        model: _text(MAX_CHAT_MODEL, "an alias (routes with a policy) or a catalog model "
                                     "(passed through, still measured)")
        messages: _messages(max_messages, "OpenAI-style messages (at most "
                                          "server.max_messages)")
        max_completion_tokens: Annotated[tokens, Meta(
            description="bounds the expected answer")] | None = None
        max_tokens: Annotated[tokens, Meta(
            description="the older name of max_completion_tokens")] | None = None
        stream: _flag("pass the upstream's events through") | None = None

    return ChatBody


@dataclass(frozen=True)
class Bodies:
    """The body classes of one server, with its config's limits; built once at start."""

    route: type[Struct]
    chat: type[Struct]
    max_messages: int
    max_parts: int

    @classmethod
    def build(cls, server: ServerConfig) -> "Bodies":
        return cls(_route_body(server.max_messages), _chat_body(server.max_messages),
                   server.max_messages, server.max_content_parts)


ROUTE_FIELDS = frozenset(_route_body(1).__struct_fields__)
CONSTRAINT_FIELDS = frozenset(RouteConstraints.__struct_fields__)
WEIGHT_FIELDS = frozenset(RouteWeights.__struct_fields__)
FEEDBACK_FIELDS = frozenset(FeedbackBody.__struct_fields__)
RESET_FIELDS = frozenset(ResetBody.__struct_fields__)
