"""Run-time changes to the catalog, as a pure fold of a change list over config.toml's models.

The service stores every change it accepts, in order (the audit table), and replays the list
at start on top of the config file, so a restart rebuilds the catalog it was serving.

Precedence: a field that a runtime change set beats config.toml for that model, at every
later start too (a warning names each field where the file now says otherwise); every field
no change touched still comes from config.toml, so editing it there takes effect at the next
start. A model is never removed at run time, only disabled: its arms keep their evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bandit_router.config import Model, Upstream
from bandit_router.errors import RouterError

Source = Literal["config", "runtime"]
Op = Literal["add", "update"]
# Fields of a Model a change may set, and the extra, catalog-only `enabled`.
MODEL_FIELDS = ("provider", "input_per_mtok", "output_per_mtok", "context_tokens", "latency_ms",
                "quality_prior", "upstream")
UPDATE_FIELDS = frozenset({"enabled", "input_per_mtok", "output_per_mtok", "context_tokens"})


class ModelExists(RouterError):
    status = 409
    code = "model_exists"


class ModelNotFound(RouterError):
    status = 404
    code = "model_not_found"


class LastEnabledModel(RouterError):
    """Routing needs at least one enabled model."""

    status = 409
    code = "last_enabled_model"


@dataclass(frozen=True, slots=True)
class Entry:
    """One model of the live catalog."""

    model: Model
    enabled: bool = True
    source: Source = "config"  # config: config.toml has it; runtime: only an admin added it
    overridden: frozenset[str] = frozenset()  # model fields a runtime change set

    @property
    def name(self) -> str:
        return self.model.name


@dataclass(frozen=True, slots=True)
class Change:
    """One accepted change. `fields` are JSON values, complete and validated
    (catalog_wire): replaying them must not depend on anything but the config file."""

    op: Op
    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Replayed:
    entries: tuple[Entry, ...]
    notes: tuple[str, ...]  # changes that no longer apply, config values runtime ones shadow


def from_config(models: Iterable[Model]) -> tuple[Entry, ...]:
    return tuple(Entry(m) for m in models)


def find(entries: Iterable[Entry], name: str) -> Entry | None:
    return next((e for e in entries if e.name == name), None)


def check(entries: tuple[Entry, ...], change: Change, aliases: Iterable[str]) -> None:
    """Refuse a change the live catalog cannot take (an API caller's mistake)."""
    current = find(entries, change.name)
    if change.op == "add":
        if current is not None:
            raise ModelExists(f"model {change.name!r} is already in the catalog; change it "
                              f"with PATCH /v1/admin/models/{change.name}", "name")
        if change.name in set(aliases):
            raise ModelExists(f"{change.name!r} is a gateway alias (gateway.alias)", "name")
        return
    if current is None:
        raise ModelNotFound(f"unknown model {change.name!r}; the catalog has "
                            f"{', '.join(e.name for e in entries)}", "name")
    if change.fields.get("enabled") is False and current.enabled and \
            sum(e.enabled for e in entries) == 1:
        raise LastEnabledModel(f"{change.name!r} is the only enabled model; enable another "
                               f"first", "enabled")


def upstream_of(spec: Mapping[str, Any] | None, model: str,
                environ: Mapping[str, str]) -> Upstream | None:
    """The Upstream a stored spec describes; its key is read from the environment now (the
    database never holds a secret, only the variable's name)."""
    if spec is None:
        return None
    key_env = spec.get("key_env")
    return Upstream(base_url=spec["base_url"], model=spec.get("model") or model,
                    api_key=environ.get(key_env) or None if key_env else None)


def _model_values(fields: Mapping[str, Any], name: str,
                  environ: Mapping[str, str]) -> dict[str, Any]:
    values = {k: fields[k] for k in MODEL_FIELDS if k in fields and k != "upstream"}
    if "upstream" in fields:
        values["upstream"] = upstream_of(fields["upstream"], name, environ)
    return values


def apply(entries: tuple[Entry, ...], change: Change,
          environ: Mapping[str, str]) -> tuple[tuple[Entry, ...], str | None]:
    """The catalog after `change`, and a note when it could not apply in full. Never raises:
    on replay, a change that once applied must not stop the service because config.toml
    moved on (`check` refuses bad changes before they are stored)."""
    current = find(entries, change.name)
    values = _model_values(change.fields, change.name, environ)
    touched = frozenset(values)
    if change.op == "add":
        if current is None:
            model = Model(name=change.name, **values)
            return (*entries, Entry(model, True, "runtime", touched)), None
        # config.toml has gained a model of this name since: the runtime fields win
        updated = replace(current, model=replace(current.model, **values),
                          overridden=current.overridden | touched)
        note = (f"model {change.name!r}: config.toml now has it too; the fields the runtime "
                f"add set win ({', '.join(sorted(touched))})")
    else:
        if current is None:
            return entries, (f"model {change.name!r} is no longer in config.toml; its runtime "
                             f"changes are kept in the database but do not apply")
        updated = replace(current, model=replace(current.model, **values),
                          enabled=change.fields.get("enabled", current.enabled),
                          overridden=current.overridden | touched)
        note = None
    return tuple(updated if e.name == change.name else e for e in entries), note


def replay(config_models: tuple[Model, ...], changes: Iterable[Change],
           environ: Mapping[str, str]) -> Replayed:
    """config.toml's catalog with the stored changes applied in order."""
    entries, notes = from_config(config_models), []
    for change in changes:
        entries, note = apply(entries, change, environ)
        if note:
            notes.append(note)
        key_env = (change.fields.get("upstream") or {}).get("key_env")
        if key_env and not environ.get(key_env):
            notes.append(f"model {change.name!r}: environment variable {key_env} is not set; "
                         f"its upstream is called without a key")
    configured = {m.name: m for m in config_models}
    for e in entries:
        base = configured.get(e.name)
        for name in sorted(e.overridden):
            if base is not None and name != "upstream" and \
                    getattr(base, name) != getattr(e.model, name):
                notes.append(f"model {e.name!r}: {name} is {getattr(e.model, name)!r} from a "
                             f"runtime change; config.toml's {getattr(base, name)!r} is "
                             f"shadowed")
    return Replayed(entries, tuple(notes))


def entry_json(e: Entry) -> dict[str, Any]:
    """The entry for the API and the audit log (an upstream's key never appears)."""
    m = e.model
    upstream = None if m.upstream is None else {
        "base_url": m.upstream.base_url, "model": m.upstream.model,
        "has_key": m.upstream.api_key is not None}
    return {"name": m.name, "provider": m.provider, "enabled": e.enabled, "source": e.source,
            "input_per_mtok": m.input_per_mtok, "output_per_mtok": m.output_per_mtok,
            "context_tokens": m.context_tokens, "latency_ms": m.latency_ms,
            "quality_prior": m.quality_prior, "upstream": upstream,
            "overridden": sorted(e.overridden)}
