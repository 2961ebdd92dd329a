"""The typed, validated configuration: read once from TOML, then passed around frozen."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from bandit_router.backend import BadLocation, locate
from bandit_router.names import name_problem
from bandit_router.tomlcheck import ConfigError, Table
from bandit_router.types import DEFAULT_TENANT, MAX_COST_USD, MAX_LATENCY_MS, MAX_TOKENS

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
CONFIG_ENV = "BANDIT_ROUTER_CONFIG"


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
    url: str = "bandit-router.db"  # a SQLite path or URL, or a PostgreSQL URL (backend.py)
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
    bandit_router/refine.py for what each setting bounds)."""

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


# --- reading -------------------------------------------------------------------------------
# Every number has a range: beyond it the arithmetic overflows or the setting makes no sense
# (a latency spread of e^200, a ten-thousand-year TTL), so it is refused at start.
MAX_PRICE_PER_MTOK = 100_000.0
MAX_HOURS = 87_600.0  # ten years
MAX_STRENGTH = 1e6  # pseudo-observations


def _named(key: str, name: str, part: bool = False) -> str:
    """`name`, if it follows the name rule (names.py); else an error naming `key`."""
    problem = name_problem(name, part)
    if problem is not None:
        raise ConfigError(key, problem)
    return name



def _server(t: Table) -> ServerConfig:
    d = ServerConfig()
    return ServerConfig(
        host=t.string("host", d.host),
        port=t.integer("port", d.port, lo=0, hi=65535),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, lo=1024, hi=1 << 30),
        max_messages=t.integer("max_messages", d.max_messages, lo=1, hi=100_000),
        max_content_parts=t.integer("max_content_parts", d.max_content_parts, lo=1,
                                    hi=100_000),
        max_connections=t.integer("max_connections", d.max_connections, lo=1, hi=1_000_000),
        header_timeout_s=t.number("header_timeout_s", d.header_timeout_s, above=0, hi=3600),
        body_timeout_s=t.number("body_timeout_s", d.body_timeout_s, above=0, hi=3600),
        shutdown_drain_s=t.number("shutdown_drain_s", d.shutdown_drain_s, lo=0, hi=3600),
    )


def _storage(t: Table) -> StorageConfig:
    d = StorageConfig()
    try:
        locate(t.string("url", d.url))
    except BadLocation as exc:
        raise ConfigError(t.key("url"), str(exc)) from exc
    return StorageConfig(
        url=t.string("url", d.url),
        synchronous=t.string("synchronous", d.synchronous, choices=("full", "normal")),
        max_batch=t.integer("max_batch", d.max_batch, lo=1, hi=100_000),
        decision_ttl_hours=t.number("decision_ttl_hours", d.decision_ttl_hours, above=0,
                                    hi=MAX_HOURS),
        sync_interval_ms=t.number("sync_interval_ms", d.sync_interval_ms, above=0,
                                  hi=60_000),
    )


def _logging(t: Table) -> LoggingConfig:
    d = LoggingConfig()
    return LoggingConfig(
        level=t.string("level", d.level, choices=("debug", "info", "warning", "error")),
        decision_sample_rate=t.number("decision_sample_rate", d.decision_sample_rate, lo=0, hi=1),
    )


def _routing(t: Table) -> RoutingConfig:
    d = RoutingConfig()
    return RoutingConfig(
        default_policy=t.string("default_policy", d.default_policy),
        seed=t.optional_integer("seed", lo=0),
        recent_window=t.integer("recent_window", d.recent_window, lo=1, hi=1_000_000),
    )


def _model(t: Table, upstreams: Mapping[str, UpstreamConfig]) -> Model:
    context = t.integer("context_tokens", lo=1, hi=MAX_TOKENS)
    return Model(
        name=_named(t.key("name"), t.string("name")),
        provider=t.string("provider"),
        input_per_mtok=t.number("input_per_mtok", lo=0, hi=MAX_PRICE_PER_MTOK),
        output_per_mtok=t.number("output_per_mtok", lo=0, hi=MAX_PRICE_PER_MTOK),
        context_tokens=context,
        max_output_tokens=t.integer("max_output_tokens", lo=1, hi=context)
        if t.has("max_output_tokens") else t.raw_none("max_output_tokens"),
        latency_ms=t.number("latency_ms", above=0, hi=MAX_LATENCY_MS),
        quality_prior=t.number("quality_prior", lo=0.01, hi=0.99) if t.has("quality_prior")
        else t.raw_none("quality_prior"),
        upstream=_model_upstream(t, upstreams),
    )


