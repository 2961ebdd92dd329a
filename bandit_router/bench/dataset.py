"""Reading a dataset of real per-prompt outcomes (the format of ../shared/data/*/README.md).

A dataset folder holds one `*.jsonl.gz` file (one prompt per line: id, task, prompt,
prompt_chars, outcomes: model -> {quality, cost_usd, latency_s}) and `models.json`
(prices per million tokens). Nothing here knows any particular dataset.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandit_router.core.settings import Model

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


def _price(entry: dict, key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0:
        raise DatasetError(f"{where}.{key}: must be a price in USD per million tokens "
                           f"(a number >= 0), got {value!r}")
    return float(value)


def _model(entry: object, where: str, name: str | None = None) -> Model:
    """One models.json entry. Prices are `input_per_mtok` and `output_per_mtok`, or one
    `price_per_mtok` for both (providers that charge the same for input and output)."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: must be an object with the model's prices")
    name = entry.get("name", name)
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{where}.name: must be the model's name (a string)")
    split = "input_per_mtok" in entry and "output_per_mtok" in entry
    if split:
        prices = (_price(entry, "input_per_mtok", where), _price(entry, "output_per_mtok", where))
    elif "price_per_mtok" in entry and "input_per_mtok" not in entry and \
            "output_per_mtok" not in entry:
        prices = (_price(entry, "price_per_mtok", where),) * 2
    else:
        raise DatasetError(f"{where} ({name}): lacks prices: give input_per_mtok and "
                           "output_per_mtok (or price_per_mtok for both), in USD per million "
                           "tokens")
    return Model(name=name, provider=str(entry.get("provider", "unknown")),
                 input_per_mtok=prices[0], output_per_mtok=prices[1],
                 context_tokens=UNKNOWN_CONTEXT, latency_ms=PRIOR_LATENCY_MS)


def _models(path: Path) -> dict[str, Model]:
    """`{"models": [...]}` with a name in each entry, or `{"models": {name: prices}}`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read as JSON: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if isinstance(models, dict):
        entries = [(_model(e, f"{path}: models.{n}", n)) for n, e in models.items()]
    elif isinstance(models, list):
        entries = [_model(e, f"{path}: models[{i}]") for i, e in enumerate(models)]
    else:
        raise DatasetError(f"{path}: models: must be a list of models (or an object of "
                           "them by name), each with its prices")
    return {m.name: m for m in entries}


def _outcome(row: dict, model: str, where: str) -> tuple[float, float]:
    outcome = row["outcomes"].get(model)
    if not isinstance(outcome, dict):
        raise DatasetError(f"{where}: outcomes.{model}: missing (every row needs the same "
                           "models)")
    values = []
    for key in ("quality", "cost_usd"):
        value = outcome.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise DatasetError(f"{where}: outcomes.{model}.{key}: must be a number, "
                               f"got {value!r}")
        values.append(float(value))
    return values[0], values[1]


def _rows(path: Path) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: line {n}: not JSON: {exc}") from None
            for key, kind in (("id", (str, int)), ("prompt", str), ("outcomes", dict)):
                if not isinstance(row, dict) or not isinstance(row.get(key), kind):
                    raise DatasetError(f"{path}: line {n}: {key}: missing or of the wrong "
                                       "type")
            rows.append(row)
    if not rows:
        raise DatasetError(f"{path} has no rows")
    return rows


def load(folder: str | Path) -> Dataset:
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl.gz"))
    if len(files) != 1 or not (folder / "models.json").is_file():
        raise DatasetError(f"{folder} must hold exactly one *.jsonl.gz and a models.json")
    priced = _models(folder / "models.json")
    rows = _rows(files[0])
    names = [n for n in rows[0]["outcomes"] if n in priced]
    missing = sorted(set(rows[0]["outcomes"]) - set(priced))
    if missing:
        raise DatasetError(f"{folder / 'models.json'}: lacks prices for {missing} (models "
                           f"in the outcomes of {files[0].name})")
    outcomes = np.array([[_outcome(r, n, f"{files[0]}: line {i}") for n in names]
                         for i, r in enumerate(rows, 1)], float)
    return Dataset(
        name=folder.name, ids=tuple(str(r["id"]) for r in rows),
        tasks=tuple(str(r.get("task", "")) for r in rows),
        prompts=tuple(r["prompt"] for r in rows),
        prompt_chars=np.array([r.get("prompt_chars", len(r["prompt"])) for r in rows]),
        models=tuple(priced[n] for n in names), quality=outcomes[:, :, 0],
        cost=outcomes[:, :, 1])


def write(folder: str | Path, rows: list[dict], models: list[dict]) -> Path:
    """Write a dataset in the same format (used by tests to build small ones)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "data.jsonl.gz", "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    (folder / "models.json").write_text(json.dumps({"models": models}))
    return folder
