"""Budgets: calendar windows, the pacing price, hard actions, and the pacing promise on a
simulated day (a budget at half the unconstrained spend ends within ±5% of it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_router.bench import pacing
from bandit_router.core.budget import NO_PACING, Budgets, Pacer, window_bounds
from bandit_router.core.errors import BudgetExhausted
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import BudgetConfig, Config
from bandit_router.core.types import Message, RouteRequest
from bandit_router.engine.router import Engine
from bandit_router.http.errors import headers_of, status_of

MIDNIGHT = pacing.START  # a UTC midnight
DAY = BudgetConfig("daily", limit_usd=10.0)


def _utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(("window", "t", "start", "end"), [
    ("hour", _utc(2026, 3, 1, 13, 59, 59), _utc(2026, 3, 1, 13), _utc(2026, 3, 1, 14)),
    ("day", _utc(2026, 12, 31, 23, 30), _utc(2026, 12, 31), _utc(2027, 1, 1)),
    ("month", _utc(2028, 2, 29, 12), _utc(2028, 2, 1), _utc(2028, 3, 1)),  # leap year
    ("month", _utc(2026, 12, 15), _utc(2026, 12, 1), _utc(2027, 1, 1)),
    ("day", _utc(2026, 5, 5), _utc(2026, 5, 5), _utc(2026, 5, 6)),  # the start belongs to it
])
def test_windows_are_utc_calendar_periods(window, t, start, end):
    assert window_bounds(window, t) == (start, end)


def test_price_rises_ahead_of_pace_and_relaxes_behind_it():
    pacer = Pacer(DAY, MIDNIGHT)
    pacer.charge(1.0, MIDNIGHT + 3600)  # 10% of the day's budget in its first 4%
    prices = [pacer.update(MIDNIGHT + 3600 + 60 * i) for i in range(60)]
    assert 0 < prices[0] < DAY.max_cost_weight
    assert prices[-1] > prices[0]  # held ahead: the integral keeps raising it
    # A quiet afternoon: spend falls behind the even pace, the price returns to 0.
    assert pacer.update(MIDNIGHT + 20 * 3600) == 0.0
    assert pacer.update(MIDNIGHT + 21 * 3600) == 0.0


def test_no_pacing_keeps_the_price_at_zero():
    pacer = Pacer(replace(DAY, pacing=False), MIDNIGHT)
    pacer.charge(9.0, MIDNIGHT + 60)
    assert pacer.update(MIDNIGHT + 120) == 0.0
    pacer.charge(1.0, MIDNIGHT + 180)
    assert pacer.exhausted


def test_a_new_window_starts_from_zero_and_ignores_late_spend():
    pacer = Pacer(DAY, MIDNIGHT)
    pacer.charge(10.0, MIDNIGHT + 100)
    assert pacer.exhausted
    pacer.charge(1.0, MIDNIGHT + 86_400 + 10)  # tomorrow
    assert (pacer.start, pacer.spent, pacer.exhausted) == (MIDNIGHT + 86_400, 1.0, False)
    pacer.charge(3.0, MIDNIGHT + 500)  # yesterday's, arriving late
    assert pacer.spent == 1.0


def test_status_reports_spend_pace_and_remaining():
    pacer = Pacer(DAY, MIDNIGHT)
    pacer.charge(3.0, MIDNIGHT + 6 * 3600)
    status = pacer.status(MIDNIGHT + 6 * 3600)
    assert status.spent_usd == 3.0 and status.remaining_usd == 7.0
    assert status.pace == pytest.approx(3.0 / 2.5)  # 25% of the day: 2.5 USD is on pace
    assert status.price > 0 and not status.exhausted


_EVENTS = st.lists(st.tuples(st.floats(0, 3 * 86_400), st.floats(-5, 50)), max_size=60)


@given(events=_EVENTS, limit=st.floats(0.01, 1e4), ceiling=st.floats(0.1, 50))
@settings(max_examples=200, deadline=None)
def test_any_spend_sequence_keeps_the_state_valid(events, limit, ceiling):
    """Charges (refunds too) at any times: the price stays in [0, max_cost_weight], spend
    equals what was charged in the current window (never below zero), and status never
    fails."""
    budget = BudgetConfig("b", limit_usd=limit, max_cost_weight=ceiling)
    pacer = Pacer(budget, MIDNIGHT)
    now = MIDNIGHT
    for offset, usd in sorted(events):
        now = MIDNIGHT + offset
        pacer.charge(usd, now)
        assert 0.0 <= pacer.update(now) <= ceiling
    start, _ = window_bounds("day", now)
    expected = 0.0  # a refund never takes spend below zero (a correction cannot re-open it)
    for offset, usd in sorted(events):
        if MIDNIGHT + offset >= start:
            expected = max(0.0, expected + usd)
    assert pacer.spent == pytest.approx(expected, abs=1e-6) and pacer.spent >= 0.0
    status = pacer.status(now)
    assert 0.0 <= status.price <= ceiling and status.remaining_usd >= 0.0


def test_budgets_cover_by_tenant_and_policy():
    budgets = Budgets((BudgetConfig("acme", 1.0, tenant="acme"),
                       BudgetConfig("cheap", 1.0, policy="cheap", when_spent="refuse"),
                       BudgetConfig("all", 100.0)), MIDNIGHT)
    budgets.charge("acme", "default", 2.0, MIDNIGHT + 10)
    spent = {p.budget.name: p.spent for p in budgets.pacers}
    assert spent == {"acme": 2.0, "cheap": 0.0, "all": 2.0}
    assert budgets.pacing("acme", "default", MIDNIGHT + 20).exhausted.name == "acme"
    assert budgets.pacing("other", "default", MIDNIGHT + 20).exhausted is None
    budgets.charge("acme", "cheap", 1.0, MIDNIGHT + 30)
    # both spent budgets cover (acme, cheap): refusing wins over routing cheaply
    assert budgets.pacing("acme", "cheap", MIDNIGHT + 40).exhausted.name == "cheap"


def test_without_budgets_decisions_are_not_paced():
    assert Budgets((), MIDNIGHT).pacing("t", "p", MIDNIGHT) is NO_PACING


# --- the engine applies them ----------------------------------------------------------------

def _engine(config: Config, *budgets: BudgetConfig) -> tuple[Engine, list[float]]:
    now = [MIDNIGHT + 3600.0]
    engine = Engine(replace(config, budgets=budgets), RouteIds(b"k" * 32),
                    np.random.default_rng(3), lambda: now[0])
    return engine, now


REQUEST = RouteRequest((Message("user", "Write a haiku about the sea."),))


def test_a_refusing_budget_refuses_with_retry_after(config: Config):
    engine, now = _engine(config, BudgetConfig("daily", 1.0, when_spent="refuse"))
    engine.decide(REQUEST)
    engine.spent("default", "default", 1.5, now[0])
    with pytest.raises(BudgetExhausted) as caught:
        engine.decide(REQUEST)
    assert status_of(caught.value) == 429 and "daily" in caught.value.message
    assert int(headers_of(caught.value)["Retry-After"]) == 23 * 3600  # until the next midnight
    now[0] += 23 * 3600  # the next day: served again
    assert engine.decide(REQUEST).model in engine.catalog.names


def test_a_spent_budget_routes_to_the_cheapest_eligible_model(config: Config):
    engine, now = _engine(config, BudgetConfig("daily", 1.0))
    engine.spent("default", "default", 2.0, now[0])
    cheapest = min(config.models, key=lambda m: m.input_per_mtok + m.output_per_mtok).name
    for _ in range(20):
        d = engine.decide(REQUEST)
        assert d.model == cheapest and d.budget.spent and d.budget.budget == "daily"
    allowed = RouteRequest(REQUEST.messages, constraints=replace(
        REQUEST.constraints, models=frozenset({"gpt-5", "claude-sonnet-4-5"})))
    assert engine.decide(allowed).model == "gpt-5"  # the cheapest of those allowed


def test_pacing_raises_the_decisions_cost_weight(config: Config):
    engine, now = _engine(config, BudgetConfig("daily", 10.0))
    weights = config.policies["default"].weights
    assert engine.decide(REQUEST).budget is None  # on pace: untouched
    engine.spent("default", "default", 6.0, now[0])  # 60% of the day's budget by 01:00
    now[0] += 600
    d = engine.decide(replace(REQUEST, explain=True))
    assert d.budget is not None and not d.budget.spent
    # value mode: pacing asks more points per price doubling, 10 per unit of its price
    price = d.budget.cost_weight - weights.points_per_price_doubling / 10
    assert price > 0
    assert d.budget.points_per_price_doubling == pytest.approx(
        weights.points_per_price_doubling + 10 * price)
    assert d.objective.points_per_price_doubling == d.budget.points_per_price_doubling


def test_pacing_in_cheapest_adequate_mode_moves_traffic_to_cheaper_models(config: Config):
    policy = replace(config.policies["default"], mode="cheapest_adequate", quality_target=0.5)
    config = replace(config, policies={**config.policies, "default": policy})
    prices = {m.name: m.input_per_mtok + m.output_per_mtok for m in config.models}

    def mean_price(engine: Engine) -> float:
        return float(np.mean([prices[engine.decide(REQUEST).model] for _ in range(300)]))

    free, _ = _engine(config)
    paced, now = _engine(config, BudgetConfig("daily", 10.0))
    paced.spent("default", "default", 9.0, now[0])  # far ahead of pace: a high price
    now[0] += 1800
    assert mean_price(paced) < 0.5 * mean_price(free)


def test_pacing_in_value_mode_moves_traffic_to_cheaper_models(config: Config):
    prices = {m.name: m.input_per_mtok + m.output_per_mtok for m in config.models}

    def mean_price(engine: Engine) -> float:
        return float(np.mean([prices[engine.decide(REQUEST).model] for _ in range(300)]))

    free, _ = _engine(config)
    paced, now = _engine(config, BudgetConfig("daily", 10.0))
    paced.spent("default", "default", 9.0, now[0])  # far ahead of pace: a high price
    now[0] += 1800
    assert config.policies["default"].mode == "value"
    assert mean_price(paced) < 0.5 * mean_price(free)


# --- the promise, on a simulated day ----------------------------------------------------------

@pytest.fixture(scope="module")
def day(request) -> dict[str, pacing.DayRun]:
    """The same seeded day of 3,000 requests: unconstrained, paced at half its spend, and
    capped at half its spend without pacing (the cheapest model once spent)."""
    from bandit_router.config import load
    from tests.conftest import ROOT

    config = load(ROOT / "config.toml")
    free = pacing.run_day(config, "unconstrained", 3000, seed=11)
    limit = free.spend_usd * 0.5
    return {"free": free, "limit": limit,
            "paced": pacing.run_day(config, "paced", 3000, 11,
                                    budget=BudgetConfig("daily", limit)),
            "capped": pacing.run_day(config, "cap only", 3000, 11,
                                     budget=BudgetConfig("daily", limit, pacing=False))}


def test_a_paced_budget_ends_within_5_percent_of_its_limit(day):
    free, paced, limit = day["free"], day["paced"], day["limit"]
    print(f"\nunconstrained: {free.spend_usd:.3f} USD, quality {free.mean_quality:.3f}; "
          f"budget {limit:.3f} USD; paced: {paced.spend_usd:.3f} USD "
          f"({paced.spend_usd / limit:.3f}x), quality {paced.mean_quality:.3f} "
          f"(loss {free.mean_quality - paced.mean_quality:.3f})")
    assert abs(paced.spend_usd / limit - 1.0) <= 0.05
    assert paced.refused == 0
    # paced, not cut: on pace through the day, not spent by noon
    halfway = np.searchsorted(paced.times, pacing.DAY_S / 2)
    assert 0.4 <= paced.spend_so_far[halfway] / limit <= 0.6
    assert free.mean_quality - paced.mean_quality < 0.1


def test_without_pacing_the_same_day_overshoots(day):
    free, capped, paced, limit = day["free"], day["capped"], day["paced"], day["limit"]
    assert free.spend_usd > 1.9 * limit  # no budget: twice the limit, by construction
    # a hard cap alone spends the limit early, then the cheapest model still costs money
    assert capped.spend_usd > 1.02 * limit
    assert capped.spend_usd > paced.spend_usd
    halfway = np.searchsorted(capped.times, pacing.DAY_S / 2)
    assert capped.spend_so_far[halfway] >= 0.8 * limit  # most of it gone by noon
    # and it buys less quality than pacing the same money through the day
    assert paced.mean_quality > capped.mean_quality
