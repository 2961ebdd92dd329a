"""What the experiment scripts share: arguments, the config, the models they use."""

from __future__ import annotations

import argparse
from pathlib import Path

from bandit_router.config import load
from bandit_router.core.settings import Config

HERE = Path(__file__).resolve().parent
CHEAP, MID, STRONG = "gpt-5-nano", "gpt-5-mini", "gpt-5"  # from the bundled catalog
EASY = "What is the capital of France? Answer in one word."
HARD = ("Refactor this python function step by step, handle every edge case and optimize "
        "it; explain the trade-offs.\n```python\ndef parse(rows):\n    import csv\n"
        "    return [r for r in csv.reader(rows)]\n```")


def arguments(doc: str, steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--config", help="router config (default: the bundled one)")
    parser.add_argument("--out", default=str(HERE / "results"))
    return parser.parse_args()


def config(path: str | None) -> Config:
    return load(path or HERE.parent / "config.toml")
