"""The offline loop shared by the benchmarks, the experiments and the tests.

A `World` turns an item into a request and, once a model is chosen, into an outcome; a
`Chooser` picks models and learns from outcomes. `run` yields one `Step` per request.
`RouterChooser` is the router itself: the service's `Engine` and `ArmBook`, unchanged,
with feedback applied as soon as the outcome is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from bandit_router.core.learner import ArmBook
from bandit_router.core.route_id import RouteIds
from bandit_router.core.settings import Config, Model
from bandit_router.core.types import Decision, Features, FeedbackEvent, RouteRequest, RouteTicket
from bandit_router.engine.router import Engine


@dataclass(frozen=True, slots=True)
class Outcome:
    quality: float
    cost_usd: float
    latency_ms: float
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Step:
    step: int
    item: int
    model: str
    outcome: Outcome


class World(Protocol):
    def request(self, item: int) -> RouteRequest:
        """The request for `item`, as the router would receive it."""

    def outcome(self, item: int, model: str, rng: np.random.Generator) -> Outcome:
        """What calling `model` on `item` gives."""


class Chooser(Protocol):
    name: str

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        """The model for this request. Only oracles may look at `item`."""

    def learn(self, outcome: Outcome, now: float) -> None:
        """Feedback for the last choice."""


class Clock:
    """Simulated time: one request every `interval_s` seconds."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def run(chooser: Chooser, world: World, items: Iterable[int], clock: Clock,
        rng: np.random.Generator, interval_s: float = 1.0) -> Iterator[Step]:
    for step, item in enumerate(items):
        clock.t += interval_s
        model = chooser.choose(item, world.request(item), clock.t)
        outcome = world.outcome(item, model, rng)
        chooser.learn(outcome, clock.t)
        yield Step(step, item, model, outcome)


def with_catalog(config: Config, models: Iterable[Model]) -> Config:
    """`config` routing over another catalog (e.g. a dataset's models)."""
    return replace(config, models=tuple(models))


class RouterChooser:
    """The router: decisions by `Engine.decide`, learning by `ArmBook`, as in the service."""

    def __init__(self, config: Config, clock: Clock, seed: int = 0, name: str = "router",
                 policy: str | None = None, constraints=None) -> None:
        self.name = name
        self.engine = Engine(config, RouteIds(b"simulation-key-00"), np.random.default_rng(seed),
                             clock)
        self.book = ArmBook(config.policies, weights=config.source_weights)
        self._policy = policy
        self._constraints = constraints
        self._last: Decision | None = None
        self._features: dict[int, Features] = {}  # an item's text never changes

    def choose(self, item: int, request: RouteRequest, now: float) -> str:
        if self._policy is not None or self._constraints is not None:
            request = replace(request, policy=self._policy or request.policy,
                              constraints=self._constraints or request.constraints)
        features = self._features.get(item)
        if features is None:
            features = self._features[item] = self.engine.features(request)
        self._last = self.engine.decide(request, features)
        return self._last.model

    @property
    def last(self) -> Decision | None:
        """The last decision made."""
        return self._last

    def learn(self, outcome: Outcome, now: float) -> None:
        d = self._last
        assert d is not None, "learn() before choose()"
        ticket = RouteTicket(d.policy, d.bucket, d.model, d.created_at, d.input_tokens, "",
                             d.tenant)
        facts = (("quality", outcome.quality), ("latency_ms", outcome.latency_ms),
                 ("input_tokens", float(outcome.input_tokens)),
                 ("output_tokens", float(outcome.output_tokens)))
        self.engine.absorb(self.book.apply(FeedbackEvent(d.route_id, ticket, facts, now)))
        # as the service does it: the answer joins the bucket's sample, then (between two
        # requests here, off the hot path there) due buckets are refined
        if self.engine.learned.answered(d.route_id, d.model, outcome.quality):
            self.engine.learned.refine_now()


def tokens_from_cost(cost_usd: float, input_tokens: int, model: Model) -> int:
    """Output tokens implied by a recorded cost, given the input tokens and the prices."""
    if model.output_per_mtok <= 0:
        return 0
    spent_on_output = cost_usd - input_tokens * model.input_per_mtok * 1e-6
    return max(0, math.floor(spent_on_output / (model.output_per_mtok * 1e-6) + 0.5))
