"""The audit trail: every invocation and every decision, with secrets redacted."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, Dialect, String, func, select, update

from bot import db
from bot.commands import CommandSpec
from bot.identity import Caller
from bot.secrets import MASK, masker

log = logging.getLogger(__name__)

# A queued row waits at most this long for company: one transaction per batch costs about as
# much as 10 rows, so under load batching cuts the audit's CPU per command by half or more.
BATCH_WINDOW_SECONDS = 0.05
BATCH_MAX_ROWS = 500


class AuditDecision(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    INVALID = "invalid"  # the line could not be parsed
    CONFIRMATION_REQUESTED = "confirmation requested"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    APPROVAL_REQUESTED = "approval requested"
    APPROVED = "approved"
    DENIED_BY_APPROVER = "denied by approver"
    EXPIRED = "expired"
    # The decision gate refused someone's confirm/cancel/approve/deny on a request. The row is
    # the decider's, its command and request id the request's: without a value of its own it
    # read as "bob's condor.rm was denied" when bob was refused approving alice's.
    CONFIRM_REFUSED = "confirm refused"
    # What a command started finished later (a followed pipeline's outcome).
    FOLLOW_UP = "follow-up"
    CANCEL_REFUSED = "cancel refused"
    APPROVE_REFUSED = "approve refused"
    DENY_REFUSED = "deny refused"

    @classmethod
    def refused(cls, choice: str) -> AuditDecision:
        """The value for a refused ``choice`` (a ``bot.reply.Choice``: confirm, approve, ...)."""
        return cls(f"{choice} refused")


_REFUSED_CHOICE = {str(d): str(d).removesuffix(" refused") for d in AuditDecision
                   if str(d).endswith(" refused")}


class AuditOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    RUNNING = "running"
    # The command ran and answered with a refusal (a typed `approve ID` the decision gate
    # refused): not "ok", which would read as if the approval had happened.
    REFUSED = "refused"


# What no database here can store: lone surrogates (Slack's and Mattermost's JSON may carry
# "\ud800"; UTF-8 cannot encode them, so SQLite's driver raises) and NUL (PostgreSQL's text
# refuses it). The parser refuses both, but an unparsable line is audited as it came.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Every text column with its length (PostgreSQL refuses a longer value; Text: unbounded).
_TEXT_COLUMNS = tuple((c.name, c.type.length or 1 << 62) for c in db.audit.columns
                      if isinstance(c.type, String))


def storable(text: str, limit: int | None = None) -> str:
    """``text`` as any audit column can store it: unstorable code points as ``\\ud800``
    escapes (what was sent stays readable), cut to ``limit`` characters."""
    if _UNSTORABLE.search(text):
        text = _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every text column storable: a row the database refuses would be retried
    with its whole batch forever (and shutdown would wait for it), so none is ever queued.
    One check per column on the hot path; the fix-up only for rows that need it."""
    for name, limit in _TEXT_COLUMNS:
        value = row.get(name)
        if value is not None and (len(value) > limit or _UNSTORABLE.search(value)):
            row[name] = storable(value, limit)
    return row


# One encoder for every row: json.dumps(default=..., sort_keys=...) builds a new one per call.
_ARGUMENTS_JSON = json.JSONEncoder(default=str, sort_keys=True)


def redact_arguments(spec: CommandSpec | None, args: dict[str, Any] | None, text: str) -> str:
    """Arguments as JSON with secret slots replaced; registered secrets masked anywhere."""
    if spec is None or args is None:
        return masker.mask(text)
    secret = spec.secret_slots
    shown = ({k: (MASK if k in secret and v not in (None, False) else v) for k, v in args.items()}
             if secret else args)
    # Masked before encoding (JSON escapes a secret: 'ä' -> '\u00e4', '"' -> '\"'), and the
    # encoded text again (a secret spanning two values, or made of the escapes themselves).
    return masker.mask(_ARGUMENTS_JSON.encode(_masked(shown)))


def _masked(value: Any) -> Any:
    """``value`` with registered secrets masked in every string it holds."""
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


@dataclass(slots=True)
class AuditEntry:
    id: int
    ts: datetime
    person: str | None
    platform: str
    platform_user: str
    channel: str | None
    command: str | None
    arguments: str
    decision: str
    outcome: str | None
    duration_ms: float | None
    approver: str | None
    request_id: str | None
    detail: str | None
    requester: str | None = None  # who made the request ``request_id`` names, if any

    @property
    def refused_choice(self) -> str | None:
        """The choice (approve, confirm, ...) of a refused decision on a request; None for any
        other row. Rows written before refusals had values of their own say only "denied":
        one under someone other than the request's requester can only be a refused decision
        (a requester's command denied when it is about to run is recorded under the requester),
        and reads as "decision on"."""
        choice = _REFUSED_CHOICE.get(self.decision)
        if choice is not None:
            return choice
        if (self.decision == AuditDecision.DENIED and self.request_id is not None
                and self.requester is not None and self.person != self.requester):
            return "decision on"
        return None


