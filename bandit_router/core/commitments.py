"""Provider commitments: what a model costs at the margin when its provider was prepaid, or
promised a committed spend, at a discount.

A commitment of `amount_usd` per calendar window at `discount` buys `amount_usd /
(1 - discount)` of usage at list prices (its *capacity*). The amount is paid whether it is
used or not, so a unit inside it costs nothing more; past it, the list price. Priced at 0,
though, the router would pour every call onto the provider early in the window, even calls
another model answers better, and the rest of the window would pay list price. So prepaid
units are priced by a shadow price, a multiple of list price that paces use toward the
whole capacity by the window's end: the discounted price when usage is on course, less when
it lags (use more), up to the list price when it runs ahead (overshoot pays list). A flat
commitment (no amount) is just `discount` off every call.

Usage is counted at list price (the spend the router records), in the window of the call.
What that usage costs under the contract (its *effective* spend, what budgets and the
savings report count) is the discounted price inside the capacity and the list price past
it; the part of the amount left unused is not spend but `left_on_table_usd`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from bandit_router.core.budget import window_bounds
from bandit_router.core.settings import CommitmentConfig, Model

# How sharply the shadow price answers the pace so far against the pace still needed to
# use the capacity by the window's end: at 0.9 of the needed pace it is 0.43x the discounted
# price, at 1.1 2.1x (capped at list). Steering by the pace needed, not by a forecast, makes
# the control integral-like: a shortfall raises the pace needed as the window runs out, so
# the remainder shrinks toward 0 by the end instead of settling short of it.
GAIN = 8.0
# Before this share of the window has passed, the pace so far is too noisy to steer by.
WARMUP = 0.02


@dataclass(frozen=True, slots=True)
class CommitmentStatus:
    commitment: CommitmentConfig
    start: float
    end: float
    capacity_usd: float | None  # list-price usage the amount buys; None: a flat rate
    used_usd: float  # list-price usage in this window
    remaining_usd: float | None
    forecast_usd: float | None  # usage by the window's end at the pace so far
    left_on_table_usd: float | None  # paid for, forecast unused: (capacity - forecast) x paid
    price_factor: float  # the multiple of list price the next call is priced at


class Tracker:
    """One commitment's usage in its current window."""

    def __init__(self, config: CommitmentConfig, now: float) -> None:
        self.config = config
        self.start, self.end = window_bounds(config.window, now)
        self.used = 0.0

    def covers(self, model: Model) -> bool:
        return self.config.model == model.name or self.config.provider == model.provider

    @property
    def capacity(self) -> float | None:
        c = self.config
        return None if c.amount_usd is None else c.amount_usd / max(1.0 - c.discount, 1e-9)

    def _roll(self, now: float) -> None:
        if now >= self.end:
            self.start, self.end = window_bounds(self.config.window, now)
            self.used = 0.0

    def effective(self, used: float) -> float:
        """What `used` list-price usage in one window costs under the contract."""
        paid, capacity = 1.0 - self.config.discount, self.capacity
        if capacity is None:
            return paid * used
        return paid * min(used, capacity) + max(0.0, used - capacity)

    def charge(self, usd: float, at: float) -> float:
        """Count list-price usage at `at`; return what it costs under the contract (the
        difference it makes to the window's effective spend: negative for a correction)."""
        self._roll(at)
        if not self.start <= at < self.end:
            # a window already closed (late feedback for an old call): its usage is gone,
            # so price it as if inside the capacity
            return (1.0 - self.config.discount) * usd
        before = self.used
        self.used = max(0.0, before + usd)
        return self.effective(self.used) - self.effective(before)

    def forecast(self, now: float) -> float:
        elapsed = max(now - self.start, 1e-9)
        return self.used + self.used / elapsed * max(self.end - now, 0.0)

    def factor(self, now: float) -> float:
        """The multiple of list price a covered call is priced at now."""
        self._roll(now)
        c, capacity = self.config, self.capacity
        paid = 1.0 - c.discount
        if capacity is None:
            return paid
        if self.used >= capacity * (1.0 - 1e-9):  # amount / (1 - discount) rounds up
            return 1.0
        if not c.pacing:
            return 0.0
        if (now - self.start) / (self.end - self.start) < WARMUP:
            return paid
        pace = self.used / max(now - self.start, 1e-9)
        needed = (capacity - self.used) / max(self.end - now, 1e-9)
        return min(1.0, paid * (pace / needed) ** GAIN)

    def status(self, now: float) -> CommitmentStatus:
        factor = self.factor(now)
        capacity = self.capacity
        if capacity is None:
            return CommitmentStatus(self.config, self.start, self.end, None, self.used, None,
                                    None, None, factor)
        forecast = self.forecast(now)
        unused = max(0.0, capacity - forecast)
        return CommitmentStatus(self.config, self.start, self.end, capacity, self.used,
                                max(0.0, capacity - self.used), forecast,
                                unused * (1.0 - self.config.discount), factor)


class Commitments:
    def __init__(self, configs: Iterable[CommitmentConfig], now: float) -> None:
        self.trackers = [Tracker(c, now) for c in configs]

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _of(self, model: Model) -> Tracker | None:
        return next((t for t in self.trackers if t.covers(model)), None)

    def charge(self, model: Model | None, usd: float, at: float) -> float:
        """Count a call's list-price spend against the commitment covering its model, and
        return its effective spend (the list spend when none covers it)."""
        tracker = self._of(model) if model is not None else None
        if tracker is None or not math.isfinite(usd):
            return usd
        return tracker.charge(usd, at)

    def factors(self, models: Iterable[Model], now: float) -> list[float]:
        """Each model's multiple of list price (1.0 for one no commitment covers)."""
        out = []
        for model in models:
            tracker = self._of(model)
            out.append(1.0 if tracker is None else tracker.factor(now))
        return out

    def status(self, now: float) -> list[CommitmentStatus]:
        return [t.status(now) for t in self.trackers]
