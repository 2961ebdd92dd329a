"""Strict reading of TOML tables: every key typed, checked, and accounted for."""

from __future__ import annotations

import pytest

from bandit_router.config.tomlcheck import ConfigError, Table


def _error(build) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build()
    return caught.value


def test_a_misspelt_key_is_an_error_naming_its_full_path():
    t = Table({"prot": 1}, "server")
    err = _error(lambda: t.read(lambda t: t.integer("port", 8000)))
    assert err.key == "server.prot" and err.problem == "unknown key"


def test_defaults_apply_and_required_keys_are_named():
    t = Table({}, "gateway")
    assert t.number("timeout_s", 30.0) == 30.0
    assert _error(lambda: t.string("alias")).key == "gateway.alias"


@pytest.mark.parametrize(("value", "reader"), [
    (True, lambda t: t.integer("x")),      # a boolean is not an integer in TOML's sense
    (1.5, lambda t: t.integer("x")),
    ("1", lambda t: t.number("x")),
    (1, lambda t: t.boolean("x")),
    ([1, "a"], lambda t: t.numbers("x")),
    ([1], lambda t: t.strings("x")),
    ("a", lambda t: t.table("x")),
])
def test_values_of_the_wrong_type_are_refused(value, reader):
    err = _error(lambda: reader(Table({"x": value}, "s")))
    assert err.key == "s.x" and "must be" in err.problem


def test_ranges_and_choices():
    t = Table({"n": 0.0, "k": 11, "mode": "fast"})
    assert "greater than 0" in _error(lambda: t.number("n", above=0)).problem
    assert "at most 10" in _error(lambda: t.integer("k", hi=10)).problem
    assert "one of slow, safe" in _error(lambda: t.string("mode", choices=("slow", "safe"))).problem
    assert "finite" in _error(lambda: Table({"n": float("inf")}).number("n")).problem


def test_nested_tables_and_arrays_of_tables_carry_their_path():
    root = Table({"models": [{"name": "a"}, {"name": "b", "extra": 1}],
                  "policies": {"cheap": {"mode": "value"}}})
    models = root.array_of_tables("models")
    assert [m.string("name") for m in models] == ["a", "b"]
    assert _error(models[1].done).key == "models[1].extra"
    policies = root.tables("policies")
    assert policies["cheap"].key("mode") == "policies.cheap.mode"


def test_an_absent_optional_key_counts_as_read():
    t = Table({"extra": 1})
    assert t.raw_none("limit") is None
    assert _error(t.done).key == "extra"  # "limit" was read: only the unread key is left
