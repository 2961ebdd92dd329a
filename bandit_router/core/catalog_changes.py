"""Run-time changes to the catalog, as a pure fold of a change list over config.toml's models.

The service stores every change it accepts, in order (the audit table), and replays the list
at start on top of the config file, so a restart rebuilds the catalog it was serving.

Precedence: a field that a runtime change set beats config.toml for that model, at every
later start too (a warning names each field where the file now says otherwise); every field
no change touched still comes from config.toml, so editing it there takes effect at the next
start. A model is never removed at run time, only disabled: its arms keep their evidence.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bandit_router.core.cache_prices import CACHE_PRICE_LIMITS, cache_price_problem
from bandit_router.core.errors import InvalidField, RouterError
from bandit_router.core.settings import Model, Upstream, UpstreamConfig
from bandit_router.core.spend import Prices

Source = Literal["config", "runtime"]
Op = Literal["add", "update"]
Upstreams = Mapping[str, UpstreamConfig]
# Fields of a Model a change may set, and the extra, catalog-only `enabled`.
MODEL_FIELDS = ("provider", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                "cache_write_per_mtok", "context_tokens", "max_output_tokens", "latency_ms",
                "quality_prior", "upstream")
# What PATCH may change; a null value releases a runtime override (config.toml's value again).
UPDATE_FIELDS = frozenset({"enabled", "input_per_mtok", "output_per_mtok",
                           "cached_input_per_mtok", "cache_write_per_mtok", "context_tokens",
                           "max_output_tokens", "upstream"})
RELEASABLE = frozenset(UPDATE_FIELDS - {"enabled"})


class ModelExists(RouterError):
    code = "model_exists"


class ModelNotFound(RouterError):
    code = "model_not_found"


class LastEnabledModel(RouterError):
    """Routing needs at least one enabled model."""

    code = "last_enabled_model"


@dataclass(frozen=True, slots=True)
class Entry:
    """One model of the live catalog."""

    model: Model
    enabled: bool = True
    source: Source = "config"  # config: config.toml has it; runtime: only an operator added it
    overridden: frozenset[str] = frozenset()  # model fields a runtime change set
    configured: Model | None = None  # config.toml's entry, which a released override returns to

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
    at: float = 0.0  # when it was made (from the audit row); prices change from then on


# Each model's prices over time: (since, prices), oldest first; the first applies from -inf.
PriceHistory = Mapping[str, tuple[tuple[float, Prices], ...]]


def priced(history: PriceHistory, entries: Iterable[Entry], name: str,
           at: float) -> dict[str, tuple[tuple[float, Prices], ...]]:
    """`history` extended by model `name`'s prices in `entries` from `at` on, if they moved."""
    out = dict(history)
    entry = find(entries, name)
    if entry is None:
        return out
    now = Prices.of(entry.model)
    past = out.get(name, ())
    if not past or past[-1][1] != now:
        out[name] = (*past, (at if past else -math.inf, now))
    return out


def price_at(history: PriceHistory, name: str, t: float) -> Prices | None:
    """Model `name`'s prices at time `t`: a call is priced as it was when it was made."""
    past = history.get(name)
    if not past:
        return None
    i = bisect.bisect_right([since for since, _ in past], t) - 1
    return past[max(i, 0)][1]


@dataclass(frozen=True, slots=True)
class Replayed:
    entries: tuple[Entry, ...]
    notes: tuple[str, ...]  # changes that no longer apply, config values runtime ones shadow
    history: PriceHistory = field(default_factory=dict)


def from_config(models: Iterable[Model]) -> tuple[Entry, ...]:
    return tuple(Entry(m, configured=m) for m in models)


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
    released = sorted(k for k, v in change.fields.items() if v is None and k != "upstream")
    if released and current.configured is None:
        raise InvalidField(f"{released[0]} cannot be released: {change.name!r} was added at run "
                           f"time, so config.toml has no value to return to", released[0])
    _check_limits(current, change.fields)
    if change.fields.get("enabled") is False and current.enabled and \
            sum(e.enabled for e in entries) == 1:
        raise LastEnabledModel(f"{change.name!r} is the only enabled model; enable another "
                               f"first", "enabled")


def _check_limits(current: Entry, fields: Mapping[str, Any]) -> None:
    """The model after a change must be one config.toml would accept: its longest answer
    fits in its context window, its cache prices within its input price."""
    def after(name: str):
        if name not in fields:
            return getattr(current.model, name)
        value = fields[name]
        return getattr(current.configured, name) if value is None and current.configured \
            else value

    context, longest = after("context_tokens"), after("max_output_tokens")
    if longest is not None and longest > context:
        field = "max_output_tokens" if "max_output_tokens" in fields else "context_tokens"
        raise InvalidField(f"max_output_tokens {longest} would exceed context_tokens "
                           f"{context}; change both together", field)
    prices = {name: after(name) for name, _ in CACHE_PRICE_LIMITS}
    problem = cache_price_problem(after("input_per_mtok"), prices)
    if problem is not None:
        name = problem[0] if problem[0] in fields else "input_per_mtok"
        raise InvalidField(f"{problem[0]} {problem[1]}; change the prices together", name)


