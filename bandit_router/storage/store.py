"""Storage: the event log, the posterior snapshot, and what the service loads at start, in
a SQLite file or a PostgreSQL database (the same SQL on both; see `postgres.py`).

All SQL runs on the writer thread (`writer.Writer`). Feedback is learned there too, with
the same `ArmBook` a rebuild uses, and its new evidence is written to the snapshot in the
same transaction as the event, so log and snapshot can never disagree.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog
from sqlite_utils import Database

from bandit_router.core import posterior
from bandit_router.core.accounting import account
from bandit_router.core.catalog_changes import Change, Entry, find, replay
from bandit_router.core.errors import IdempotencyConflict
from bandit_router.core.facts import Resolution
from bandit_router.core.learned import Split
from bandit_router.core.learner import ArmBook
from bandit_router.core.location import Location, locate
from bandit_router.core.posterior import FIELDS, STAMPS, Evidence
from bandit_router.core.route_id import new_key, new_nonce
from bandit_router.core.settings import Config, Model
from bandit_router.core.spend import NO_CHARGE, Charge, Prices, hour_of
from bandit_router.core.types import ArmKey, Decision, Facts, FeedbackEvent, RouteTicket
from bandit_router.storage import catalog_log, learned_store, migrations, timeline
from bandit_router.storage.stats import (
    TALLY_COLUMNS,
    Tally,
    UsageRow,
    read_usage,
    read_usage_by_model,
)
from bandit_router.storage.writer import StorageError, Writer, begin_immediate

log = structlog.get_logger("bandit_router.storage.store")
DECISION_BATCH = 256  # decisions written per job
DECISION_FLUSH_S = 0.2  # ... and at least this often
MAX_QUEUED_JOBS = 10_000  # beyond this backlog, new decisions are dropped (and counted)
ARM_COLUMNS = ("tenant", "policy", "bucket", "model", *FIELDS, *STAMPS)
_UPSERT_ARM = (
    f"INSERT INTO arms ({', '.join(ARM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ARM_COLUMNS)}) "
    f"ON CONFLICT (tenant, policy, bucket, model) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*FIELDS, *STAMPS)))


BUSY_TIMEOUT_S = 5.0  # how long a write waits for a lock another process holds
SPEND_MEMORY_S = 32 * 86400.0  # spend loaded at start: enough for the longest budget window
USAGE_COLUMNS = ("tenant", "policy", "bucket", "model", "hour", *TALLY_COLUMNS)
_ADD_USAGE = (
    f"INSERT INTO usage ({', '.join(USAGE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in USAGE_COLUMNS)}) "
    f"ON CONFLICT (tenant, policy, bucket, model, hour) DO UPDATE SET "
    + ", ".join(f"{c} = usage.{c} + excluded.{c}" for c in USAGE_COLUMNS[5:]))


def connect(url: str, synchronous: str = "full") -> Database:
    """Open (creating if needed) and migrate the store at `url` (a SQLite path or URL, or
    a PostgreSQL URL: see backend.py)."""
    location = locate(url)
    if location.kind == "postgresql":
        return _connect_postgres(location)
    path = location.target
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        db = Database(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S))
        _enable_wal(db)
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path!r}: {exc}{_hint(exc)}") from exc
    return db


def _enable_wal(db: Database) -> None:
    """Switch a new file to WAL. The switch needs the file to itself, and SQLite answers
    "database is locked" at once, without its busy timeout, while another process opens
    the same fresh file: so wait for it here, as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _connect_postgres(location: Location) -> Database:
    try:
        from bandit_router.storage import postgres
    except ImportError as exc:
        raise StorageError("a postgresql:// store needs the driver: "
                           "pip install 'bandit-router[postgres]'") from exc
    try:
        db = postgres.PgDatabase(location.target)
    except Exception as exc:  # asyncpg's and the socket's errors alike
        raise StorageError(f"cannot connect to {location.shown}: {exc}") from exc
    try:
        postgres.migrate(db)
    except Exception as exc:
        db.close()
        raise StorageError(f"cannot migrate {location.shown}: {exc}") from exc
    return db  # type: ignore[return-value]  (the same surface, see postgres.py)


def connect_for_writing(url: str, synchronous: str = "full") -> Database:
    """`connect`, then prove that the file takes writes: SQLite opens a read-only file
    read-only without complaint, and would otherwise fail only at the first feedback."""
    db = connect(url, synchronous)
    if locate(url).kind != "sqlite":
        return db
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM meta WHERE 0")  # a write statement that changes nothing
        conn.execute("ROLLBACK")
        conn.execute("PRAGMA busy_timeout = 0")  # the writer waits for locks itself
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StorageError(f"cannot write to database {url!r}: {exc}{_hint(exc)}") from exc
    return db


