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


# Where the bundled config.toml sets a key to something other than its default, and why.
BUNDLED_DIFFERS = {
    "routing.seed": "fixed, so the quickstart gives the same decisions every time",
    "policies.cheap.mode": "the second policy shows the cheapest_adequate mode",
    "policies.cheap.quality_targets": "... and per-bucket targets, as an example",
}
# What the bundled file fills in that has no meaningful default: the catalog's models, the
# tasks and their cue words, the complexity cues and level thresholds.
BUNDLED_CONTENT = ("models[].", "buckets.tasks.<task>.", "buckets.thresholds",
                   "buckets.complexity.cues")


def _set_in(table: dict, path: str = "", real: str = ""):
    """(reference key, key in the file, value) of every scalar the file sets."""
    for key, value in table.items():
        shown = {"policies": "<name>", "buckets.tasks": "<task>"}.get(path, key)
        here, there = (f"{path}.{shown}" if path else shown), (f"{real}.{key}" if real else key)
        if here.endswith(".quality_targets"):
            yield here, there, value
        elif isinstance(value, dict):
            yield from _set_in(value, here, there)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                yield from _set_in(item, f"{here}[]", f"{there}[{i}]")
        else:
            yield here, there, value


def test_the_bundled_config_sets_the_defaults_of_the_settings_table():
    """config.toml spells out defaults for people to read and change: each value it sets is
    the default the service has without it, unless listed (with a reason) above."""
    from bandit_router.core.setting import REQUIRED
    from bandit_router.core.setting_table import setting_table

    table = {s.key: s for s in setting_table()}
    doc = tomllib.loads((ROOT / "config.toml").read_text())
    checked, unknown, differ = 0, [], []
    for key, there, value in _set_in(doc):
        if key not in table:
            unknown.append(there)
            continue
        default = table[key].default
        if there in BUNDLED_DIFFERS or key.startswith(BUNDLED_CONTENT) or default is REQUIRED:
            continue
        default = list(default) if isinstance(default, tuple) else default
        if value != (dict(default) if key.endswith(".quality_targets") else default):
            differ.append(f"{there} = {value!r} (default {default!r})")
        checked += 1
    assert not unknown, f"config.toml sets keys the settings table does not have: {unknown}"
    assert not differ, "config.toml differs from the defaults; change one, or list it in " \
        f"BUNDLED_DIFFERS with why: {differ}"
    assert checked > 40


def test_the_configuration_reference_is_generated_from_the_settings_table():
    from bandit_router.config.reference import render

    page = CONFIGURATION.read_text()
    assert render(page) == page, (
        "docs/configuration.md's settings table is out of date: run "
        "python -m bandit_router.config.reference --write")


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
