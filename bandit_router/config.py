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
from bandit_router.tomlcheck import ConfigError, Table

Mode = Literal["value", "utility", "cheapest_adequate"]
MODES: tuple[Mode, ...] = ("value", "utility", "cheapest_adequate")
Window = Literal["hour", "day", "month"]
WINDOWS: tuple[Window, ...] = ("hour", "day", "month")
WhenSpent = Literal["cheapest", "refuse"]
SCOPES = ("route", "feedback", "admin")
DEFAULT_TENANT = "default"
MIN_KEY_CHARS = 16
CONFIG_ENV = "BANDIT_ROUTER_CONFIG"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 1_048_576
    max_messages: int = 4096


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
class BucketRules:
    default_task: str
    tasks: tuple[TaskRule, ...]
    levels: tuple[str, ...]
    thresholds: tuple[float, ...]
    complexity: Complexity

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

    def policy_of(self, model: str, policies: Mapping[str, object], default: str) -> str | None:
        """The policy a `model` alias names, or None when it is not an alias."""
        if model == self.alias:
            return default
        prefix = f"{self.alias}-"
        if model.startswith(prefix) and model[len(prefix):] in policies:
            return model[len(prefix):]
        return None


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

    def covers(self, tenant: str, policy: str) -> bool:
        return (self.tenant is None or self.tenant == tenant) and \
            (self.policy is None or self.policy == policy)


@dataclass(frozen=True, slots=True)
class SpendConfig:
    reference_model: str | None = None  # savings are against it; None = the priciest model


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
    source: str = "<memory>"

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

def _server(t: Table) -> ServerConfig:
    d = ServerConfig()
    return ServerConfig(
        host=t.string("host", d.host),
        port=t.integer("port", d.port, lo=0, hi=65535),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, lo=1024),
        max_messages=t.integer("max_messages", d.max_messages, lo=1),
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
        max_batch=t.integer("max_batch", d.max_batch, lo=1),
        decision_ttl_hours=t.number("decision_ttl_hours", d.decision_ttl_hours, above=0),
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
        seed=t.optional_integer("seed"),
        recent_window=t.integer("recent_window", d.recent_window, lo=1),
    )


def _model(t: Table) -> Model:
    return Model(
        name=t.string("name"),
        provider=t.string("provider"),
        input_per_mtok=t.number("input_per_mtok", lo=0),
        output_per_mtok=t.number("output_per_mtok", lo=0),
        context_tokens=t.integer("context_tokens", lo=1),
        latency_ms=t.number("latency_ms", above=0),
        quality_prior=t.number("quality_prior", lo=0.01, hi=0.99) if t.has("quality_prior")
        else t.raw_none("quality_prior"),
        upstream=t.table("upstream").read(lambda u: _upstream(u, t.string("name")))
        if t.has("upstream") else t.raw_none("upstream"),
    )


def _upstream(t: Table, model: str) -> Upstream:
    base_url = t.string("base_url").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(t.key("base_url"), "must be an http:// or https:// URL")
    api_key = None
    if t.has("key_env"):
        variable = t.string("key_env")
        api_key = os.environ.get(variable) or None
        if api_key is None:
            raise ConfigError(t.key("key_env"), f"environment variable {variable} is not set")
    else:
        t.raw_none("key_env")
    return Upstream(base_url=base_url, model=t.string("model", model), api_key=api_key)


def _models(root: Table) -> tuple[Model, ...]:
    models = tuple(t.read(_model) for t in root.array_of_tables("models"))
    if not models:
        raise ConfigError("models", "the catalog needs at least one model")
    seen: set[str] = set()
    for i, m in enumerate(models):
        if m.name in seen:
            raise ConfigError(f"models[{i}].name", f"duplicate model name {m.name!r}")
        seen.add(m.name)
    return models


def _task(name: str, t: Table) -> TaskRule:
    if ":" in name:
        raise ConfigError(f"buckets.tasks.{name}", "a task name may not contain ':'")
    return TaskRule(name=name, hints=tuple(h.lower() for h in t.strings("hints", [])),
                    cues=tuple(c.lower() for c in t.strings("cues", [])),
                    min_cues=t.integer("min_cues", 1, lo=1))


