"""The outbox tables (``notices``, ``notice_deliveries``): every query the notices make.

Plain functions of a connection, run on the database executor (``Database.run``). A delivery
row is one message to send: step 0 posts the notice in one channel of one platform, later
steps update that message or reply in its thread. Rows of one (platform, channel) are sent in
id order; a row is ``pending`` until it is ``sent`` or ``failed``.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Dialect, Executable, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot import db
from bot.messaging.claims import claim_in, release_in
from bot.messaging.port import MessageRef

PENDING, SENT, FAILED = "pending", "sent", "failed"
POST, UPDATE, THREAD = "post", "update", "thread"

D = db.notice_deliveries
ROOT = D.alias("root")  # step 0 of the same notice in the same channel


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    notice_key: str
    step: int
    kind: str
    platform: str
    channel_id: str
    reply: str
    attempts: int
    next_at: datetime
    created_at: datetime
    status: str = PENDING
    message_id: str | None = None
    last_error: str | None = None

    @property
    def tag(self) -> str:
        """Stored on the message (``NOTICE_TAG``) so a restart can find it: key#step."""
        return f"{self.notice_key}#{self.step}"

    @property
    def channel(self) -> tuple[str, str]:
        return (self.platform, self.channel_id)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A delivery this process claimed, with what sending it needs."""

    row: Delivery
    attempt: int  # attempts made before this one: > 0 means "look before you post"
    mention: list[str]
    root_id: str | None  # step 0's message in this channel (updates and thread replies)
    root_status: str | None


def _row(r: object) -> Delivery:
    return Delivery(r.id, r.notice_key, r.step, r.kind, r.platform, r.channel_id,  # type: ignore[attr-defined]
                    r.reply, r.attempts, db.as_utc(r.next_at), db.as_utc(r.created_at),  # type: ignore[attr-defined]
                    r.status, r.message_id, r.last_error)  # type: ignore[attr-defined]


class _Prepared:
    """A hot statement, compiled once per dialect and run on the DB-API cursor of the
    transaction's connection, with the columns' bind and result processors applied here.
    SQLAlchemy's per-execution work (parameters, execution context, result object) costs
    several times what SQLite spends on such a statement; posting and delivering run on the
    one database thread, so that overhead was most of a delivered message's cost."""

    def __init__(self, statement: Executable | dict[str, Executable],
                 columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = columns  # an INSERT's parameters: these columns
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def _for(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        compiled = self._compiled.get((dialect.name, dialect.driver))
        if compiled is None:
            statement = (self.statement[_dialect(conn)] if isinstance(self.statement, dict)
                         else self.statement)
            compiled = self._compiled[dialect.name, dialect.driver] = _Compiled(
                statement, dialect, self.columns)
        return compiled

    def one(self, conn: Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Execute once; the first row it returns (RETURNING), unprocessed, or None."""
        compiled = self._for(conn)
        cursor = self._cursor(conn)
        try:
            cursor.execute(compiled.sql, compiled.args(params))
            return cursor.fetchone()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        compiled = self._for(conn)
        cursor = self._cursor(conn)
        try:
            cursor.executemany(compiled.sql, [compiled.args(r) for r in rows])
        finally:
            cursor.close()

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """A SELECT's rows as tuples, the columns' result processors applied."""
        compiled = self._for(conn)
        cursor = self._cursor(conn)
        try:
            cursor.execute(compiled.sql, compiled.args(params))
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        processors = compiled.results
        return [tuple(value if process is None or value is None else process(value)
                      for value, process in zip(row, processors, strict=True))
                for row in fetched]

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        # The transaction's own DB-API connection: what runs here commits or rolls back
        # with everything else the transaction did.
        return conn.connection.cursor()


class _Compiled:
    """A statement's SQL for one dialect, its parameters in order and their processors."""

    def __init__(self, statement: Executable, dialect: Dialect,
                 columns: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        self.sql = str(compiled)
        assert "POSTCOMPILE" not in self.sql, "a _Prepared statement cannot expand parameters"
        self.positional = bool(compiled.positional)
        self.names = (tuple(compiled.positiontup or ()) if self.positional
                      else tuple(sorted(set(compiled.bind_names.values()))))
        binds = {name: compiled.binds[name] for name in self.names}
        # A literal in the statement (status == 'pending') is a parameter with its value.
        self.defaults = {name: bind.effective_value for name, bind in binds.items()}
        self.processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                           for name, bind in binds.items()}
        selected = getattr(statement, "selected_columns", ())
        self.results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in selected]

    def args(self, params: dict[str, Any]) -> Any:
        values = {}
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            process = self.processors[name]
            values[name] = value if process is None or value is None else process(value)
        return [values[name] for name in self.names] if self.positional else values


def _new_notice(dialect: Any) -> Executable:
    insert = dialect.insert(db.notices)
    return insert.on_conflict_do_nothing(index_elements=["key"]).returning(db.notices.c.key)


_NOTICE_COLUMNS = ("key", "created_at", "targets", "mention", "owner")
_NEW_NOTICE = _Prepared({"postgresql": _new_notice(postgresql), "sqlite": _new_notice(sqlite)},
                        _NOTICE_COLUMNS)
_ROW_COLUMNS = ("notice_key", "step", "kind", "platform", "channel_id", "reply", "status",
                "attempts", "next_at", "created_at")
_NEW_ROWS = _Prepared(D.insert(), _ROW_COLUMNS)


def insert_notice(conn: Connection, key: str, targets: list[str], mention: list[str],
                  owner: str | None, reply: str,
                  channels: Sequence[tuple[str, str]]) -> list[MessageRef] | None:
    """Store a new notice and its step-0 rows; None when it is new, else (the key exists:
    a notice posts once, ever) the references of the first one's messages sent so far."""
    now = db.utcnow()
    created = _NEW_NOTICE.one(conn, {
        "key": key, "created_at": now, "targets": json.dumps(targets),
        "mention": json.dumps(mention), "owner": owner})
    if created is None:
        return refs(conn, key)
    if channels:
        _NEW_ROWS.run_many(conn, [
            {"notice_key": key, "step": 0, "kind": POST, "platform": platform,
             "channel_id": channel, "reply": reply, "status": PENDING, "attempts": 0,
             "next_at": now, "created_at": now} for platform, channel in channels])
    return None


def _dialect(conn: Connection) -> str:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


def refs(conn: Connection, key: str) -> list[MessageRef]:
    rows = conn.execute(select(D.c.platform, D.c.channel_id, D.c.message_id)
                        .where(D.c.notice_key == key, D.c.step == 0, D.c.status == SENT)
                        .order_by(D.c.id))
    return [MessageRef(r.platform, r.channel_id, r.message_id) for r in rows]


def step_zero_done(conn: Connection, key: str) -> bool | None:
    """None: no such notice; else whether none of its posts is still pending."""
    if conn.execute(select(db.notices.c.key).where(db.notices.c.key == key)).first() is None:
        return None
    left = conn.execute(select(func.count()).select_from(D).where(
        D.c.notice_key == key, D.c.step == 0, D.c.status == PENDING)).scalar()
    return not left


def add_step(conn: Connection, key: str, kind: str, reply: str) -> list[tuple[str, str]]:
    """Queue an update or thread reply in every channel the notice was posted to; returns
    those (platform, channel)s. KeyError for an unknown notice."""
    if conn.execute(select(db.notices.c.key).where(db.notices.c.key == key)).first() is None:
        raise KeyError(key)
    step = (conn.execute(select(func.max(D.c.step)).where(D.c.notice_key == key)).scalar()
            or 0) + 1
    now = db.utcnow()
    channels = conn.execute(select(D.c.platform, D.c.channel_id).where(
        D.c.notice_key == key, D.c.step == 0).order_by(D.c.id)).all()
    if channels:
        conn.execute(D.insert(), [
            {"notice_key": key, "step": step, "kind": kind, "platform": platform,
             "channel_id": channel, "reply": reply, "status": PENDING, "attempts": 0,
             "next_at": now, "created_at": now} for platform, channel in channels])
    return [(platform, channel) for platform, channel in channels]


def heads(conn: Connection, platforms: Sequence[str]) -> list[Delivery]:
    """The oldest pending row of every channel on ``platforms`` (due or not)."""
    if not platforms:
        return []
    first = (select(func.min(D.c.id)).where(D.c.status == PENDING, D.c.platform.in_(platforms))
             .group_by(D.c.platform, D.c.channel_id))
    return [_row(r) for r in conn.execute(select(D).where(D.c.id.in_(first)).order_by(D.c.id))]


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one transaction claimed in a channel: its due rows, in order, and until when this
    process holds the channel's lease (None: it gave the lease back; nothing was due)."""

    attempts: list[Attempt]
    until: datetime | None


def lease_key(platform: str, channel_id: str) -> str:
    return f"notices:{platform}:{channel_id}"


def begin(conn: Connection, platform: str, channel_id: str, owner: str, lease: timedelta,
          limit: int) -> Claimed | None:
    """Take the channel's lease (``notices:<platform>:<channel>``, or renew ours), then claim
    its next due rows in order (up to ``limit``) and count each attempt before anything is
    sent: a crash from here on leaves ``attempts > 0``, so the next try looks for the message
    first. Only the lease's holder sends a channel's rows, so two processes never send one row.
    None when another process holds the lease; the lease is given back when nothing is due."""
    now = db.utcnow()
    # The lease first: on SQLite this statement opens the write transaction, so the rows read
    # next are the latest and stay so until the commit.
    if not claim_in(conn, lease_key(platform, channel_id), owner, lease, renew=True):
        return None
    return _claim_rows(conn, platform, channel_id, owner, now, now + lease, limit, 0, True)


def finish(conn: Connection, results: Sequence[Result], platform: str, channel_id: str,
           owner: str, lease: timedelta, until: datetime, limit: int, after_id: int,
           release_if_none: bool) -> Claimed | None:
    """Record ``results`` and, in the same transaction, claim the channel's next due rows
    after ``after_id`` (those up to it are claimed already) under the lease we hold, renewed
    once half of it is gone. With ``release_if_none`` the lease is given back when nothing
    is due. None when the lease was lost (it ran out: another process may send)."""
    record(conn, results)
    now = db.utcnow()
    if until - now < lease / 2:
        if not claim_in(conn, lease_key(platform, channel_id), owner, lease, renew=True):
            return None
        until = now + lease
    return _claim_rows(conn, platform, channel_id, owner, now, until, limit, after_id,
                       release_if_none)


def release(conn: Connection, results: Sequence[Result], platform: str, channel_id: str,
            owner: str) -> None:
    """Record ``results`` and give the channel's lease back (its head waits for a retry)."""
    record(conn, results)
    release_in(conn, lease_key(platform, channel_id), owner)


# The channel's pending rows in order, each with its notice's mentions and (for updates and
# thread replies) its post's message in this channel: one query for the whole batch.
_DUE = _Prepared(select(D, db.notices.c.mention, ROOT.c.message_id.label("root_id"),
               ROOT.c.status.label("root_status"))
        .join(db.notices, db.notices.c.key == D.c.notice_key)
        .outerjoin(ROOT, and_(D.c.step > 0, ROOT.c.notice_key == D.c.notice_key,
                              ROOT.c.step == 0, ROOT.c.platform == D.c.platform,
                              ROOT.c.channel_id == D.c.channel_id))
        .where(D.c.status == PENDING, D.c.platform == bindparam("platform"),
               D.c.channel_id == bindparam("channel_id"), D.c.id > bindparam("after_id"))
        .order_by(D.c.id).limit(bindparam("limit")))
_DUE_COLUMNS = len(D.columns)  # then: mention, root_id, root_status
_Columns = namedtuple("_Columns", [c.name for c in D.columns])  # type: ignore[misc]
_COUNT_ATTEMPTS = _Prepared(update(D).where(D.c.id == bindparam("row_id"))
                            .values(attempts=D.c.attempts + 1, next_at=bindparam("until")))


def _claim_rows(conn: Connection, platform: str, channel_id: str, owner: str, now: datetime,
                until: datetime, limit: int, after_id: int, release_if_none: bool) -> Claimed:
    attempts: list[Attempt] = []
    mention_of: dict[str, list[str]] = {}
    due = _DUE.rows(conn, {"platform": platform, "channel_id": channel_id, "limit": limit,
                           "after_id": after_id})
    for raw in due:
        row = _row(_Columns(*raw[:_DUE_COLUMNS]))
        if row.next_at > now:
            break  # order: nothing after a row that must wait
        mention, root_id, root_status = raw[_DUE_COLUMNS:]
        if row.notice_key not in mention_of:
            mention_of[row.notice_key] = json.loads(mention or "[]")
        attempts.append(Attempt(row, row.attempts, mention_of[row.notice_key], root_id,
                                root_status))
    if attempts:
        # next_at: not due for anyone while we send (the lease says so too).
        _COUNT_ATTEMPTS.run_many(conn, [{"row_id": a.row.id, "until": until}
                                        for a in attempts])
    elif release_if_none:
        release_in(conn, lease_key(platform, channel_id), owner)
        return Claimed([], None)
    return Claimed(attempts, until)


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one attempt: ``sent`` (message_id), ``failed`` (error), ``retry``
    (error, next_at) or ``untried`` (claimed but not sent: behind a row that must wait, or
    the lease too short for another send; due again at next_at, its count given back)."""

    row: Delivery
    status: str
    message_id: str | None = None
    error: str | None = None
    next_at: datetime | None = None


UNTRIED = "untried"
_RECORD = _Prepared(update(D).where(D.c.id == bindparam("row_id")).values(
    status=bindparam("new_status"), message_id=bindparam("new_message_id"),
    sent_at=bindparam("new_sent_at"), last_error=bindparam("new_error"),
    next_at=bindparam("new_next_at"), attempts=bindparam("new_attempts")))


def record(conn: Connection, results: Sequence[Result]) -> None:
    """Store what became of each attempt: one executemany for the whole batch."""
    if not results:
        return
    now = db.utcnow()
    _RECORD.run_many(conn, [_recorded(r, now) for r in results])


def _recorded(r: Result, now: datetime) -> dict[str, object]:
    row = r.row
    values: dict[str, object] = {
        "row_id": row.id, "new_status": row.status, "new_message_id": row.message_id,
        "new_sent_at": None, "new_error": row.last_error, "new_next_at": r.next_at or now,
        "new_attempts": row.attempts + (r.status != UNTRIED)}
    if r.status == SENT:
        values.update(new_status=SENT, new_message_id=r.message_id, new_sent_at=now,
                      new_error=None)
    elif r.status == FAILED:
        values.update(new_status=FAILED, new_error=(r.error or "")[:1000])
    elif r.error:
        values["new_error"] = r.error[:1000]
    return values


def unfinished(conn: Connection, limit: int) -> list[Delivery]:
    """Pending and failed rows, oldest first (``notices pending``)."""
    rows = conn.execute(select(D).where(D.c.status.in_((PENDING, FAILED)))
                        .order_by(D.c.status.desc(), D.c.id).limit(limit))
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # pending rows
    oldest: datetime | None  # creation time of the oldest pending row
    failed: int


def stats(conn: Connection) -> OutboxStats:
    pending = conn.execute(select(func.count(), func.min(D.c.created_at))
                           .where(D.c.status == PENDING)).first()
    failed = conn.execute(select(func.count()).select_from(D)
                          .where(and_(D.c.status == FAILED))).scalar()
    depth, oldest = (pending[0], pending[1]) if pending is not None else (0, None)
    return OutboxStats(depth or 0, db.as_utc(oldest), failed or 0)
