"""Spend, savings and traffic over a window, summed from the hourly `usage` table.

The service (`GET /v1/stats`) and the CLI (`bandit-router report`) read the same rows and
summarise them with the same code. Windows are whole UTC hours, the current one included.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace

from bandit_router.core.budget import Budgets, BudgetStatus, window_bounds
from bandit_router.core.commitments import Commitments, CommitmentStatus
from bandit_router.core.settings import Config, Model
from bandit_router.core.sources import judge_figures
from bandit_router.core.spend import HOUR_S, Prices, hour_of
from bandit_router.storage import effective_prices
from bandit_router.storage.effective_prices import PRICES_NOTE, Rates

WINDOW_HOURS = {"hour": 1, "day": 24, "week": 168, "month": 720}
STATS_QUERY = frozenset({"window", "policy", "bucket", "reference", "tenant"})


def window_start(window: str, now: float) -> float:
    return hour_of(now) - (WINDOW_HOURS[window] - 1) * HOUR_S


@dataclass(slots=True)
class Tally:
    """Sums over some usage rows."""

    decisions: int = 0
    routes_with_feedback: int = 0
    spend_usd: float = 0.0
    tokened_spend_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    quality_sum: float = 0.0
    quality_n: int = 0
    # the judge: calls made (priced, never routed traffic), scores it gave
    judge_calls: int = 0
    judge_failed: int = 0  # no score: an error, a timeout or a reply that did not parse
    judge_spend_usd: float = 0.0
    judge_n: int = 0
    judge_sum: float = 0.0
    implicit_n: int = 0  # implicit quality facts (an empty or cut-off answer, a refusal, ...)
    # routes scored by both a client and the judge: sums for their agreement
    pair_n: int = 0
    pair_absdiff: float = 0.0
    pair_client: float = 0.0
    pair_judge: float = 0.0
    pair_cc: float = 0.0
    pair_jj: float = 0.0
    pair_cj: float = 0.0
    # prompt caching: input tokens read from cache (part of input_tokens), and what the
    # cache saved against full input price
    cached_input_tokens: float = 0.0
    cache_savings_usd: float = 0.0
    # derived, not stored: the spend and the reference at the commitments' prices
    # (storage/effective_prices.py)
    effective_spend_usd: float = field(default=0.0, metadata={"derived": True})
    effective_tokened_spend_usd: float = field(default=0.0, metadata={"derived": True})
    effective_reference_usd: float = field(default=0.0, metadata={"derived": True})

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


TALLY_COLUMNS = tuple(f.name for f in fields(Tally) if not f.metadata.get("derived"))


@dataclass(frozen=True, slots=True)
class UsageRow:
    tenant: str
    policy: str
    bucket: str
    model: str
    hour: float
    tally: Tally


def filtered(time_column: str, since: float, tenant: str | None, policy: str | None,
             bucket: str | None) -> tuple[list[str], list]:
    """The WHERE terms and arguments of a read from `since` on, by whatever of tenant,
    policy and bucket is given (None filters nothing)."""
    where, args = [f"{time_column} >= ?"], [since]
    for column, value in (("tenant", tenant), ("policy", policy), ("bucket", bucket)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


def read_usage(conn: sqlite3.Connection, since: float, tenant: str | None = None,
               policy: str | None = None, bucket: str | None = None) -> list[UsageRow]:
    """Usage rows from `since` on; None filters nothing."""
    where, args = filtered("hour", since, tenant, policy, bucket)
    rows = conn.execute(
        f"SELECT tenant, policy, bucket, model, hour, {', '.join(TALLY_COLUMNS)} FROM usage "
        f"WHERE {' AND '.join(where)} ORDER BY hour, tenant, policy, bucket, model", args)
    return [UsageRow(*row[:5], Tally(*row[5:])) for row in rows]


def read_usage_by_model(conn: sqlite3.Connection, since: float) -> list[UsageRow]:
    """Every tenant's usage from `since` on, summed per (hour, model): at most hours x models
    rows, however many tenants, policies and buckets (what a commitment's replay reads)."""
    sums = ", ".join(f"sum({c})" for c in TALLY_COLUMNS)
    rows = conn.execute(f"SELECT model, hour, {sums} FROM usage WHERE hour >= ? "
                        "GROUP BY hour, model ORDER BY hour, model", [since])
    return [UsageRow("*", "*", "*", row[0], row[1], Tally(*row[2:])) for row in rows]


@dataclass
class Group:
    """One (tenant, policy, bucket) over the window."""

    tenant: str
    policy: str
    bucket: str
    tally: Tally = field(default_factory=Tally)
    by_model: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))


@dataclass(frozen=True)
class Summary:
    since: float
    until: float
    reference_model: str
    reference: Prices
    totals: Tally
    groups: list[Group]
    series: list[UsageRow]
    effective: bool = False  # the effective_ figures are priced (else they are the list's)


