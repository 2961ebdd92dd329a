"""Every config key in one table, in the order the reference shows them.

Scalar keys come from the settings dataclasses' fields (core/setting.py); the keys of the
structural parts (API keys, upstreams, a model's upstream, the bucket rules and tasks) have
hand-written readers in config/load.py, and their help is written here.

Adding a key: give its settings class a field `name: type = setting(default, "help", lo=...,
hi=...)` (a new table: its class in SECTIONS, its prefix in `setting_table()`, and
`read_scalars(t, TheClass)` in its reader), then run
`python -m bandit_router.config.reference --write`; tests/test_readme.py says if config.toml
sets it to something else."""

from __future__ import annotations

from bandit_router.core.names import name_problem
from bandit_router.core.setting import Setting, fields_of, under
from bandit_router.core.settings import (
    BudgetConfig,
    CommitmentConfig,
    Complexity,
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
    Weights,
)
from bandit_router.core.types import DEFAULT_TENANT

# Prefixes under which a settings type's fields are keys.
SECTIONS: tuple[tuple[str, type], ...] = (
    ("server", ServerConfig), ("storage", StorageConfig), ("logging", LoggingConfig),
    ("routing", RoutingConfig), ("gateway", GatewayConfig), ("spend", SpendConfig),
    ("judge", JudgeConfig), ("implicit", ImplicitConfig), ("buckets.complexity", Complexity),
    ("buckets.learned", LearnedBuckets), ("buckets.tasks.<task>", TaskRule),
    ("models[]", Model), ("budgets[]", BudgetConfig), ("sessions", SessionsConfig),
    ("commitments[]", CommitmentConfig),
    ("policies.<name>", PolicyConfig), ("policies.<name>.weights", Weights),
    ("policies.<name>.prior", Prior),
)

AUTH = (
    Setting("auth.keys[].name", "a key's name, for logs (the key itself is never logged)",
            kind="string"),
    Setting("auth.keys[].tenant", "the tenant whose arms, decisions and feedback the key "
            "reaches", kind="string", default=DEFAULT_TENANT, check=name_problem),
    Setting("auth.keys[].scopes", "what the key may do: `route`, `feedback`, `admin` (its "
            "tenant's own arms and audit trail), `operator` (what every tenant shares: the "
            "catalog, every tenant's stats and resets); any key may read its tenant's "
            "`/v1/arms`"),
    Setting("auth.keys[].key_env", "the environment variable holding the key (at least 16 "
            "characters)"),
    Setting("auth.keys[].key", "the key itself, in the file (prefer `key_env`)"),
)


def _url_problem(url: str) -> str | None:
    bare = url.rstrip("/")
    if not bare.startswith(("http://", "https://")) or len(bare) < 9:
        return "must be an http:// or https:// URL"
    return None


UPSTREAMS = (
    Setting("upstreams.<name>.base_url", "a declared upstream: an OpenAI-compatible API, e.g. "
            "`https://api.openai.com/v1`; the only places the gateway calls", kind="string",
            check=_url_problem),
    Setting("upstreams.<name>.key_env", "the environment variable holding that API's key "
            "(read at start; never logged, stored or shown)", kind="string", optional=True,
            default=None, shown=""),
)
MODEL_UPSTREAM = (
    Setting("models[].upstream_model", "with `upstream = \"<name>\"`: the model's name at that "
            "API", shown="the model's `name`"),
    Setting("models[].upstream.base_url", "the inline form: the API ..."),
    Setting("models[].upstream.model", "... the model's name there ...",
            shown="the model's `name`"),
    Setting("models[].upstream.key_env", "... and the variable holding its key"),
)
BUCKETS = (
    Setting("buckets.default_task", "task when no hint and no cues match", kind="string"),
    Setting("buckets.levels", "complexity levels, simplest first", kind="strings"),
    Setting("buckets.thresholds", "one ascending score threshold per level after the first",
            default=[]),
)


def section(prefix: str) -> tuple[Setting, ...]:
    """The field-defined settings under one prefix (`server`, `policies.<name>.prior`)."""
    return under(prefix, fields_of(dict(SECTIONS)[prefix]))


def setting_table() -> tuple[Setting, ...]:
    """Every key, grouped as a reader meets them: service, gateway, catalog, buckets,
    policies."""
    s = section
    return (*s("server"), *s("storage"), *s("logging"), *AUTH, *s("gateway"), *UPSTREAMS,
            *s("models[]"), *MODEL_UPSTREAM, *s("judge"), *s("implicit"), *s("spend"),
            *s("budgets[]"), *s("commitments[]"), *s("sessions"),
            *s("routing"), *BUCKETS, *s("buckets.complexity"),
            *s("buckets.learned"), *s("buckets.tasks.<task>"), *s("policies.<name>"),
            *s("policies.<name>.weights"), *s("policies.<name>.prior"))
