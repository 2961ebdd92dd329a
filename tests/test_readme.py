"""The README documents every configuration key the bundled config uses."""

from __future__ import annotations

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


def test_the_readme_shows_the_dashboard_screenshot():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/dashboard.png)" in readme
    assert (ROOT / "docs" / "dashboard.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