def prepare(config: Config) -> None:
    """Create or migrate the store and close it again (before replicas open it)."""
    connect_for_writing(config.storage.url, config.storage.synchronous).conn.close()


def _hint(exc: sqlite3.DatabaseError) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return (" (the file and its directory must be writable: SQLite keeps its write-ahead "
                "log and shared-memory files next to it)")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return " (the file is damaged or not a bandit-router database; restore it from a backup)"
    return ""


def arm_row(key: ArmKey, ev: Evidence) -> tuple:
    return (key.tenant, key.policy, key.bucket, key.model,
            *(getattr(ev, f) for f in (*FIELDS, *STAMPS)))


def read_arms(db: Database) -> dict[ArmKey, Evidence]:
    rows = db.execute(f"SELECT {', '.join(ARM_COLUMNS)} FROM arms").fetchall()
    names = (*FIELDS, *STAMPS)
    return {ArmKey(row[1], row[2], row[3], row[0]): Evidence(**dict(zip(names, row[4:],
                                                                         strict=True)))
            for row in rows}


def read_events(db: Database) -> Iterator[FeedbackEvent]:
    """The feedback log in commit order, one event per message."""
    for _, event, _ in read_log(db):
        yield event


def read_log(db: Database, after: int = 0) -> Iterator[tuple[int, FeedbackEvent, float]]:
    """(id, event, spend_usd) of each feedback message after id `after`, in commit order."""
    rows = db.execute(
        "SELECT f.id, f.route_id, f.received_at, f.tenant, f.policy, f.bucket, f.model, "
        "f.spend_usd, f.called_at, ff.fact, ff.value "
        "FROM feedback f JOIN feedback_facts ff ON ff.feedback_id = f.id "
        "WHERE f.id > ? ORDER BY f.id, ff.rowid", [after])
    current, facts = None, []
    for fid, route_id, at, tenant, policy, bucket, model, spend, called, fact, value in rows:
        if current is not None and current[0] != fid:
            yield _logged(current, facts)
            facts = []
        current = (fid, route_id, at, tenant, policy, bucket, model, spend, called)
        facts.append((fact, value))
    if current is not None:
        yield _logged(current, facts)


def _logged(row: tuple, facts: list) -> tuple[int, FeedbackEvent, float]:
    """A logged message; its ticket's created_at is when the call was made (the time its
    spend counts at), or the message's own time for rows older than that column."""
    fid, route_id, at, tenant, policy, bucket, model, spend, called = row
    ticket = RouteTicket(policy, bucket, model, called or at, 0, "", tenant)
    return fid, FeedbackEvent(route_id, ticket, tuple(facts), at), spend


def last_feedback_id(db: Database) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM feedback").fetchone()[0]


def write_arms(db: Database, states: Mapping[ArmKey, Evidence]) -> None:
    db.conn.executemany(_UPSERT_ARM, [arm_row(k, ev) for k, ev in states.items()])


def add_usage(db: Database, rows: list[tuple[str, str, str, str, float, Tally]]) -> None:
    """Add to the hourly usage of (tenant, policy, bucket, model, hour)."""
    db.conn.executemany(_ADD_USAGE, [(*key, *(getattr(t, c) for c in TALLY_COLUMNS))
                                     for *key, t in rows])


