"""What a routed call cost: its reported tokens priced from the catalog, or the client's own
`cost_usd`, which wins (it knows about discounts, cached tokens and batch prices).

Feedback may report a call's facts in several messages, so a call's charge is recomputed
from all its facts after each message and only the difference from what was already
recorded for it is counted. A call is always priced at the prices of when it was made, and
its recorded total is its latest charge, so it never goes below zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from bandit_router.core.cache_prices import cache_savings, input_cost
from bandit_router.core.catalog import PER_MTOK
from bandit_router.core.settings import Model

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per token."""

    input: float
    output: float
    cached_input: float | None = None  # None: the input price (core/cache_prices.py)
    cache_write: float | None = None

    @classmethod
    def of(cls, model: Model) -> Prices:
        return cls(model.input_per_mtok * PER_MTOK, model.output_per_mtok * PER_MTOK,
                   _per_token(model.cached_input_per_mtok),
                   _per_token(model.cache_write_per_mtok))

    def cost(self, input_tokens: float, output_tokens: float, cached: float = 0.0,
             written: float = 0.0) -> float:
        return input_cost(input_tokens, cached, written, self.input, self.cached_input,
                          self.cache_write) + output_tokens * self.output

    def savings(self, cached: float, written: float = 0.0) -> float:
        return cache_savings(cached, written, self.input, self.cached_input, self.cache_write)


def _per_token(per_mtok: float | None) -> float | None:
    return None if per_mtok is None else per_mtok * PER_MTOK


@dataclass(frozen=True, slots=True)
class Charge:
    """A call's spend, and what of it can be compared with a reference model."""

    spend_usd: float = 0.0
    # Spend of calls whose token counts are known: savings against a reference model are
    # computed over these only, since a bare cost_usd says nothing about tokens.
    tokened_spend_usd: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cached_input_tokens: float = 0.0  # part of input_tokens, read from a provider's cache
    cache_savings_usd: float = 0.0  # what the cache saved against full input price

    def __sub__(self, other: Charge) -> Charge:
        return self + Charge(-other.spend_usd, -other.tokened_spend_usd,
                             -other.input_tokens, -other.output_tokens,
                             -other.cached_input_tokens, -other.cache_savings_usd)

    def __add__(self, other: Charge) -> Charge:
        return Charge(self.spend_usd + other.spend_usd,
                      self.tokened_spend_usd + other.tokened_spend_usd,
                      self.input_tokens + other.input_tokens,
                      self.output_tokens + other.output_tokens,
                      self.cached_input_tokens + other.cached_input_tokens,
                      self.cache_savings_usd + other.cache_savings_usd)

    @property
    def empty(self) -> bool:
        return not (self.spend_usd or self.tokened_spend_usd or self.input_tokens
                    or self.output_tokens or self.cached_input_tokens)


NO_CHARGE = Charge()


def charge(facts: Mapping[str, float], prices: Prices | None,
           cost_cap: float | None = None) -> Charge:
    """The charge of one call given every fact reported for it so far. `prices` is None for
    a model the catalog no longer has: only a reported cost_usd counts then; `cost_cap`
    bounds a reported cost_usd."""
    input_tokens = _finite(facts.get("input_tokens"))
    output_tokens = _finite(facts.get("output_tokens"))
    # cached and written tokens are parts of input_tokens: priced only once it is known
    cached = min(_finite(facts.get("cached_input_tokens")) or 0.0, input_tokens or 0.0)
    written = min(_finite(facts.get("cache_write_tokens")) or 0.0,
                  (input_tokens or 0.0) - cached)
    cost = _finite(facts.get("cost_usd"))
    if cost is not None and cost_cap is not None:
        cost = min(cost, cost_cap)
    if cost is None:
        cost = prices.cost(input_tokens or 0.0, output_tokens or 0.0, cached, written) \
            if prices else 0.0
    saved = prices.savings(cached, written) if prices else 0.0
    tokened = input_tokens is not None or output_tokens is not None
    return Charge(spend_usd=cost, tokened_spend_usd=cost if tokened else 0.0,
                  input_tokens=input_tokens or 0.0, output_tokens=output_tokens or 0.0,
                  cached_input_tokens=cached, cache_savings_usd=saved)


def spend_delta(known: Mapping[str, float], recorded: Charge, applied: Mapping[str, float],
                prices: Prices | None, cost_cap: float | None = None) -> Charge:
    """What one more message adds to a call's charge: the call priced with every fact so far
    (`prices`: those of when it was made), less what was recorded for it already. Tokens
    count once each, whatever their price."""
    total = charge({**known, **applied}, prices, cost_cap)
    counted = charge(known, prices)
    return Charge(total.spend_usd - recorded.spend_usd,
                  total.tokened_spend_usd - recorded.tokened_spend_usd,
                  total.input_tokens - counted.input_tokens,
                  total.output_tokens - counted.output_tokens,
                  total.cached_input_tokens - counted.cached_input_tokens,
                  total.cache_savings_usd - counted.cache_savings_usd)


def _finite(value: float | None) -> float | None:
    """A usable non-negative number, or None (the log may hold what the wire refuses)."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def hour_of(t: float) -> float:
    """The start of the UTC hour holding `t`: spend and traffic are kept per hour."""
    return math.floor(t / HOUR_S) * HOUR_S
