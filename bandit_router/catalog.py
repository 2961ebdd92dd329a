"""The model catalog as arrays, so a bucket's models are priced in one vectorised step."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bandit_router.config import Model

PER_MTOK = 1e-6


class Catalog:
    def __init__(self, models: tuple[Model, ...]) -> None:
        self.models = models
        self.names = tuple(m.name for m in models)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.price_in = np.array([m.input_per_mtok for m in models]) * PER_MTOK
        self.price_out = np.array([m.output_per_mtok for m in models]) * PER_MTOK
        self.context = np.array([m.context_tokens for m in models], dtype=float)
        self.prior_latency_ms = np.array([m.latency_ms for m in models])
        self.smallest_context = float(self.context.min())
        self.every = np.arange(len(models))

    def __len__(self) -> int:
        return len(self.names)

    def cost(self, input_tokens, output_tokens):
        """USD of each model for the given token counts (scalars or per-model arrays)."""
        return input_tokens * self.price_in + output_tokens * self.price_out

    def mask(self, names: Iterable[str]) -> np.ndarray:
        out = np.zeros(len(self.names), dtype=bool)
        out[[self.index[n] for n in names if n in self.index]] = True
        return out

    def unknown(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n not in self.index)
