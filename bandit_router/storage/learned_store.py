"""Learned buckets in the database: one row per (tenant, policy, rule bucket), its current
split, written by version (a replica writes version v+1 only over version v, so two
replicas refining at once never overwrite each other: the later one reloads). An admin's
pin or reset is written the same way, with an audit row."""

from __future__ import annotations

import orjson
from sqlite_utils import Database

from bandit_router.core.learned import Split, from_json, to_json
from bandit_router.storage import catalog_log

PIN, UNPIN, RESET = "bucket.pin", "bucket.unpin", "bucket.reset"
ACTIONS = {"pin": PIN, "unpin": UNPIN, "reset": RESET}


class LoadSplits:
    refusable = False

    def run(self, db: Database) -> list[Split]:
        rows = db.execute("SELECT tenant, policy, bucket, version, body FROM learned_buckets "
                          "ORDER BY tenant, policy, bucket").fetchall()
        return [from_json(*row) for row in rows]


class SaveSplit:
    """Write `split` if the stored one is the version it refines; True if written.
    With an `action`, also the audit row (who changed which learned bucket)."""

    refusable = False

    def __init__(self, split: Split, at: float, actor: str | None = None,
                 action: str | None = None, child: str | None = None) -> None:
        self.split, self.at, self.actor, self.action, self.child = split, at, actor, action, child

    def run(self, db: Database) -> bool:
        s = self.split
        row = db.execute("SELECT version FROM learned_buckets WHERE tenant = ? AND policy = ? "
                         "AND bucket = ?", [s.tenant, s.policy, s.bucket]).fetchall()
        stored = row[0][0] if row else 0
        if stored != s.version - 1:
            return False
        db.execute("INSERT INTO learned_buckets (tenant, policy, bucket, version, body, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, policy, bucket) "
                   "DO UPDATE SET version = excluded.version, body = excluded.body, "
                   "updated_at = excluded.updated_at",
                   [s.tenant, s.policy, s.bucket, s.version, to_json(s), self.at])
        if self.action is not None:
            change = {"policy": s.policy, "bucket": self.child or s.bucket}
            after = {"version": s.version, "children": len(s.children)}
            catalog_log.insert_audit(db, (self.at, self.actor, s.tenant, self.action, "*",
                                          orjson.dumps(change).decode(), None,
                                          orjson.dumps(after).decode()))
        return True
