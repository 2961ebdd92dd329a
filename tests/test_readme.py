"""The README and the pages in docs/ say what the service does: every configuration key the
bundled config uses is in docs/configuration.md with its default, the README is short, and
every link between the pages resolves."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import unquote

from tests.pages import DOCS, README, ROOT, name, pages, prose

CONFIGURATION = DOCS / "configuration.md"
README_MAX_LINES = 250  # a newcomer reads it in five minutes; the reference is in docs/


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
    reference = CONFIGURATION.read_text()
    missing = sorted(k for k in keys if f"`{k}`" not in reference)
    assert len(keys) > 40
    assert not missing, f"config keys missing from docs/configuration.md: {missing}"


def test_the_readme_shows_the_frontier_and_the_metrics_page_the_dashboard_screenshots():
    readme = README.read_text()
    assert "](benchmarks/results/routerbench_subset/frontier.png)" in readme
    metrics = (DOCS / "metrics.md").read_text()
    assert "](dashboard-month.png)" in metrics and "dashboard-short.png" in metrics
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
    rows = re.findall(r"(?m)^\| `([a-z_.<>]+)` \| ([^|]*)\|", CONFIGURATION.read_text())
    checked = 0
    for key, cell in rows:
        value = _bundled_value(doc, key)
        if value is KeyError or "<task>" in key or isinstance(value, dict):
            continue
        literal = re.match(r"\s*`([^`]+)`", cell)
        if literal is None and isinstance(value, list):
            continue  # a list of cues: described, not spelt out
        assert literal, f"the reference gives no default for {key}; config.toml sets {value!r}"
        shown = tomllib.loads(f"v = {literal.group(1)}")["v"]
        assert shown == value, f"the reference says {key} = {literal}; config.toml: {value!r}"
        checked += 1
    assert checked > 30


def test_the_route_id_length_is_told_one_way_and_is_right(config):
    import numpy as np

    from bandit_router.core.route_id import RouteIds
    from bandit_router.core.types import Message, RouteRequest
    from bandit_router.engine.router import Engine

    text = "\n".join(page.read_text() for page in pages())
    told = {int(n) for n in re.findall(r"about (\d+) characters", text)}
    assert len(told) == 1, f"the pages give route_ids several lengths: {sorted(told)}"
    engine = Engine(config, RouteIds(b"k" * 32), np.random.default_rng(0), lambda: 1.8e9)
    lengths = [len(engine.decide(RouteRequest(messages=(Message("user", p),))).route_id)
               for p in ("hi", "Write a Python function that merges two sorted lists.",
                         "Summarize this thread: ...")]
    (about,) = told
    assert all(abs(n - about) <= 20 for n in lengths), (about, lengths)


def test_the_readme_is_short_and_its_test_command_is_what_ci_runs():
    readme = README.read_text()
    assert len(readme.splitlines()) < README_MAX_LINES
    command = "pip install -e '.[test]' && pytest"
    assert f"```sh\n{command}\n```" in readme
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci, f".ci/run no longer runs the README's test command {command!r}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"(?m)^#{1,6} +(.+?) *#*$")


def anchors(page: Path) -> set[str]:
    """The #anchors GitHub gives a page's headings: lower case, punctuation but `-` and `_`
    dropped, spaces as `-`, and `-1`, `-2`, ... after a repeated one."""
    out: set[str] = set()
    for heading in HEADING.findall(prose(page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, unique = 0, slug
        while unique in out:
            n += 1
            unique = f"{slug}-{n}"
        out.add(unique)
    return out


def links(page: Path) -> list[str]:
    return [m for m in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z]+:", m)]  # http:, https:, mailto: are not checked here


def test_the_anchor_rule_is_githubs():
    page = DOCS / "api.md"
    assert {"post-v1route", "get-v1stats", "keys-scopes-and-errors",
            "changing-models-at-run-time-v1adminmodels-v1adminaudit"} <= anchors(page)


def test_every_relative_link_in_the_pages_resolves():
    broken, checked = [], 0
    for page in pages():
        for link in links(page):
            path, _, anchor = unquote(link).partition("#")
            target = (page.parent / path).resolve() if path else page
            checked += 1
            if not target.exists():
                broken.append(f"{name(page)}: {link} (no file {path})")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append(f"{name(page)}: {link} (no heading #{anchor} in {target.name})")
    assert checked > 50
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_in_the_index_and_in_the_readme():
    index, readme = links(DOCS / "README.md"), links(README)
    for page in sorted(DOCS.glob("*.md")):
        if page.name == "README.md":
            continue
        assert page.name in index, f"docs/README.md does not list {page.name}"
        assert f"docs/{page.name}" in readme, f"README.md does not link {page.name}"
