"""The README documents every configuration key the bundled config uses."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _keys(table: dict, path: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in table.items():
        if path == "buckets.tasks" or path == "policies":
            key = f"<{'task' if path == 'buckets.tasks' else 'name'}>"
        elif path.endswith(".quality_targets"):
            return {path}
        here = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            out |= _keys(value, here)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out |= _keys(item, f"{here}[]")
        else:
            out.add(here)
    return out


def test_every_config_key_is_documented():
    keys = _keys(tomllib.loads((ROOT / "config.toml").read_text()))
    readme = (ROOT / "README.md").read_text()
    missing = sorted(k for k in keys if f"`{k}`" not in readme)
    assert len(keys) > 40
    assert not missing, f"config keys missing from the README's reference: {missing}"


def test_the_readme_shows_the_dashboard_screenshots_and_the_frontier():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/dashboard-month.png)" in readme and "docs/dashboard-short.png" in readme
    assert "](benchmarks/results/routerbench_subset/frontier.png)" in readme
    for path in ("docs/dashboard-month.png", "docs/dashboard-short.png", "docs/dashboard.png",
                 "benchmarks/results/routerbench_subset/frontier.png"):
        assert (ROOT / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path


def _bundled_value(doc: dict, key: str):
    node = doc
    for part in key.replace("<name>", "default").split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def test_the_config_table_defaults_are_what_the_bundled_config_sets():
    """A default the table shows as a literal is the value the bundled file has (where it
    sets the key): `routing.seed` was shown as having none while the file sets 0."""
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    rows = re.findall(r"(?m)^\| `([a-z_.<>]+)` \| ([^|]*)\|", (ROOT / "README.md").read_text())
    checked = 0
    for key, cell in rows:
        value = _bundled_value(doc, key)
        if value is KeyError or "<task>" in key or isinstance(value, dict):
            continue
        literal = re.match(r"\s*`([^`]+)`", cell)
        if literal is None and isinstance(value, list):
            continue  # a list of cues: described, not spelt out
        assert literal, f"README's table gives no default for {key}; config.toml sets {value!r}"
        shown = tomllib.loads(f"v = {literal.group(1)}")["v"]
        assert shown == value, f"README's table says {key} = {literal}; config.toml: {value!r}"
        checked += 1
    assert checked > 30


def test_the_route_id_length_is_told_one_way_and_is_right(config):
    import numpy as np

    from bandit_router.core.route_id import RouteIds
    from bandit_router.core.types import Message, RouteRequest
    from bandit_router.engine.router import Engine

    readme = (ROOT / "README.md").read_text()
    told = {int(n) for n in re.findall(r"about (\d+) characters", readme)}
    assert len(told) == 1, f"the README gives route_ids several lengths: {sorted(told)}"
    engine = Engine(config, RouteIds(b"k" * 32), np.random.default_rng(0), lambda: 1.8e9)
    lengths = [len(engine.decide(RouteRequest(messages=(Message("user", p),))).route_id)
               for p in ("hi", "Write a Python function that merges two sorted lists.",
                         "Summarize this thread: ...")]
    (about,) = told
    assert all(abs(n - about) <= 20 for n in lengths), (about, lengths)
