"""The SQLite schema, versioned with sqlite-utils migrations (applied in order, once each)."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("bandit_router")


@migrations()
def m001_initial(db: Database) -> None:
    evidence = ",\n".join(f"    {name} REAL NOT NULL" for name in (
        "q_pos", "q_neg", "lat_n", "lat_sum", "lat_sumsq", "in_n", "in_sum", "out_n", "out_sum"))
    script = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
-- Decisions, for traffic statistics; feedback does not need them (route_ids are signed).
CREATE TABLE decisions (
    route_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    expected_cost_usd REAL NOT NULL,
    expected_latency_ms REAL NOT NULL
);
CREATE INDEX decisions_created_at ON decisions (created_at);
-- The event log: one row per feedback message, one per fact it applied.
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    route_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE INDEX feedback_route_id ON feedback (route_id);
CREATE TABLE feedback_facts (
    route_id TEXT NOT NULL,
    fact TEXT NOT NULL,
    value REAL NOT NULL,
    feedback_id INTEGER NOT NULL REFERENCES feedback (id),
    derived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route_id, fact)
);
CREATE INDEX feedback_facts_feedback_id ON feedback_facts (feedback_id);
-- The snapshot of posteriors: what the log says, kept current in the same transactions.
CREATE TABLE arms (
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
{evidence},
    updated_at REAL NOT NULL,
    PRIMARY KEY (policy, bucket, model)
);
"""
    # One statement at a time: executescript() would commit the migration's transaction.
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m002_recent_quality(db: Database) -> None:
    """Recent-quality statistics for change detection."""
    for column in ("recent_pos", "recent_neg"):
        db.execute(f"ALTER TABLE arms ADD COLUMN {column} REAL NOT NULL DEFAULT 0")


_ARMS_V2 = ("q_pos", "q_neg", "lat_n", "lat_sum", "lat_sumsq", "in_n", "in_sum", "out_n",
            "out_sum", "updated_at", "recent_pos", "recent_neg")


