"""Replaying a dataset as a world: real quality and cost, modelled latency.

Latency assumption (no source records it): a model's median latency grows with its
output price, `median_ms = 800 * (output price / cheapest output price) ** 0.35`, so a
model 100x pricier per token is about 5x slower; each call draws log-normal noise with
sigma 0.25 around that median. This is a stated assumption, not data.
"""

from __future__ import annotations

import numpy as np

from bandit_router.bench.dataset import Dataset
from bandit_router.core.types import Message, RouteRequest
from bandit_router.engine.simulate import Outcome, tokens_from_cost

BASE_LATENCY_MS = 800.0
PRICE_EXPONENT = 0.35
LATENCY_SIGMA = 0.25


def median_latency_ms(ds: Dataset) -> np.ndarray:
    out_price = np.array([max(m.output_per_mtok, 1e-9) for m in ds.models])
    return BASE_LATENCY_MS * (out_price / out_price.min()) ** PRICE_EXPONENT


class ReplayWorld:
    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.index = {name: i for i, name in enumerate(ds.names)}
        self.median_latency_ms = median_latency_ms(ds)
        # A caller knows its prompt's size: pass the full prompt's token estimate, since
        # the dataset keeps only the first characters of long prompts.
        self._requests = [
            RouteRequest(messages=(Message("user", p),), input_tokens=-(-int(c) // 4))
            for p, c in zip(ds.prompts, ds.prompt_chars, strict=True)]

    def request(self, item: int) -> RouteRequest:
        return self._requests[item]

    def outcome(self, item: int, model: str, rng: np.random.Generator) -> Outcome:
        j = self.index[model]
        cost = float(self.ds.cost[item, j])
        input_tokens = self._requests[item].input_tokens or 0
        return Outcome(
            quality=float(self.ds.quality[item, j]), cost_usd=cost,
            latency_ms=float(self.median_latency_ms[j] * rng.lognormal(0.0, LATENCY_SIGMA)),
            input_tokens=input_tokens,
            output_tokens=tokens_from_cost(cost, input_tokens, self.ds.models[j]))
