"""The typed settings: the frozen values the service runs with (config/ reads them from TOML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Mode = Literal["value", "utility", "cheapest_adequate"]
MODES: tuple[Mode, ...] = ("value", "utility", "cheapest_adequate")
Window = Literal["hour", "day", "month"]
WINDOWS: tuple[Window, ...] = ("hour", "day", "month")
WhenSpent = Literal["cheapest", "refuse"]
# route, feedback: a tenant's traffic; admin: what is the tenant's own (its arms, its audit
# trail); operator: what every tenant shares (the catalog, upstreams, shared budgets).
SCOPES = ("route", "feedback", "admin", "operator")
OPERATOR = "operator"
MIN_KEY_CHARS = 16


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 1_048_576
    max_messages: int = 4096
    max_content_parts: int = 4096  # content parts in all of a request's messages together
    max_connections: int = 4096  # beyond: 503 too_many_connections, then closed
    header_timeout_s: float = 10.0  # for a request's headers, from connect or the last answer
    body_timeout_s: float = 30.0  # for the rest of the body, once its headers are in
    shutdown_drain_s: float = 10.0  # after SIGTERM: open requests may finish for this long


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = "bandit-router.db"  # a SQLite path or URL, or a PostgreSQL URL (core/location.py)
    synchronous: Literal["full", "normal"] = "full"
    max_batch: int = 512
    decision_ttl_hours: float = 168.0
    # how often a replica folds in feedback that other replicas committed to a shared store
    sync_interval_ms: float = 200.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    decision_sample_rate: float = 1.0


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    default_policy: str = "default"
    seed: int | None = None
    recent_window: int = 1000


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the gateway sends a model's calls: an OpenAI-compatible API."""

    base_url: str  # e.g. https://api.openai.com/v1 (the gateway appends /chat/completions)
    model: str  # the model's name there
    api_key: str | None = field(default=None, repr=False)  # from the environment; never logged
    name: str | None = None  # the [upstreams.<name>] entry it comes from; None: inline


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """A declared upstream (`[upstreams.<name>]`): the only places, and the only credentials,
    that a model added at run time may use. Its key is read from the environment at start."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)

    def for_model(self, model: str) -> Upstream:
        return Upstream(base_url=self.base_url, model=model, api_key=self.api_key,
                        name=self.name)


@dataclass(frozen=True, slots=True)
class Model:
    """One catalog entry: a model and its public prices (USD per million tokens)."""

    name: str
    provider: str
    input_per_mtok: float
    output_per_mtok: float
    context_tokens: int
    latency_ms: float
    quality_prior: float | None = None  # prior mean quality; None = the policy's
    upstream: Upstream | None = None  # for the OpenAI-compatible gateway; None = not callable
    max_output_tokens: int | None = None  # the longest answer it can give; None = context_tokens

    @property
    def output_limit(self) -> int:
        """The most output tokens one call to this model can produce."""
        return self.max_output_tokens or self.context_tokens


@dataclass(frozen=True, slots=True)
class TaskRule:
    name: str
    hints: tuple[str, ...]
    cues: tuple[str, ...]
    min_cues: int


@dataclass(frozen=True, slots=True)
class Complexity:
    per_1k_input_tokens: float = 0.5
    per_1k_output_tokens: float = 1.0
    per_extra_turn: float = 0.2
    per_cue: float = 0.75
    cues: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LearnedBuckets:
    """Buckets learned inside each rule bucket from the traffic and its feedback (see
    bandit_router/core/refine.py for what each setting bounds)."""

    enabled: bool = False  # experimental: it does not yet beat rules only (README)
    max_children: int = 16  # learned buckets per rule bucket (per tenant and policy)
    max_buckets: int = 64  # learned buckets per tenant and policy, all rule buckets together
    min_samples: int = 60  # a rule bucket's kept answers before it may split
    per_child: int = 20  # kept answers per learned bucket (more children need more answers)
    min_per_model: int = 4  # answers of one model in each group before they are compared
    min_gap: float = 0.2  # a split needs one model's quality to differ this much ...
    z: float = 3.0  # ... by this many standard errors, on held-out answers
    samples_per_model: int = 150  # recent answers kept per (rule bucket, model)
    refine_every: int = 20  # new answers in a rule bucket before it is refined again
    inherit: float = 2.0  # a child's prior: its parent's posterior, worth this many answers
    remember: int = 20_000  # recent decisions whose sketches wait for their feedback
    refine_interval_s: float = 1.0  # how often the service looks for buckets to refine


@dataclass(frozen=True, slots=True)
class BucketRules:
    default_task: str
    tasks: tuple[TaskRule, ...]
    levels: tuple[str, ...]
    thresholds: tuple[float, ...]
    complexity: Complexity
    learned: LearnedBuckets = LearnedBuckets()

    @property
    def names(self) -> tuple[str, ...]:
        """Every bucket these rules can produce, as ``task:level``."""
        return tuple(f"{t.name}:{lv}" for t in self.tasks for lv in self.levels)


@dataclass(frozen=True, slots=True)
class Weights:
    """What cost and latency are worth against quality.

    `value` mode (the default) reads the two `points_per_*_doubling` weights: the quality
    points (hundredths of the 0..1 scale) a model must add for each doubling of price (or
    of latency) to be worth it. `utility` mode reads `cost` and `latency`: quality points,
    as fractions of 1, of paying the dearest eligible model's price (waiting as long as the
    slowest)."""

    cost: float = 0.1
    latency: float = 0.0
    points_per_price_doubling: float = 2.0
    points_per_latency_doubling: float = 0.0


@dataclass(frozen=True, slots=True)
class Prior:
    quality_mean: float = 0.5
    quality_strength: float = 2.0
    latency_strength: float = 2.0
    latency_log_sd: float = 0.5
    output_tokens: float = 400.0
    output_tokens_strength: float = 2.0
    price_slope: float = 0.0  # prior mean of the priciest model minus the cheapest's

    @property
    def alpha(self) -> float:
        return self.quality_mean * self.quality_strength

    @property
    def beta(self) -> float:
        return (1.0 - self.quality_mean) * self.quality_strength


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    mode: Mode = "value"
    weights: Weights = Weights()
    prior: Prior = Prior()
    quality_target: float = 0.7
    quality_targets: MappingProxyType[str, float] = field(
        default_factory=lambda: MappingProxyType({}))
    half_life_hours: float = 168.0
    evidence_cap: float = 0.0
    pooling: Literal["optimistic", "full", "off"] = "full"  # default_pooling(mode) when read
    pool_strength: float = 10.0
    change_window: float = 50.0
    change_min_hours: float = 1.0  # how long recent quality must stray before it counts
    # value mode: credible level of the bounds that set aside arms that cannot matter
    # (value.py); three sigma. 0 = every arm stays in contention.
    contention_level: float = 0.9973

    def target_for(self, bucket: str) -> float:
        return self.quality_targets.get(bucket, self.quality_target)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    alias: str = "auto"  # `model` naming the default policy; "<alias>-<policy>" names others
    attempts: int = 3  # upstream calls per request, the decision's model then its fallbacks
    connect_timeout_s: float = 5.0
    timeout_s: float = 120.0  # a whole call (a non-streamed answer, or between stream chunks)
    max_answer_bytes: int = 8 << 20  # an upstream's answer, streamed or not; beyond: failed
    max_event_bytes: int = 1 << 20  # one line of a streamed answer


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """A spending limit per calendar window (UTC), paced: as spend runs ahead of an even
    pace, the cost weight of the decisions it covers rises; behind it, it relaxes."""

    name: str
    limit_usd: float
    window: Window = "day"
    tenant: str | None = None  # None: every tenant's spend counts
    policy: str | None = None  # None: every policy's
    when_spent: WhenSpent = "cheapest"  # once spent: the cheapest eligible model, or 429
    pacing: bool = True
    max_cost_weight: float = 5.0  # the highest cost weight pacing may set
    # of a budget covering several tenants: the most one tenant may spend of it; past that,
    # the hard action applies to that tenant alone
    max_tenant_share: float = 1.0

    def covers(self, tenant: str, policy: str) -> bool:
        return (self.tenant is None or self.tenant == tenant) and \
            (self.policy is None or self.policy == policy)


@dataclass(frozen=True, slots=True)
class SpendConfig:
    reference_model: str | None = None  # savings are against it; None = the priciest model


DEFAULT_JUDGE_PROMPT = """You grade an AI assistant's answer to a conversation.
Judge only the final answer: is it correct, complete and useful for what was asked?

