"""What one feedback message counts for, given what its route already holds: which facts
apply, what they add to the call's spend and tokens, and to the quality sources' tallies.

Pure: the store reads a route's earlier facts and recorded charge, asks this module, and
writes what it answers. A message that cannot count raises (FactConflict, InvalidField)
before anything is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bandit_router.core.bounds import check_facts, cost_ceiling
from bandit_router.core.errors import FactConflict
from bandit_router.core.facts import DuplicateFact, Resolution, resolve
from bandit_router.core.settings import Model
from bandit_router.core.sources import source_tally
from bandit_router.core.spend import Charge, Prices, spend_delta
from bandit_router.core.types import Facts

Earlier = Sequence[tuple[str, float, int]]  # (fact, value, derived) already counted


@dataclass(frozen=True, slots=True)
class Accounting:
    resolution: Resolution
    delta: Charge  # what the call's spend and tokens grow by
    sources: dict[str, float]  # the quality part of the hour's tally
    first: bool  # the route's first feedback


def account(facts: Facts, earlier: Earlier, recorded: Charge, model: Model | None,
            prices: Prices | None) -> Accounting:
    """`facts` of one message against the route's `earlier` facts and `recorded` charge;
    `model` and `prices` are the call's own (None: the model left the catalog)."""
    seen = {fact: derived for fact, _, derived in earlier}
    try:
        resolution = resolve(facts, seen, quality_derived=bool(seen.get("quality")))
    except DuplicateFact as exc:
        raise FactConflict(str(exc), exc.facts[0]) from exc
    before = {fact: value for fact, value, _ in earlier}
    check_facts(facts, before, model, prices)
    applied = dict(resolution.applied)
    delta = spend_delta(before, recorded, applied, prices,
                        cost_cap=_cost_cap(model, prices, {**before, **applied}))
    sources = source_tally({f: (v, bool(derived)) for f, v, derived in earlier}, applied,
                           resolution.derived_quality)
    return Accounting(resolution, delta, sources, first=not earlier)


def _cost_cap(model: Model | None, prices: Prices | None,
              facts: Mapping[str, float]) -> float | None:
    """Once a call's tokens are known, the most its cost_usd may count for: twice the
    tokens at list price (bounds.COST_SLACK), however early the cost was reported."""
    if model is None or prices is None or "input_tokens" not in facts or \
            "output_tokens" not in facts:
        return None
    return cost_ceiling(model, prices, facts["input_tokens"], facts["output_tokens"])
