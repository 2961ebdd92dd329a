"""PostgreSQL as the store, through asyncpg, for fleets of replicas.

The store's jobs are written once, against the small part of sqlite-utils' `Database` (and
sqlite3's connection) that they use: `execute(sql, params)` returning rows, `executemany`,
transactions and savepoints. `PgDatabase` offers that same surface over an asyncpg pool,
driven from the writer thread by an event loop of its own, so the group-commit writer and
every job run unchanged on both backends.

Two things differ in meaning, not just spelling:

- A write transaction takes a transaction-level advisory lock first (SQLite's BEGIN
  IMMEDIATE takes the database's write lock). Writers are therefore serialized, so the
  feedback log's ids grow in commit order, and a replica that folds "everything after the
  id I last saw" never misses a row that committed late with a smaller id.
- `rowid` is an explicit BIGSERIAL column where the SQL orders by insertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg

from bandit_router.storage.migrations import JUDGE_USAGE_COLUMNS, PROMPT_CACHE_COLUMNS

WRITE_LOCK = 0x62616E6469  # pg_advisory_xact_lock key: one writer at a time, per database
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 30.0

# The errors after which a batch is answered with StorageError and the connection replaced.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)
INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,)

_PLACEHOLDER = re.compile(r"\?")


class TransactionRolledBack(RuntimeError):
    """A COMMIT that PostgreSQL turned into a rollback: nothing of it was saved."""


def _numbered(sql: str) -> str:
    """sqlite's `?` placeholders as PostgreSQL's `$1, $2, ...` (our SQL has no `?` in
    string literals)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class Result:
    """What a statement gave: its rows (a SELECT or RETURNING) or its row count."""

    def __init__(self, rows: list | None, rowcount: int) -> None:
        self._rows = rows or []
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return tuple(self._rows[0]) if self._rows else None

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._rows]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


class PgConnection:
    """sqlite3.Connection's surface, as the writer and the jobs use it."""

    def __init__(self, database: PgDatabase) -> None:
        self._db = database
        self._sql: dict[str, str] = {}

    def _translate(self, sql: str) -> str:
        cached = self._sql.get(sql)
        if cached is None:
            cached = self._sql[sql] = _numbered(sql)
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        verb = sql.lstrip()[:16].upper()
        if verb.startswith("BEGIN"):
            return self._begin()
        conn = self._db.connection
        text = self._translate(sql)
        if verb.startswith(("SELECT", "WITH")) or " RETURNING " in sql.upper():
            return Result(self._db.run(conn.fetch(text, *params)), 0)
        status = self._db.run(conn.execute(text, *params))
        if verb.startswith("COMMIT") and status == "ROLLBACK":
            # PostgreSQL answers COMMIT of a failed transaction by rolling it back, quietly
            raise TransactionRolledBack("the transaction had failed and was rolled back")
        count = status.rsplit(" ", 1)[-1]
        return Result(None, int(count) if count.isdigit() else 0)

    def _begin(self) -> Result:
        # Read committed, and the lock first: every later statement then sees all that the
        # previous holder committed. (Under repeatable read the snapshot would be taken
        # by the lock's own statement, before the wait, and miss it.)
        conn = self._db.connection
        self._db.run(conn.execute("BEGIN"))
        self._db.run(conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK))
        return Result(None, 0)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.run(self._db.connection.executemany(self._translate(sql), rows))

    @property
    def in_transaction(self) -> bool:
        return self._db.connection.is_in_transaction()

    def close(self) -> None:
        self._db.close()