<conversation>
{conversation}
</conversation>

<answer>
{answer}
</answer>

Reply with a JSON object only: {{"score": <a number from 0 (useless or wrong) to 1 \
(excellent)>, "reason": "<one short sentence>"}}"""


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """A judge model the router calls itself, after a gateway answer was sent, on a sample
    of the calls: its score becomes a quality fact with source `judge`. Off (model None)
    unless configured: it costs money and sends conversations to another model."""

    model: str | None = None  # a catalog model with an upstream
    sample_rate: float = 0.05  # fraction of answered gateway calls judged once arms are sure
    young_rate: float = 0.5  # ... while the routed arm has no evidence, falling linearly to
    young_evidence: float = 30.0  # sample_rate once it has this many quality observations
    bucket_rates: MappingProxyType[str, float] = field(
        default_factory=lambda: MappingProxyType({}))  # per-bucket sample rates
    policies: tuple[str, ...] = ()  # only these policies' calls; () = every policy
    budget_usd: float | None = None  # the most judging may cost per window; None = no limit
    window: Window = "day"
    timeout_s: float = 30.0
    max_chars: int = 12_000  # of the conversation and of the answer shown to the judge
    weight: float = 1.0  # what one judge score weighs against a client's (1)
    # how often the judge agrees with a careful human grader: its scores are read as that
    # noisy (LLM judges agree with experts about 85% of the time, as often as experts agree
    # with each other: Zheng et al. 2023, MT-Bench); 1 takes them at face value
    accuracy: float = 0.85
    disagreement: float = 0.25  # mean |client - judge| over which /v1/stats flags the judge
    prompt: str = DEFAULT_JUDGE_PROMPT

    @property
    def enabled(self) -> bool:
        return self.model is not None


IMPLICIT_SIGNALS = ("empty", "truncated", "content_filter", "refusal", "invalid_json",
                    "regenerate")
DEFAULT_REFUSALS = ("i can't help with", "i cannot help with", "i can't assist",
                    "i cannot assist", "i'm sorry, but i can't", "i am sorry, but i cannot",
                    "i'm unable to help", "as an ai language model, i cannot")


@dataclass(frozen=True, slots=True)
class ImplicitConfig:
    """Quality the gateway sees for free in an answer's form: each signal present gives the
    call one bounded negative quality fact (source `implicit`), weighted `weight`."""

    signals: tuple[str, ...] = ("empty", "truncated", "content_filter", "refusal",
                                "invalid_json")  # "regenerate": opt in (a caller's act)
    weight: float = 0.5
    refusals: tuple[str, ...] = DEFAULT_REFUSALS  # lower-case phrases an answer starts with
    regenerate_window_s: float = 300.0  # the same conversation again within this: a retry


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One caller's key: who it is (for logs), whose arms it reaches, what it may do."""

    name: str
    tenant: str
    scopes: frozenset[str]
    secret: str = field(repr=False)  # never printed or logged


