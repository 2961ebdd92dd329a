"""Catalog changes in the database: each one is an audit row (who, when, what, before and
after), written by the storage writer in the transaction that makes it take effect; the
rows of model actions, in id order, are the change list replayed at start."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlite_utils import Database

from bandit_router.core.catalog_changes import (
    Change,
    Entry,
    PriceHistory,
    Replayed,
    Upstreams,
    apply,
    check,
    entry_json,
    find,
    price_at,
    priced,
)
from bandit_router.core.spend import Prices

ACTIONS = {"add": "model.add", "update": "model.update"}
RESET = "arms.reset"
SHARED = "*"  # the audit row's tenant for a change to what every tenant shares
_OPS = {action: op for op, action in ACTIONS.items()}


class CatalogBook:
    """The committed catalog and each model's price history, plus what a transaction in
    progress has staged (writer thread only)."""

    def __init__(self, replayed: Replayed) -> None:
        self._staged: Replayed | None = None
        self.install(replayed)

    def install(self, replayed: Replayed) -> None:
        self.entries = replayed.entries
        self.history: PriceHistory = replayed.history

    def current(self) -> tuple[Entry, ...]:
        return self._staged.entries if self._staged is not None else self.entries

    def current_history(self) -> PriceHistory:
        return self._staged.history if self._staged is not None else self.history

    def stage(self, replayed: Replayed) -> None:
        self._staged = replayed

    def price_at(self, model: str, t: float) -> Prices | None:
        """A model's committed prices at time `t` (disabled models too: feedback on a
        decision made before the switch is still priced); None for a model never known."""
        return price_at(self.history, model, t)

    def commit(self) -> tuple[Entry, ...] | None:
        """The newly committed catalog, if a change was staged."""
        staged, self._staged = self._staged, None
        if staged is not None:
            self.install(staged)
            return staged.entries
        return None

    def discard(self) -> None:
        self._staged = None


@dataclass(frozen=True, slots=True)
class Applied:
    entry: Entry
    audit: dict[str, Any] | None  # None: the change changed nothing, so nothing was recorded


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def audit_json(row: tuple) -> dict[str, Any]:
    id_, at, actor, tenant, action, model, change, before, after = row
    return {"id": id_, "at": at, "actor": actor, "tenant": tenant, "action": action,
            "model": model, "change": orjson.loads(change),
            "before": None if before is None else orjson.loads(before),
            "after": orjson.loads(after)}


_COLUMNS = "id, at, actor, tenant, action, model, change, before, after"


class ChangeCatalog:
    """Check, apply and record one change; staged for the writer's commit."""

    refusable = True

    def __init__(self, book: CatalogBook, change: Change, actor: str | None, at: float,
                 aliases: Iterable[str], upstreams: Upstreams) -> None:
        self.book, self.change = book, change
        self.actor, self.at = actor, at
        self.aliases, self.upstreams = tuple(aliases), upstreams

    def run(self, db: Database) -> Applied:
        entries = self.book.current()  # sees a change staged earlier in the same batch
        check(entries, self.change, self.aliases)
        updated, _ = apply(entries, self.change, self.upstreams)
        before, after = find(entries, self.change.name), find(updated, self.change.name)
        if after is None:
            raise RuntimeError(f"catalog change to {self.change.name!r} lost its model")
        if before == after:  # a resend of a PATCH already applied: nothing to record
            return Applied(after, None)
        row = (self.at, self.actor, SHARED, ACTIONS[self.change.op], self.change.name,
               _dumps(dict(self.change.fields)),
               None if before is None else _dumps(entry_json(before)),
               _dumps(entry_json(after)))
        id_ = insert_audit(db, row)
        history = priced(self.book.current_history(), updated, self.change.name, self.at)
        self.book.stage(Replayed(updated, (), history))  # last: only once the row is written
        return Applied(after, audit_json((id_, *row)))


def insert_audit(db: Database, row: tuple) -> int:
    """Write one audit row (at, actor, tenant, action, model, change, before, after)."""
    return db.execute("INSERT INTO audit (at, actor, tenant, action, model, change, before, "
                      "after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                      list(row)).fetchone()[0]


def last_id(db: Database) -> int:
    """The audit log's end: replicas sharing a store compare it to see others' changes."""
    return db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]


class LoadChanges:
    """The catalog's change list, in order, and the audit log's end it reflects.

    Only changes to the shared catalog count: an operator's (tenant "*"), or one made while
    the service had no keys (no actor). A change a tenant's admin key made before catalog
    changes took an operator key steered every tenant's traffic; it is not replayed, and
    `skipped` names each (an operator may make it again)."""

    refusable = False

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def run(self, db: Database) -> tuple[list[Change], int]:
        rows = db.execute("SELECT action, model, change, at, tenant, actor FROM audit "
                          "WHERE action IN (?, ?) ORDER BY id", list(_OPS)).fetchall()
        changes = []
        for action, model, change, at, tenant, actor in rows:
            if tenant != SHARED and actor is not None:
                self.skipped.append(f"model {model!r}: the {action} by {actor!r} (a tenant's "
                                    f"admin key, tenant {tenant!r}) is not applied; catalog "
                                    "changes take an operator key now")
                continue
            changes.append(Change(_OPS[action], model, orjson.loads(change), at))  # type: ignore[arg-type]
        return changes, last_id(db)


class ReadAudit:
    refusable = False

    def __init__(self, limit: int, model: str | None, before: int | None,
                 tenant: str | None) -> None:
        self.limit, self.model, self.before = limit, model, before
        self.tenant = tenant  # None: every row (an operator); else that tenant's own rows

    def run(self, db: Database) -> list[dict[str, Any]]:
        where, args = [], []
        if self.tenant is not None:
            where.append("tenant = ?")
            args.append(self.tenant)
        if self.model is not None:
            where.append("model = ?")
            args.append(self.model)
        if self.before is not None:
            where.append("id < ?")
            args.append(self.before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = db.execute(f"SELECT {_COLUMNS} FROM audit {clause}ORDER BY id DESC LIMIT ?",
                          [*args, self.limit]).fetchall()
        return [audit_json(r) for r in rows]


Publish = Callable[[tuple[Entry, ...]], None]