def priced(rows: list[UsageRow], reference: Prices, rates: Rates) -> list[UsageRow]:
    """The rows with their effective spend and reference filled in."""
    out = []
    for row in rows:
        t, rate = row.tally, rates.of(row.hour, row.model)
        out.append(replace(row, tally=replace(
            t, effective_spend_usd=t.spend_usd * rate,
            effective_tokened_spend_usd=t.tokened_spend_usd * rate,
            effective_reference_usd=reference_usd(t, reference)
            * rates.of_reference(row.hour))))
    return out


def summarize(rows: list[UsageRow], since: float, until: float, reference_model: str,
              reference: Prices, rates: Rates | None = None) -> Summary:
    if rates is not None:
        rows = priced(rows, reference, rates)
    groups: dict[tuple[str, str, str], Group] = {}
    totals = Tally()
    for row in rows:
        key = (row.tenant, row.policy, row.bucket)
        group = groups.get(key) or groups.setdefault(key, Group(*key))
        group.tally.add(row.tally)
        group.by_model[row.model].add(row.tally)
        totals.add(row.tally)
    return Summary(since, until, reference_model, reference, totals,
                   [groups[k] for k in sorted(groups)], rows, rates is not None)


# --- figures -------------------------------------------------------------------------------

def reference_usd(t: Tally, reference: Prices) -> float:
    """What the same tokens would have cost on the reference model (the cached ones at its
    cached price: staying on it, a session would have been cached there too)."""
    return reference.cost(t.input_tokens, t.output_tokens, t.cached_input_tokens)


def cache_figures(t: Tally) -> dict:
    """Prompt caching: the share of input read from cache, and what it saved."""
    return {"cached_input_tokens": t.cached_input_tokens,
            "cache_hit_rate": t.cached_input_tokens / t.input_tokens if t.input_tokens
            else None,
            "cache_savings_usd": t.cache_savings_usd}


def effective_figures(t: Tally, effective: bool, ref: float) -> dict:
    """Spend and savings at the commitments' prices (the list figures without any)."""
    spend, tokened, ref = (t.effective_spend_usd, t.effective_tokened_spend_usd,
                           t.effective_reference_usd) if effective \
        else (t.spend_usd, t.tokened_spend_usd, ref)
    return {"effective_spend_usd": spend, "effective_reference_usd": ref,
            "effective_savings_usd": ref - tokened,
            "effective_savings_pct": 100.0 * (ref - tokened) / ref if ref > 0 else None}


def figures(t: Tally, reference: Prices, effective: bool = False) -> dict:
    ref = reference_usd(t, reference)
    savings = ref - t.tokened_spend_usd
    return {
        "decisions": t.decisions, "feedback": t.routes_with_feedback,
        # feedback in the window per decision in it: may pass 1 just after the window
        # starts (feedback for earlier decisions), so it is capped
        "feedback_rate": min(1.0, t.routes_with_feedback / t.decisions) if t.decisions else None,
        "spend_usd": t.spend_usd, "reference_usd": ref, "savings_usd": savings,
        "savings_pct": 100.0 * savings / ref if ref > 0 else None,
        **effective_figures(t, effective, ref),
        "mean_quality": t.quality_sum / t.quality_n if t.quality_n else None,
        "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
        **cache_figures(t),
    }


