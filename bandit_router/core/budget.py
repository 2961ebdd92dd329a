"""Budgets that pace spending instead of only cutting it off.

Each budget watches the spend of the decisions it covers over a calendar window (UTC hour,
day or month). Its even pace is `limit × elapsed fraction`. A dual (Lagrangian) price on
cost, λ ≥ 0, follows the gap between spend and that pace with a proportional-integral
update: ahead of pace λ rises, so the cost weight of the covered decisions rises and
traffic moves to cheaper arms; behind it, λ falls back to 0 and the configured weight
returns. Once the limit is spent, the budget's hard action applies until the window ends.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from bandit_router.core.settings import BudgetConfig, Window

# Gains of the price update, in cost-weight units per unit of (spend - pace) / limit.
# Proportional: 2% of the limit ahead of pace adds 0.2 to the cost weight at once.
PROPORTIONAL_GAIN = 10.0
# Integral: a gap of 1% of the limit held for a tenth of the window adds 0.4, so the price
# that holds spend on pace is found early in the window and kept (no steady-state error).
INTEGRAL_GAIN = 400.0


def window_bounds(window: Window, t: float) -> tuple[float, float]:
    """The calendar window (UTC) holding `t`: [start, end)."""
    now = dt.datetime.fromtimestamp(t, dt.UTC)
    if window == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(hours=1)
    elif window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
    else:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(start.year, start.month)[1]
        end = start + dt.timedelta(days=days)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: BudgetConfig
    start: float
    end: float
    spent_usd: float  # what counts against the limit (no tenant's excess over its share)
    pace: float | None  # spend / even-pace spend so far; > 1 is ahead; None at the start
    price: float  # the cost weight pacing adds
    exhausted: bool
    by_tenant: Mapping[str, float] = field(default_factory=dict)  # spend of each tenant

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.budget.limit_usd - self.spent_usd)


class Pacer:
    """One budget's state in its current window."""

    def __init__(self, budget: BudgetConfig, now: float) -> None:
        self.budget = budget
        self.start, self.end = window_bounds(budget.window, now)
        self.spent = 0.0
        self.by_tenant: dict[str, float] = {}
        self.price = 0.0
        self._integral = 0.0
        self._last = now

    def _roll(self, t: float) -> None:
        """Move to the window holding `t` if it is a later one. The integral (the price
        that held spend on pace) carries over: traffic tends to look like yesterday's."""
        if t >= self.end:
            self.start, self.end = window_bounds(self.budget.window, t)
            self.spent = 0.0
            self.by_tenant = {}
            self._last = max(self._last, self.start)

    def charge(self, usd: float, at: float, tenant: str = "") -> None:
        """Count a tenant's spend that happened at `at` (negative: a correction); spend from
        an earlier window is ignored, and no total ever goes below zero."""
        self._roll(at)
        if self.start <= at < self.end:
            self.spent = max(0.0, self.spent + usd)
            self.by_tenant[tenant] = max(0.0, self.by_tenant.get(tenant, 0.0) + usd)

    @property
    def counted(self) -> float:
        """Spend that counts against the limit: with a `max_tenant_share`, a tenant's spend
        past its share is its own excess, which no other tenant's budget pays for (its
        feedback for decisions taken earlier still arrives, and is still priced)."""
        share = self.budget.max_tenant_share
        if share >= 1.0:
            return self.spent
        cap = share * self.budget.limit_usd
        return sum(min(usd, cap) for usd in self.by_tenant.values())

    def gap(self, now: float) -> float:
        """Spend ahead of the even pace, as a fraction of the limit (negative: behind)."""
        elapsed = (now - self.start) / (self.end - self.start)
        return (self.counted - self.budget.limit_usd * elapsed) / self.budget.limit_usd

    def update(self, now: float) -> float:
        """The price at `now`, after integrating the gap since the last update."""
        self._roll(now)
        if not self.budget.pacing:
            return 0.0
        step = max(0.0, now - self._last) / (self.end - self.start)
        self._last = max(self._last, now)
        gap = self.gap(now)
        ceiling = self.budget.max_cost_weight
        self._integral = min(ceiling, max(0.0, self._integral + INTEGRAL_GAIN * gap * step))
        self.price = min(ceiling, max(0.0, self._integral + PROPORTIONAL_GAIN * gap))
        return self.price

    @property
    def exhausted(self) -> bool:
        return self.counted >= self.budget.limit_usd

    def exhausted_for(self, tenant: str) -> bool:
        """Spent for this tenant: the whole budget, or the tenant's share of a shared one
        (so that one tenant cannot spend what the others are counting on)."""
        share = self.budget.max_tenant_share * self.budget.limit_usd
        return self.exhausted or self.by_tenant.get(tenant, 0.0) >= share

    def status(self, now: float) -> BudgetStatus:
        self.update(now)
        elapsed = (now - self.start) / (self.end - self.start)
        expected = self.budget.limit_usd * elapsed
        counted = self.counted
        return BudgetStatus(self.budget, self.start, self.end, counted,
                            counted / expected if expected > 0 else None, self.price,
                            self.exhausted, dict(self.by_tenant))


@dataclass(frozen=True, slots=True)
class Pacing:
    """What the budgets covering one decision ask of it."""

    price: float = 0.0  # added to the cost weight
    priced_by: str | None = None  # the budget that set the price
    exhausted: BudgetConfig | None = None  # a spent budget, whose hard action applies
    shared: bool = False  # the pricing budget covers other tenants too (its price is theirs)
    share_spent: bool = False  # `exhausted` is spent for this tenant only (its share of it)


NO_PACING = Pacing()


class Budgets:
    def __init__(self, budgets: tuple[BudgetConfig, ...], now: float) -> None:
        self.pacers = [Pacer(b, now) for b in budgets]
        self._covering: dict[tuple[str, str], list[Pacer]] = {}

    def _of(self, tenant: str, policy: str) -> list[Pacer]:
        found = self._covering.get((tenant, policy))
        if found is None:
            found = [p for p in self.pacers if p.budget.covers(tenant, policy)]
            self._covering[(tenant, policy)] = found
        return found

    def charge(self, tenant: str, policy: str, usd: float, at: float) -> None:
        for pacer in self._of(tenant, policy):
            pacer.charge(usd, at, tenant)

    def pacing(self, tenant: str, policy: str, now: float) -> Pacing:
        if not self.pacers:
            return NO_PACING
        price, by, spent, shared, share_spent = 0.0, None, None, False, False
        for pacer in self._of(tenant, policy):
            if pacer.update(now) > price:
                price, by = pacer.price, pacer.budget.name
                shared = pacer.budget.tenant is None
            if pacer.exhausted_for(tenant) and \
                    (spent is None or pacer.budget.when_spent == "refuse"):
                spent, share_spent = pacer.budget, not pacer.exhausted
        return Pacing(price, by, spent, shared, share_spent) if by or spent else NO_PACING

    def status(self, now: float) -> list[BudgetStatus]:
        return [p.status(now) for p in self.pacers]
