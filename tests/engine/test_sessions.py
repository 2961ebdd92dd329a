"""The session memory: TTL per provider, bounded size, hit rates learned per tenant."""

from __future__ import annotations

import pytest

from bandit_router.core.settings import SessionsConfig
from bandit_router.engine.sessions import Sessions


def test_a_session_lasts_its_providers_cache_lifetime():
    from types import MappingProxyType
    s = Sessions(SessionsConfig(ttl_s=100, provider_ttl_s=MappingProxyType({"slow": 1000})))
    s.turn("t", "a", "m1", "fast", 5000, now=0.0)
    s.turn("t", "b", "m2", "slow", 5000, now=0.0)
    assert s.get("t", "a", 99.0).model == "m1" and s.get("t", "a", 100.0) is None
    assert s.get("t", "b", 999.0).prefix_tokens == 5000
    assert s.get("other", "b", 1.0) is None  # sessions are per tenant


def test_memory_is_bounded_forgetting_the_least_recently_used():
    s = Sessions(SessionsConfig(max_sessions=2))
    for name in ("a", "b"):
        s.turn("t", name, "m", "p", 10, now=0.0)
    assert s.get("t", "a", 1.0) is not None  # a is now the most recent
    s.turn("t", "c", "m", "p", 10, now=2.0)
    assert len(s) == 2 and s.get("t", "b", 3.0) is None and s.get("t", "a", 3.0) is not None


def test_hit_rates_are_learned_per_tenant_from_reported_cached_tokens():
    s = Sessions(SessionsConfig(hit_prior=0.5, hit_prior_strength=2.0))
    for i in range(8):
        s.expect(f"r{i}", "honest", "m", 1000.0)
        s.observe(f"r{i}", 950.0)
        s.expect(f"x{i}", "other", "m", 1000.0)
        s.observe(f"x{i}", 0.0)  # another tenant reports no cache hits at all
    assert s.hit_rate("honest", "m") == pytest.approx((0.5 * 2 + 8 * 0.95) / 10)
    assert s.hit_rate("other", "m") == pytest.approx(1.0 / 10)
    assert s.hit_rate("new", "m") == 0.5
    s.observe("never-expected", 10.0)  # feedback for a route that was no session turn
    assert s.hit_rate("new", "m") == 0.5
