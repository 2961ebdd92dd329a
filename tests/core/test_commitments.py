"""Commitments: the marginal price and its pacing, and the effective spend (what usage
costs under the contract: discounted inside the capacity, list price past it)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit_router.core.commitments import Commitments
from bandit_router.core.settings import CommitmentConfig, Model

SONNET = Model("sonnet", "anthropic", 3.0, 15.0, 200_000, 1000, cached_input_per_mtok=0.30,
               cache_write_per_mtok=3.75)
GPT = Model("gpt", "openai", 1.25, 10.0, 400_000, 1000, cached_input_per_mtok=0.125)


MONTH = CommitmentConfig("prepaid", provider="anthropic", amount_usd=700.0, discount=0.3)


def test_a_flat_discount_prices_every_call_below_list():
    flat = Commitments([CommitmentConfig("flat", model="gpt", discount=0.2)], 0.0)
    assert flat.factors([GPT, SONNET], 1e6) == [pytest.approx(0.8), 1.0]


def test_prepaid_units_are_cheap_when_behind_dear_when_ahead_list_once_used():
    start = 1_798_761_600.0  # 2027-01-01 UTC: a 31-day month
    half = start + 15.5 * 86400
    behind = Commitments([MONTH], start)
    behind.charge(SONNET, 200.0, start + 3600)  # 200 of 1000 capacity at mid-month
    ahead = Commitments([MONTH], start)
    ahead.charge(SONNET, 700.0, start + 3600)
    spent = Commitments([MONTH], start)
    spent.charge(SONNET, 1000.0, start + 3600)
    on_course = Commitments([MONTH], start)
    on_course.charge(SONNET, 500.0, start + 3600)
    (low,), (high,), (full,), (even,) = (c.factors([SONNET], half)
                                         for c in (behind, ahead, spent, on_course))
    assert low < even < high <= 1.0 and full == 1.0
    assert even == pytest.approx(0.7)  # on course: the discounted price
    status = behind.status(half)[0]
    assert status.capacity_usd == pytest.approx(1000.0)
    assert status.forecast_usd == pytest.approx(400.0)
    assert status.left_on_table_usd == pytest.approx(600.0 * 0.7)


def test_a_new_window_starts_from_nothing():
    start = 1_798_761_600.0
    c = Commitments([MONTH], start)
    c.charge(SONNET, 1000.0, start + 10)
    assert c.factors([SONNET], start + 20) == [1.0]
    next_month = start + 31 * 86400 + 10
    assert c.status(next_month)[0].used_usd == 0.0


JAN = 1_798_761_600.0  # 2027-01-01 UTC


@given(st.lists(st.floats(0.0, 400.0), max_size=30), st.floats(0.0, 0.9))
def test_effective_spend_is_the_discount_inside_the_capacity_and_list_past_it(charges,
                                                                             discount):
    # however the usage is split into calls, the window's effective spend is the same
    # function of its total
    month = CommitmentConfig("prepaid", provider="anthropic", amount_usd=700.0,
                             discount=discount)
    c = Commitments([month], JAN)
    effective = sum(c.charge(SONNET, usd, JAN + 60.0 * i) for i, usd in enumerate(charges))
    used, capacity = sum(charges), 700.0 / (1.0 - discount)
    want = (1.0 - discount) * min(used, capacity) + max(0.0, used - capacity)
    assert effective == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert effective <= used + 1e-9


def test_a_flat_discount_takes_its_share_off_every_call_and_others_pay_list():
    c = Commitments([CommitmentConfig("flat", model="gpt", discount=0.2)], JAN)
    assert c.charge(GPT, 10.0, JAN) == pytest.approx(8.0)
    assert c.charge(SONNET, 10.0, JAN) == 10.0  # not covered
    assert c.charge(None, 10.0, JAN) == 10.0  # a model no longer in the catalog


def test_a_correction_gives_back_what_it_cost_and_an_old_window_is_discounted():
    c = Commitments([MONTH], JAN)
    assert c.charge(SONNET, 1200.0, JAN + 10) == pytest.approx(700.0 + 200.0)
    assert c.charge(SONNET, -300.0, JAN + 20) == pytest.approx(-200.0 - 70.0)
    # late feedback for a call of December, a window no longer tracked
    assert c.charge(SONNET, 100.0, JAN - 86400) == pytest.approx(70.0)
