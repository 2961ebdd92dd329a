"""The settings table (core/setting_table.py) is what the reader reads: every scalar key in it
is refused outside its range with an error naming that key, and giving a key its default is
the same as leaving it out."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from bandit_router.config import ConfigError, parse
from bandit_router.config.reference import range_cell, toml_literal
from bandit_router.core.setting import REQUIRED, Setting, fields_of
from bandit_router.core.setting_table import setting_table
from bandit_router.core.settings import LoggingConfig, RoutingConfig
from tests.pages import ROOT

TABLE = setting_table()
SCALARS = [s for s in TABLE if s.kind != "structural"]


def _document() -> dict[str, Any]:
    """The bundled config with one of every optional part, so each key has a place."""
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    doc["models"][0]["upstream"] = {"base_url": "http://upstream.test/v1"}
    doc["upstreams"] = {"default": {"base_url": "http://upstream.test/v1"}}
    doc["judge"] = {"model": doc["models"][0]["name"]}
    doc["budgets"] = [{"name": "b", "limit_usd": 5.0}]
    doc["commitments"] = [{"name": "c", "provider": doc["models"][0]["provider"]}]
    doc["auth"] = {"keys": [{"name": "k", "key": "k" * 20, "scopes": ["route"]}]}
    return doc


def _where(key: str) -> tuple[list[str | int], str]:
    """The path to a reference key's table in `_document()`, and the key as errors name it."""
    concrete = key.replace("<name>", "default").replace("<task>", "code") \
        .replace("[]", "[0]")
    path: list[str | int] = []
    for part in concrete.split(".")[:-1]:
        name, _, index = part.partition("[")
        path.append(name)
        if index:
            path.append(int(index.rstrip("]")))
    return path, concrete


def _set(doc: dict, key: str, value: Any) -> str:
    path, concrete = _where(key)
    node: Any = doc
    for part in path:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[key.rsplit(".", 1)[-1]] = value
    return concrete


def _outside(s: Setting) -> list[Any]:
    bad: list[Any] = []
    if s.lo is not None:
        bad.append(s.lo - 1 if s.kind == "integer" else s.lo - 0.001)
    if s.above is not None:
        bad.append(s.above)
    if s.hi is not None:
        bad.append(int(s.hi) + 1 if s.kind == "integer" else s.hi * 1.001 + 0.001)
    if s.choices:
        bad.append("not-" + s.choices[0])
    wrong_type = {"string": 7, "integer": 1.5, "number": "x", "boolean": 1, "strings": "x"}
    return [*bad, wrong_type[s.kind]]


def test_every_key_is_listed_once_with_help():
    keys = [s.key for s in TABLE]
    assert len(keys) == len(set(keys)) and len(keys) > 100
    assert all(s.help.strip() and "\n" not in s.help for s in TABLE)


@pytest.mark.parametrize("s", SCALARS, ids=lambda s: s.key)
def test_a_value_outside_the_table_is_refused_naming_its_key(s: Setting):
    for value in _outside(s):
        doc = _document()
        concrete = _set(doc, s.key, value)
        with pytest.raises(ConfigError) as err:
            parse(doc)
        assert err.value.key == concrete, (value, str(err.value))


@pytest.mark.parametrize("s", [s for s in SCALARS if s.default not in (REQUIRED, None)
                               and s.key != "policies.<name>.pooling"], ids=lambda s: s.key)
def test_giving_a_key_its_default_is_leaving_it_out(s: Setting):
    """(A policy's pooling has a default that depends on its mode, shown as such.)"""
    doc = _document()
    _set(doc, s.key, list(s.default) if isinstance(s.default, tuple) else s.default)
    bare = _document()
    path, _ = _where(s.key)
    node: Any = bare
    for part in path:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node.pop(s.name, None)
    assert repr(parse(doc)) == repr(parse(bare))


def test_types_come_from_the_annotations():
    level = next(s for s in fields_of(LoggingConfig) if s.key == "level")
    assert (level.kind, level.choices) == ("string", ("debug", "info", "warning", "error"))
    seed = next(s for s in fields_of(RoutingConfig) if s.key == "seed")
    assert (seed.kind, seed.optional, seed.default) == ("integer", True, None)


def test_the_reference_writes_defaults_and_ranges_as_toml_and_bounds():
    assert [toml_literal(v) for v in (True, "a\"b", 1.0, ("x", "y"))] == \
        ["true", '"a\\"b"', "1.0", '["x", "y"]']
    assert range_cell(Setting("k", "h", "number", lo=0, hi=1.0)) == "0 to 1"
    assert range_cell(Setting("k", "h", "number", above=0, hi=3600)) == "> 0, ≤ 3600"
    assert range_cell(Setting("k", "h", "string", choices=("a", "b"))) == "`a`, `b`"