@dataclass(frozen=True, slots=True)
class AuthConfig:
    keys: tuple[ApiKey, ...] = ()

    @property
    def open(self) -> bool:
        """No keys configured: every request is allowed, as the default tenant."""
        return not self.keys


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    storage: StorageConfig
    logging: LoggingConfig
    routing: RoutingConfig
    models: tuple[Model, ...]
    buckets: BucketRules
    policies: MappingProxyType[str, PolicyConfig]
    auth: AuthConfig = AuthConfig()
    gateway: GatewayConfig = GatewayConfig()
    budgets: tuple[BudgetConfig, ...] = ()
    spend: SpendConfig = SpendConfig()
    upstreams: MappingProxyType[str, UpstreamConfig] = field(
        default_factory=lambda: MappingProxyType({}))
    judge: JudgeConfig = JudgeConfig()
    implicit: ImplicitConfig = ImplicitConfig()
    source: str = "<memory>"

    @property
    def source_weights(self) -> dict[str, float]:
        """How quality facts are read: what one fact of each source weighs in a posterior,
        and the judge's accuracy (its scores are noisy observations of the truth)."""
        return {"client": 1.0, "judge": self.judge.weight, "implicit": self.implicit.weight,
                "judge_accuracy": self.judge.accuracy}

    def model(self, name: str) -> Model:
        return next(m for m in self.models if m.name == name)

    def reference_model(self) -> Model:
        """The model savings are measured against: the configured one, else the priciest."""
        if self.spend.reference_model is not None:
            return self.model(self.spend.reference_model)
        return max(self.models, key=lambda m: (m.input_per_mtok + m.output_per_mtok, m.name))

    def aliases(self) -> dict[str, str]:
        """Gateway `model` aliases and the policies they name."""
        default = self.routing.default_policy
        out = {self.gateway.alias: default}
        out.update({f"{self.gateway.alias}-{p}": p for p in self.policies})
        return out

def default_pooling(mode: str) -> str:
    """Full pooling for the value objective, optimistic for the older modes. Optimistic
    pooling (a prior may be raised, never lowered) keeps a cheap model weak elsewhere from
    going untried where it might do: the older modes weigh price too little, or not at all,
    to try it on their own. The value objective gives a model a head start of its price
    advantage in points, so the prior may say what the other buckets showed."""
    return "full" if mode == "value" else "optimistic"
