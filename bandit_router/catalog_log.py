"""Catalog changes in the database: each one is an audit row (who, when, what, before and
after), written by the storage writer in the transaction that makes it take effect; the
rows of model actions, in id order, are the change list replayed at start."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlite_utils import Database

from bandit_router.catalog_changes import Change, Entry, apply, check, entry_json, find
from bandit_router.spend import Prices

ACTIONS = {"add": "model.add", "update": "model.update"}
_OPS = {action: op for op, action in ACTIONS.items()}


class CatalogBook:
    """The committed catalog, plus the one a transaction in progress has staged (writer
    thread only). Prices for spend accounting follow the committed catalog."""

    def __init__(self, entries: tuple[Entry, ...]) -> None:
        self._staged: tuple[Entry, ...] | None = None
        self.install(entries)

    def install(self, entries: tuple[Entry, ...]) -> None:
        self.entries = entries
        # disabled models too: feedback on a decision made before the switch is still priced
        self.prices = {e.name: Prices.of(e.model) for e in entries}

    def current(self) -> tuple[Entry, ...]:
        return self._staged if self._staged is not None else self.entries

    def stage(self, entries: tuple[Entry, ...]) -> None:
        self._staged = entries

    def commit(self) -> tuple[Entry, ...] | None:
        """The newly committed catalog, if a change was staged."""
        staged, self._staged = self._staged, None
        if staged is not None:
            self.install(staged)
        return staged

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

    def __init__(self, book: CatalogBook, change: Change, actor: str | None, tenant: str,
                 at: float, aliases: Iterable[str],
                 environ: Mapping[str, str] = os.environ) -> None:
        self.book, self.change = book, change
        self.actor, self.tenant, self.at = actor, tenant, at
        self.aliases, self.environ = tuple(aliases), environ

    def run(self, db: Database) -> Applied:
        entries = self.book.current()  # sees a change staged earlier in the same batch
        check(entries, self.change, self.aliases)
        updated, _ = apply(entries, self.change, self.environ)
        before, after = find(entries, self.change.name), find(updated, self.change.name)
        assert after is not None
        if before == after:  # a resend of a PATCH already applied: nothing to record
            return Applied(after, None)
        row = (self.at, self.actor, self.tenant, ACTIONS[self.change.op], self.change.name,
               _dumps(dict(self.change.fields)),
               None if before is None else _dumps(entry_json(before)),
               _dumps(entry_json(after)))
        id_ = db.execute("INSERT INTO audit (at, actor, tenant, action, model, change, before, "
                         "after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                         list(row)).fetchone()[0]
        self.book.stage(updated)  # last: only once the row is written
        return Applied(after, audit_json((id_, *row)))


def last_id(db: Database) -> int:
    """The audit log's end: replicas sharing a store compare it to see others' changes."""
    return db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]


class LoadChanges:
    """The catalog's change list, in order, and the audit log's end it reflects."""

    refusable = False

    def run(self, db: Database) -> tuple[list[Change], int]:
        rows = db.execute("SELECT action, model, change FROM audit WHERE action IN (?, ?) "
                          "ORDER BY id", list(_OPS)).fetchall()
        return [Change(_OPS[action], model, orjson.loads(change))  # type: ignore[arg-type]
                for action, model, change in rows], last_id(db)


class ReadAudit:
    refusable = False

    def __init__(self, limit: int, model: str | None, before: int | None) -> None:
        self.limit, self.model, self.before = limit, model, before

    def run(self, db: Database) -> list[dict[str, Any]]:
        where, args = [], []
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
