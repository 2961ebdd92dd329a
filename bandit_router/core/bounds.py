"""What a call could physically have been: the bounds that numbers a client or an upstream
reports must respect before they reach a posterior or a spend total.

A model's context window bounds the input it read, its output limit the answer it wrote,
and its list prices (with room for the surcharges providers add) what the call could have
cost. Client feedback beyond a bound is refused with the field named; an upstream's usage,
which cannot be refused, is clamped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping

from bandit_router.core.errors import InvalidField
from bandit_router.core.settings import Model
from bandit_router.core.spend import Prices
from bandit_router.core.types import Facts

# Provider surcharges on list prices (cache writes at up to 2x the input price, long-context
# tiers at up to 2x) keep a real call's cost within this multiple of its tokens at list price.
COST_SLACK = 2.0


def cost_ceiling(model: Model, prices: Prices, input_tokens: float | None,
                 output_tokens: float | None) -> float:
    """The most a call to `model` could cost: its tokens at list price (the largest possible
    counts where they are not known yet), times COST_SLACK."""
    inputs = model.context_tokens if input_tokens is None else input_tokens
    outputs = model.output_limit if output_tokens is None else output_tokens
    return COST_SLACK * prices.cost(inputs, outputs)


def check_facts(facts: Facts, known: Mapping[str, float], model: Model | None,
                prices: Prices | None) -> None:
    """Refuse facts no call to `model` could produce (InvalidField names the field). `known`
    holds the facts already counted for the call. For a model the catalog no longer has,
    nothing bounds a cost: its tokens and cost_usd are refused (quality, latency and
    success still count)."""
    if model is None:
        for name in ("input_tokens", "output_tokens", "cost_usd", "cached_input_tokens",
                     "cache_write_tokens"):
            if getattr(facts, name) is not None:
                raise InvalidField(f"{name} cannot be counted: the call's model is no longer "
                                   "in the catalog, so nothing bounds what it cost", name)
        return
    if facts.input_tokens is not None and facts.input_tokens > model.context_tokens:
        raise InvalidField(f"input_tokens {facts.input_tokens} is more than {model.name} can "
                           f"read (context window {model.context_tokens} tokens)",
                           "input_tokens")
    if facts.output_tokens is not None and facts.output_tokens > model.output_limit:
        raise InvalidField(f"output_tokens {facts.output_tokens} is more than {model.name} can "
                           f"write in one answer ({model.output_limit} tokens)", "output_tokens")
    _check_cached(facts, known, model)
    if facts.cost_usd is None or prices is None:
        return
    inputs = facts.input_tokens if facts.input_tokens is not None else known.get("input_tokens")
    outputs = facts.output_tokens if facts.output_tokens is not None else \
        known.get("output_tokens")
    ceiling = cost_ceiling(model, prices, inputs, outputs)
    if facts.cost_usd > ceiling:
        tokens = "its reported tokens" if inputs is not None and outputs is not None else \
            "the most tokens it could have used"
        raise InvalidField(f"cost_usd {facts.cost_usd:.6g} is more than a call to {model.name} "
                           f"could cost ({ceiling:.6g} USD: {tokens} at list prices, "
                           f"x{COST_SLACK:g} for surcharges)", "cost_usd")


def _check_cached(facts: Facts, known: Mapping[str, float], model: Model) -> None:
    """Cached and written tokens are parts of the prompt: each at most the context window,
    and together at most input_tokens once that is known (in this message, an earlier or
    a later one: a call is priced with whatever of its facts have arrived)."""
    for name in ("cached_input_tokens", "cache_write_tokens"):
        value = getattr(facts, name)
        if value is not None and value > model.context_tokens:
            raise InvalidField(f"{name} {value} is more than {model.name} can read (context "
                               f"window {model.context_tokens} tokens)", name)
    inputs = facts.input_tokens if facts.input_tokens is not None else known.get("input_tokens")
    if inputs is None:
        return
    cached = facts.cached_input_tokens if facts.cached_input_tokens is not None else \
        known.get("cached_input_tokens", 0)
    written = facts.cache_write_tokens if facts.cache_write_tokens is not None else \
        known.get("cache_write_tokens", 0)
    if cached + written > inputs:
        name = next((n for n in ("cached_input_tokens", "cache_write_tokens", "input_tokens")
                     if getattr(facts, n) is not None), "input_tokens")
        raise InvalidField(f"{name}: cached_input_tokens + cache_write_tokens "
                           f"({cached + written:.0f}) is more than input_tokens "
                           f"({inputs:.0f}), which they are part of", name)


def cached_usage(inputs: int | None, cached: int | None,
                 written: int | None) -> tuple[int | None, int | None]:
    """An upstream's cache counts held within its (clamped) prompt count."""
    if inputs is None:
        return None, None
    cached = None if cached is None else min(cached, inputs)
    written = None if written is None else min(written, inputs - (cached or 0))
    return cached, written


def clamped_usage(model: Model, input_tokens: int | None, output_tokens: int | None,
                  max_tokens: int | None) -> tuple[int | None, int | None, bool]:
    """An upstream's reported usage within what the call could have used (`max_tokens`: the
    caller's output limit, if it sent one); and whether anything was clamped."""
    out_limit = min(model.output_limit, max_tokens) if max_tokens else model.output_limit
    ins = None if input_tokens is None else min(input_tokens, model.context_tokens)
    outs = None if output_tokens is None else min(output_tokens, out_limit)
    return ins, outs, (ins, outs) != (input_tokens, output_tokens)