# A charge to count against the budgets (and the commitments covering its model) once
# committed: (tenant, policy, usd, at, model).
Spent = tuple[str, str, float, float, str]


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the service needs from the database before it starts serving."""

    route_key: bytes
    arms: dict[ArmKey, Evidence]
    recent: list[tuple[str, str, str, str]]  # (tenant, policy, bucket, model), oldest first
    spend: list[Spent]  # per hour, over the last SPEND_MEMORY_S, at the start of each hour
    last_feedback_id: int  # the log's end that `arms` reflects
    judge_spend: list[tuple[float, float]] = ()  # (usd, hour) of judge calls, same span


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    feedback_id: int
    resolution: Resolution
    replayed: bool = False  # the stored answer to an earlier send with the same idempotency key
    spend_usd: float = 0.0  # spend this message added (negative: corrected); 0 for a replay
    cached_input_tokens: float = 0.0  # input it reported read from a prompt cache
    cache_savings_usd: float = 0.0  # what that cache saved against full input price

    def to_json(self) -> bytes:
        r = self.resolution
        return orjson.dumps([self.feedback_id, [list(f) for f in r.applied], r.derived_quality])

    @classmethod
    def from_json(cls, data: str | bytes) -> FeedbackResult:
        feedback_id, applied, derived = orjson.loads(data)
        return cls(feedback_id, Resolution(tuple((f, v) for f, v in applied), derived),
                   replayed=True)


class _Load:
    refusable = False

    def __init__(self, recent_window: int, now: float) -> None:
        self.window = recent_window
        self.now = now

    def run(self, db: Database) -> Loaded:
        row = db.execute("SELECT value FROM meta WHERE key = 'route_key'").fetchone()
        key = row[0] if row else None
        if key is None:
            key = new_key()
            db.execute("INSERT INTO meta (key, value) VALUES ('route_key', ?)", [key])
        recent = db.execute(
            "SELECT tenant, policy, bucket, model FROM (SELECT tenant, policy, bucket, model, "
            "rowid AS r, ROW_NUMBER() OVER (PARTITION BY tenant, policy, bucket "
            "ORDER BY rowid DESC) AS rn "
            "FROM decisions) AS d WHERE rn <= ? ORDER BY r", [self.window]).fetchall()
        spend = db.execute(
            "SELECT tenant, policy, sum(spend_usd), hour, model FROM usage WHERE hour >= ? "
            "GROUP BY tenant, policy, hour, model HAVING sum(spend_usd) != 0 "
            "ORDER BY hour, model",
            [hour_of(self.now - SPEND_MEMORY_S)]).fetchall()
        judged = db.execute(
            "SELECT sum(judge_spend_usd), hour FROM usage WHERE hour >= ? GROUP BY hour "
            "HAVING sum(judge_spend_usd) != 0 ORDER BY hour",
            [hour_of(self.now - SPEND_MEMORY_S)]).fetchall()
        return Loaded(route_key=bytes(key), arms=_sound_arms(db), recent=recent, spend=spend,
                      last_feedback_id=last_feedback_id(db),
                      judge_spend=[tuple(row) for row in judged])


def _sound_arms(db: Database) -> dict[ArmKey, Evidence]:
    """The snapshot, with any damaged row (NaN, negative counts) repaired and written back:
    one bad row must not make every decision in its bucket fail."""
    arms = read_arms(db)
    broken = {k: posterior.repaired(ev) for k, ev in arms.items() if not posterior.sound(ev)}
    for key in broken:
        log.error("arm_repaired", tenant=key.tenant, policy=key.policy, bucket=key.bucket,
                  model=key.model, why="its snapshot held non-finite or negative statistics; "
                                       "`bandit-router rebuild` restores it from the log")
    if broken:
        write_arms(db, broken)
    return {**arms, **broken}


class _LogDecisions:
    refusable = False

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = decisions

    def run(self, db: Database) -> None:
        db.conn.executemany(
            "INSERT INTO decisions (route_id, created_at, policy, bucket, model, "
            "input_tokens, expected_cost_usd, expected_latency_ms, tenant) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(d.route_id, d.created_at, d.policy, d.bucket, d.model, d.input_tokens,
              d.expected_cost_usd, d.expected_latency_ms, d.tenant) for d in self.decisions])
        counts: dict[tuple, int] = {}
        for d in self.decisions:
            key = (d.tenant, d.policy, d.bucket, d.model, hour_of(d.created_at))
            counts[key] = counts.get(key, 0) + 1
        add_usage(db, [(*key, Tally(decisions=n)) for key, n in counts.items()])


class _AddUsage:
    """Hourly usage that is no feedback (a judge call's spend)."""

    refusable = False

    def __init__(self, rows: list[tuple[str, str, str, str, float, Tally]]) -> None:
        self.rows = rows

    def run(self, db: Database) -> None:
        add_usage(db, self.rows)


class _Prune:
    refusable = False

    def __init__(self, before: float) -> None:
        self.before = before

    def run(self, db: Database) -> int:
        db.execute("DELETE FROM idempotency WHERE created_at < ?", [self.before])
        return db.execute("DELETE FROM decisions WHERE created_at < ?", [self.before]).rowcount


class _ReadUsageByModel:
    refusable = False

    def __init__(self, since: float) -> None:
        self.since = since

    def run(self, db: Database) -> list[UsageRow]:
        return read_usage_by_model(db.conn, self.since)


class _ReadUsage:
    refusable = False

    def __init__(self, since: float, tenant: str | None, policy: str | None,
                 bucket: str | None) -> None:
        self.args = (since, tenant, policy, bucket)

    def run(self, db: Database) -> list[UsageRow]:
        return read_usage(db.conn, *self.args)


FEEDBACK_COLUMNS = ("id", "route_id", "received_at", "called_at", "policy", "bucket", "model",
                    "tenant",
                     "spend_usd", "tokened_spend_usd")
_INSERT_FEEDBACK = (f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in FEEDBACK_COLUMNS)})")
_INSERT_FACT = ("INSERT INTO feedback_facts (route_id, fact, value, feedback_id, derived) "
                "VALUES (?, ?, ?, ?, ?)")
# PostgreSQL hands out ids from a sequence; ours are given under the write lock, so the
# sequence is moved past them (for any other writer of the table, e.g. an older version).
_PAST_OUR_IDS = "SELECT setval(pg_get_serial_sequence('feedback', 'id'), ?)"