class PgDatabase:
    """One store connection, held from a pool, used from one thread (the writer's, or a
    command's) through a private event loop."""

    def __init__(self, dsn: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._pool: asyncpg.Pool | None = None
        try:
            self._pool = self.run(self._open_pool(dsn))
            self.connection: asyncpg.Connection = self.run(self._pool.acquire())
        except BaseException:
            self.close()
            raise
        self.conn = PgConnection(self)

    @staticmethod
    async def _open_pool(dsn: str) -> asyncpg.Pool:
        # created inside the loop that will drive it (asyncpg binds a pool to its loop)
        return await asyncpg.create_pool(
            dsn, min_size=1, max_size=1, timeout=CONNECT_TIMEOUT_S,
            command_timeout=STATEMENT_TIMEOUT_S,
            server_settings={"application_name": "bandit-router"})

    def run(self, awaitable: Any) -> Any:
        return self._loop.run_until_complete(awaitable)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return self.conn.execute(sql, params)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction holding the write lock, so what it reads is consistent (commits on
        success, rolls back on error)."""
        try:
            self.conn.execute("BEGIN")
            yield
        except BaseException:
            if self.connection.is_in_transaction():
                self.run(self.connection.execute("ROLLBACK"))
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._pool is not None:
            with contextlib.suppress(Exception):
                connection = getattr(self, "connection", None)
                if connection is not None:  # a held connection would make close() wait
                    self.run(self._pool.release(connection, timeout=CONNECT_TIMEOUT_S))
                self.run(asyncio.wait_for(self._pool.close(), CONNECT_TIMEOUT_S))
            self._pool.terminate()
        self._loop.close()


# The schema, versioned: each migration runs once, in order, in its own transaction, under
# the write lock (so replicas starting together do not race). Each matches its SQLite
# counterpart in migrations.py, with PostgreSQL's types.
_REAL = "DOUBLE PRECISION NOT NULL"
_EVIDENCE = ("q_pos", "q_neg", "lat_n", "lat_sum", "lat_sumsq", "in_n", "in_sum", "out_n",
             "out_sum", "updated_at", "recent_pos", "recent_neg")
MIGRATIONS: dict[str, list[str]] = {
    "p001_initial": [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)",
        f"""CREATE TABLE decisions (
    rowid BIGSERIAL,
    route_id TEXT PRIMARY KEY,
    created_at {_REAL},
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    expected_cost_usd {_REAL},
    expected_latency_ms {_REAL},
    tenant TEXT NOT NULL DEFAULT 'default')""",
        "CREATE INDEX decisions_created_at ON decisions (created_at)",
        f"""CREATE TABLE feedback (
    id BIGSERIAL PRIMARY KEY,
    route_id TEXT NOT NULL,
    received_at {_REAL},
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT 'default',
    spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokened_spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0)""",
        "CREATE INDEX feedback_route_id ON feedback (route_id)",
        f"""CREATE TABLE feedback_facts (
    rowid BIGSERIAL,
    route_id TEXT NOT NULL,
    fact TEXT NOT NULL,
    value {_REAL},
    feedback_id BIGINT NOT NULL REFERENCES feedback (id),
    derived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route_id, fact))""",
        "CREATE INDEX feedback_facts_feedback_id ON feedback_facts (feedback_id)",
        f"""CREATE TABLE arms (
    tenant TEXT NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    {", ".join(f"{c} {_REAL}" for c in _EVIDENCE)},
    PRIMARY KEY (tenant, policy, bucket, model))""",
        f"""CREATE TABLE idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at {_REAL},
    PRIMARY KEY (tenant, key))""",
        "CREATE INDEX idempotency_created_at ON idempotency (created_at)",
        f"""CREATE TABLE usage (
    tenant TEXT NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    hour {_REAL},
    decisions BIGINT NOT NULL DEFAULT 0,
    routes_with_feedback BIGINT NOT NULL DEFAULT 0,
    spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokened_spend_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    input_tokens DOUBLE PRECISION NOT NULL DEFAULT 0,
    output_tokens DOUBLE PRECISION NOT NULL DEFAULT 0,
    quality_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    quality_n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, policy, bucket, model, hour))""",
        "CREATE INDEX usage_hour ON usage (hour)",
    ],
    # matches migrations.m006_catalog_changes: runtime catalog changes and their audit
    "p002_catalog_changes": [
        f"""CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at {_REAL},
    actor TEXT,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    change TEXT NOT NULL,
    before TEXT,
    after TEXT NOT NULL)""",
        "CREATE INDEX audit_model ON audit (model, id)",
    ],
    # matches migrations.m007_change_span: when an arm's recent quality began to stray
    "p003_change_span": [
        "ALTER TABLE arms ADD COLUMN deviant_since DOUBLE PRECISION NOT NULL DEFAULT 0",
        "ALTER TABLE arms ADD COLUMN deviant_last DOUBLE PRECISION NOT NULL DEFAULT 0",
    ],
    # matches migrations.m008_quality_sources
    "p004_quality_sources": [
        f"ALTER TABLE usage ADD COLUMN {column} "
        f"{'BIGINT' if kind == 'INTEGER' else 'DOUBLE PRECISION'} NOT NULL DEFAULT 0"
        for column, kind in JUDGE_USAGE_COLUMNS.items()],
    # matches migrations.m009_called_at
    "p005_called_at": [
        "ALTER TABLE feedback ADD COLUMN called_at DOUBLE PRECISION NOT NULL DEFAULT 0",
    ],
    # matches migrations.m010_quality_spread: the sum of squared quality
    "p006_quality_spread": [
        "ALTER TABLE arms ADD COLUMN q_sq DOUBLE PRECISION NOT NULL DEFAULT 0",
        "UPDATE arms SET q_sq = q_pos",
    ],
    "p007_learned_buckets": [
        "CREATE TABLE learned_buckets (tenant TEXT NOT NULL, policy TEXT NOT NULL, "
        "bucket TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, policy, bucket))",
    ],
    # matches migrations.m012_judge_scores: a noisy judge's scores, as reported
    "p008_judge_scores": [
        "ALTER TABLE arms ADD COLUMN jq_pos DOUBLE PRECISION NOT NULL DEFAULT 0",
        "ALTER TABLE arms ADD COLUMN jq_neg DOUBLE PRECISION NOT NULL DEFAULT 0",
    ],
    # matches migrations.m013_prompt_cache
    "p009_prompt_cache": [
        f"ALTER TABLE usage ADD COLUMN {column} DOUBLE PRECISION NOT NULL DEFAULT 0"
        for column in PROMPT_CACHE_COLUMNS],
}


def pending(db: PgDatabase) -> list[str]:
    applied = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
    return [name for name in MIGRATIONS if name not in applied]


def migrate(db: PgDatabase) -> None:
    with db.atomic():
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, "
                   "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for name in pending(db):
            for statement in MIGRATIONS[name]:
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (name) VALUES (?)", [name])
