"""What a decision optimises: the policy's weights with the request's overrides, the price
weight pacing adds, and the record `explain` and the budget effect report."""

from __future__ import annotations

from dataclasses import replace

from bandit_router.core.budget import Pacing
from bandit_router.core.errors import InvalidField
from bandit_router.core.policy import PACING_POINTS, price_points
from bandit_router.core.settings import PolicyConfig, Weights
from bandit_router.core.types import NO_OVERRIDE, BudgetEffect, Objective, WeightsOverride

WEIGHT_NAMES = ("cost", "latency", "points_per_price_doubling", "points_per_latency_doubling")
# The weights each mode reads; a request overriding one its policy does not read is refused
# rather than silently ignored.
READS = {"value": ("points_per_price_doubling", "points_per_latency_doubling"),
         "utility": ("cost", "latency"), "cheapest_adequate": ("cost", "latency")}

# A model listed at price 0 (self-hosted, say) is weighed as if it cost a thousandth of a
# dollar per million tokens, 50 times less than the cheapest paid models of 2026: the value
# objective compares prices by ratio, and a ratio to zero is infinite.
FREE_USD_PER_TOKEN = 1e-9


def cost_floor(tokens: float) -> float:
    """The least cost the value objective weighs a request of `tokens` tokens at."""
    return max(FREE_USD_PER_TOKEN * tokens, 1e-12)


def weights_for(policy: PolicyConfig, override: WeightsOverride) -> Weights:
    """The policy's weights with the request's overrides."""
    if override is NO_OVERRIDE:
        return policy.weights
    given = {f: getattr(override, f) for f in WEIGHT_NAMES if getattr(override, f) is not None}
    reads = READS[policy.mode]
    for name in given:
        if name not in reads:
            raise InvalidField(
                f"weights.{name} does not apply to policy {policy.name!r}, which decides in "
                f"{policy.mode} mode; it reads weights.{' and weights.'.join(reads)}",
                f"weights.{name}")
    return replace(policy.weights, **given)


def pacing_base(policy: PolicyConfig, weights: Weights | None = None) -> float:
    """The policy's price weight in the units of a budget's pacing price (a value-mode
    policy's points per price doubling, divided by PACING_POINTS)."""
    weights = weights or policy.weights
    if policy.mode == "value":
        return weights.points_per_price_doubling / PACING_POINTS
    return weights.cost


def effect(policy: PolicyConfig, pacing: Pacing, weights: Weights) -> BudgetEffect:
    """How the budgets shaped a decision."""
    return BudgetEffect(budget=pacing.priced_by or pacing.exhausted.name,
                        cost_weight=pacing_base(policy, weights) + pacing.price,
                        spent=pacing.exhausted is not None, shared=pacing.shared,
                        points_per_price_doubling=price_points(weights, pacing.price)
                        if policy.mode == "value" else None)


def objective(policy: PolicyConfig, weights: Weights, price: float, bucket: str) -> Objective:
    """What the decision optimised, pacing included."""
    if policy.mode == "value":
        return Objective("value", points_per_price_doubling=price_points(weights, price),
                         points_per_latency_doubling=weights.points_per_latency_doubling)
    if policy.mode == "utility":
        return Objective("utility", cost_weight=weights.cost + price,
                         latency_weight=weights.latency)
    return Objective("cheapest_adequate", quality_target=policy.target_for(bucket))