def _model_upstream(t: Table, upstreams: Mapping[str, UpstreamConfig]) -> Upstream | None:
    """A model's upstream: `upstream = "<name>"` naming an [upstreams] entry (with
    `upstream_model`, the model's name there), or an inline table {base_url, model, key_env}."""
    name = t.string("name")
    if not t.has("upstream"):
        t.raw_none("upstream")
        return t.raw_none("upstream_model")
    if t.is_string("upstream"):
        declared = upstreams.get(t.string("upstream"))
        if declared is None:
            known = ", ".join(upstreams) or "none is declared"
            raise ConfigError(t.key("upstream"), f"{t.string('upstream')!r} is not one of the "
                                                 f"[upstreams] ({known})")
        return declared.for_model(t.string("upstream_model", name))
    if t.has("upstream_model"):
        raise ConfigError(t.key("upstream_model"), 'goes with upstream = "<name>"; an inline '
                                                   "upstream table has its own `model`")
    t.raw_none("upstream_model")

    def inline(u: Table) -> Upstream:
        declared = _endpoint(u, name)
        return declared.for_model(u.string("model", name))

    return t.table("upstream").read(inline)


def _endpoint(t: Table, name: str | None) -> UpstreamConfig:
    """base_url and key_env of an upstream, its key read from the environment now."""
    base_url = t.string("base_url").rstrip("/")
    if not base_url.startswith(("http://", "https://")) or len(base_url) < 9:
        raise ConfigError(t.key("base_url"), "must be an http:// or https:// URL")
    api_key = None
    if t.has("key_env"):
        variable = t.string("key_env")
        api_key = os.environ.get(variable) or None
        if api_key is None:
            raise ConfigError(t.key("key_env"), f"environment variable {variable} is not set")
    else:
        t.raw_none("key_env")
    return UpstreamConfig(name=name or "", base_url=base_url, api_key=api_key)


def _upstreams(root: Table) -> MappingProxyType[str, UpstreamConfig]:
    declared = {name: sub.read(lambda u, n=name: _endpoint(u, n))
                for name, sub in root.tables("upstreams").items()}
    return MappingProxyType(declared)


def _models(root: Table, upstreams: Mapping[str, UpstreamConfig]) -> tuple[Model, ...]:
    models = tuple(t.read(lambda m: _model(m, upstreams)) for t in root.array_of_tables("models"))
    if not models:
        raise ConfigError("models", "the catalog needs at least one model")
    seen: set[str] = set()
    for i, m in enumerate(models):
        if m.name in seen:
            raise ConfigError(f"models[{i}].name", f"duplicate model name {m.name!r}")
        seen.add(m.name)
    return models


def _task(name: str, t: Table) -> TaskRule:
    return TaskRule(name=_named(f"buckets.tasks.{name}", name, part=True),
                    hints=tuple(h.lower() for h in t.strings("hints", [])),
                    cues=tuple(c.lower() for c in t.strings("cues", [])),
                    min_cues=t.integer("min_cues", 1, lo=1, hi=1000))


def _complexity(t: Table) -> Complexity:
    d = Complexity()
    return Complexity(
        per_1k_input_tokens=t.number("per_1k_input_tokens", d.per_1k_input_tokens, lo=0,
                                     hi=1000),
        per_1k_output_tokens=t.number("per_1k_output_tokens", d.per_1k_output_tokens, lo=0,
                                      hi=1000),
        per_extra_turn=t.number("per_extra_turn", d.per_extra_turn, lo=0, hi=1000),
        per_cue=t.number("per_cue", d.per_cue, lo=0, hi=1000),
        cues=tuple(c.lower() for c in t.strings("cues", [])),
    )


