"""Reading config.toml into the typed settings (core/settings.py): every key checked, every
error naming its key, read once at start and then passed around frozen."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bandit_router.config.scalars import read_one, read_scalars, setting_of
from bandit_router.config.tomlcheck import ConfigError, Table
from bandit_router.core.cache_prices import cache_price_problem
from bandit_router.core.names import name_problem
from bandit_router.core.setting_table import AUTH, BUCKETS, UPSTREAMS
from bandit_router.core.settings import (
    MIN_KEY_CHARS,
    SCOPES,
    ApiKey,
    AuthConfig,
    BucketRules,
    BudgetConfig,
    CommitmentConfig,
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
    SessionsConfig,
    SpendConfig,
    StorageConfig,
    TaskRule,
    Upstream,
    UpstreamConfig,
    Weights,
    default_pooling,
)

CONFIG_ENV = "BANDIT_ROUTER_CONFIG"


def _named(key: str, name: str, part: bool = False) -> str:
    """`name`, if it follows the name rule (core/names.py); else an error naming `key`."""
    problem = name_problem(name, part)
    if problem is not None:
        raise ConfigError(key, problem)
    return name


def _section(cls: type) -> Callable[[Table], Any]:
    """The reader of a table that holds only scalar settings."""
    return lambda t: cls(**read_scalars(t, cls))


def _model(t: Table, upstreams: Mapping[str, UpstreamConfig]) -> Model:
    context = read_one(t, setting_of(Model, "context_tokens"))
    values = read_scalars(t, Model, skip=("context_tokens",),
                          bounds={"max_output_tokens": {"hi": context}})
    _cache_prices(t, values)
    return Model(**values, context_tokens=context, upstream=_model_upstream(t, upstreams))


def _cache_prices(t: Table, values: Mapping[str, Any]) -> None:
    problem = cache_price_problem(values["input_per_mtok"], dict(values))
    if problem is not None:
        raise ConfigError(t.key(problem[0]), problem[1])


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
    base_url, variable = (read_one(t, s) for s in UPSTREAMS)
    api_key = os.environ.get(variable) or None if variable is not None else None
    if variable is not None and api_key is None:
        raise ConfigError(t.key("key_env"), f"environment variable {variable} is not set")
    return UpstreamConfig(name=name or "", base_url=base_url.rstrip("/"), api_key=api_key)


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
                    **read_scalars(t, TaskRule))


def _buckets(t: Table) -> BucketRules:
    tasks = tuple(sub.read(lambda s, n=name: _task(n, s)) for name, sub in
                  t.tables("tasks", required=True).items())
    default_task, levels = (read_one(t, s) for s in BUCKETS[:2])
    if default_task not in {r.name for r in tasks}:
        raise ConfigError(t.key("default_task"), f"{default_task!r} is not one of buckets.tasks")
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
                       thresholds=thresholds,
                       complexity=t.table("complexity").read(_section(Complexity)),
                       learned=t.table("learned").read(_section(LearnedBuckets)))


def _policy(name: str, t: Table, buckets: tuple[str, ...]) -> PolicyConfig:
    _named(f"policies.{name}", name)
    targets = t.table("quality_targets")
    per_bucket = {b: targets.number(b, lo=0, hi=1) for b in targets.names()}
    for b in per_bucket:
        if b not in buckets:
            raise ConfigError(targets.key(b), f"unknown bucket; buckets are {', '.join(buckets)}")
    mode = read_one(t, setting_of(PolicyConfig, "mode"))
    return PolicyConfig(
        name=name, mode=mode, quality_targets=MappingProxyType(per_bucket),
        weights=t.table("weights").read(_section(Weights)),
        prior=t.table("prior").read(_section(Prior)),
        **read_scalars(t, PolicyConfig, skip=("mode",),
                       defaults={"pooling": default_pooling(mode)}))


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
    name, tenant = (read_one(t, s) for s in AUTH[:2])
    return ApiKey(name=name, tenant=tenant, scopes=frozenset(scopes), secret=secret)


def _budget(t: Table, policies: Mapping[str, object]) -> BudgetConfig:
    policy = read_one(t, setting_of(BudgetConfig, "policy"))
    if policy is not None and policy not in policies:
        raise ConfigError(t.key("policy"), f"{policy!r} is not one of the [policies]")
    return BudgetConfig(policy=policy, **read_scalars(t, BudgetConfig, skip=("policy",)))


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


def _sessions(t: Table) -> SessionsConfig:
    ttl = t.table("provider_ttl_s")
    by_provider = {name: ttl.number(name, above=0, hi=30 * 86_400.0) for name in ttl.names()}
    return SessionsConfig(provider_ttl_s=MappingProxyType(by_provider),
                          **read_scalars(t, SessionsConfig))


def _commitment(t: Table, models: tuple[Model, ...]) -> CommitmentConfig:
    c = CommitmentConfig(**read_scalars(t, CommitmentConfig))
    if (c.provider is None) == (c.model is None):
        raise ConfigError(t.key("provider"), "give exactly one of provider or model")
    if c.model is not None and c.model not in {m.name for m in models}:
        raise ConfigError(t.key("model"), f"{c.model!r} is not a model in the catalog")
    if c.provider is not None and c.provider not in {m.provider for m in models}:
        raise ConfigError(t.key("provider"), f"{c.provider!r} is no catalog model's provider")
    if c.amount_usd is None and c.discount >= 0.99:
        raise ConfigError(t.key("discount"), "a flat discount must be below 0.99")
    return c


def _commitments(root: Table, models: tuple[Model, ...]) -> tuple[CommitmentConfig, ...]:
    if not root.has("commitments"):
        root.raw_none("commitments")
        return ()
    found = tuple(t.read(lambda c: _commitment(c, models))
                  for t in root.array_of_tables("commitments"))
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ConfigError("commitments", "two commitments have the same name")
    covered = [m.name for m in models if sum(c.model == m.name or c.provider == m.provider
                                             for c in found) > 1]
    if covered:
        raise ConfigError("commitments", f"model {covered[0]!r} is covered by two commitments")
    return found


def _spend(t: Table, models: tuple[Model, ...]) -> SpendConfig:
    config = SpendConfig(**read_scalars(t, SpendConfig))
    name = config.reference_model
    if name is not None and name not in {m.name for m in models}:
        raise ConfigError(t.key("reference_model"), f"{name!r} is not a model in the catalog")
    return config


def _judge(t: Table, models: tuple[Model, ...], policies: Mapping[str, object],
           buckets: tuple[str, ...]) -> JudgeConfig:
    if not t.has("model"):
        t.raw_none("model")
        if t.names():
            raise ConfigError(t.key("model"), "the judge needs a model (a catalog model "
                                              "with an upstream)")
        return JudgeConfig()
    name = t.string("model")
    model = next((m for m in models if m.name == name), None)
    if model is None or model.upstream is None:
        raise ConfigError(t.key("model"), f"{name!r} is not a catalog model with an upstream")
    rates = t.table("bucket_rates")
    bucket_rates = {b: rates.number(b, lo=0, hi=1) for b in rates.names()}
    for b in bucket_rates:
        if b not in buckets:
            raise ConfigError(rates.key(b), f"unknown bucket; buckets are {', '.join(buckets)}")
    values = read_scalars(t, JudgeConfig, skip=("model",))
    for p in values["policies"]:
        if p not in policies:
            raise ConfigError(t.key("policies"), f"{p!r} is not one of the [policies]")
    return JudgeConfig(model=name, bucket_rates=MappingProxyType(bucket_rates), **values)


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
    routing = root.table("routing").read(_section(RoutingConfig))
    if routing.default_policy not in policies:
        raise ConfigError("routing.default_policy",
                          f"{routing.default_policy!r} is not one of the [policies]")
    upstreams = _upstreams(root)
    models = _models(root, upstreams)
    config = Config(
        server=root.table("server").read(_section(ServerConfig)),
        storage=root.table("storage").read(_section(StorageConfig)),
        logging=root.table("logging").read(_section(LoggingConfig)),
        routing=routing,
        models=models,
        buckets=buckets,
        policies=MappingProxyType(policies),
        auth=root.table("auth").read(_auth),
        gateway=root.table("gateway").read(_section(GatewayConfig)),
        budgets=_budgets(root, policies),
        spend=root.table("spend").read(lambda t: _spend(t, models)),
        upstreams=upstreams,
        judge=root.table("judge").read(
            lambda t: _judge(t, models, policies, buckets.names)),
        implicit=root.table("implicit").read(_section(ImplicitConfig)),
        sessions=root.table("sessions").read(_sessions),
        commitments=_commitments(root, models),
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
