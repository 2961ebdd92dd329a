"""`bandit-router migrate-store FROM TO`: copy a whole store to another one, e.g. a SQLite
file to PostgreSQL when one replica becomes several (or back again).

Everything is copied, ids included: the route key (so route_ids already handed out stay
valid), the feedback log in its order, the posterior snapshot, idempotency answers, hourly
usage, recent decisions, and the catalog's runtime changes with their audit log. The copy
is one transaction on the target, which must be empty; the source is only read. Stop the
service first (or accept that feedback arriving during the copy stays in the source only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bandit_router.core.location import locate
from bandit_router.core.posterior import FIELDS
from bandit_router.core.settings import Config
from bandit_router.storage.migrations import JUDGE_USAGE_COLUMNS
from bandit_router.storage.rebuild import rebuild
from bandit_router.storage.store import ARM_COLUMNS, FEEDBACK_COLUMNS, USAGE_COLUMNS, connect
from bandit_router.storage.writer import StorageError

CHUNK = 5000
# Each table's columns, in an order that respects references (facts after their feedback).
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "feedback": FEEDBACK_COLUMNS,
    "feedback_facts": ("rowid", "route_id", "fact", "value", "feedback_id", "derived"),
    "arms": ARM_COLUMNS,
    "idempotency": ("tenant", "key", "request_hash", "response", "created_at"),
    "usage": USAGE_COLUMNS,
    "decisions": ("rowid", "route_id", "created_at", "policy", "bucket", "model",
                  "input_tokens", "expected_cost_usd", "expected_latency_ms", "tenant"),
    "audit": ("id", "at", "actor", "tenant", "action", "model", "change", "before", "after"),
}
_REAL_COLUMNS = {*FIELDS, "updated_at", "deviant_since", "deviant_last", "received_at", "called_at",
                 "spend_usd",
                 "tokened_spend_usd", "value", "created_at", "hour", "at", "input_tokens",
                 "output_tokens", "quality_sum", "expected_cost_usd", "expected_latency_ms",
                 *(c for c, kind in JUDGE_USAGE_COLUMNS.items() if kind == "REAL")}
# Each table's primary key: the order rows are read in, chunk by chunk.
_ORDER = {"meta": "key", "feedback": "id", "feedback_facts": "rowid",
          "arms": "tenant, policy, bucket, model", "idempotency": "tenant, key",
          "usage": "tenant, policy, bucket, model, hour", "decisions": "rowid",
          "audit": "id"}
# Columns whose values a sequence hands out on PostgreSQL: moved past the copied ones.
_SEQUENCES = (("feedback", "id"), ("feedback_facts", "rowid"), ("decisions", "rowid"),
              ("audit", "id"))


@dataclass(frozen=True, slots=True)
class Copied:
    rows: dict[str, int]
    rebuild_agrees: bool


def migrate(config: Config, source: str, target: str,
            progress: Callable[[str, int], None] = lambda table, rows: None) -> Copied:
    if locate(source) == locate(target):
        raise StorageError("the source and the target are the same store")
    src = connect(source)
    try:
        dst = connect(target)
        try:
            return _copy(config, src, dst, locate(target).kind, progress)
        finally:
            dst.conn.close()
    finally:
        src.conn.close()


def _copy(config: Config, src, dst, target_kind: str,
          progress: Callable[[str, int], None]) -> Copied:
    with dst.atomic():
        for table in TABLES:
            if dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
                raise StorageError(f"the target is not empty (its {table} table has rows); "
                                   "migrate into a new, empty store")
        counts = {table: _copy_table(src, dst, table, columns, target_kind, progress)
                  for table, columns in TABLES.items()}
        if target_kind == "postgresql":
            for table, column in _SEQUENCES:
                dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)")
        agrees = not rebuild(dst, config, write=False).differing
    return Copied(counts, agrees)


def _copy_table(src, dst, table: str, columns: tuple[str, ...], target_kind: str,
                progress: Callable[[str, int], None]) -> int:
    listed = ", ".join(columns)
    insert = (f"INSERT INTO {table} ({listed}) "
              f"VALUES ({', '.join('?' for _ in columns)})")
    reals = [i for i, c in enumerate(columns) if c in _REAL_COLUMNS]
    copied, offset = 0, 0
    while True:
        rows = src.execute(f"SELECT {listed} FROM {table} ORDER BY {_ORDER[table]} "
                           f"LIMIT {CHUNK} OFFSET {offset}").fetchall()
        if not rows:
            break
        if target_kind == "postgresql":  # SQLite may keep a whole number in a REAL column
            rows = [_floats(row, reals) for row in rows]
        dst.conn.executemany(insert, rows)
        copied += len(rows)
        offset += CHUNK
        progress(table, copied)
    return copied


def _floats(row: tuple, reals: list[int]) -> tuple:
    values = list(row)
    for i in reals:
        if isinstance(values[i], int):
            values[i] = float(values[i])
    return tuple(values)
