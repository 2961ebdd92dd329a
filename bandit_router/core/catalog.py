"""The model catalog as arrays, so a bucket's models are priced in one vectorised step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from bandit_router.core.settings import Model

PER_MTOK = 1e-6


class Catalog:
    """Every model of the catalog, disabled ones included (their arms keep their columns and
    evidence); only `enabled` ones are ever eligible."""

    def __init__(self, models: tuple[Model, ...], enabled: Sequence[bool] | None = None) -> None:
        self.models = models
        self.names = tuple(m.name for m in models)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.price_in = np.array([m.input_per_mtok for m in models]) * PER_MTOK
        self.price_out = np.array([m.output_per_mtok for m in models]) * PER_MTOK
        # input read from the provider's prompt cache (core/cache_prices.py)
        self.price_cached = np.array([m.input_per_mtok if m.cached_input_per_mtok is None
                                      else m.cached_input_per_mtok for m in models]) * PER_MTOK
        # what writing a token to the cache costs beyond reading it fresh (0: free writes)
        self.write_surcharge = np.array([0.0 if m.cache_write_per_mtok is None else max(
            0.0, m.cache_write_per_mtok - m.input_per_mtok) for m in models]) * PER_MTOK
        # a model with a zero price: its expected cost may be 0 (value mode floors it)
        self.has_free = bool(((self.price_in <= 0) | (self.price_out <= 0)).any())
        self.context = np.array([m.context_tokens for m in models], dtype=float)
        self.prior_latency_ms = np.array([m.latency_ms for m in models])
        self.enabled = np.ones(len(models), dtype=bool) if enabled is None else \
            np.array(enabled, dtype=bool)
        self.every = np.flatnonzero(self.enabled)  # every enabled model
        # models the gateway can call (an upstream is configured)
        self.callable = np.array([m.upstream is not None for m in models], dtype=bool)
        self.all_callable = bool(self.callable[self.every].all())
        # 0 when none is enabled: no request takes the shortcut, each is refused with reasons
        self.smallest_context = float(self.context[self.every].min()) if self.every.size \
            else 0.0

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
