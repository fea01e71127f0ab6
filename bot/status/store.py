"""What status checks keep in the database: results (kept ``status.keep_days``), the state of
each check (levels, acknowledgement, silence, pending notice operations) and its history.

Functions take a connection first and run inside ``bot.database.run`` (one transaction each).
Times are stored UTC; SQLite hands them back naive (``db.as_utc``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)

from bot.db import as_utc
from bot.status.model import CheckResult, Level, PerfDatum
from bot.status.states import CheckState, NoticeOp

metadata = MetaData()
SUMMARY_MAX = 500
OUTPUT_MAX = 8000
WHO_MAX = 100
PERIODIC, ON_DEMAND = "periodic", "on-demand"

results = Table(
    "status_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_name", String(40), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("level", Integer, nullable=False),  # after the check's severity remap
    Column("raw_level", Integer, nullable=True),  # the check's own, when the remap changed it
    Column("summary", String(SUMMARY_MAX), nullable=False),
    Column("long_output", Text, nullable=False, default=""),
    Column("perfdata", Text, nullable=False, default="[]"),  # JSON list of PerfDatum fields
    Column("check_values", Text, nullable=False, default="{}"),  # JSON: name -> number
    Column("check_state", Text, nullable=False, default="{}"),  # JSON carried to the next run
    Column("duration", Float, nullable=False, default=0.0),
    Column("source", String(12), nullable=False),  # periodic | on-demand
    Index("ix_status_results_check", "check_name", "checked_at"),
    Index("ix_status_results_age", "checked_at"),
)

states = Table(
    "status_state", metadata,
    Column("check_name", String(40), primary_key=True),
    Column("hard_level", Integer, nullable=True),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("change_id", Integer, nullable=True),
    Column("soft_level", Integer, nullable=True),
    Column("soft_count", Integer, nullable=False, default=0),
    Column("last_instant", DateTime(timezone=True), nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=True),
    Column("summary", String(SUMMARY_MAX), nullable=False, default=""),
    Column("notice_key", String(300), nullable=True),
    Column("notice_level", Integer, nullable=True),
    Column("notices_sent", Integer, nullable=False, default=0),
    Column("notified_at", DateTime(timezone=True), nullable=True),
    Column("acked_by", String(WHO_MAX), nullable=True),
    Column("acked_reason", String(SUMMARY_MAX), nullable=True),
    Column("acked_at", DateTime(timezone=True), nullable=True),
    Column("silenced_until", DateTime(timezone=True), nullable=True),
    Column("silenced_by", String(WHO_MAX), nullable=True),
    Column("silenced_reason", String(SUMMARY_MAX), nullable=True),
    Column("pending", Text, nullable=False, default="[]"),  # JSON list of NoticeOp
)

changes = Table(
    "status_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_name", String(40), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(12), nullable=False),  # level | ack | silence | unsilence
    Column("from_level", Integer, nullable=True),
    Column("to_level", Integer, nullable=True),
    Column("summary", String(SUMMARY_MAX), nullable=False, default=""),
    Column("who", String(WHO_MAX), nullable=True),
    Column("reason", String(SUMMARY_MAX), nullable=True),
    Column("until", DateTime(timezone=True), nullable=True),
    Index("ix_status_changes_check", "check_name", "at"),
    Index("ix_status_changes_at", "at"),
)


def create_tables(conn: Connection) -> None:
    """Feature migration step 1."""
    metadata.create_all(conn)


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class StoredResult:
    check: str
    result: CheckResult
    source: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float | None) -> float | None:
    # JSON has no NaN or infinity; a plugin may still report them.
    return value if value is None or math.isfinite(value) else None


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False, separators=(",", ":"))


def insert_result(conn: Connection, check: str, result: CheckResult, source: str) -> int:
    perfdata = [{"label": p.label, "value": _number(p.value), "uom": p.uom, "warn": p.warn,
                 "crit": p.crit, "min": _number(p.min), "max": _number(p.max)}
                for p in result.perfdata]
    values = {k: v for k, v in ((k, _number(float(v))) for k, v in result.values.items())
              if v is not None}
    row = conn.execute(results.insert().values(
        check_name=check, checked_at=result.checked_at, level=int(result.level),
        raw_level=_int(result.raw_level),
        summary=_cut(result.summary, SUMMARY_MAX), long_output=_cut(result.long_output,
                                                                     OUTPUT_MAX),
        perfdata=_json(perfdata), check_values=_json(values), check_state=_json(dict(result.state)),
        duration=result.duration_seconds, source=source))
    return int(row.inserted_primary_key[0])


def _result(row: Any) -> StoredResult:
    perfdata = tuple(PerfDatum(**item) for item in json.loads(row.perfdata))
    return StoredResult(row.check_name, CheckResult(
        level=Level(row.level), summary=row.summary, long_output=row.long_output,
        perfdata=perfdata, values=json.loads(row.check_values),
        state=json.loads(row.check_state), duration_seconds=row.duration,
        checked_at=as_utc(row.checked_at), raw_level=_level(row.raw_level)), row.source)


def latest_results(conn: Connection, source: str | None = None) -> dict[str, StoredResult]:
    """The newest result of every check (of one ``source`` if given)."""
    newest = select(results.c.check_name, func.max(results.c.id).label("id"))
    if source is not None:
        newest = newest.where(results.c.source == source)
    newest_ids = newest.group_by(results.c.check_name).subquery()
    rows = conn.execute(select(results).join(newest_ids, results.c.id == newest_ids.c.id))
    return {row.check_name: _result(row) for row in rows}


def recent_results(conn: Connection, check: str, limit: int) -> list[StoredResult]:
    rows = conn.execute(select(results).where(results.c.check_name == check)
                        .order_by(results.c.id.desc()).limit(limit))
    return [_result(row) for row in rows]


def prune(conn: Connection, before: datetime, per_check: int) -> int:
    """Forget results checked before ``before`` and all but the newest ``per_check`` of each
    check, and history entries before ``before``. The newest result of a check is always kept:
    ``env.previous`` and ``values_of`` read it."""
    newest = select(func.max(results.c.id)).group_by(results.c.check_name)
    gone = conn.execute(delete(results).where(results.c.checked_at < before,
                                              results.c.id.not_in(newest))).rowcount or 0
    for check in conn.execute(select(results.c.check_name).distinct()).scalars().all():
        cutoff = conn.execute(select(results.c.id).where(results.c.check_name == check)
                              .order_by(results.c.id.desc()).offset(max(1, per_check) - 1)
                              .limit(1)).scalar()
        if cutoff is not None:
            gone += conn.execute(delete(results).where(results.c.check_name == check,
                                                       results.c.id < cutoff)).rowcount or 0
    gone += conn.execute(delete(changes).where(changes.c.at < before)).rowcount or 0
    return int(gone)


# ------------------------------------------------------------------------------- states


def _level(value: int | None) -> Level | None:
    return None if value is None else Level(value)


def _state(row: Any) -> CheckState:
    return CheckState(
        check=row.check_name, hard=_level(row.hard_level), since=as_utc(row.since),
        change_id=row.change_id, soft=_level(row.soft_level), soft_count=row.soft_count,
        last_instant=as_utc(row.last_instant), checked_at=as_utc(row.checked_at),
        summary=row.summary, notice_key=row.notice_key, notice_level=_level(row.notice_level),
        notices_sent=row.notices_sent, notified_at=as_utc(row.notified_at),
        acked_by=row.acked_by, acked_reason=row.acked_reason, acked_at=as_utc(row.acked_at),
        silenced_until=as_utc(row.silenced_until), silenced_by=row.silenced_by,
        silenced_reason=row.silenced_reason,
        pending=tuple(NoticeOp.from_json(op) for op in json.loads(row.pending)))


def load_state(conn: Connection, check: str, *, lock: bool = False) -> CheckState:
    """A check's state (a fresh one if it has none); ``lock``: FOR UPDATE on PostgreSQL, so a
    result and a command changing the same check take turns (SQLite has one writer anyway)."""
    query = select(states).where(states.c.check_name == check)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _state(row) if row is not None else CheckState(check)


def all_states(conn: Connection) -> dict[str, CheckState]:
    return {row.check_name: _state(row) for row in conn.execute(select(states))}


def save_state(conn: Connection, state: CheckState) -> None:
    values = {
        "hard_level": _int(state.hard), "since": state.since, "change_id": state.change_id,
        "soft_level": _int(state.soft), "soft_count": state.soft_count,
        "last_instant": state.last_instant, "checked_at": state.checked_at,
        "summary": _cut(state.summary, SUMMARY_MAX), "notice_key": state.notice_key,
        "notice_level": _int(state.notice_level), "notices_sent": state.notices_sent,
        "notified_at": state.notified_at, "acked_by": state.acked_by,
        "acked_reason": state.acked_reason, "acked_at": state.acked_at,
        "silenced_until": state.silenced_until, "silenced_by": state.silenced_by,
        "silenced_reason": state.silenced_reason,
        "pending": _json([op.to_json() for op in state.pending]),
    }
    done = conn.execute(update(states).where(states.c.check_name == state.check)
                        .values(**values))
    if not done.rowcount:
        conn.execute(states.insert().values(check_name=state.check, **values))


def _int(level: Level | None) -> int | None:
    return None if level is None else int(level)


def drop_pending(conn: Connection, check: str, done: Iterable[NoticeOp]) -> None:
    """Remove the operations that were performed from a check's pending list (operations
    added meanwhile stay)."""
    state = load_state(conn, check, lock=True)
    finished = [op.to_json() for op in done]
    left = tuple(op for op in state.pending if op.to_json() not in finished)
    if left != state.pending:
        save_state(conn, replace(state, pending=left))


# ------------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    check: str
    at: datetime
    kind: str  # level | ack | silence | unsilence
    old: Level | None
    new: Level | None
    summary: str
    who: str | None
    reason: str | None
    until: datetime | None


def insert_change(conn: Connection, check: str, at: datetime, kind: str, *,
                  old: Level | None = None, new: Level | None = None, summary: str = "",
                  who: str | None = None, reason: str | None = None,
                  until: datetime | None = None) -> int:
    row = conn.execute(changes.insert().values(
        check_name=check, at=at, kind=kind, from_level=_int(old), to_level=_int(new),
        summary=_cut(summary, SUMMARY_MAX), who=who and _cut(who, WHO_MAX),
        reason=reason and _cut(reason, SUMMARY_MAX), until=until))
    return int(row.inserted_primary_key[0])


def count_history(conn: Connection, check: str) -> int:
    return int(conn.execute(select(func.count()).select_from(changes)
                            .where(changes.c.check_name == check)).scalar() or 0)


def history(conn: Connection, check: str | None, limit: int,
            since: datetime | None = None) -> list[HistoryEntry]:
    """Newest first; every check when ``check`` is None (the digest), from ``since``."""
    query = select(changes).order_by(changes.c.id.desc()).limit(limit)
    if check is not None:
        query = query.where(changes.c.check_name == check)
    if since is not None:
        query = query.where(changes.c.at >= since)
    return [HistoryEntry(row.id, row.check_name, as_utc(row.at), row.kind,
                         _level(row.from_level), _level(row.to_level), row.summary, row.who,
                         row.reason, as_utc(row.until)) for row in conn.execute(query)]
