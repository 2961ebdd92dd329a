"""Reading a dataset of real per-prompt outcomes (the format of ../shared/data/*/README.md).

A dataset folder holds one `*.jsonl.gz` file (one prompt per line: id, task, prompt,
prompt_chars, outcomes: model -> {quality, cost_usd, latency_s}) and `models.json`
(prices per million tokens). Nothing here knows any particular dataset.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandit_router.config import Model

UNKNOWN_CONTEXT = 10_000_000  # datasets do not say; nothing is excluded for length
PRIOR_LATENCY_MS = 2000.0  # the router's guess before feedback; the data has no latency


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class Dataset:
    name: str
    ids: tuple[str, ...]
    tasks: tuple[str, ...]  # for reports only; never shown to a router
    prompts: tuple[str, ...]
    prompt_chars: np.ndarray
    models: tuple[Model, ...]
    quality: np.ndarray  # prompts x models
    cost: np.ndarray  # prompts x models, USD

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def subset(self, rows: np.ndarray, name: str | None = None) -> Dataset:
        idx = list(rows)
        return Dataset(name or self.name, tuple(self.ids[i] for i in idx),
                       tuple(self.tasks[i] for i in idx), tuple(self.prompts[i] for i in idx),
                       self.prompt_chars[rows], self.models, self.quality[rows],
                       self.cost[rows])


def _models(path: Path) -> dict[str, Model]:
    data = json.loads(path.read_text())
    out = {}
    for entry in data["models"]:
        out[entry["name"]] = Model(
            name=entry["name"], provider=entry.get("provider", "unknown"),
            input_per_mtok=float(entry["input_per_mtok"]),
            output_per_mtok=float(entry["output_per_mtok"]),
            context_tokens=UNKNOWN_CONTEXT, latency_ms=PRIOR_LATENCY_MS)
    return out


def load(folder: str | Path) -> Dataset:
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl.gz"))
    if len(files) != 1 or not (folder / "models.json").is_file():
        raise DatasetError(f"{folder} must hold exactly one *.jsonl.gz and a models.json")
    priced = _models(folder / "models.json")
    with gzip.open(files[0], "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    if not rows:
        raise DatasetError(f"{files[0]} has no rows")
    names = [n for n in rows[0]["outcomes"] if n in priced]
    missing = set(rows[0]["outcomes"]) - set(priced)
    if missing:
        raise DatasetError(f"models.json lacks prices for {sorted(missing)}")
    quality = np.array([[r["outcomes"][n]["quality"] for n in names] for r in rows], float)
    cost = np.array([[r["outcomes"][n]["cost_usd"] for n in names] for r in rows], float)
    return Dataset(
        name=folder.name, ids=tuple(str(r["id"]) for r in rows),
        tasks=tuple(str(r.get("task", "")) for r in rows),
        prompts=tuple(r["prompt"] for r in rows),
        prompt_chars=np.array([r.get("prompt_chars", len(r["prompt"])) for r in rows]),
        models=tuple(priced[n] for n in names), quality=quality, cost=cost)


def write(folder: str | Path, rows: list[dict], models: list[dict]) -> Path:
    """Write a dataset in the same format (used by tests to build small ones)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "data.jsonl.gz", "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    (folder / "models.json").write_text(json.dumps({"models": models}))
    return folder
