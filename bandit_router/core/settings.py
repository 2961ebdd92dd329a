"""The typed settings: the frozen values the service runs with (config/ reads them from TOML).

A config key's default, bounds and help text are on its field (`setting(...)`, see
core/setting.py): the reader (config/scalars.py) and the reference page
(config/reference.py) both follow from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from bandit_router.core.location import BadLocation, locate
from bandit_router.core.names import name_problem
from bandit_router.core.setting import setting, zero_or_at_least
from bandit_router.core.types import MAX_COST_USD, MAX_LATENCY_MS, MAX_TOKENS

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
Level = Literal["debug", "info", "warning", "error"]
# Every number has a range: beyond it the arithmetic overflows or the setting makes no sense
# (a latency spread of e^200, a ten-thousand-year TTL), so it is refused at start.
MAX_PRICE_PER_MTOK = 100_000.0
MAX_HOURS = 87_600.0  # ten years
MAX_STRENGTH = 1e6  # pseudo-observations
GIB = 1 << 30


def _location_problem(url: str) -> str | None:
    try:
        locate(url)
    except BadLocation as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = setting("127.0.0.1", "address to bind; loopback only by default")
    port: int = setting(8787, "port", lo=0, hi=65535)
    max_body_bytes: int = setting(
        1_048_576, "larger bodies get `413 body_too_large` before parsing", lo=1024, hi=GIB)
    max_messages: int = setting(4096, "a route request with more messages gets `400`", lo=1,
                                hi=100_000)
    max_content_parts: int = setting(
        4096, "... and one with more content parts in all its messages (counted before any "
        "is read)", lo=1, hi=100_000)
    max_connections: int = setting(
        4096, "open connections; past it a new one gets `503 too_many_connections` and is "
        "closed (the open-file limit is raised to fit, up to the hard limit)", lo=1,
        hi=1_000_000)
    header_timeout_s: float = setting(
        10.0, "a request's headers must arrive within this of the connection opening or of "
        "the previous answer, else the connection is closed (this also ends idle keep-alive "
        "connections)", above=0, hi=3600)
    body_timeout_s: float = setting(
        30.0, "its body within this once the headers are in, else `408 request_timeout`",
        above=0, hi=3600)
    shutdown_drain_s: float = setting(
        10.0, "on `SIGTERM`, open requests may finish for this long; then streams still open "
        "end with an error event, everything acknowledged is committed, and the exit is 0",
        lo=0, hi=3600)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = setting(
        "bandit-router.db", "where state lives: a SQLite file (a bare path, or "
        "`sqlite:///relative.db`, `sqlite:////absolute.db`; WAL mode) or "
        "`postgresql://user@host:5432/db` for replicas sharing one store (see "
        "[Running several replicas](replicas.md))", check=_location_problem)
    synchronous: Literal["full", "normal"] = setting(
        "full", "`\"full\"`: feedback is fsynced before it is acknowledged; `\"normal\"`: "
        "survives a process crash but not a power cut, faster")
    max_batch: int = setting(512, "most writes per transaction (group commit)", lo=1,
                             hi=100_000)
    decision_ttl_hours: float = setting(
        168.0, "feedback for older decisions is refused; older decision records are pruned",
        above=0, hi=MAX_HOURS)
    sync_interval_ms: float = setting(
        200.0, "how often an idle replica folds in the feedback other replicas committed to "
        "the shared store: the staleness bound", above=0, hi=60_000)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Level = setting("info", "the least severe events logged")
    decision_sample_rate: float = setting(
        1.0, "fraction of `decision` events logged (feedback is always logged)", lo=0, hi=1)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    default_policy: str = setting("default", "policy used when a request names none")
    seed: int | None = setting(
        None, "RNG seed (an integer ≥ 0): the same requests and feedback then give the same "
        "decisions", lo=0, shown="absent: a random seed (the bundled config sets `0`)")
    recent_window: int = setting(1000, "decisions per bucket behind `share` in `/v1/arms`",
                                 lo=1, hi=1_000_000)


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

    name: str = setting(help="model name, as your application calls it", check=name_problem)
    provider: str = setting(help="provider, informational")
    input_per_mtok: float = setting(help="USD per million input tokens", lo=0,
                                    hi=MAX_PRICE_PER_MTOK)
    output_per_mtok: float = setting(help="USD per million output tokens", lo=0,
                                     hi=MAX_PRICE_PER_MTOK)
    context_tokens: int = setting(
        help="context length; requests that do not fit are not routed there, and feedback "
        "claiming more input is refused", lo=1, hi=MAX_TOKENS)
    latency_ms: float = setting(help="prior guess of a typical answer's latency", above=0,
                                hi=MAX_LATENCY_MS)
    quality_prior: float | None = setting(
        None, "optional prior mean quality for this model (else the policy's)", lo=0.01,
        hi=0.99, shown="none")
    upstream: Upstream | None = setting(
        None, "for the gateway: the name of an `[upstreams]` entry, or an inline table "
        "`{base_url, model, key_env}`", structural=True, shown="none")  # None: not callable
    max_output_tokens: int | None = setting(
        None, "the longest answer the model can give, at most `context_tokens`; feedback "
        "claiming more is refused, an upstream's usage is clamped to it", lo=1, hi=MAX_TOKENS,
        shown="`context_tokens`")  # at most context_tokens, checked when read
    # prompt caching (core/cache_prices.py); None: the input price
    cached_input_per_mtok: float | None = setting(
        None, "USD per million input tokens read from the provider's prompt cache, at most "
        "`input_per_mtok` ([sessions.md](sessions.md))", lo=0, hi=MAX_PRICE_PER_MTOK,
        shown="`input_per_mtok`")
    cache_write_per_mtok: float | None = setting(
        None, "USD per million input tokens written to the cache, where the provider charges "
        "writes; at most twice `input_per_mtok`", lo=0, hi=2 * MAX_PRICE_PER_MTOK,
        shown="`input_per_mtok`")

    @property
    def output_limit(self) -> int:
        """The most output tokens one call to this model can produce."""
        return self.max_output_tokens or self.context_tokens


@dataclass(frozen=True, slots=True)
class TaskRule:
    name: str  # the table's name, [buckets.tasks.<name>]
    hints: tuple[str, ...] = setting((), "`task` values that select this task", lower=True,
                                     shown="")
    cues: tuple[str, ...] = setting((), "lower-case substrings that suggest this task",
                                    lower=True, shown="")
    min_cues: int = setting(1, "distinct cues needed before the prompt is assigned this task",
                            lo=1, hi=1000)


@dataclass(frozen=True, slots=True)
class Complexity:
    per_1k_input_tokens: float = setting(0.5, "complexity points per 1,000 input tokens",
                                         lo=0, hi=1000)
    per_1k_output_tokens: float = setting(1.0, "points per 1,000 requested output tokens",
                                          lo=0, hi=1000)
    per_extra_turn: float = setting(0.2, "points per user turn after the first", lo=0, hi=1000)
    per_cue: float = setting(0.75, "points per distinct complexity cue present", lo=0, hi=1000)
    cues: tuple[str, ...] = setting(
        (), "lower-case substrings that signal a harder request", lower=True, shown="")


@dataclass(frozen=True, slots=True)
class LearnedBuckets:
    """Buckets learned inside each rule bucket from the traffic and its feedback (see
    bandit_router/core/refine.py for what each setting bounds)."""

    # experimental: it does not yet beat rules only (README)
    enabled: bool = setting(
        False, "learned buckets inside the rule buckets (experimental); `false` = rules only")
    max_children: int = setting(
        16, "learned buckets per rule bucket (per tenant and policy)", lo=2, hi=64)
    max_buckets: int = setting(
        64, "learned buckets per tenant and policy, every rule bucket together", lo=2, hi=4096)
    min_samples: int = setting(
        60, "a rule bucket's kept answers before it may split", lo=8, hi=100_000)
    per_child: int = setting(
        20, "kept answers per learned bucket: more children need more answers", lo=2,
        hi=100_000)
    min_per_model: int = setting(
        4, "answers of a model in each of two groups before they are compared", lo=2,
        hi=10_000)
    min_gap: float = setting(
        0.2, "a split needs a model's quality to differ by this much between two groups ...",
        lo=0.01, hi=1.0)
    z: float = setting(3.0, "... by this many standard errors (on held-out answers)", lo=1.0,
                       hi=20.0)
    samples_per_model: int = setting(
        150, "recent answers kept per rule bucket and model (in memory)", lo=8, hi=10_000)
    refine_every: int = setting(
        20, "new answers in a rule bucket before it is refined again", lo=1, hi=100_000)
    inherit: float = setting(
        2.0, "a learned bucket's quality prior: its rule bucket's posterior, worth this many "
        "answers", above=0.0, hi=10_000.0)
    remember: int = setting(
        20_000, "recent decisions whose sketches wait for their feedback", lo=1, hi=1_000_000)
    refine_interval_s: float = setting(
        1.0, "how often the service looks for buckets to refine", above=0, hi=3600)


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

    cost: float = setting(
        0.1, "utility mode: quality points (as a fraction of 1) that paying the priciest "
        "eligible model's cost is worth", lo=0, hi=1000)
    latency: float = setting(
        0.0, "utility mode: quality points that waiting as long as the slowest eligible model "
        "is worth", lo=0, hi=1000)
    points_per_price_doubling: float = setting(
        2.0, "value mode: quality points (hundredths of the 0..1 scale) a model must add for "
        "each doubling of its price to be worth it", lo=0, hi=1000)
    points_per_latency_doubling: float = setting(
        0.0, "value mode: the same for each doubling of its typical latency; latency is "
        "opt-in (this weight, or `constraints.max_latency_ms`)", lo=0, hi=1000)


@dataclass(frozen=True, slots=True)
class Prior:
    # Bounds keep the Beta prior numerically sound (intervals, sampling).
    quality_mean: float = setting(0.5, "prior mean quality of every model", lo=0.01, hi=0.99)
    quality_strength: float = setting(2.0, "prior pseudo-observations (α0 + β0)", lo=0.1,
                                      hi=1e6)
    latency_strength: float = setting(2.0, "pseudo-observations of `models[].latency_ms`",
                                      above=0, hi=MAX_STRENGTH)
    # e^5: the typical latency spread 150-fold either way, far beyond any real model
    latency_log_sd: float = setting(0.5, "prior spread of log-latency", above=0, hi=5.0)
    output_tokens: float = setting(400.0, "prior expected output tokens", lo=0, hi=MAX_TOKENS)
    output_tokens_strength: float = setting(
        2.0, "its pseudo-observations (an untried model's prior length is what the bucket's "
        "other models answered)", above=0, hi=MAX_STRENGTH)
    price_slope: float = setting(
        0.0, "tilt of the prior mean by price: the priciest model starts `slope/2` above "
        "`quality_mean`, the cheapest `slope/2` below", lo=-0.9, hi=0.9)

    @property
    def alpha(self) -> float:
        return self.quality_mean * self.quality_strength

    @property
    def beta(self) -> float:
        return (1.0 - self.quality_mean) * self.quality_strength


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str  # the table's name, [policies.<name>]
    mode: Mode = setting(
        "value", "`\"value\"` (see [How it decides](decisions.md)), or the older "
        "`\"utility\"` or `\"cheapest_adequate\"`")
    weights: Weights = Weights()
    prior: Prior = Prior()
    quality_target: float = setting(0.7, "`cheapest_adequate`: quality a model must clear",
                                    lo=0, hi=1)
    quality_targets: MappingProxyType[str, float] = setting(
        factory=lambda: MappingProxyType({}), structural=True, shown="`{}`",
        help="per-bucket targets, e.g. `\"code:high\" = 0.8`")
    half_life_hours: float = setting(
        168.0, "evidence halves toward the prior over this time; `0` = never, else at "
        "least `0.001`", lo=0,
        hi=MAX_HOURS, check=zero_or_at_least(0.001, "no decay"))
    evidence_cap: float = setting(
        0.0, "most quality observations an arm keeps (keeps it exploring, at a steady cost); "
        "`0` = no cap", lo=0, hi=1e9)
    pooling: Literal["optimistic", "full", "off"] = setting(
        "full", "how a model's record in the policy's other buckets starts its prior in a new "
        "bucket: `\"full\"` (may raise or lower it), `\"optimistic\"` (may raise the prior, "
        "never lower it, so every model still gets tried), `\"off\"`",
        shown="`\"full\"` in value mode, else `\"optimistic\"`")  # default_pooling(mode)
    pool_strength: float = setting(
        10.0, "that record is worth at most this many observations (less when buckets "
        "disagree about models)", lo=0, hi=MAX_STRENGTH)
    change_window: float = setting(
        50.0, "answers in the recent window compared with the long run; when they disagree "
        "by more than 4 standard errors, the arm forgets its past (a model changed); "
        "`0` = off, else at least `2`", lo=0, hi=1_000_000, check=zero_or_at_least(2, "off"))
    change_min_hours: float = setting(
        1.0, "how long the recent window must keep disagreeing before the past is forgotten; "
        "a burst of feedback shorter than this cannot erase an arm's history; `0`: at once",
        lo=0, hi=720)
    # three sigma; value.py sets aside arms whose bounds at this level say they cannot matter
    contention_level: float = setting(
        0.9973, "value mode: credible level (3 sigma) of the bounds that set aside a model "
        "that cannot matter; `0` = never set aside, else at least `0.5`", lo=0, hi=0.999999,
        check=zero_or_at_least(0.5, "off", upto=1))

    def target_for(self, bucket: str) -> float:
        return self.quality_targets.get(bucket, self.quality_target)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    alias: str = setting(
        "auto", "the `model` name that routes with the default policy; `\"<alias>-<policy>\"` "
        "routes with another", check=name_problem)
    attempts: int = setting(
        3, "upstream calls per request: the decision's model, then its fallbacks", lo=1, hi=10)
    connect_timeout_s: float = setting(5.0, "connecting to an upstream", above=0, hi=600)
    timeout_s: float = setting(
        120.0, "waiting for an answer, or between two streamed chunks", above=0, hi=3600)
    max_answer_bytes: int = setting(
        8 << 20, "an upstream answer (streamed or not) past this is that upstream's failure: "
        "the next model is tried", lo=1024, hi=GIB)
    max_event_bytes: int = setting(1 << 20, "the longest line of a streamed answer, likewise",
                                   lo=1024, hi=GIB)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """A spending limit per calendar window (UTC), paced: as spend runs ahead of an even
    pace, the cost weight of the decisions it covers rises; behind it, it relaxes."""

    name: str = setting(help="the budget's name, in decisions, `/v1/stats`, logs and errors")
    limit_usd: float = setting(help="the most to spend per window", above=0,
                               hi=MAX_COST_USD * 1000)
    window: Window = setting("day", "`\"hour\"`, `\"day\"` or `\"month\"`: UTC calendar "
                             "windows")
    tenant: str | None = setting(None, "whose spend counts, and whose decisions it paces",
                                 check=name_problem, shown="every tenant")
    policy: str | None = setting(None, "the same, for a policy (one of the `[policies]`)",
                                 shown="every policy")
    when_spent: WhenSpent = setting(
        "cheapest", "once spent: route to the cheapest eligible model, or `\"refuse\"` with "
        "`429 budget_exhausted`")
    pacing: bool = setting(
        True, "raise the cost weight as spend runs ahead of the even pace; `false`: the hard "
        "action only")
    max_cost_weight: float = setting(5.0, "the most pacing may add to the cost weight",
                                     above=0, hi=1000)
    max_tenant_share: float = setting(
        1.0, "of a budget covering several tenants: the most one tenant may spend of it; past "
        "that, the hard action applies to that tenant alone", above=0, hi=1)

    def covers(self, tenant: str, policy: str) -> bool:
        return (self.tenant is None or self.tenant == tenant) and \
            (self.policy is None or self.policy == policy)


@dataclass(frozen=True, slots=True)
class CommitmentConfig:
    """A provider (or model) commitment (core/commitments.py): `amount_usd` prepaid or
    committed per calendar `window` at `discount` off list price, or, with no amount, a flat
    `discount` on every call."""

    name: str = setting(help="the commitment's name, in `/v1/stats`")
    provider: str | None = setting(
        None, "the provider covered (every catalog model with it); give this or `model`",
        shown="none")
    model: str | None = setting(None, "... or the one catalog model covered", shown="none")
    amount_usd: float | None = setting(
        None, "paid per window whether used or not; it buys `amount_usd / (1 - discount)` of "
        "list-price usage", above=0, hi=MAX_COST_USD * 1000,
        shown="none: a flat `discount` on every call")
    discount: float = setting(0.0, "fraction off list price (below 0.99 for a flat one)",
                              lo=0, hi=1)
    window: Window = setting("month", "`\"hour\"`, `\"day\"` or `\"month\"`: UTC calendar "
                             "windows")
    pacing: bool = setting(
        True, "price prepaid units by a shadow price that spreads them over the window; "
        "`false`: free until used up")


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """What the router remembers of a session (engine/sessions.py): per session, its last
    turn's model and how much of the prompt that model's cache holds, for as long as the
    provider keeps a cache."""

    ttl_s: float = setting(
        300.0, "how long a session's last model and cached prefix are remembered: a "
        "provider's cache lifetime", above=0, hi=30 * 86_400.0)
    provider_ttl_s: MappingProxyType[str, float] = setting(
        factory=lambda: MappingProxyType({}), structural=True, shown="`sessions.ttl_s`",
        help="the same per provider, e.g. `openai = 600`")
    max_sessions: int = setting(
        100_000, "sessions remembered per process; past it the least recently used is "
        "forgotten", lo=1, hi=100_000_000)
    hit_prior: float = setting(
        0.5, "prior share of a remembered prefix a model's cache serves, until feedback's "
        "`cached_input_tokens` teach it", lo=0, hi=1)
    hit_prior_strength: float = setting(2.0, "that prior's weight, in turns", above=0,
                                        hi=MAX_STRENGTH)

    def ttl_for(self, provider: str) -> float:
        return self.provider_ttl_s.get(provider, self.ttl_s)


@dataclass(frozen=True, slots=True)
class SpendConfig:
    reference_model: str | None = setting(
        None, "savings in `/v1/stats` and `report` are measured against sending every call to "
        "this model (one in the catalog)", shown="the priciest model")


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


def _prompt_problem(prompt: str) -> str | None:
    for placeholder in ("{conversation}", "{answer}"):
        if placeholder not in prompt:
            return f"must contain {placeholder}"
    try:
        prompt.format(conversation="", answer="")
    except (KeyError, IndexError, ValueError) as exc:
        return f"has a stray placeholder or brace ({exc}); write literal braces as {{{{ and }}}}"
    return None


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """A judge model the router calls itself, after a gateway answer was sent, on a sample
    of the calls: its score becomes a quality fact with source `judge`. Off (model None)
    unless configured: it costs money and sends conversations to another model."""

    model: str | None = setting(
        None, "the judge: a catalog model with an upstream that grades a sample of gateway "
        "answers ([quality.md](quality.md))", shown="none (off)")
    sample_rate: float = setting(
        0.05, "the fraction of answered calls judged once the arm is known", lo=0, hi=1)
    young_rate: float = setting(
        0.5, "the rate while the answering arm has no quality evidence, falling linearly to "
        "`sample_rate` at `young_evidence` ...", lo=0, hi=1)
    young_evidence: float = setting(30.0, "... this many quality observations", lo=0, hi=1e6)
    explore_rate: float = setting(
        1.0, "the rate (at least) for an answer from a model other than the one the router "
        "believes best for the request (a Thompson exploration or a fallback): where a score "
        "can change what it routes", lo=0, hi=1)
    bucket_rates: MappingProxyType[str, float] = setting(
        factory=lambda: MappingProxyType({}), structural=True, shown="",
        help="per-bucket rates (`\"code:high\" = 0.2`) in place of `sample_rate`")
    policies: tuple[str, ...] = setting(
        (), "only these policies' calls are judged", shown="every policy")
    budget_usd: float | None = setting(
        None, "the most judging may cost per `window`; past it, no judging until the next",
        above=0, hi=1e9, shown="none")
    window: Window = setting("day", "the window of `budget_usd`: `\"hour\"`, `\"day\"` or "
                             "`\"month\"`")
    timeout_s: float = setting(
        30.0, "a judge call slower than this is a failure (counted, never a fact)", above=0,
        hi=600)
    max_chars: int = setting(
        12_000, "of the conversation (its end) and of the answer (its start) shown to the "
        "judge", lo=100, hi=1_000_000)
    weight: float = setting(
        1.0, "what one judge score weighs in a posterior against a client's (1)", lo=0, hi=10)
    # LLM judges agree with experts about 85% of the time, as often as experts agree with
    # each other (Zheng et al. 2023, MT-Bench)
    accuracy: float = setting(
        0.85, "how often the judge agrees with a careful human: its scores are read as that "
        "noisy; `1` takes them at face value", above=0.5, hi=1)
    disagreement: float = setting(
        0.25, "mean absolute client-judge difference over which `/v1/stats` flags the judge",
        above=0, hi=1)
    prompt: str = setting(
        DEFAULT_JUDGE_PROMPT, "the grading prompt, with `{conversation}` and `{answer}` "
        "(literal braces doubled)", check=_prompt_problem, shown="built in")

    @property
    def enabled(self) -> bool:
        return self.model is not None


IMPLICIT_SIGNALS = ("empty", "truncated", "content_filter", "refusal", "invalid_json",
                    "regenerate")
DEFAULT_REFUSALS = ("i can't help with", "i cannot help with", "i can't assist",
                    "i cannot assist", "i'm sorry, but i can't", "i am sorry, but i cannot",
                    "i'm unable to help", "as an ai language model, i cannot")


def _signals_problem(signals: tuple[str, ...]) -> str | None:
    unknown = sorted(set(signals) - set(IMPLICIT_SIGNALS))
    if unknown:
        return f"unknown: {', '.join(unknown)}; signals are {', '.join(IMPLICIT_SIGNALS)}"
    return None


@dataclass(frozen=True, slots=True)
class ImplicitConfig:
    """Quality the gateway sees for free in an answer's form: each signal present gives the
    call one bounded negative quality fact (source `implicit`), weighted `weight`."""

    signals: tuple[str, ...] = setting(
        ("empty", "truncated", "content_filter", "refusal", "invalid_json"),
        "which of `empty`, `truncated`, `content_filter`, `refusal`, `invalid_json`, "
        "`regenerate` count", check=_signals_problem,
        shown="all but `regenerate`")  # "regenerate": opt in (a caller's act)
    weight: float = setting(0.5, "what one implicit fact weighs against a client's score",
                            lo=0, hi=10)
    refusals: tuple[str, ...] = setting(
        DEFAULT_REFUSALS, "lower-case phrases that mark an answer opening with a refusal",
        lower=True, shown="built in")
    regenerate_window_s: float = setting(
        300.0, "the same conversation again within this is a regenerate", above=0, hi=86_400)


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
    sessions: SessionsConfig = SessionsConfig()
    commitments: tuple[CommitmentConfig, ...] = ()
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