class _BatchWrites:
    """What a write transaction's feedback produced, written once just before it commits:
    one statement per table per transaction, not per feedback (on PostgreSQL every
    statement is a round trip). Feedback ids are given here, in the order the jobs learn,
    from the log's end (read under the write lock). Jobs of the same transaction see each
    other's facts and idempotency answers through `facts` and `answers`."""

    def __init__(self, postgres: bool = False) -> None:
        self.postgres = postgres
        self.next_id: int | None = None
        self.clear()

    def start(self, log_end: int) -> None:
        self.next_id = log_end + 1

    @property
    def log_end(self) -> int | None:
        """The last feedback id once this transaction commits (all that others committed
        is folded by then, and ids are given under the write lock)."""
        return None if self.next_id is None else self.next_id - 1

    def take_id(self) -> int:
        assert self.next_id is not None, "a feedback id outside a write transaction"
        self.next_id += 1
        return self.next_id - 1

    def log(self, feedback: tuple, facts: list[tuple]) -> None:
        self.feedback.append(feedback)
        self.fact_rows.extend(facts)
        route_id, spend, tokened = feedback[1], feedback[-2], feedback[-1]
        self.recorded[route_id] = self.recorded.get(route_id, NO_CHARGE) + Charge(spend, tokened)
        for route_id, fact, value, _, derived in facts:
            self.facts.setdefault(route_id, []).append((fact, value, derived))

    def answer(self, tenant: str, key: str, request_hash: str, response: str,
               at: float) -> None:
        self.answers[(tenant, key)] = (request_hash, response)
        self.answer_rows.append((tenant, key, request_hash, response, at))

    def arm(self, key: ArmKey, evidence: Evidence) -> None:
        self.arms[key] = evidence

    def add(self, key: tuple[str, str, str, str, float], tally: Tally) -> None:
        self.usage.setdefault(key, Tally()).add(tally)

    def write(self, db: Database) -> None:
        if self.feedback:
            db.conn.executemany(_INSERT_FEEDBACK, self.feedback)
            db.conn.executemany(_INSERT_FACT, self.fact_rows)
            if self.postgres:
                db.execute(_PAST_OUR_IDS, [self.feedback[-1][0]])
        if self.answer_rows:
            db.conn.executemany("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)",
                                self.answer_rows)
        if self.arms:
            write_arms(db, self.arms)
        if self.usage:
            add_usage(db, [(*key, tally) for key, tally in self.usage.items()])
        self.clear()

    def clear(self) -> None:
        self.arms: dict[ArmKey, Evidence] = {}
        self.usage: dict[tuple[str, str, str, str, float], Tally] = {}
        self.feedback: list[tuple] = []
        self.fact_rows: list[tuple] = []
        self.facts: dict[str, list[tuple[str, float, int]]] = {}
        self.recorded: dict[str, Charge] = {}  # spend logged per route in this transaction
        self.answers: dict[tuple[str, str], tuple[str, str]] = {}
        self.answer_rows: list[tuple] = []
        self.next_id = None


