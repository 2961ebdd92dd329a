"""What a decision optimises: weights with overrides, pacing's units, the explained record."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bandit_router.core import objective
from bandit_router.core.budget import Pacing
from bandit_router.core.errors import InvalidField
from bandit_router.core.settings import BudgetConfig, PolicyConfig, Weights
from bandit_router.core.types import NO_OVERRIDE, Objective, WeightsOverride

VALUE = PolicyConfig("v", weights=Weights(cost=0.1, points_per_price_doubling=2.0))
UTILITY = replace(VALUE, name="u", mode="utility")
ADEQUATE = replace(VALUE, name="c", mode="cheapest_adequate", quality_target=0.7)


def test_an_override_replaces_only_the_weights_it_names():
    assert objective.weights_for(VALUE, NO_OVERRIDE) is VALUE.weights
    w = objective.weights_for(VALUE, WeightsOverride(points_per_latency_doubling=3.0))
    assert (w.points_per_price_doubling, w.points_per_latency_doubling) == (2.0, 3.0)
    assert objective.weights_for(UTILITY, WeightsOverride(cost=0.5)).cost == 0.5


@pytest.mark.parametrize(("policy", "override", "field"), [
    (VALUE, WeightsOverride(cost=0.5), "weights.cost"),
    (VALUE, WeightsOverride(latency=0.5), "weights.latency"),
    (UTILITY, WeightsOverride(points_per_price_doubling=1.0), "weights.points_per_price_doubling"),
    (ADEQUATE, WeightsOverride(points_per_latency_doubling=1.0),
     "weights.points_per_latency_doubling"),
])
def test_a_weight_the_mode_does_not_read_is_refused(policy, override, field):
    with pytest.raises(InvalidField) as info:
        objective.weights_for(policy, override)
    assert info.value.field == field and policy.mode in str(info.value)


def test_pacing_speaks_each_modes_units():
    pacing = Pacing(price=0.3, priced_by="daily")
    v = objective.effect(VALUE, pacing, VALUE.weights)
    assert v.cost_weight == pytest.approx(0.2 + 0.3)  # 2 points per doubling = 0.2 units
    assert v.points_per_price_doubling == pytest.approx(2.0 + 10 * 0.3)
    u = objective.effect(UTILITY, pacing, UTILITY.weights)
    assert u.cost_weight == pytest.approx(0.4) and u.points_per_price_doubling is None
    spent = objective.effect(VALUE, Pacing(exhausted=BudgetConfig("b", 1.0)), VALUE.weights)
    assert spent.budget == "b" and spent.spent


def test_the_explained_objective_is_the_modes():
    assert objective.objective(VALUE, VALUE.weights, 0.1, "chat:low") == Objective(
        "value", points_per_price_doubling=3.0, points_per_latency_doubling=0.0)
    assert objective.objective(UTILITY, UTILITY.weights, 0.1, "chat:low") == Objective(
        "utility", cost_weight=pytest.approx(0.2), latency_weight=0.0)
    assert objective.objective(ADEQUATE, ADEQUATE.weights, 0.0, "chat:low") == Objective(
        "cheapest_adequate", quality_target=0.7)


def test_the_cost_floor_scales_with_the_request():
    assert objective.cost_floor(1000) == pytest.approx(1e-6)
    assert objective.cost_floor(0) > 0