def _buckets(t: Table) -> BucketRules:
    tasks = tuple(sub.read(lambda s, n=name: _task(n, s)) for name, sub in
                  t.tables("tasks", required=True).items())
    default_task = t.string("default_task")
    if default_task not in {r.name for r in tasks}:
        raise ConfigError(t.key("default_task"), f"{default_task!r} is not one of buckets.tasks")
    levels = t.strings("levels")
    if not levels or len(set(levels)) != len(levels):
        raise ConfigError(t.key("levels"), "needs at least one level and no repeats")
    for i, level in enumerate(levels):
        _named(f"{t.key('levels')}[{i}]", level, part=True)
    thresholds = t.numbers("thresholds", [])
    if any(abs(x) > 1e6 for x in thresholds):
        raise ConfigError(t.key("thresholds"), "each threshold must be within ±1e6")
    if len(thresholds) != len(levels) - 1 or list(thresholds) != sorted(thresholds):
        raise ConfigError(t.key("thresholds"),
                          "needs one ascending threshold per level after the first")
    return BucketRules(default_task=default_task, tasks=tasks, levels=levels,
                       thresholds=thresholds, complexity=t.table("complexity").read(_complexity),
                       learned=t.table("learned").read(_learned))


def _learned(t: Table) -> LearnedBuckets:
    d = LearnedBuckets()
    return LearnedBuckets(
        enabled=t.boolean("enabled", d.enabled),
        max_children=t.integer("max_children", d.max_children, lo=2, hi=64),
        max_buckets=t.integer("max_buckets", d.max_buckets, lo=2, hi=4096),
        min_samples=t.integer("min_samples", d.min_samples, lo=8, hi=100_000),
        per_child=t.integer("per_child", d.per_child, lo=2, hi=100_000),
        min_per_model=t.integer("min_per_model", d.min_per_model, lo=2, hi=10_000),
        min_gap=t.number("min_gap", d.min_gap, lo=0.01, hi=1.0),
        z=t.number("z", d.z, lo=1.0, hi=20.0),
        samples_per_model=t.integer("samples_per_model", d.samples_per_model, lo=8, hi=10_000),
        refine_every=t.integer("refine_every", d.refine_every, lo=1, hi=100_000),
        inherit=t.number("inherit", d.inherit, above=0.0, hi=10_000.0),
        remember=t.integer("remember", d.remember, lo=1, hi=1_000_000),
        refine_interval_s=t.number("refine_interval_s", d.refine_interval_s, above=0, hi=3600),
    )


def _weights(t: Table) -> Weights:
    d = Weights()
    return Weights(cost=t.number("cost", d.cost, lo=0, hi=1000),
                   latency=t.number("latency", d.latency, lo=0, hi=1000),
                   points_per_price_doubling=t.number(
                       "points_per_price_doubling", d.points_per_price_doubling, lo=0, hi=1000),
                   points_per_latency_doubling=t.number(
                       "points_per_latency_doubling", d.points_per_latency_doubling, lo=0,
                       hi=1000))


def _prior(t: Table) -> Prior:
    d = Prior()
    return Prior(
        # Bounds keep the Beta prior numerically sound (intervals, sampling).
        quality_mean=t.number("quality_mean", d.quality_mean, lo=0.01, hi=0.99),
        quality_strength=t.number("quality_strength", d.quality_strength, lo=0.1, hi=1e6),
        latency_strength=t.number("latency_strength", d.latency_strength, above=0,
                                  hi=MAX_STRENGTH),
        # e^5: the typical latency spread 150-fold either way, far beyond any real model
        latency_log_sd=t.number("latency_log_sd", d.latency_log_sd, above=0, hi=5.0),
        output_tokens=t.number("output_tokens", d.output_tokens, lo=0, hi=MAX_TOKENS),
        output_tokens_strength=t.number("output_tokens_strength", d.output_tokens_strength,
                                        above=0, hi=MAX_STRENGTH),
        price_slope=t.number("price_slope", d.price_slope, lo=-0.9, hi=0.9),
    )