class _RecordFeedback:
    refusable = True
    # Conflicts (a fact told otherwise, an idempotency key reused) are found by reading,
    # before anything is written; within a batch, the rows of earlier jobs are visible.
    refuses_before_writing = True

    def __init__(self, book: ArmBook, clock: Callable[[], float], route_id: str,
                 ticket: RouteTicket, facts: Facts, idempotency_key: str | None,
                 call_of: Callable[[str, float], tuple[Model | None, Prices | None]],
                 stage_spend: Callable[[Spent], None], batch: _BatchWrites) -> None:
        self.book, self.clock, self.batch = book, clock, batch
        self.call_of, self.stage_spend = call_of, stage_spend
        self.route_id, self.ticket, self.facts = route_id, ticket, facts
        self.idempotency_key = idempotency_key
        self.request_hash = hashlib.sha256(orjson.dumps(
            [route_id, [list(f) for f in facts.items()]])).hexdigest()

    def _replay(self, db: Database) -> FeedbackResult | None:
        """The stored answer if this idempotency key was used before, for this same request."""
        row = self.batch.answers.get((self.ticket.tenant, self.idempotency_key)) or \
            db.execute("SELECT request_hash, response FROM idempotency "
                       "WHERE tenant = ? AND key = ?",
                       [self.ticket.tenant, self.idempotency_key]).fetchone()
        if row is None:
            return None
        if row[0] != self.request_hash:
            raise IdempotencyConflict("this idempotency_key was already used for a different "
                                      "feedback", "idempotency_key")
        return FeedbackResult.from_json(row[1])

    def run(self, db: Database) -> FeedbackResult:
        if self.idempotency_key is not None:
            replayed = self._replay(db)
            if replayed is not None:
                return replayed
        result = self._apply(db)
        if self.idempotency_key is not None:
            self.batch.answer(self.ticket.tenant, self.idempotency_key, self.request_hash,
                              result.to_json().decode(), self.clock())
        return result

    def _earlier(self, db: Database) -> tuple[list[tuple[str, float, int]], Charge]:
        """The facts already counted for this route, and the spend already recorded for it
        (committed rows and rows of earlier jobs in this transaction)."""
        rows = db.execute(
            "SELECT ff.fact, ff.value, ff.derived, f.id, f.spend_usd, f.tokened_spend_usd "
            "FROM feedback_facts ff JOIN feedback f ON f.id = ff.feedback_id "
            "WHERE ff.route_id = ?", [self.route_id]).fetchall()
        recorded = {fid: Charge(spend, tokened) for *_, fid, spend, tokened in rows}
        facts = [tuple(r[:3]) for r in rows] + self.batch.facts.get(self.route_id, [])
        return facts, sum(recorded.values(), self.batch.recorded.get(self.route_id, NO_CHARGE))

    def _apply(self, db: Database) -> FeedbackResult:
        rows, recorded = self._earlier(db)
        t = self.ticket
        model, prices = self.call_of(t.model, t.created_at)
        counted = account(self.facts, rows, recorded, model, prices)
        resolution, delta = counted.resolution, counted.delta
        event = FeedbackEvent(self.route_id, self.ticket, resolution.applied, self.clock())
        learned = self.book.learn_all(event)
        # last, once nothing can refuse it: logged at the transaction's end, in job order
        feedback_id = self.batch.take_id()
        self.batch.log(
            (feedback_id, self.route_id, event.at, t.created_at, t.policy, t.bucket, t.model,
             t.tenant, delta.spend_usd, delta.tokened_spend_usd),
            [(self.route_id, fact, value, feedback_id,
              int(resolution.derived_quality and fact == "quality"))
             for fact, value in resolution.applied])
        for key, evidence in learned:
            self.batch.arm(key, evidence)
        arm = (t.tenant, t.policy, t.bucket, t.model)
        self.batch.add((*arm, hour_of(event.at)),
                       Tally(routes_with_feedback=int(counted.first), **counted.sources))
        # spend and tokens count in the hour of the call, however late its facts arrive: a
        # correction of yesterday's call changes yesterday, never today's budget
        self.batch.add((*arm, hour_of(t.created_at)), Tally(
            spend_usd=delta.spend_usd, tokened_spend_usd=delta.tokened_spend_usd,
            input_tokens=delta.input_tokens, output_tokens=delta.output_tokens,
            cached_input_tokens=delta.cached_input_tokens,
            cache_savings_usd=delta.cache_savings_usd))
        for key, evidence in learned:
            self.book.stage(key, evidence)
        if delta.spend_usd:
            self.stage_spend((t.tenant, t.policy, delta.spend_usd, t.created_at, t.model))
        return FeedbackResult(feedback_id, resolution, spend_usd=delta.spend_usd,
                              cached_input_tokens=delta.cached_input_tokens,
                              cache_savings_usd=delta.cache_savings_usd)


class _Reset:
    refusable = False

    def __init__(self, book: ArmBook, clock: Callable[[], float], tenant: str,
                 policy: str | None, bucket: str | None, model: str | None,
                 batch: _BatchWrites, actor: str | None) -> None:
        self.book, self.clock, self.batch = book, clock, batch
        self.tenant, self.policy, self.bucket, self.model = tenant, policy, bucket, model
        self.actor = actor

    def _matches(self, key: ArmKey) -> bool:
        return key.tenant == self.tenant and all(
            want is None or want == have for want, have in
            ((self.policy, key.policy), (self.bucket, key.bucket), (self.model, key.model)))

    def run(self, db: Database) -> list[ArmKey]:
        keys = sorted((k for k in self.book.arms() if self._matches(k)),
                      key=lambda k: (k.policy, k.bucket, k.model))
        now = self.clock()
        for key in keys:
            route_id = f"reset:{new_nonce()}"
            ticket = RouteTicket(key.policy, key.bucket, key.model, now, 0, "", key.tenant)
            _, evidence = self.book.learn(FeedbackEvent(route_id, ticket, (("reset", 1.0),), now))
            # through the batch, like feedback: in log order, and a feedback earlier in the
            # same transaction must not write its older evidence over the reset at commit
            feedback_id = self.batch.take_id()
            self.batch.log((feedback_id, route_id, now, now, key.policy, key.bucket,
                            key.model, key.tenant, 0.0, 0.0),
                           [(route_id, "reset", 1.0, feedback_id, 0)])
            self.batch.arm(key, evidence)
            self.book.stage(key, evidence)
        if keys:  # in the tenant's audit trail: who forgot what, when
            arms = [{"policy": k.policy, "bucket": k.bucket, "model": k.model} for k in keys]
            change = {"policy": self.policy, "bucket": self.bucket, "model": self.model}
            catalog_log.insert_audit(db, (now, self.actor, self.tenant, catalog_log.RESET,
                                          self.model or "*", orjson.dumps(change).decode(),
                                          None, orjson.dumps({"reset": arms}).decode()))
        return keys