@migrations()
def m003_tenants(db: Database) -> None:
    """Every decision, feedback and arm belongs to a tenant ('default' until keys say else)."""
    for table in ("decisions", "feedback"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'")
    columns = ", ".join(_ARMS_V2)
    db.execute(f"""CREATE TABLE arms_v3 (
    tenant TEXT NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    {", ".join(f"{c} REAL NOT NULL" for c in _ARMS_V2)},
    PRIMARY KEY (tenant, policy, bucket, model)
)""")
    db.execute(f"INSERT INTO arms_v3 (tenant, policy, bucket, model, {columns}) "
               f"SELECT 'default', policy, bucket, model, {columns} FROM arms")
    db.execute("DROP TABLE arms")
    db.execute("ALTER TABLE arms_v3 RENAME TO arms")


@migrations()
def m004_idempotency(db: Database) -> None:
    """Answers to feedback sent with an idempotency key, so a retry gets the same answer."""
    db.execute("""CREATE TABLE idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
)""")
    db.execute("CREATE INDEX idempotency_created_at ON idempotency (created_at)")


@migrations()
def m005_usage(db: Database) -> None:
    """Spend and traffic per UTC hour (for /v1/stats, reports and budgets), and each
    feedback message's priced charge in the log."""
    for column in ("spend_usd", "tokened_spend_usd"):
        db.execute(f"ALTER TABLE feedback ADD COLUMN {column} REAL NOT NULL DEFAULT 0")
    db.execute("""CREATE TABLE usage (
    tenant TEXT NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    model TEXT NOT NULL,
    hour REAL NOT NULL,
    decisions INTEGER NOT NULL DEFAULT 0,
    routes_with_feedback INTEGER NOT NULL DEFAULT 0,
    spend_usd REAL NOT NULL DEFAULT 0,
    tokened_spend_usd REAL NOT NULL DEFAULT 0,
    input_tokens REAL NOT NULL DEFAULT 0,
    output_tokens REAL NOT NULL DEFAULT 0,
    quality_sum REAL NOT NULL DEFAULT 0,
    quality_n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, policy, bucket, model, hour)
)""")
    db.execute("CREATE INDEX usage_hour ON usage (hour)")


@migrations()
def m006_catalog_changes(db: Database) -> None:
    """The audit log of admin changes. Model changes (add, update) are replayed from it at
    start, over config.toml's catalog, so it is also the catalog's change list."""
    db.execute("""CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    change TEXT NOT NULL,
    before TEXT,
    after TEXT NOT NULL
)""")
    db.execute("CREATE INDEX audit_model ON audit (model, id)")


@migrations()
def m007_change_span(db: Database) -> None:
    """When an arm's recent quality began to stray from its long run (change detection
    needs the change to last, not only to be loud)."""
    for column in ("deviant_since", "deviant_last"):
        db.execute(f"ALTER TABLE arms ADD COLUMN {column} REAL NOT NULL DEFAULT 0")


JUDGE_USAGE_COLUMNS = {  # column: SQL type (SQLite; PostgreSQL's in postgres.py)
    "judge_calls": "INTEGER", "judge_failed": "INTEGER", "judge_spend_usd": "REAL",
    "judge_n": "INTEGER", "judge_sum": "REAL", "implicit_n": "INTEGER", "pair_n": "INTEGER",
    "pair_absdiff": "REAL", "pair_client": "REAL", "pair_judge": "REAL", "pair_cc": "REAL",
    "pair_jj": "REAL", "pair_cj": "REAL"}


@migrations()
def m008_quality_sources(db: Database) -> None:
    """Per hour: the judge's calls, spend and scores, implicit facts, and the sums that
    measure how a judge agrees with clients on the routes both scored."""
    for column, kind in JUDGE_USAGE_COLUMNS.items():
        db.execute(f"ALTER TABLE usage ADD COLUMN {column} {kind} NOT NULL DEFAULT 0")


@migrations()
def m009_called_at(db: Database) -> None:
    """When each logged feedback's call was made: its spend counts at that time (0: older
    rows, whose spend counted when they were received)."""
    db.execute("ALTER TABLE feedback ADD COLUMN called_at REAL NOT NULL DEFAULT 0")


@migrations()
def m010_quality_spread(db: Database) -> None:
    """The sum of squared quality (how much answers spread). Arms learned before start at
    the widest spread their mean allows (sum q^2 = sum q, exact for 0/1 scores), so they
    decide as before; `bandit-router rebuild` recomputes it from the feedback log."""
    db.execute("ALTER TABLE arms ADD COLUMN q_sq REAL NOT NULL DEFAULT 0")
    db.execute("UPDATE arms SET q_sq = q_pos")


@migrations()
def m011_learned_buckets(db: Database) -> None:
    """Learned buckets: each rule bucket's current split (children, centroids, labels) per
    tenant and policy, written by version (see learned_store.py)."""
    db.execute("""CREATE TABLE learned_buckets (
    tenant TEXT NOT NULL,
    policy TEXT NOT NULL,
    bucket TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, policy, bucket)
)""")


@migrations()
def m012_judge_scores(db: Database) -> None:
    """A noisy judge's scores, kept apart from the clients' quality and read with the
    judge's accuracy at read time. Arms learned before keep what the judge taught folded
    into their quality; `bandit-router rebuild` separates it from the feedback log."""
    db.execute("ALTER TABLE arms ADD COLUMN jq_pos REAL NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE arms ADD COLUMN jq_neg REAL NOT NULL DEFAULT 0")


PROMPT_CACHE_COLUMNS = ("cached_input_tokens", "cache_savings_usd")


@migrations()
def m013_prompt_cache(db: Database) -> None:
    """Per hour: input tokens read from a provider's prompt cache, and what that saved."""
    for column in PROMPT_CACHE_COLUMNS:
        db.execute(f"ALTER TABLE usage ADD COLUMN {column} REAL NOT NULL DEFAULT 0")


def apply(db: Database) -> None:
    """Apply what is pending under the database's write lock, deciding what is pending only
    once the lock is held: two processes starting on a fresh file would otherwise both see
    every migration pending and the second would fail ("duplicate column name"). The second
    waits for the first (the connection's busy timeout), then finds nothing to do.
    Nothing pending (every start but the first): no lock, so a read-only file still opens."""
    if not migrations.pending(db):
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        migrations.apply(db)  # each migration in a savepoint of this transaction
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.execute("COMMIT")


def pending(db: Database) -> list[str]:
    return [m.name for m in migrations.pending(db)]
