"""Traffic over time for the dashboard: decisions per bucket and model in slots whose size
fits the history, so five minutes of traffic spread over minutes and a month over days.

Slots of an hour and more are sums of the hourly `usage` rows; shorter ones count the
`decisions` table (which keeps each decision's time) and are read only when the history in
the window is short. Buckets come busiest first; those past the first few are summed into
one "other" row, so a bucket with one decision does not get a chart of its own.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bandit_router.core.spend import HOUR_S
from bandit_router.storage.stats import UsageRow, filtered

SLOTS_S = (60, 300, 900, HOUR_S, 3 * HOUR_S, 6 * HOUR_S, 24 * HOUR_S)
MAX_SLOTS = 96  # bars per chart at most: each stays a few pixels wide
FINE_SPAN_S = 6 * HOUR_S  # histories shorter than this are read per minute
MINUTE_S = 60
TOP_BUCKETS = 6
OTHER = "other"
UNITS = {60: "minute", 300: "5 minutes", 900: "15 minutes", HOUR_S: "hour",
         3 * HOUR_S: "3 hours", 6 * HOUR_S: "6 hours", 24 * HOUR_S: "day"}


@dataclass(frozen=True, slots=True)
class Count:
    """Decisions of one (policy, bucket, model) in the slot starting at `at`."""

    at: float
    policy: str
    bucket: str
    model: str
    decisions: int


def slot_for(span_s: float) -> int:
    """The smallest slot that shows `span_s` in at most MAX_SLOTS bars."""
    return next((s for s in SLOTS_S if span_s / s <= MAX_SLOTS), SLOTS_S[-1])


def from_usage(rows: Iterable[UsageRow]) -> list[Count]:
    return [Count(r.hour, r.policy, r.bucket, r.model, r.tally.decisions)
            for r in rows if r.tally.decisions]


def is_short(counts: list[Count], now: float) -> bool:
    """Whether the window's history (hourly) is short enough to be read per minute."""
    return bool(counts) and now - min(c.at for c in counts) < FINE_SPAN_S


# whole seconds, rounded down: SQLite's CAST truncates, PostgreSQL's rounds (and SQLite
# may be built without FLOOR)
SECONDS = {False: "CAST(created_at AS INTEGER)",
           True: "CAST(FLOOR(created_at) AS BIGINT)"}


def read_minutes(conn: sqlite3.Connection, since: float, tenant: str | None = None,
                 policy: str | None = None, bucket: str | None = None,
                 postgres: bool = False) -> list[Count]:
    """Decisions per minute from `since` on; None filters nothing. Whole seconds divided
    by an integer: an integer division on both backends."""
    where, args = filtered("created_at", since, tenant, policy, bucket)
    rows = conn.execute(
        f"SELECT ({SECONDS[postgres]} / ?) * ?, policy, bucket, model, COUNT(*) "
        f"FROM decisions WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4 ORDER BY 1",
        [MINUTE_S, MINUTE_S, *args])
    return [Count(float(at), p, b, m, int(n)) for at, p, b, m, n in rows]


def _key(c: Count, policies: int) -> str:
    return f"{c.policy} · {c.bucket}" if policies > 1 else c.bucket


def timeline_json(counts: list[Count], now: float, grain: int = HOUR_S,
                  labels: Mapping[tuple[str, str], str] | None = None,
                  top: int = TOP_BUCKETS) -> dict:
    """Decisions per slot, bucket and model, from the first decision to `now`. `grain`:
    the counts' own slot (hourly rows cannot be split into minutes). `labels`: a name a
    person reads for a (policy, bucket), e.g. a learned bucket's (shown instead of its id
    when given)."""
    if not counts:
        return {"slot_s": MINUTE_S, "unit": UNITS[MINUTE_S], "start": now, "slots": 0,
                "buckets": []}
    first = min(c.at for c in counts)
    # another replica's clock may be ahead of this one: its rows still count, up to them
    now = max(now, max(c.at for c in counts))
    slot = max(slot_for(now - first), grain)
    start = first // slot * slot
    n = int((now - start) // slot) + 1
    policies = len({c.policy for c in counts})
    series: dict[str, dict[str, list[int]]] = defaultdict(dict)
    owner: dict[str, tuple[str, str]] = {}
    for c in counts:
        key = _key(c, policies)
        owner[key] = (c.policy, c.bucket)
        row = series[key].setdefault(c.model, [0] * n)
        row[min(n - 1, max(0, int((c.at - start) // slot)))] += c.decisions
    order = sorted(series, key=lambda k: (-_total(series[k]), k))
    buckets = [_bucket(k, *owner[k], series[k], (labels or {}).get(owner[k]))
               for k in order[:top]]
    if len(order) > top + 1:  # one bucket past the top is shown, not folded alone
        buckets.append(_other(order[top:], series, n))
    else:
        buckets += [_bucket(k, *owner[k], series[k], (labels or {}).get(owner[k]))
                    for k in order[top:]]
    return {"slot_s": slot, "unit": UNITS[slot], "start": start, "slots": n,
            "buckets": buckets}


def _total(models: dict[str, list[int]]) -> int:
    return sum(sum(v) for v in models.values())


def _bucket(key: str, policy: str, bucket: str, models: dict[str, list[int]],
            label: str | None) -> dict:
    return {"key": key, "policy": policy, "bucket": bucket, "label": label,
            "decisions": _total(models), "folded": [],
            "models": dict(sorted(models.items()))}


def _other(keys: list[str], series: dict[str, dict[str, list[int]]], n: int) -> dict:
    models: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for key in keys:
        for model, row in series[key].items():
            models[model] = [a + b for a, b in zip(models[model], row, strict=True)]
    return {"key": OTHER, "policy": None, "bucket": OTHER, "label": None,
            "decisions": _total(models), "folded": keys, "models": dict(sorted(models.items()))}


class ReadMinutes:
    """The writer-thread job behind Store.decisions_per_minute (a read: never refused)."""

    refusable = False

    def __init__(self, since: float, tenant: str | None, policy: str | None,
                 bucket: str | None, postgres: bool) -> None:
        self.args = (since, tenant, policy, bucket, postgres)

    def run(self, db) -> list[Count]:
        return read_minutes(db.conn, *self.args)
