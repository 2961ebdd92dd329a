"""The core's vocabulary: small frozen dataclasses passed between layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIENT_FACTS = ("quality", "latency_ms", "input_tokens", "output_tokens", "success", "cost_usd",
                "cached_input_tokens", "cache_write_tokens")
# Quality from the router's own sources: a sampled judge model, and implicit signals the
# gateway sees (an empty or cut-off answer, a refusal, a regenerate). Never sent by clients.
FACTS = (*CLIENT_FACTS, "judge_quality", "implicit_quality")
QUALITY_SOURCES = {"quality": "client", "judge_quality": "judge", "implicit_quality": "implicit"}
DEFAULT_TENANT = "default"  # everyone's tenant when no API keys are configured
MAX_TOKENS = 100_000_000  # token counts beyond this are refused (and clamped, if they slip in)
MAX_LATENCY_MS = 86_400_000.0  # a day; anything longer is a unit mistake
MAX_CALL_MS = 3_600_000.0  # one call's reported latency: an hour at most
MAX_COST_USD = 1e6  # one call's cost, or a cost limit


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Constraints:
    models: frozenset[str] | None = None  # allow-list; None = every model
    exclude: frozenset[str] = frozenset()
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class WeightsOverride:
    """A request's own trade-off; None keeps the policy's. Which fields apply depends on
    the policy's mode (see config.Weights)."""

    cost: float | None = None
    latency: float | None = None
    points_per_price_doubling: float | None = None
    points_per_latency_doubling: float | None = None


NO_CONSTRAINTS = Constraints()  # shared defaults: `is` tells a plain request apart cheaply
NO_OVERRIDE = WeightsOverride()


@dataclass(frozen=True, slots=True)
class RouteRequest:
    messages: tuple[Message, ...]
    task: str | None = None
    bucket: str | None = None
    policy: str | None = None
    constraints: Constraints = NO_CONSTRAINTS
    weights: WeightsOverride = NO_OVERRIDE
    input_tokens: int | None = None
    max_output_tokens: int | None = None
    explain: bool = False
    session_id: str | None = None  # a conversation's turns, for prompt-cache pricing
    tenant: str = DEFAULT_TENANT  # set from the caller's API key, never from the body
    measured: bool = False  # the gateway makes the call and measures it itself
    needs_upstream: bool = False  # the gateway's calls: only models it can call are eligible


@dataclass(frozen=True, slots=True)
class Features:
    """Deterministic facts about a request, computed without any model or network."""

    input_tokens: int
    chars: int
    turns: int
    output_tokens: int | None
    task_hint: str | None
    task_cues: tuple[tuple[str, int], ...]  # (task, cue hits), in config order
    complexity_cues: int
    # what the request is about (bandit_router.core.sketch), for learned buckets; None when
    # learning is off or the caller named its task or bucket
    sketch: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ArmKey:
    policy: str
    bucket: str
    model: str
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class ArmExplanation:
    model: str
    eligible: bool
    reason: str | None
    quality_mean: float
    quality_interval: tuple[float, float]
    quality_sample: float | None
    expected_cost_usd: float
    expected_latency_ms: float
    utility: float | None  # utility mode: the sampled utility that ranked the arm
    # value mode: sampled quality minus the price (and latency) penalty, counted from the
    # chosen model's price, so the chosen model's value is its own sampled quality
    value: float | None = None
    contending: bool | None = None  # value mode: False when set aside (cannot matter)
    cached_input_tokens: float | None = None  # a session turn: the input its cache likely holds


@dataclass(frozen=True, slots=True)
class Objective:
    """What a decision optimised, as `explain` reports it (pacing included)."""

    mode: str
    points_per_price_doubling: float | None = None  # value mode
    points_per_latency_doubling: float | None = None
    cost_weight: float | None = None  # utility mode
    latency_weight: float | None = None
    quality_target: float | None = None  # cheapest_adequate mode


@dataclass(frozen=True, slots=True)
class BudgetEffect:
    """How a budget shaped a decision."""

    budget: str
    cost_weight: float  # the cost weight the decision used, pacing included
    spent: bool  # the budget is spent: its hard action (the cheapest model) applied
    shared: bool = False  # its pacing follows other tenants' spend too (shown to operators)
    points_per_price_doubling: float | None = None  # value mode: the one used, pacing included


@dataclass(frozen=True, slots=True)
class SessionView:
    """What the router remembered of a session when it decided a turn."""

    session_id: str
    previous_model: str | None  # None: a new session, or one forgotten (TTL, memory bound)
    cached_prefix_tokens: int  # of this turn's prompt, what previous_model's cache may hold
    hit_rate: float | None  # previous_model's learned share of a prefix served from cache
    expires_in_s: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    route_id: str
    model: str
    bucket: str
    policy: str
    expected_cost_usd: float
    expected_latency_ms: float
    fallbacks: tuple[str, ...]
    input_tokens: int
    created_at: float
    explanation: tuple[ArmExplanation, ...] | None = None
    tenant: str = DEFAULT_TENANT
    budget: BudgetEffect | None = None
    objective: Objective | None = None  # with explanation only
    session: SessionView | None = None  # with explanation only, for a session turn
    # the model with the best expected value (value mode; None in the others): the chosen
    # one unless this decision explored. Not on the wire: the judge samples by it
    favourite: str | None = None


@dataclass(frozen=True, slots=True)
class RouteTicket:
    """What a route_id carries: enough to attribute feedback without looking anything up."""

    policy: str
    bucket: str
    model: str
    created_at: float
    input_tokens: int
    nonce: str
    tenant: str = DEFAULT_TENANT
    # a gateway call: its latency, tokens, success and cost are the router's own
    # measurement, and a client may add only its quality
    measured: bool = False


@dataclass(frozen=True, slots=True)
class Facts:
    """The facts one feedback message reports; None = not reported in this message."""

    quality: float | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    success: bool | None = None
    cost_usd: float | None = None  # what the call cost, if the caller knows better than tokens
    # parts of input_tokens read from / written to the provider's prompt cache
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    judge_quality: float | None = None  # a judge model's grade of the answer
    implicit_quality: float | None = None  # what the answer's form told (a bounded negative)

    def items(self) -> list[tuple[str, float]]:
        """Reported facts as (name, value), in the canonical order of FACTS."""
        out = []
        for name in FACTS:
            value = getattr(self, name)
            if value is not None:
                out.append((name, float(value)))
        return out


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """Facts to apply to one decision's arm, at one moment."""

    route_id: str
    ticket: RouteTicket
    facts: tuple[tuple[str, float], ...]  # (fact, value) as applied, canonical order
    at: float


@dataclass(frozen=True, slots=True)
class ArmReport:
    key: ArmKey
    quality_mean: float
    quality_interval: tuple[float, float]
    evidence: float
    latency_observations: float
    mean_latency_ms: float
    mean_cost_usd: float | None  # None until input and output tokens were both reported
    share: float
    recent_decisions: int