def by_model_json(s: Summary) -> list[dict]:
    """Each model's traffic, spend, mean quality and cost per request over the window,
    busiest first."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for g in s.groups:
        for model, t in g.by_model.items():
            tallies[model].add(t)
    total = s.totals.decisions
    return [{"model": m, "decisions": t.decisions,
             "share": t.decisions / total if total else 0.0, "spend_usd": t.spend_usd,
             "effective_spend_usd": t.effective_spend_usd if s.effective else t.spend_usd,
             "mean_quality": t.quality_sum / t.quality_n if t.quality_n else None,
             "cost_per_request_usd": t.spend_usd / t.decisions if t.decisions else None,
             **cache_figures(t)}
            for m, t in sorted(tallies.items(), key=lambda kv: (-kv[1].decisions, kv[0]))]


def summary_json(s: Summary, window: str, disagreement: float = 0.25) -> dict:
    groups = []
    for g in s.groups:
        total = g.tally.decisions
        share = {m: (t.decisions / total if total else 0.0) for m, t in sorted(g.by_model.items())}
        groups.append({"tenant": g.tenant, "policy": g.policy, "bucket": g.bucket,
                       **figures(g.tally, s.reference, s.effective), "share": share,
                       "spend_by_model": {m: t.spend_usd for m, t in sorted(g.by_model.items())},
                       "judge": judge_figures(g.tally, disagreement)})
    return {
        "window": window, "since": s.since, "until": s.until,
        "reference_model": s.reference_model,
        "prices": PRICES_NOTE if s.effective else {**PRICES_NOTE, "effective_spend_usd":
                                                   "list prices: no [[commitments]]"},
        "totals": {**figures(s.totals, s.reference, s.effective),
                   "judge": judge_figures(s.totals, disagreement)},
        "groups": groups,
        "models": by_model_json(s),
        "series": [{"hour": r.hour, "tenant": r.tenant, "policy": r.policy, "bucket": r.bucket,
                    "model": r.model, "decisions": r.tally.decisions,
                    "spend_usd": r.tally.spend_usd}
                   for r in s.series if r.tally.decisions or r.tally.spend_usd],
    }


def stats_json(rows: list[UsageRow], window: str, since: float, now: float,
               reference: Model, disagreement: float = 0.25,
               rates: Rates | None = None) -> dict:
    return summary_json(summarize(rows, since, now, reference.name, Prices.of(reference),
                                  rates), window, disagreement)


def commitment_json(s: CommitmentStatus) -> dict:
    """A commitment's utilisation in its current window. `used_usd` is list-price usage,
    the prices spend is recorded at; `price_factor` the multiple of list price the router
    prices the covered models at now (core/commitments.py)."""
    c = s.commitment
    return {"name": c.name, "provider": c.provider, "model": c.model, "window": c.window,
            "start": s.start, "end": s.end, "amount_usd": c.amount_usd,
            "discount": c.discount, "capacity_usd": s.capacity_usd, "used_usd": s.used_usd,
            "remaining_usd": s.remaining_usd, "forecast_usd": s.forecast_usd,
            "left_on_table_usd": s.left_on_table_usd, "price_factor": s.price_factor,
            "pacing": c.pacing}


def budget_json(s: BudgetStatus, base_cost_weight: float | None,
                viewer: str | None = None) -> dict:
    """A budget's state as `viewer` may see it: a tenant (None: an operator, or an open
    service) sees a shared budget's limit, whether it is spent for it, and its own spend,
    never the total that other tenants' spend is part of. `base_cost_weight` None when the
    pacing price is not known (it lives in the running service's memory)."""
    b = s.budget
    known = base_cost_weight is not None
    whole = viewer is None or b.tenant is not None  # nobody else's spend is in it
    own = s.by_tenant.get(viewer, 0.0) if viewer is not None else None
    share = b.max_tenant_share * b.limit_usd
    return {
        "name": b.name, "tenant": b.tenant, "policy": b.policy, "window": b.window,
        "start": s.start, "end": s.end, "limit_usd": b.limit_usd,
        "spent_usd": s.spent_usd if whole else None,
        "remaining_usd": s.remaining_usd if whole else None,
        "tenant_spent_usd": own, "max_tenant_share": b.max_tenant_share,
        "pace": s.pace if whole else None, "pacing": b.pacing,
        # pacing follows every covered tenant's spend: a tenant would read the total in it
        "cost_weight_added": s.price if known and whole else None,
        "cost_weight": base_cost_weight + s.price if known and whole else None,
        "exhausted": s.exhausted or (own is not None and own >= share),
        "when_spent": b.when_spent,
    }


def usage_stats(conn: sqlite3.Connection, config: Config, now: float, window: str,
                tenant: str, policy: str | None = None, bucket: str | None = None,
                reference: str | None = None) -> dict:
    """The stats JSON straight from a database connection (for `bandit-router report`):
    budgets' spend from the usage rows, without the running service's pacing prices."""
    model = config.model(reference) if reference else config.reference_model()
    since = window_start(window, now)
    first = min([since, *(window_bounds(b.window, now)[0] for b in config.budgets)])
    rates = usage_rates(conn, config, first, model) if config.commitments else None
    stats = stats_json(read_usage(conn, since, tenant, policy, bucket), window, since, now,
                       model, config.judge.disagreement, rates)
    budgets = Budgets(config.budgets, now)
    for row in read_usage(conn, first):
        rate = rates.of(row.hour, row.model) if rates is not None else 1.0
        budgets.charge(row.tenant, row.policy, row.tally.spend_usd * rate, row.hour)
    stats["budgets"] = [budget_json(s, None) for s in budgets.status(now)
                        if s.budget.tenant in (None, tenant)]  # the CLI runs as operator
    stats["commitments"] = [commitment_json(s) for s in _commitments(conn, config, now)]
    return stats


def usage_rates(conn: sqlite3.Connection, config: Config, since: float,
                reference: Model) -> Rates:
    """The commitments' rates of every hour from `since` on, from every tenant's rows."""
    start = effective_prices.replay_start(config.commitments, since)
    return effective_prices.rates(read_usage_by_model(conn, start), config.commitments,
                                  config.models, reference)


def _commitments(conn: sqlite3.Connection, config: Config, now: float
                 ) -> list[CommitmentStatus]:
    """Each commitment's window so far, from the usage rows (every tenant's)."""
    commitments = Commitments(config.commitments, now)
    first = min((window_bounds(c.window, now)[0] for c in config.commitments), default=now)
    models = {m.name: m for m in config.models}
    for row in read_usage_by_model(conn, first):
        commitments.charge(models.get(row.model), row.tally.spend_usd, row.hour)
    return commitments.status(now)