def upstream_of(spec: Mapping[str, Any] | None, model: str,
                upstreams: Upstreams) -> tuple[Upstream | None, str | None]:
    """The Upstream a stored spec names, and a note when it cannot be used. Only upstreams
    declared in config.toml are ever called: a spec is a name, never a URL or a key."""
    if spec is None:
        return None, None
    declared = upstreams.get(spec.get("name") or "")
    if declared is None:
        what = f"upstream {spec['name']!r} is no longer declared in config.toml" \
            if spec.get("name") else "its upstream was given inline (a URL) at run time, " \
                                     "which is no longer allowed"
        return None, (f"model {model!r}: {what}; it is not callable through the gateway until "
                      f"an operator PATCHes it with a declared upstream")
    return declared.for_model(spec.get("model") or model), None


def _updated(entry: Entry, fields: Mapping[str, Any],
             upstreams: Upstreams) -> tuple[Entry, str | None]:
    """`entry` with the change's model fields set, or released (None) to config.toml's."""
    values, released, note = {}, set(), None
    for name in MODEL_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name == "upstream" and value is not None:
            values[name], note = upstream_of(value, entry.name, upstreams)
        elif value is None and entry.configured is not None:
            values[name] = getattr(entry.configured, name)
            released.add(name)
        else:
            values[name] = value
    touched = frozenset(values) - released
    return replace(entry, model=replace(entry.model, **values),
                   enabled=fields.get("enabled", entry.enabled),
                   overridden=(entry.overridden | touched) - released), note


def apply(entries: tuple[Entry, ...], change: Change,
          upstreams: Upstreams) -> tuple[tuple[Entry, ...], str | None]:
    """The catalog after `change`, and a note when it could not apply in full. Never raises:
    on replay, a change that once applied must not stop the service because config.toml
    moved on (`check` refuses bad changes before they are stored)."""
    current = find(entries, change.name)
    if change.op == "add" and current is None:
        fields = {k: change.fields[k] for k in MODEL_FIELDS if k in change.fields}
        upstream, note = upstream_of(fields.pop("upstream", None), change.name, upstreams)
        model = Model(name=change.name, **fields, upstream=upstream)
        added = Entry(model, True, "runtime", frozenset(change.fields) & set(MODEL_FIELDS))
        return (*entries, added), note
    if current is None:
        return entries, (f"model {change.name!r} is no longer in config.toml; its runtime "
                         f"changes are kept in the database but do not apply")
    updated, note = _updated(current, change.fields, upstreams)
    if change.op == "add":  # config.toml has gained a model of this name since
        note = note or (f"model {change.name!r}: config.toml now has it too; the fields the "
                        f"runtime add set win ({', '.join(sorted(updated.overridden))})")
    return tuple(updated if e.name == change.name else e for e in entries), note


def replay(config_models: tuple[Model, ...], changes: Iterable[Change],
           upstreams: Upstreams) -> Replayed:
    """config.toml's catalog with the stored changes applied in order."""
    entries, notes = from_config(config_models), []
    history: PriceHistory = {}
    for e in entries:
        history = priced(history, entries, e.name, -math.inf)
    for change in changes:
        entries, note = apply(entries, change, upstreams)
        history = priced(history, entries, change.name, change.at)
        if note:
            notes.append(note)
    configured = {m.name: m for m in config_models}
    for e in entries:
        base = configured.get(e.name)
        for name in sorted(e.overridden):
            if base is not None and name != "upstream" and \
                    getattr(base, name) != getattr(e.model, name):
                notes.append(f"model {e.name!r}: {name} is {getattr(e.model, name)!r} from a "
                             f"runtime change; config.toml's {getattr(base, name)!r} is "
                             f"shadowed")
    return Replayed(entries, tuple(notes), history)


def entry_json(e: Entry) -> dict[str, Any]:
    """The entry for the API and the audit log: an upstream by its declared name (its URL
    and key are config.toml's, never shown)."""
    m = e.model
    upstream = None if m.upstream is None else {
        "name": m.upstream.name, "model": m.upstream.model,
        "has_key": m.upstream.api_key is not None}
    return {"name": m.name, "provider": m.provider, "enabled": e.enabled, "source": e.source,
            "input_per_mtok": m.input_per_mtok, "output_per_mtok": m.output_per_mtok,
            "cached_input_per_mtok": m.cached_input_per_mtok,
            "cache_write_per_mtok": m.cache_write_per_mtok,
            "context_tokens": m.context_tokens, "max_output_tokens": m.max_output_tokens,
            "latency_ms": m.latency_ms,
            "quality_prior": m.quality_prior, "upstream": upstream,
            "overridden": sorted(e.overridden)}
