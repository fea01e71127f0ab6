"""The ``alerts_issues`` table: one row per Sentry issue (or metric alert), what chat shows
and what the commands list. Written only by the decision transaction (bot/alerts/decide.py)
and by ``alerts resolve``/``alerts ignore``; read by the notice tasks at send time, so a
message always shows the latest state, however many changes were queued meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from bot.alerts import tables
from bot.alerts.model import SentryAlert, dump, load
from bot.db import as_utc

UNRESOLVED, RESOLVED, IGNORED = "unresolved", "resolved", "ignored"
NUMERIC = re.compile(r"^\d{1,30}$")


@dataclass(frozen=True, slots=True)
class IssueRow:
    subject: str
    issue_id: str | None
    short_id: str | None
    project: str | None
    environment: str | None
    level: str | None
    status: str
    title: str
    count: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    deliveries: int
    regressions: int
    notice_key: str | None
    storm_key: str | None
    alert: SentryAlert
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        """How commands name it: the Sentry issue id (metric alerts: their subject)."""
        return self.issue_id or self.subject


def _row(row: Any) -> IssueRow:
    return IssueRow(
        row.subject, row.issue_id, row.short_id, row.project, row.environment, row.level,
        row.status, row.title, row.count, as_utc(row.first_seen), as_utc(row.last_seen),
        row.deliveries, row.regressions, row.notice_key, row.storm_key, load(row.alert),
        as_utc(row.created_at), as_utc(row.updated_at))  # type: ignore[arg-type]


def get(conn: Connection, subject: str, *, lock: bool = False) -> IssueRow | None:
    query = select(tables.issues).where(tables.issues.c.subject == subject)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _row(row) if row is not None else None


def find(conn: Connection, ref: str) -> IssueRow | None:
    """By Sentry issue id (``4711``), short id (``GWCELERY-1Z``, any case) or subject."""
    c = tables.issues.c
    ref = ref.strip()
    if ":" in ref:
        return get(conn, ref)
    if NUMERIC.match(ref):
        return get(conn, f"sentry:{ref}")
    row = conn.execute(select(tables.issues).where(
        or_(c.short_id == ref.upper(), c.short_id == ref)).limit(1)).first()
    return _row(row) if row is not None else None


def insert_new(conn: Connection, alert: SentryAlert, status: str, now: datetime, *,
               notice_key: str | None, storm_key: str | None) -> None:
    conn.execute(insert(tables.issues).values(
        subject=alert.subject, created_at=now, regressions=0, deliveries=1,
        notice_key=notice_key, storm_key=storm_key, **_columns(alert, status, now)))


def save(conn: Connection, alert: SentryAlert, status: str, now: datetime, *,
         regressed: bool = False) -> None:
    """The latest alert and status of a known subject; one more delivery."""
    c = tables.issues.c
    values: dict[str, Any] = {**_columns(alert, status, now), "deliveries": c.deliveries + 1}
    if regressed:
        values["regressions"] = c.regressions + 1
    conn.execute(update(tables.issues).where(c.subject == alert.subject).values(**values))


def set_status(conn: Connection, subject: str, status: str, now: datetime) -> None:
    conn.execute(update(tables.issues).where(tables.issues.c.subject == subject)
                 .values(status=status, updated_at=now))


def set_notice(conn: Connection, subject: str, notice_key: str) -> None:
    conn.execute(update(tables.issues).where(tables.issues.c.subject == subject)
                 .values(notice_key=notice_key))


def _columns(alert: SentryAlert, status: str, now: datetime) -> dict[str, Any]:
    return {"issue_id": alert.issue_id, "short_id": alert.short_id, "project": alert.project,
            "environment": alert.environment, "level": alert.level, "status": status,
            "title": (alert.title or "")[:500], "count": alert.count,
            "first_seen": alert.first_seen, "last_seen": alert.last_seen,
            "alert": dump(alert), "updated_at": now}


def listing(conn: Connection, *, open_only: bool = False, limit: int = 50
            ) -> tuple[list[IssueRow], int]:
    """The most recently changed issues first, and how many there are in all."""
    c = tables.issues.c
    where = [c.status == UNRESOLVED] if open_only else []
    rows = conn.execute(select(tables.issues).where(*where)
                        .order_by(c.updated_at.desc(), c.subject).limit(limit))
    total = conn.execute(select(func.count()).select_from(tables.issues).where(*where)
                         ).scalar_one()
    return [_row(row) for row in rows], total


def many(conn: Connection, subjects: list[str]) -> list[IssueRow]:
    """The rows of ``subjects``, in that order (a storm's members)."""
    if not subjects:
        return []
    rows = conn.execute(select(tables.issues).where(tables.issues.c.subject.in_(subjects)))
    found = {row.subject: _row(row) for row in rows}
    return [found[s] for s in subjects if s in found]