@dataclass(slots=True)
class AuditPage:
    """Up to ``limit`` entries, newest first, and whether older ones match too."""

    entries: list[AuditEntry]
    more: bool


class AuditLog:
    """Writes audit rows. Rows of quick, harmless outcomes (allowed and answered, denied,
    invalid) are queued and written in batches by one background flush (at most
    :data:`BATCH_WINDOW_SECONDS` later), so a reply never waits for the disk; rows that open a
    consequential run, and every decision on a request, are written before the caller goes on.
    ``flush()`` drains the queue at once (queries and shutdown)."""

    def __init__(self, database: db.Database) -> None:
        self.database = database
        self._queue: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._window: asyncio.Future[None] | None = None  # set to end the batching wait early
        self._hurry = 0  # flush() calls in progress: no batching wait meanwhile

    @staticmethod
    def _row(
        caller: Caller,
        command: str | None,
        arguments: str,
        decision: AuditDecision,
        outcome: AuditOutcome | None = None,
        duration_ms: float | None = None,
        approver: str | None = None,
        request_id: str | None = None,
        detail: str | None = None,
        person: str | None = None,
    ) -> dict[str, Any]:
        return _storable_row({
            "ts": db.utcnow(),
            "person": person or (caller.person.key if caller.person else None),
            "platform": caller.platform,
            "platform_user": caller.user_id,
            "channel": caller.channel_alias or caller.channel_id,
            "command": command,
            "arguments": masker.mask(arguments),
            "decision": str(decision),
            "outcome": str(outcome) if outcome else None,
            "duration_ms": duration_ms,
            "approver": approver,
            "request_id": request_id,
            "detail": masker.mask(detail) if detail else None,
        })

    async def record(self, caller: Caller, command: str | None, arguments: str,
                     decision: AuditDecision, **extra: Any) -> int:
        """Write a row now (after anything queued) and return its id."""
        row = self._row(caller, command, arguments, decision, **extra)
        await self.flush()
        return await self.database.run(_insert, row)

    def record_soon(self, caller: Caller, command: str | None, arguments: str,
                    decision: AuditDecision, **extra: Any) -> None:
        """Queue a row for the next batch; the caller does not wait for the disk."""
        self._queue.append(self._row(caller, command, arguments, decision, **extra))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain(), name="audit-flush")
        elif len(self._queue) >= BATCH_MAX_ROWS:
            self._end_window()

    def _end_window(self) -> None:
        if self._window is not None and not self._window.done():
            self._window.set_result(None)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if not self._hurry and len(self._queue) < BATCH_MAX_ROWS:
                self._window = loop.create_future()
                timer = loop.call_later(BATCH_WINDOW_SECONDS, self._end_window)
                try:
                    await self._window
                finally:
                    timer.cancel()
                    self._window = None
            batch, self._queue = self._queue, []
            try:
                await self.database.run(_insert_many, batch)
            except Exception:
                log.exception("could not write %d audit rows; will retry", len(batch))
                self._queue[:0] = batch
                await asyncio.sleep(1)

    async def flush(self) -> None:
        self._hurry += 1
        try:
            while self._queue or (self._flusher is not None and not self._flusher.done()):
                self._end_window()
                if self._flusher is None or self._flusher.done():
                    self._flusher = asyncio.create_task(self._drain(), name="audit-flush")
                await asyncio.shield(self._flusher)
        finally:
            self._hurry -= 1

    async def finish(self, entry_id: int, outcome: AuditOutcome, duration_ms: float,
                     detail: str | None = None) -> None:
        values = _storable_row({"outcome": str(outcome), "duration_ms": duration_ms,
                                "detail": masker.mask(detail) if detail else None})
        await self.database.run(_update, entry_id, values)

    async def query(
        self,
        *,
        since: timedelta | None = None,
        who: str | None = None,
        command_glob: str | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        return (await self.page(since=since, who=who, command_glob=command_glob,
                                limit=limit)).entries

    async def page(
        self,
        *,
        since: timedelta | None = None,
        who: str | None = None,
        command_glob: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> AuditPage:
        """The newest ``limit`` matching entries older than entry ``before`` (if given), and
        whether more match: ``who`` is a person (requester or approver), a platform user id
        or ``platform:user_id``; ``command_glob`` matches like the permission globs."""
        await self.flush()
        return await self.database.run(_page, _Filter(since, who, command_glob, before),
                                       max(1, limit))


def _insert(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(db.audit.insert().values(**row)).inserted_primary_key[0])


def _insert_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.exec_driver_sql(*_bulk_insert(conn.dialect).statement(rows))


@dataclass(frozen=True, slots=True)
class _BulkInsert:
    """``INSERT INTO audit`` compiled once per dialect, with the columns' bind processors.

    ``conn.execute(insert, rows)`` prepares every row through SQLAlchemy's generic parameter
    machinery, which on SQLite costs twice the insert itself (about 28 of 42 us per row); the
    same conversions done here once per column, then one DB-API ``executemany``, keep a batch
    of audit rows cheap for the thread that writes it."""

    sql: str
    keys: tuple[str, ...]  # parameter order (positional paramstyles) or names
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def statement(self, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        pairs = tuple(zip(self.keys, self.processors, strict=True))
        converted = [tuple(value if (value := row.get(key)) is None or process is None
                           else process(value) for key, process in pairs) for row in rows]
        if self.positional:
            return self.sql, converted
        return self.sql, [dict(zip(self.keys, values, strict=True)) for values in converted]


_BULK_INSERTS: dict[str, _BulkInsert] = {}


def _bulk_insert(dialect: Dialect) -> _BulkInsert:
    which = f"{dialect.name}+{dialect.driver}:{dialect.paramstyle}"
    bulk = _BULK_INSERTS.get(which)
    if bulk is None:
        columns = [c.name for c in db.audit.columns if c.name != "id"]
        compiled = db.audit.insert().compile(dialect=dialect, column_keys=columns)
        keys = tuple(compiled.positiontup or ()) if compiled.positional else tuple(columns)
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in keys)
        bulk = _BULK_INSERTS[which] = _BulkInsert(str(compiled), keys, processors,
                                                compiled.positional)
    return bulk


def _update(conn: Connection, entry_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(db.audit).where(db.audit.c.id == entry_id).values(**values))


@dataclass(frozen=True, slots=True)
class _Filter:
    since: timedelta | None
    who: str | None
    command_glob: str | None
    before: int | None


def _like(glob: str) -> str | None:
    """The SQL LIKE pattern (escape ``\\``) matching at least what ``glob`` matches, or None
    when the glob has a character class (then only the exact match in Python filters)."""
    if "[" in glob:
        return None
    out = []
    for char in glob:
        if char in "%_\\":
            out.append("\\" + char)
        else:
            out.append({"*": "%", "?": "_"}.get(char, char))
    return "".join(out)


def _page(conn: Connection, where: _Filter, limit: int) -> AuditPage:
    audit, requests = db.audit, db.requests
    stmt = (select(audit, requests.c.person.label("requester"))
            .select_from(audit.outerjoin(requests, audit.c.request_id == requests.c.id))
            .order_by(audit.c.id.desc()))
    if where.since is not None:
        stmt = stmt.where(audit.c.ts >= db.utcnow() - where.since)
    if where.who:
        who = where.who
        match = (audit.c.person == who) | (audit.c.platform_user == who) | (audit.c.approver == who)
        platform, colon, user = who.partition(":")
        if colon:  # slack:U0NOBODY, as the audit view names an unknown user
            match |= (audit.c.platform == platform) & (audit.c.platform_user == user)
        stmt = stmt.where(match)
    glob = where.command_glob
    like = _like(glob) if glob else None
    if like is not None:
        # A prefilter in SQL, so a glob that matches few rows need not read every row; the
        # exact match stays fnmatchcase below (the permission globs' semantics; SQLite's LIKE
        # ignores case). A row without a command matches as "", as fnmatchcase("", "*") does.
        stmt = stmt.where(func.coalesce(audit.c.command, "").like(like, escape="\\"))
    wanted = limit + 1  # one more than asked: whether older entries match too
    entries: list[AuditEntry] = []
    cursor = where.before
    while True:  # pages by id, so rows the Python filter drops cannot hide older matches
        page = stmt if cursor is None else stmt.where(audit.c.id < cursor)
        rows = conn.execute(page.limit(max(wanted, 100))).all()
        for row in rows:
            if glob and not fnmatchcase(row.command or "", glob):
                continue
            values = row._asdict()
            values["ts"] = db.as_utc(values["ts"])
            entries.append(AuditEntry(**values))
            if len(entries) == wanted:
                return AuditPage(entries[:limit], more=True)
        if len(rows) < max(wanted, 100):
            return AuditPage(entries, more=False)
        cursor = rows[-1].id
