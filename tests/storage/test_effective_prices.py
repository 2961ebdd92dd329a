"""Effective prices rebuilt from hourly usage rows: every tenant's usage fills a
commitment, in hour order, and the reference model is priced as if it had served it all."""

from __future__ import annotations

import pytest

from bandit_router.core.settings import CommitmentConfig, Model
from bandit_router.core.spend import Prices
from bandit_router.storage.effective_prices import rates, replay_start
from bandit_router.storage.stats import Tally, UsageRow

SONNET = Model("sonnet", "anthropic", 3.0, 15.0, 200_000, 1000)
HAIKU = Model("haiku", "anthropic", 1.0, 5.0, 200_000, 1000)
GPT = Model("gpt", "openai", 1.25, 10.0, 400_000, 1000)
DAY = 1_798_761_600.0  # 2027-01-01 UTC
PREPAID = CommitmentConfig("prepaid", provider="anthropic", amount_usd=7.0, discount=0.3,
                           window="day")  # capacity 10 USD of list-price usage a day


def row(tenant: str, model: str, hour: float, usd: float, tokens: float = 0.0) -> UsageRow:
    return UsageRow(tenant, "default", "chat:low", model, hour,
                    Tally(spend_usd=usd, input_tokens=tokens))


def test_the_hour_a_commitment_runs_out_shares_one_rate_across_tenants():
    rows = [row("a", "haiku", DAY, 6.0), row("b", "haiku", DAY, 2.0),
            row("a", "haiku", DAY + 3600, 4.0), row("b", "gpt", DAY + 3600, 5.0),
            row("b", "haiku", DAY + 7200, 1.0)]
    r = rates(rows, (PREPAID,), (SONNET, HAIKU, GPT), SONNET)
    assert r.of(DAY, "haiku") == pytest.approx(0.7)  # 8 of 10: inside
    # 2 more inside at 0.7, 2 past it at list: (1.4 + 2) / 4
    assert r.of(DAY + 3600, "haiku") == pytest.approx(3.4 / 4)
    assert r.of(DAY + 7200, "haiku") == 1.0 and r.of(DAY + 3600, "gpt") == 1.0


def test_the_next_window_starts_afresh_and_the_reference_fills_its_own():
    rows = [row("a", "gpt", DAY, 5.0, tokens=2e6), row("a", "haiku", DAY + 86400, 9.0)]
    r = rates(rows, (PREPAID,), (SONNET, HAIKU, GPT), SONNET)
    assert r.of(DAY + 86400, "haiku") == pytest.approx(0.7)
    # as if sonnet had served the gpt call: 2M input tokens, 6 USD, inside its capacity
    assert Prices.of(SONNET).cost(2e6, 0) == pytest.approx(6.0)
    assert r.of_reference(DAY) == pytest.approx(0.7)


def test_the_replay_starts_where_the_window_of_the_first_hour_starts():
    month = CommitmentConfig("m", model="gpt", amount_usd=1.0, discount=0.1)
    assert replay_start((month, PREPAID), DAY + 15 * 86400 + 7200) == DAY + 0.0
    assert replay_start((), DAY + 5.0) == DAY + 5.0
