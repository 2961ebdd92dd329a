"""The keys of prompt caching, sessions and commitments: each bad value refused naming it."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from bandit_router.config import ConfigError, parse
from tests.pages import ROOT


def _doc() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config.toml").read_text())


def _refused(doc: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse(doc)
    return err.value.key


def test_the_bundled_catalog_has_cached_prices_below_input():
    config = parse(_doc())
    assert all(m.cached_input_per_mtok is not None and
               m.cached_input_per_mtok <= m.input_per_mtok for m in config.models)


def test_a_cached_price_above_input_is_refused():
    doc = _doc()
    doc["models"][0]["cached_input_per_mtok"] = doc["models"][0]["input_per_mtok"] * 1.5
    assert _refused(doc) == "models[0].cached_input_per_mtok"
    doc = _doc()
    doc["models"][0]["cache_write_per_mtok"] = doc["models"][0]["input_per_mtok"] * 2.5
    assert _refused(doc) == "models[0].cache_write_per_mtok"


def test_provider_cache_lifetimes_are_read_and_bounded():
    doc = _doc()
    doc["sessions"] = {"ttl_s": 120, "provider_ttl_s": {"openai": 600}}
    sessions = parse(doc).sessions
    assert sessions.ttl_for("openai") == 600 and sessions.ttl_for("google") == 120
    doc["sessions"]["provider_ttl_s"]["openai"] = 0
    assert _refused(doc) == "sessions.provider_ttl_s.openai"


@pytest.mark.parametrize("entry, key", [
    ({"name": "c"}, "commitments[0].provider"),
    ({"name": "c", "provider": "openai", "model": "gpt-5"}, "commitments[0].provider"),
    ({"name": "c", "model": "no-such-model"}, "commitments[0].model"),
    ({"name": "c", "provider": "nobody"}, "commitments[0].provider"),
    ({"name": "c", "provider": "openai", "discount": 0.995}, "commitments[0].discount"),
])
def test_a_bad_commitment_is_refused_naming_its_key(entry, key):
    doc = _doc()
    doc["commitments"] = [entry]
    assert _refused(doc) == key


def test_a_model_is_covered_by_one_commitment_only():
    doc = _doc()
    doc["commitments"] = [{"name": "a", "provider": "openai", "discount": 0.1},
                          {"name": "b", "model": "gpt-5", "discount": 0.2}]
    assert _refused(doc) == "commitments"
