"""Cached input priced at the cached price; both providers' usage shapes."""

from __future__ import annotations

import pytest

from bandit_router.core.cache_prices import prompt_usage
from bandit_router.core.settings import Model
from bandit_router.core.spend import Prices, charge

SONNET = Model("sonnet", "anthropic", 3.0, 15.0, 200_000, 1000, cached_input_per_mtok=0.30,
               cache_write_per_mtok=3.75)
GPT = Model("gpt", "openai", 1.25, 10.0, 400_000, 1000, cached_input_per_mtok=0.125)


def test_cached_and_written_tokens_are_priced_apart_from_fresh_input():
    facts = {"input_tokens": 10_000, "output_tokens": 500, "cached_input_tokens": 6_000,
             "cache_write_tokens": 3_000}
    got = charge(facts, Prices.of(SONNET))
    want = (1_000 * 3.0 + 6_000 * 0.30 + 3_000 * 3.75 + 500 * 15.0) / 1e6
    assert got.spend_usd == pytest.approx(want)
    assert got.cached_input_tokens == 6_000
    assert got.cache_savings_usd == pytest.approx((6_000 * 2.70 - 3_000 * 0.75) / 1e6)


def test_without_a_cached_price_cached_tokens_cost_the_input_price():
    plain = Model("plain", "x", 1.0, 2.0, 1000, 10)
    facts = {"input_tokens": 800, "output_tokens": 10, "cached_input_tokens": 800}
    assert charge(facts, Prices.of(plain)).spend_usd == pytest.approx((800 + 20) / 1e6)
    assert charge(facts, Prices.of(plain)).cache_savings_usd == 0


def test_cached_tokens_beyond_the_prompt_are_held_to_it():
    got = charge({"input_tokens": 100, "cached_input_tokens": 500}, Prices.of(GPT))
    assert got.cached_input_tokens == 100
    assert got.spend_usd == pytest.approx(100 * 0.125 / 1e6)


def test_openai_counts_cached_tokens_inside_the_prompt():
    usage = {"prompt_tokens": 5000, "completion_tokens": 20,
             "prompt_tokens_details": {"cached_tokens": 4096}}
    got = prompt_usage(usage)
    assert (got.input_tokens, got.cached_input_tokens, got.cache_write_tokens) == \
        (5000, 4096, None)


def test_anthropic_adds_cache_reads_and_writes_to_the_prompt():
    usage = {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 4000,
             "cache_creation_input_tokens": 1000}
    got = prompt_usage(usage)
    assert (got.input_tokens, got.cached_input_tokens, got.cache_write_tokens) == \
        (5050, 4000, 1000)


def test_a_usage_without_counts_says_nothing():
    assert prompt_usage({"completion_tokens": 3}).input_tokens is None
    assert prompt_usage("junk").input_tokens is None
    assert prompt_usage({"prompt_tokens": -4}).input_tokens is None