def _half_life(t: Table, default: float) -> float:
    value = t.number("half_life_hours", default, lo=0, hi=MAX_HOURS)
    if 0 < value < 0.001:
        raise ConfigError(t.key("half_life_hours"), "must be 0 (no decay) or at least 0.001")
    return value


def _change_window(t: Table, default: float) -> float:
    value = t.number("change_window", default, lo=0, hi=1_000_000)
    if 0 < value < 2:
        raise ConfigError(t.key("change_window"), "must be 0 (off) or at least 2")
    return value


def _policy(name: str, t: Table, buckets: tuple[str, ...]) -> PolicyConfig:
    d = PolicyConfig(_named(f"policies.{name}", name))
    targets = t.table("quality_targets")
    per_bucket = {b: targets.number(b, lo=0, hi=1) for b in targets.names()}
    for b in per_bucket:
        if b not in buckets:
            raise ConfigError(targets.key(b), f"unknown bucket; buckets are {', '.join(buckets)}")
    mode = t.string("mode", d.mode, choices=MODES)
    return PolicyConfig(
        name=name,
        mode=mode,  # type: ignore[arg-type]
        weights=t.table("weights").read(_weights),
        prior=t.table("prior").read(_prior),
        quality_target=t.number("quality_target", d.quality_target, lo=0, hi=1),
        quality_targets=MappingProxyType(per_bucket),
        half_life_hours=_half_life(t, d.half_life_hours),
        evidence_cap=t.number("evidence_cap", d.evidence_cap, lo=0, hi=1e9),
        pooling=t.string("pooling", default_pooling(mode),  # type: ignore[arg-type]
                         choices=("optimistic", "full", "off")),
        pool_strength=t.number("pool_strength", d.pool_strength, lo=0, hi=MAX_STRENGTH),
        change_window=_change_window(t, d.change_window),
        change_min_hours=t.number("change_min_hours", d.change_min_hours, lo=0, hi=720),
        contention_level=_contention_level(t, d.contention_level),
    )


def default_pooling(mode: str) -> str:
    """Full pooling for the value objective, optimistic for the older modes. Optimistic
    pooling (a prior may be raised, never lowered) keeps a cheap model weak elsewhere from
    going untried where it might do: the older modes weigh price too little, or not at all,
    to try it on their own. The value objective gives a model a head start of its price
    advantage in points, so the prior may say what the other buckets showed."""
    return "full" if mode == "value" else "optimistic"


def _contention_level(t: Table, default: float) -> float:
    value = t.number("contention_level", default, lo=0, hi=0.999999)
    if 0 < value < 0.5:
        raise ConfigError(t.key("contention_level"), "must be 0 (off) or between 0.5 and 1")
    return value


def _api_key(t: Table) -> ApiKey:
    scopes = t.strings("scopes")
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        extra = f"; unknown: {', '.join(unknown)}" if unknown else ""
        raise ConfigError(t.key("scopes"), f"must name some of {', '.join(SCOPES)}{extra}")
    if t.has("key") == t.has("key_env"):
        raise ConfigError(t.key("key_env"), "give exactly one of key_env (preferred) or key")
    if t.has("key_env"):
        variable = t.string("key_env")
        secret = os.environ.get(variable, "")
        if not secret:
            raise ConfigError(t.key("key_env"), f"environment variable {variable} is not set")
        t.raw_none("key")
    else:
        secret = t.string("key")
        t.raw_none("key_env")
    if len(secret) < MIN_KEY_CHARS:
        raise ConfigError(t.key("key_env" if t.has("key_env") else "key"),
                          f"the key must have at least {MIN_KEY_CHARS} characters")
    return ApiKey(name=t.string("name"),
                  tenant=_named(t.key("tenant"), t.string("tenant", DEFAULT_TENANT)),
                  scopes=frozenset(scopes), secret=secret)


def _gateway(t: Table) -> GatewayConfig:
    d = GatewayConfig()
    return GatewayConfig(
        alias=_named(t.key("alias"), t.string("alias", d.alias)),
        attempts=t.integer("attempts", d.attempts, lo=1, hi=10),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, above=0, hi=600),
        timeout_s=t.number("timeout_s", d.timeout_s, above=0, hi=3600),
        max_answer_bytes=t.integer("max_answer_bytes", d.max_answer_bytes, lo=1024,
                                   hi=1 << 30),
        max_event_bytes=t.integer("max_event_bytes", d.max_event_bytes, lo=1024, hi=1 << 30),
    )


