"""Prompt-cache pricing: input read from a provider's cache costs less than fresh input,
and input written to it may cost more.

Counts follow the feedback's convention: `cached_input_tokens` and `cache_write_tokens`
are *part of* `input_tokens` (the whole prompt). Providers report otherwise in places:
OpenAI's `usage.prompt_tokens_details.cached_tokens` is part of `prompt_tokens`, while
Anthropic's `cache_read_input_tokens` and `cache_creation_input_tokens` are *added to* its
`input_tokens`. `prompt_usage` turns either shape into ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PromptUsage:
    """A call's prompt, in our convention: cached and written are parts of input."""

    input_tokens: int | None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None


def input_cost(input_tokens: float, cached: float, written: float, price_in: float,
               price_cached: float | None, price_write: float | None) -> float:
    """USD for a prompt of `input_tokens`, `cached` of them read from cache and `written`
    of them written to it (prices per token; None: the input price)."""
    cached = min(cached, input_tokens)
    written = min(written, input_tokens - cached)
    fresh = input_tokens - cached - written
    return fresh * price_in + cached * _or(price_cached, price_in) + \
        written * _or(price_write, price_in)


def cache_savings(cached: float, written: float, price_in: float,
                  price_cached: float | None, price_write: float | None) -> float:
    """What the cache saved against paying full input price for every token (negative
    when writes cost more than reads saved)."""
    return cached * (price_in - _or(price_cached, price_in)) - \
        written * (_or(price_write, price_in) - price_in)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def prompt_usage(usage: Any) -> PromptUsage:
    """The prompt's counts from an upstream's `usage` object, either shape. OpenAI style
    (`prompt_tokens`): `prompt_tokens_details.cached_tokens` is part of it, and so are
    Anthropic-style cache fields when an OpenAI-compatible proxy reports both (LiteLLM,
    OpenRouter). Anthropic style (`input_tokens`): the cache fields are added to it."""
    if not isinstance(usage, dict):
        return PromptUsage(None)
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("prompt_tokens"))
    if prompt is not None:
        return PromptUsage(prompt, cached if cached is not None else read, written)
    base = _count(usage.get("input_tokens"))
    if base is None:
        return PromptUsage(None)
    return PromptUsage(base + (read or 0) + (written or 0), read, written)


# How much dearer than fresh input each cache price may be: a read never costs more than
# fresh input; a write at most twice it (no provider charges more).
CACHE_PRICE_LIMITS = (("cached_input_per_mtok", 1.0), ("cache_write_per_mtok", 2.0))


def cache_price_problem(input_per_mtok: float, prices: dict[str, float | None]
                        ) -> tuple[str, str] | None:
    """(field, why) when a model's cache prices exceed what its input price allows; the
    one rule for config.toml and the admin API."""
    for name, times in CACHE_PRICE_LIMITS:
        value = prices.get(name)
        if value is not None and value > times * input_per_mtok:
            factor = "" if times == 1 else f"{times:g}x "
            return name, (f"must be at most {times * input_per_mtok:g} ({factor}"
                          f"input_per_mtok); got {value:g}")
    return None