def _faults(location: Location) -> dict:
    """How the writer begins a write transaction, and tells a refused job from a lost
    connection, per backend."""
    if location.kind == "sqlite":
        return {"begin": lambda conn: begin_immediate(conn, BUSY_TIMEOUT_S)}
    from bandit_router.storage import postgres

    return {"integrity_errors": postgres.INTEGRITY_ERRORS,
            "needs_reopen": lambda exc: isinstance(exc, postgres.CONNECTION_ERRORS)}


class _Sync:
    """Nothing of its own: its batch's transaction folds in other replicas' feedback."""

    refusable = False

    def run(self, db: Database) -> None:
        return None


class Store:
    """The service's storage edge. Call `open` once, then use it from the event loop.

    Several replicas (processes, machines) may share one database. The feedback log is
    the truth and every replica folds all of it, in commit order, into its own ArmBook:
    each write transaction first folds what others committed since this replica last
    looked (under the write lock, so the order is the log's), and `sync` starts one such
    transaction when this replica has written nothing for a while. Every replica's arms
    therefore equal a rebuild from the log at the point it last looked.
    """

    def __init__(self, config: Config, path: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.location = locate(path or config.storage.url)
        self.path = self.location.shown  # for logs: never a password
        self._config = config
        self._clock = clock
        self._book = ArmBook(config.policies, weights=config.source_weights)
        self._publish: Callable[[dict[ArmKey, Evidence]], None] = lambda changes: None
        self._on_spend: Callable[[list[Spent]], None] = lambda spent: None
        self._spent: list[Spent] = []  # staged by the writer, published on commit
        # written by the writer just before each commit
        self._batch = _BatchWrites(postgres=self.location.kind == "postgresql")
        self._catalog = catalog_log.CatalogBook(replay(config.models, (), config.upstreams))
        self._on_catalog: catalog_log.Publish = lambda entries: None
        self._decisions: list[Decision] = []
        self.dropped_decisions = 0
        self.judge_spend_at_start: list[tuple[float, float]] = []  # (usd, hour), at open
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: int | None = None  # the log's end folded into the book (None: not loaded)
        self._seen_staged: int | None = None  # ... once the open transaction commits
        self._audit_seen: int | None = None  # the same for catalog changes (the audit log)
        self._audit_seen_staged: int | None = None
        url = path or config.storage.url
        self._writer = Writer(lambda: connect_for_writing(url, config.storage.synchronous),
                              config.storage.max_batch, on_commit=self._committed,
                              on_rollback=self._rolled_back,
                              on_reopen=self._resync, on_begin=self._fold_others,
                              before_commit=self._before_commit, **_faults(self.location))

    async def open(self, publish: Callable[[dict[ArmKey, Evidence]], None],
                   on_spend: Callable[[list[Spent]], None] = lambda spent: None,
                   on_catalog: catalog_log.Publish = lambda entries: None) -> Loaded:
        """Start the writer, load what was learned and the catalog's runtime changes;
        `publish` then receives every commit's new evidence on the event loop, before the
        feedback that caused it is answered, `on_spend` its priced spend and `on_catalog`
        the catalog a committed change made."""
        self._loop = asyncio.get_running_loop()
        await asyncio.wrap_future(self._writer.start())
        try:
            loaded = await asyncio.wrap_future(
                self._writer.submit(_Load(self._config.routing.recent_window, self._clock())))
        except StorageError as exc:
            await self.close()
            raise StorageError(f"cannot load database {self.path!r}: {exc}") from exc
        self._book = ArmBook(self._config.policies, loaded.arms, self._config.source_weights)
        self.judge_spend_at_start = loaded.judge_spend
        self._seen = loaded.last_feedback_id
        loading = catalog_log.LoadChanges()
        changes, end = await asyncio.wrap_future(self._writer.submit(loading))
        replayed = replay(self._config.models, changes, self._config.upstreams)
        for note in (*loading.skipped, *replayed.notes):
            log.warning("catalog_change", note=note)
        # nothing is queued yet (the app serves once open returns): install it from here
        self._catalog.install(replayed)
        self._audit_seen = end
        self._publish, self._on_spend = publish, on_spend
        self._on_catalog = on_catalog
        return loaded

    @property
    def catalog(self) -> tuple[Entry, ...]:
        """The committed catalog: config.toml with the runtime changes applied."""
        return self._catalog.entries

    def _call_of(self, model: str, at: float) -> tuple[Model | None, Prices | None]:
        """Writer thread: a model's limits now and its prices at `at`, when the call was
        made (a later price change never reprices it); None for a model the catalog lacks."""
        entry = find(self._catalog.current(), model)
        return (entry.model if entry else None), self._catalog.price_at(model, at)

    def _fold_others(self, db: Database) -> None:
        """Writer thread, first thing in a write transaction: fold in the feedback other
        replicas committed since we last looked. Staged like our own, so a rollback
        forgets it and the next transaction folds it again."""
        self._fold_catalog(db)
        if self._seen is None:
            return
        end = self._seen
        for feedback_id, event, spend in read_log(db, after=self._seen):
            for key, evidence in self._book.learn_all(event):
                self._book.stage(key, evidence)
            end = feedback_id
            if spend:
                t = event.ticket
                self._spent.append((t.tenant, t.policy, spend, t.created_at, t.model))
        self._batch.start(end)

    def _fold_catalog(self, db: Database) -> None:
        """Catalog changes another replica committed: replay the list again (it is short),
        so that a model disabled there is not chosen here either, from this replica's next
        transaction or sync on."""
        if self._audit_seen is None or catalog_log.last_id(db) == self._audit_seen:
            return
        changes, self._audit_seen_staged = catalog_log.LoadChanges().run(db)
        replayed = replay(self._config.models, changes, self._config.upstreams)
        if replayed.entries != self._catalog.current():
            self._catalog.stage(replayed)

    def _before_commit(self, db: Database) -> None:
        """Writer thread, last thing in a write transaction."""
        end = self._batch.log_end  # what this transaction leaves the log at
        self._batch.write(db)
        if self._seen is not None and end is not None:
            self._seen_staged = end
        if self._audit_seen is not None:  # our own changes, folded already
            self._audit_seen_staged = catalog_log.last_id(db)

    def _committed(self) -> None:
        if self._seen_staged is not None:
            self._seen, self._seen_staged = self._seen_staged, None
        if self._audit_seen_staged is not None:
            self._audit_seen, self._audit_seen_staged = self._audit_seen_staged, None
        catalog = self._catalog.commit()
        if catalog is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_catalog, catalog)
        changes = self._book.commit()
        spent, self._spent = self._spent, []
        if self._loop is None:
            return
        if changes:
            self._loop.call_soon_threadsafe(self._publish, changes)
        if spent:
            self._loop.call_soon_threadsafe(self._on_spend, spent)

    def _stage_spend(self, spent: Spent) -> None:
        self._spent.append(spent)  # writer thread; published by _committed

    def _rolled_back(self) -> None:
        self._batch.clear()
        self._book.discard()
        self._catalog.discard()
        self._spent = []
        self._seen_staged = None
        self._audit_seen_staged = None

    def _resync(self, db: Database) -> None:
        """On a new connection (after a storage fault), take the snapshot as the truth: a
        commit that reported an error may still have reached the disk."""
        with db.atomic():  # the snapshot and the log's end it reflects, read together
            arms, end = read_arms(db), last_feedback_id(db)
            # spend committed since we last looked (by other replicas, or by our own commit
            # that reported an error): the snapshot carries evidence, not budgets' spend
            missed = [] if self._seen is None else db.execute(
                "SELECT tenant, policy, spend_usd, CASE WHEN called_at > 0 THEN called_at "
                "ELSE received_at END FROM feedback "
                "WHERE id > ? AND spend_usd != 0 ORDER BY id", [self._seen]).fetchall()
        if self._seen is not None:
            self._seen = end
        self._spent.extend(tuple(row) for row in missed)
        changed = {k: ev for k, ev in arms.items() if self._book.get(k) != ev}
        if changed:
            log.warning("resynced_arms", arms=len(changed))
            for key, ev in changed.items():
                self._book.stage(key, ev)
        changes, audit_end = catalog_log.LoadChanges().run(db)
        if self._audit_seen is not None:
            self._audit_seen = audit_end
        replayed = replay(self._config.models, changes, self._config.upstreams)
        catalog = replayed.entries
        if catalog != self._catalog.entries:  # a catalog change did reach the disk
            log.warning("resynced_catalog")
            self._catalog.stage(replayed)
        if changed or catalog != self._catalog.entries or missed:
            self._committed()

    def log_decision(self, decision: Decision) -> None:
        """Keep a decision for the log; the route answer does not wait for it. Decisions
        are written in batches (`flush_decisions`, at least every DECISION_FLUSH_S), and
        dropped, with a count, if the writer falls far behind: they are statistics, while
        feedback, the router's facts, is never dropped."""
        self._decisions.append(decision)
        if len(self._decisions) >= DECISION_BATCH:
            self.flush_decisions()

    def sync(self) -> None:
        """Fold in other replicas' feedback (unless writes are queued: their transaction
        will). An idle transaction writes nothing, so it costs no disk sync."""
        if not self._writer.depth:
            self._writer.submit(_Sync())

    def flush_decisions(self) -> None:
        if not self._decisions:
            return
        batch, self._decisions = self._decisions, []
        if self._writer.depth > MAX_QUEUED_JOBS:
            self.dropped_decisions += len(batch)
            return
        self._writer.submit(_LogDecisions(batch))

    async def record_feedback(self, route_id: str, ticket: RouteTicket, facts: Facts,
                              idempotency_key: str | None = None) -> FeedbackResult:
        """Apply and commit one feedback message; returns once it is durable."""
        job = _RecordFeedback(self._book, self._clock, route_id, ticket, facts,
                              idempotency_key, self._call_of, self._stage_spend, self._batch)
        return await asyncio.wrap_future(self._writer.submit(job))

    async def reset(self, tenant: str, policy: str | None = None, bucket: str | None = None,
                    model: str | None = None, actor: str | None = None) -> list[ArmKey]:
        """Forget what the tenant's matching arms learned (logged, so a rebuild agrees, and
        audited under the tenant)."""
        job = _Reset(self._book, self._clock, tenant, policy, bucket, model, self._batch,
                     actor)
        return await asyncio.wrap_future(self._writer.submit(job))

    async def change_catalog(self, change: Change, actor: str | None,
                             aliases: Iterable[str]) -> catalog_log.Applied:
        """Check, apply and commit one catalog change with its audit row; the engine has
        the new catalog (`on_catalog`) before this returns."""
        job = catalog_log.ChangeCatalog(self._catalog, change, actor, self._clock(), aliases,
                                        self._config.upstreams)
        return await asyncio.wrap_future(self._writer.submit(job))

    async def audit(self, limit: int, model: str | None = None, before: int | None = None,
                    tenant: str | None = None) -> list[dict]:
        """Audit rows, newest first (read on the writer thread); `tenant` None: all."""
        return await asyncio.wrap_future(
            self._writer.submit(catalog_log.ReadAudit(limit, model, before, tenant)))

    async def usage(self, since: float, tenant: str | None = None, policy: str | None = None,
                    bucket: str | None = None) -> list[UsageRow]:
        """Hourly usage rows from `since` on (read on the writer thread, off the loop)."""
        return await asyncio.wrap_future(
            self._writer.submit(_ReadUsage(since, tenant, policy, bucket)))

    async def usage_by_model(self, since: float) -> list[UsageRow]:
        """Every tenant's usage from `since` on, summed per (hour, model), off the loop."""
        return await asyncio.wrap_future(self._writer.submit(_ReadUsageByModel(since)))

    async def decisions_per_minute(self, since: float, tenant: str | None = None,
                                   policy: str | None = None,
                                   bucket: str | None = None) -> list[timeline.Count]:
        """Decisions per minute from `since` on (for a short history's traffic chart)."""
        return await asyncio.wrap_future(
            self._writer.submit(timeline.ReadMinutes(
                since, tenant, policy, bucket, self.location.kind == "postgresql")))

    async def add_usage(self, ticket: RouteTicket, at: float, tally: Tally) -> None:
        """Add to the usage of the ticket's (tenant, policy, bucket, model) at `at`'s hour,
        committed before it returns (a judge call's spend, say)."""
        key = (ticket.tenant, ticket.policy, ticket.bucket, ticket.model, hour_of(at))
        await asyncio.wrap_future(self._writer.submit(_AddUsage([(*key, tally)])))

    async def load_splits(self) -> list[Split]:
        """Every stored learned-bucket split (read on the writer thread, off the loop)."""
        return await asyncio.wrap_future(self._writer.submit(learned_store.LoadSplits()))

    async def save_split(self, split: Split, actor: str | None = None,
                         action: str | None = None, child: str | None = None) -> bool:
        """Commit `split` if the stored one is the version it follows (else False: another
        replica got there first); an admin's change (`action`) with its audit row."""
        job = learned_store.SaveSplit(split, self._clock(), actor, action, child)
        return await asyncio.wrap_future(self._writer.submit(job))

    async def prune(self, before: float) -> int:
        return await asyncio.wrap_future(self._writer.submit(_Prune(before)))

    async def close(self) -> None:
        self.flush_decisions()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)

    @property
    def healthy(self) -> bool:
        return self._writer.alive

    @property
    def storage_error(self) -> str | None:
        """Why the last write failed, while the writer has not committed since."""
        return self._writer.last_error if self._writer.failing else None

    @property
    def queue_depth(self) -> int:
        return self._writer.depth

    @property
    def decisions_buffered(self) -> int:
        return len(self._decisions)
