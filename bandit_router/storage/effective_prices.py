"""What recorded usage cost under the operator's provider commitments (its effective
spend), rebuilt from the hourly usage rows for `/v1/stats` and `bandit-router report`.

Spend is recorded at list prices. A commitment prices its models' usage at the discounted
price inside its capacity and at list price past it, per calendar window, counting every
tenant's usage (core/commitments.py). So each (hour, model) gets a *rate*, effective over
list spend, from replaying every tenant's usage in hour order from the start of the
commitment window the stats window begins in; a row's effective spend is its list spend
times that rate. The reference model is replayed the same way as if it had served all of
that traffic. Rates are hourly: within the hour a commitment's capacity runs out, every
tenant's calls share one rate (the live budgets count each call in its order instead).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bandit_router.core.budget import window_bounds
from bandit_router.core.commitments import Commitments
from bandit_router.core.settings import CommitmentConfig, Model
from bandit_router.core.spend import Prices

PRICES_NOTE = {
    "spend_usd": "list prices",
    "effective_spend_usd": "list prices less the [[commitments]] discounts: discounted "
                           "inside a commitment's capacity, list price past it",
    "budgets": "effective prices",
}


def replay_start(commitments: Iterable[CommitmentConfig], since: float) -> float:
    """The start of the earliest commitment window `since` falls in: usage from there on
    decides the rates of the hours from `since`."""
    return min((window_bounds(c.window, since)[0] for c in commitments), default=since)


@dataclass(frozen=True, slots=True)
class Rates:
    """Effective over list spend, per (hour, model) of the traffic and per hour of the
    reference model's counterfactual; 1.0 where no commitment covers the model."""

    by_model: dict[tuple[float, str], float]
    reference: dict[float, float]

    def of(self, hour: float, model: str) -> float:
        return self.by_model.get((hour, model), 1.0)

    def of_reference(self, hour: float) -> float:
        return self.reference.get(hour, 1.0)


def rates(rows: Iterable, commitments: tuple[CommitmentConfig, ...],
          models: Iterable[Model], reference: Model) -> Rates:
    """The rates of every (hour, model) in `rows` (UsageRow, every tenant's, from
    `replay_start` on, oldest first)."""
    catalog = {m.name: m for m in models}
    spend: dict[tuple[float, str], float] = defaultdict(float)
    counterfactual: dict[float, float] = defaultdict(float)
    ref_prices = Prices.of(reference)
    for row in rows:
        spend[(row.hour, row.model)] += row.tally.spend_usd
        t = row.tally
        counterfactual[row.hour] += ref_prices.cost(t.input_tokens, t.output_tokens,
                                                    t.cached_input_tokens)
    if not spend:
        return Rates({}, {})
    start = min(hour for hour, _ in spend)
    as_reference = {(hour, reference.name): usd for hour, usd in counterfactual.items()}
    by_reference = _replay(Commitments(commitments, start), as_reference,
                           {reference.name: reference})
    return Rates(_replay(Commitments(commitments, start), spend, catalog),
                 {hour: rate for (hour, _), rate in by_reference.items()})


def _replay(commitments: Commitments, spend: dict[tuple[float, str], float],
            catalog: dict[str, Model]) -> dict[tuple[float, str], float]:
    out = {}
    for (hour, model), usd in sorted(spend.items()):
        effective = commitments.charge(catalog.get(model), usd, hour)
        if usd and effective != usd:
            out[(hour, model)] = effective / usd
    return out
