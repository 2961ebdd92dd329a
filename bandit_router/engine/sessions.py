"""What the router remembers of a session: its last turn's model and the prompt prefix that
model's cache is likely to hold, so the next turn can weigh staying (cached input at the
cached price) against switching (the whole prompt at full price).

Bounded (`sessions.max_sessions`, least recently used forgotten first) and short-lived: a
session is forgotten once its provider's cache would have expired (`sessions.ttl_s`,
`sessions.provider_ttl_s`). Kept in this process's memory only: each replica remembers the
sessions it routed (docs/sessions.md), which is right when a load balancer keeps a session
on one replica, and costs a cache-blind turn when it does not.

How much of a remembered prefix a model's cache really serves is learned per tenant and
model from the feedback's `cached_input_tokens`, against a prior (`sessions.hit_prior`):
per tenant, since a tenant's reports may move only its own decisions (the trust model).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from bandit_router.core.settings import SessionsConfig

MAX_PENDING = 100_000  # session turns awaiting their feedback, for learning hit rates


@dataclass(frozen=True, slots=True)
class SessionState:
    model: str  # the last turn's model
    prefix_tokens: int  # the last turn's prompt: what that model's cache may now hold
    at: float
    expires_at: float


@dataclass(slots=True)
class HitRate:
    """A model's share of a remembered prefix that came back from cache, per turn."""

    ratio_sum: float = 0.0
    turns: float = 0.0

    def mean(self, prior: float, strength: float) -> float:
        return (prior * strength + self.ratio_sum) / (strength + self.turns)


class Sessions:
    def __init__(self, config: SessionsConfig) -> None:
        self.config = config
        self._states: OrderedDict[tuple[str, str], SessionState] = OrderedDict()
        self._pending: OrderedDict[str, tuple[tuple[str, str], float]] = OrderedDict()
        self._rates: dict[tuple[str, str], HitRate] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, tenant: str, session: str, now: float) -> SessionState | None:
        key = (tenant, session)
        state = self._states.get(key)
        if state is None:
            return None
        if now >= state.expires_at or now < state.at:
            del self._states[key]
            return None
        self._states.move_to_end(key)
        return state

    def turn(self, tenant: str, session: str, model: str, provider: str, prompt_tokens: int,
             now: float) -> None:
        """A turn of `session` went to `model` with a prompt of `prompt_tokens`."""
        key = (tenant, session)
        self._states[key] = SessionState(model, prompt_tokens, now,
                                         now + self.config.ttl_for(provider))
        self._states.move_to_end(key)
        while len(self._states) > self.config.max_sessions:
            self._states.popitem(last=False)

    def hit_rate(self, tenant: str, model: str) -> float:
        rate = self._rates.get((tenant, model)) or HitRate()
        return rate.mean(self.config.hit_prior, self.config.hit_prior_strength)

    def expect(self, route_id: str, tenant: str, model: str, cacheable_tokens: float) -> None:
        """A session turn whose prompt had `cacheable_tokens` in `model`'s cache, if all of
        the remembered prefix was still there: its feedback tells how much was."""
        if cacheable_tokens <= 0:
            return
        self._pending[route_id] = ((tenant, model), cacheable_tokens)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def observe(self, route_id: str, cached_tokens: float) -> None:
        """Feedback for a route: its reported cached input, against what it could have had."""
        pending = self._pending.pop(route_id, None)
        if pending is None:
            return
        arm, cacheable = pending
        rate = self._rates.setdefault(arm, HitRate())
        rate.ratio_sum += min(1.0, max(0.0, cached_tokens) / cacheable)
        rate.turns += 1.0
