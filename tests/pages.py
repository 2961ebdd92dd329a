"""The user's documentation the tests read: README.md, and the reference pages in docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"(?ms)^```.*?^```")


def pages() -> list[Path]:
    """README.md first, then every docs/*.md page by name."""
    return [README, *sorted(DOCS.glob("*.md"))]


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(text: str) -> str:
    """`text` without its fenced code blocks (a `# comment` there is not a heading)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
