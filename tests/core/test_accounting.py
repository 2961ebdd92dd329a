"""What one feedback message counts for: the pure decision the store writes down."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit_router.core.accounting import account
from bandit_router.core.errors import FactConflict, InvalidField
from bandit_router.core.settings import Model
from bandit_router.core.spend import NO_CHARGE, Charge, Prices
from bandit_router.core.types import Facts

MODEL = Model(name="m", provider="p", input_per_mtok=1.0, output_per_mtok=4.0,
              context_tokens=10_000, latency_ms=1000.0)
PRICES = Prices.of(MODEL)


def test_a_first_message_prices_its_tokens_and_is_first():
    counted = account(Facts(quality=0.8, input_tokens=1000, output_tokens=500), [], NO_CHARGE,
                      MODEL, PRICES)
    assert counted.first
    assert counted.delta.spend_usd == pytest.approx(1000 * 1e-6 + 500 * 4e-6)
    assert counted.delta.input_tokens == 1000 and counted.delta.output_tokens == 500
    assert dict(counted.resolution.applied)["quality"] == 0.8


def test_a_fact_counted_already_is_a_conflict_naming_it():
    with pytest.raises(FactConflict) as caught:
        account(Facts(quality=0.5), [("quality", 0.8, 0)], NO_CHARGE, MODEL, PRICES)
    assert caught.value.field == "quality"


def test_tokens_beyond_the_context_window_are_refused_before_anything_counts():
    with pytest.raises(InvalidField) as caught:
        account(Facts(input_tokens=10_001), [], NO_CHARGE, MODEL, PRICES)
    assert caught.value.field == "input_tokens"


def test_a_later_cost_replaces_the_token_price_and_only_the_difference_counts():
    earlier = [("input_tokens", 1000.0, 0), ("output_tokens", 500.0, 0)]
    recorded = Charge(0.003, 0.003, 1000, 500)
    counted = account(Facts(cost_usd=0.001), earlier, recorded, MODEL, PRICES)
    assert not counted.first
    assert counted.delta.spend_usd == pytest.approx(0.001 - 0.003)
    assert counted.delta.input_tokens == 0 and counted.delta.output_tokens == 0


def test_success_false_alone_is_quality_zero():
    counted = account(Facts(success=False), [], NO_CHARGE, MODEL, PRICES)
    assert counted.resolution.derived_quality
    assert dict(counted.resolution.applied)["quality"] == 0.0


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4096)), min_size=1,
                max_size=4))
def test_spend_never_goes_below_zero_whatever_the_order_of_corrections(calls):
    """A call's recorded total is its latest charge: summing the deltas of its messages
    gives that charge, never less than zero."""
    earlier: list[tuple[str, float, int]] = []
    recorded = NO_CHARGE
    inputs, outputs = calls[0]
    for fact, value in (("input_tokens", inputs), ("output_tokens", outputs)):
        counted = account(Facts(**{fact: value}), earlier, recorded, MODEL, PRICES)
        recorded = recorded + counted.delta
        earlier.append((fact, float(value), 0))
        assert recorded.spend_usd >= -1e-12
    assert recorded.spend_usd == pytest.approx(PRICES.cost(inputs, outputs))
