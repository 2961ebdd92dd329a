"""Pricing a call's facts: tokens at catalog prices, a client's cost_usd winning, deltas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.core.settings import Config
from bandit_router.core.spend import NO_CHARGE, Charge, Prices, charge, hour_of

PRICES = Prices(input=1e-6, output=4e-6)


def test_prices_of_a_catalog_model(config: Config):
    nano = config.model("gpt-5-nano")
    prices = Prices.of(nano)
    assert prices.cost(1_000_000, 0) == pytest.approx(nano.input_per_mtok)
    assert prices.cost(0, 1_000_000) == pytest.approx(nano.output_per_mtok)


def test_tokens_are_priced():
    c = charge({"input_tokens": 1000, "output_tokens": 500, "quality": 0.9}, PRICES)
    assert c.spend_usd == pytest.approx(1000 * 1e-6 + 500 * 4e-6)
    assert c.tokened_spend_usd == c.spend_usd
    assert (c.input_tokens, c.output_tokens) == (1000, 500)


def test_a_reported_cost_wins_over_tokens():
    c = charge({"input_tokens": 1000, "output_tokens": 500, "cost_usd": 0.0001}, PRICES)
    assert c.spend_usd == pytest.approx(0.0001)
    assert c.tokened_spend_usd == pytest.approx(0.0001)  # comparable: its tokens are known


def test_a_bare_cost_is_spend_but_not_comparable():
    c = charge({"cost_usd": 0.5}, PRICES)
    assert c.spend_usd == 0.5 and c.tokened_spend_usd == 0.0


def test_an_unknown_model_counts_only_a_reported_cost():
    assert charge({"input_tokens": 10, "output_tokens": 10}, None).spend_usd == 0.0
    assert charge({"input_tokens": 10, "cost_usd": 0.25}, None).spend_usd == 0.25


def test_facts_without_money_charge_nothing():
    assert charge({"quality": 0.5, "latency_ms": 900}, PRICES) == NO_CHARGE
    assert NO_CHARGE.empty


@pytest.mark.parametrize("bad", [math.nan, math.inf, -5.0])
def test_damaged_values_from_the_log_are_ignored(bad: float):
    c = charge({"input_tokens": bad, "output_tokens": 100, "cost_usd": bad}, PRICES)
    assert c.spend_usd == pytest.approx(100 * 4e-6)
    assert math.isfinite(c.tokened_spend_usd)


def test_hour_of():
    assert hour_of(7200.0) == 7200.0
    assert hour_of(7199.9) == 3600.0
    assert hour_of(1_800_000_123.0) % 3600 == 0


_FACTS = st.fixed_dictionaries({}, optional={
    "input_tokens": st.integers(0, 10**7), "output_tokens": st.integers(0, 10**7),
    "cost_usd": st.floats(0, 1e3), "quality": st.floats(0, 1)})


@given(facts=_FACTS, order=st.randoms(use_true_random=False),
       joins=st.lists(st.booleans(), max_size=4))
@settings(max_examples=200, deadline=None)
def test_deltas_of_a_call_told_in_parts_add_up_to_its_charge(facts, order, joins):
    """However feedback splits a call's facts into messages, the counted deltas sum to the
    charge of all the facts: spend is never counted twice nor lost."""
    names = list(facts)
    order.shuffle(names)
    messages: list[list[str]] = []
    for i, name in enumerate(names):
        if messages and i - 1 < len(joins) and joins[i - 1]:
            messages[-1].append(name)  # travels in the same message as the previous fact
        else:
            messages.append([name])
    seen: dict[str, float] = {}
    total = Charge()
    for message in messages:
        before = dict(seen)
        seen.update({name: facts[name] for name in message})
        total = total + (charge(seen, PRICES) - charge(before, PRICES))
    whole = charge(facts, PRICES)
    for got, want in zip((total.spend_usd, total.tokened_spend_usd, total.input_tokens,
                          total.output_tokens),
                         (whole.spend_usd, whole.tokened_spend_usd, whole.input_tokens,
                          whole.output_tokens), strict=True):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
