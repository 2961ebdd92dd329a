"""Reading config.toml into the typed settings (core/settings.py): every key checked, every
error naming its key, read once at start and then passed around frozen."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from bandit_router.config.tomlcheck import ConfigError, Table
from bandit_router.core.location import BadLocation, locate
from bandit_router.core.names import name_problem
from bandit_router.core.settings import (
    IMPLICIT_SIGNALS,
    MIN_KEY_CHARS,
    MODES,
    SCOPES,
    WINDOWS,
    ApiKey,
    AuthConfig,
    BucketRules,
    BudgetConfig,
    Complexity,
    Config,
    GatewayConfig,
    ImplicitConfig,
    JudgeConfig,
    LearnedBuckets,
    LoggingConfig,
    Model,
    PolicyConfig,
    Prior,
    RoutingConfig,
    ServerConfig,
    SpendConfig,
    StorageConfig,
    TaskRule,
    Upstream,
    UpstreamConfig,
    Weights,
    default_pooling,
)
from bandit_router.core.types import DEFAULT_TENANT, MAX_COST_USD, MAX_LATENCY_MS, MAX_TOKENS

CONFIG_ENV = "BANDIT_ROUTER_CONFIG"

# --- reading -------------------------------------------------------------------------------
# Every number has a range: beyond it the arithmetic overflows or the setting makes no sense
# (a latency spread of e^200, a ten-thousand-year TTL), so it is refused at start.
MAX_PRICE_PER_MTOK = 100_000.0
MAX_HOURS = 87_600.0  # ten years
MAX_STRENGTH = 1e6  # pseudo-observations


def _named(key: str, name: str, part: bool = False) -> str:
    """`name`, if it follows the name rule (core/names.py); else an error naming `key`."""
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
    return Path(__file__).resolve().parents[2] / "config.toml"