def _budget(t: Table, policies: Mapping[str, object]) -> BudgetConfig:
    d = BudgetConfig("", 0.0)
    policy = t.string("policy") if t.has("policy") else t.raw_none("policy")
    if policy is not None and policy not in policies:
        raise ConfigError(t.key("policy"), f"{policy!r} is not one of the [policies]")
    return BudgetConfig(
        name=t.string("name"),
        limit_usd=t.number("limit_usd", above=0, hi=MAX_COST_USD * 1000),
        window=t.string("window", d.window, choices=WINDOWS),  # type: ignore[arg-type]
        tenant=_named(t.key("tenant"), t.string("tenant")) if t.has("tenant")
        else t.raw_none("tenant"),
        policy=policy,
        when_spent=t.string("when_spent", d.when_spent,  # type: ignore[arg-type]
                            choices=("cheapest", "refuse")),
        pacing=t.boolean("pacing", d.pacing),
        max_cost_weight=t.number("max_cost_weight", d.max_cost_weight, above=0, hi=1000),
        max_tenant_share=t.number("max_tenant_share", d.max_tenant_share, above=0, hi=1),
    )


def _budgets(root: Table, policies: Mapping[str, object]) -> tuple[BudgetConfig, ...]:
    if not root.has("budgets"):
        root.raw_none("budgets")
        return ()
    budgets = tuple(t.read(lambda b: _budget(b, policies))
                    for t in root.array_of_tables("budgets"))
    names = [b.name for b in budgets]
    if len(set(names)) != len(names):
        raise ConfigError("budgets", "two budgets have the same name")
    return budgets


def _spend(t: Table, models: tuple[Model, ...]) -> SpendConfig:
    if not t.has("reference_model"):
        return SpendConfig(reference_model=t.raw_none("reference_model"))
    name = t.string("reference_model")
    if name not in {m.name for m in models}:
        raise ConfigError(t.key("reference_model"), f"{name!r} is not a model in the catalog")
    return SpendConfig(reference_model=name)


def _judge(t: Table, models: tuple[Model, ...], policies: Mapping[str, object],
           buckets: tuple[str, ...]) -> JudgeConfig:
    d = JudgeConfig()
    if not t.has("model"):
        t.raw_none("model")
        if t.names():
            raise ConfigError(t.key("model"), "the judge needs a model (a catalog model "
                                              "with an upstream)")
        return d
    name = t.string("model")
    model = next((m for m in models if m.name == name), None)
    if model is None or model.upstream is None:
        raise ConfigError(t.key("model"), f"{name!r} is not a catalog model with an upstream")
    rates = t.table("bucket_rates")
    bucket_rates = {b: rates.number(b, lo=0, hi=1) for b in rates.names()}
    for b in bucket_rates:
        if b not in buckets:
            raise ConfigError(rates.key(b), f"unknown bucket; buckets are {', '.join(buckets)}")
    judged = t.strings("policies", [])
    for p in judged:
        if p not in policies:
            raise ConfigError(t.key("policies"), f"{p!r} is not one of the [policies]")
    prompt = t.string("prompt", d.prompt)
    for placeholder in ("{conversation}", "{answer}"):
        if placeholder not in prompt:
            raise ConfigError(t.key("prompt"), f"must contain {placeholder}")
    try:
        prompt.format(conversation="", answer="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(t.key("prompt"), f"has a stray placeholder or brace ({exc}); "
                                           "write literal braces as {{ and }}") from exc
    return JudgeConfig(
        model=name,
        sample_rate=t.number("sample_rate", d.sample_rate, lo=0, hi=1),
        young_rate=t.number("young_rate", d.young_rate, lo=0, hi=1),
        young_evidence=t.number("young_evidence", d.young_evidence, lo=0, hi=1e6),
        bucket_rates=MappingProxyType(bucket_rates),
        policies=judged,
        budget_usd=t.number("budget_usd", above=0, hi=1e9) if t.has("budget_usd")
        else t.raw_none("budget_usd"),
        window=t.string("window", d.window, choices=WINDOWS),  # type: ignore[arg-type]
        timeout_s=t.number("timeout_s", d.timeout_s, above=0, hi=600),
        max_chars=t.integer("max_chars", d.max_chars, lo=100, hi=1_000_000),
        weight=t.number("weight", d.weight, lo=0, hi=10),
        accuracy=t.number("accuracy", d.accuracy, above=0.5, hi=1),
        disagreement=t.number("disagreement", d.disagreement, above=0, hi=1),
        prompt=prompt,
    )


