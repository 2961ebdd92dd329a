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
def m008_quality_spread(db: Database) -> None:
    """The sum of squared quality (how much answers spread). Arms learned before start at
    the widest spread their mean allows (sum q^2 = sum q, exact for 0/1 scores), so they
    decide as before; `bandit-router rebuild` recomputes it from the feedback log."""
    db.execute("ALTER TABLE arms ADD COLUMN q_sq REAL NOT NULL DEFAULT 0")
    db.execute("UPDATE arms SET q_sq = q_pos")


def apply(db: Database) -> None:
    migrations.apply(db)


def pending(db: Database) -> list[str]:
    return [m.name for m in migrations.pending(db)]