def _complexity(t: Table) -> Complexity:
    d = Complexity()
    return Complexity(
        per_1k_input_tokens=t.number("per_1k_input_tokens", d.per_1k_input_tokens, lo=0),
        per_1k_output_tokens=t.number("per_1k_output_tokens", d.per_1k_output_tokens, lo=0),
        per_extra_turn=t.number("per_extra_turn", d.per_extra_turn, lo=0),
        per_cue=t.number("per_cue", d.per_cue, lo=0),
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
    thresholds = t.numbers("thresholds", [])
    if len(thresholds) != len(levels) - 1 or list(thresholds) != sorted(thresholds):
        raise ConfigError(t.key("thresholds"),
                          "needs one ascending threshold per level after the first")
    return BucketRules(default_task=default_task, tasks=tasks, levels=levels,
                       thresholds=thresholds, complexity=t.table("complexity").read(_complexity))


def _weights(t: Table) -> Weights:
    d = Weights()
    return Weights(cost=t.number("cost", d.cost, lo=0),
                   latency=t.number("latency", d.latency, lo=0),
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
        latency_strength=t.number("latency_strength", d.latency_strength, above=0),
        latency_log_sd=t.number("latency_log_sd", d.latency_log_sd, above=0),
        output_tokens=t.number("output_tokens", d.output_tokens, lo=0),
        output_tokens_strength=t.number("output_tokens_strength", d.output_tokens_strength,
                                        above=0),
        price_slope=t.number("price_slope", d.price_slope, lo=-0.9, hi=0.9),
    )


def _half_life(t: Table, default: float) -> float:
    value = t.number("half_life_hours", default, lo=0)
    if 0 < value < 0.001:
        raise ConfigError(t.key("half_life_hours"), "must be 0 (no decay) or at least 0.001")
    return value


def _change_window(t: Table, default: float) -> float:
    value = t.number("change_window", default, lo=0)
    if 0 < value < 2:
        raise ConfigError(t.key("change_window"), "must be 0 (off) or at least 2")
    return value


def _policy(name: str, t: Table, buckets: tuple[str, ...]) -> PolicyConfig:
    d = PolicyConfig(name)
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
        evidence_cap=t.number("evidence_cap", d.evidence_cap, lo=0),
        pooling=t.string("pooling", default_pooling(mode),  # type: ignore[arg-type]
                         choices=("optimistic", "full", "off")),
        pool_strength=t.number("pool_strength", d.pool_strength, lo=0),
        change_window=_change_window(t, d.change_window),
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
    return ApiKey(name=t.string("name"), tenant=t.string("tenant", DEFAULT_TENANT),
                  scopes=frozenset(scopes), secret=secret)


def _gateway(t: Table) -> GatewayConfig:
    d = GatewayConfig()
    return GatewayConfig(
        alias=t.string("alias", d.alias),
        attempts=t.integer("attempts", d.attempts, lo=1, hi=10),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, above=0),
        timeout_s=t.number("timeout_s", d.timeout_s, above=0),
    )


def _budget(t: Table, policies: Mapping[str, object]) -> BudgetConfig:
    d = BudgetConfig("", 0.0)
    policy = t.string("policy") if t.has("policy") else t.raw_none("policy")
    if policy is not None and policy not in policies:
        raise ConfigError(t.key("policy"), f"{policy!r} is not one of the [policies]")
    return BudgetConfig(
        name=t.string("name"),
        limit_usd=t.number("limit_usd", above=0),
        window=t.string("window", d.window, choices=WINDOWS),  # type: ignore[arg-type]
        tenant=t.string("tenant") if t.has("tenant") else t.raw_none("tenant"),
        policy=policy,
        when_spent=t.string("when_spent", d.when_spent,  # type: ignore[arg-type]
                            choices=("cheapest", "refuse")),
        pacing=t.boolean("pacing", d.pacing),
        max_cost_weight=t.number("max_cost_weight", d.max_cost_weight, above=0, hi=1000),
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
    models = _models(root)
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