def _implicit(t: Table) -> ImplicitConfig:
    d = ImplicitConfig()
    signals = t.strings("signals", list(d.signals))
    unknown = sorted(set(signals) - set(IMPLICIT_SIGNALS))
    if unknown:
        raise ConfigError(t.key("signals"), f"unknown: {', '.join(unknown)}; signals are "
                                            f"{', '.join(IMPLICIT_SIGNALS)}")
    return ImplicitConfig(
        signals=signals,
        weight=t.number("weight", d.weight, lo=0, hi=10),
        refusals=tuple(r.lower() for r in t.strings("refusals", list(d.refusals))),
        regenerate_window_s=t.number("regenerate_window_s", d.regenerate_window_s, above=0,
                                     hi=86_400),
    )


def _auth(t: Table) -> AuthConfig:
    keys = tuple(k.read(_api_key) for k in t.array_of_tables("keys")) if t.has("keys") \
        else t.raw_none("keys") or ()
    for field_name in ("name", "secret"):
        values = [getattr(k, field_name) for k in keys]
        if len(set(values)) != len(values):
            what = "names" if field_name == "name" else "keys"
            raise ConfigError("auth.keys", f"two entries have the same {what}")
    return AuthConfig(keys=keys)


def parse(document: dict, source: str = "<memory>") -> Config:
    """Validate a parsed TOML document and build the `Config` it describes."""
    root = Table(document)
    buckets = root.table("buckets", required=True).read(_buckets)
    policies = {name: sub.read(lambda s, n=name: _policy(n, s, buckets.names))
                for name, sub in root.tables("policies", required=True).items()}
    routing = root.table("routing").read(_routing)
    if routing.default_policy not in policies:
        raise ConfigError("routing.default_policy",
                          f"{routing.default_policy!r} is not one of the [policies]")
    upstreams = _upstreams(root)
    models = _models(root, upstreams)
    config = Config(
        server=root.table("server").read(_server),
        storage=root.table("storage").read(_storage),
        logging=root.table("logging").read(_logging),
        routing=routing,
        models=models,
        buckets=buckets,
        policies=MappingProxyType(policies),
        auth=root.table("auth").read(_auth),
        gateway=root.table("gateway").read(_gateway),
        budgets=_budgets(root, policies),
        spend=root.table("spend").read(lambda t: _spend(t, models)),
        upstreams=upstreams,
        judge=root.table("judge").read(
            lambda t: _judge(t, models, policies, buckets.names)),
        implicit=root.table("implicit").read(_implicit),
        source=source,
    )
    root.done()
    taken = sorted(set(config.aliases()) & {m.name for m in config.models})
    if taken:
        raise ConfigError("gateway.alias", f"alias {taken[0]!r} is also a model's name")
    return config


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config from `path`, or from the first of: $BANDIT_ROUTER_CONFIG,
    ./config.toml, the copy bundled with the package."""
    target = Path(path) if path is not None else default_path()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {target}: {exc.strerror or exc}") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<file>", f"{target} is not valid TOML: {exc}") from exc
    return parse(document, source=str(target))


def default_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path("config.toml")
    if local.is_file():
        return local
    bundled = resources.files("bandit_router").joinpath("config.toml")
    if bundled.is_file():
        return Path(str(bundled))
    # An editable install runs from the source tree, where config.toml sits beside the package.
    return Path(__file__).resolve().parent.parent / "config.toml"
