"""What the ``alerts`` commands show: the list, one issue, what is pending (and the one query
only a view needs: inbox rows not done, with their next attempt and error). Table cells are
shown in a code block (nothing in them is markup); template text is marked with ``user``.
Times are local (``bot.timezone``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, select

from bot.alerts import posting, tables
from bot.alerts.issues import IssueRow
from bot.alerts.tasks import Task
from bot.db import as_utc
from bot.render import format_duration
from bot.reply import Table
from bot.timefmt import format_clock, format_local

TITLE_WIDTH = 60  # characters of a title in the list
ERROR_WIDTH = 80


def _cut(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    return format_duration(max((now - then).total_seconds(), 0)) + " ago"


def where(issue: IssueRow) -> str:
    """Where its notice is: its own post, a storm summary, or nowhere (no route matched)."""
    if issue.storm_key:
        return "storm summary"
    if issue.notice_key:
        return "posted"
    return "not posted (no route)" if issue.status == "unresolved" else "not posted"


def list_table(rows: Sequence[IssueRow], total: int, now: datetime) -> Table:
    return Table(
        ["id", "short id", "level", "project/env", "status", "events", "last seen", "chat",
         "title"],
        [[r.ref, r.short_id or "", (r.level or "").upper(),
          f"{r.project or '?'}/{r.environment or '-'}",
          r.status + (f" (regressed {r.regressions}x)" if r.regressions else ""),
          "" if r.count is None else str(r.count), _ago(now, r.last_seen), where(r),
          _cut(r.title, TITLE_WIDTH)] for r in rows],
        omitted=max(total - len(rows), 0))


def show_data(issue: IssueRow, ticket: Any, zone: str, now: datetime) -> dict[str, Any]:
    """``alerts show``: the notice's data plus what the pipeline knows of it."""
    url = getattr(ticket, "web_url", None) if ticket is not None else None
    data = posting.alert_data(issue, zone, now, ticket_url=url)
    data.update(
        subject=issue.subject, ref=issue.ref, deliveries=issue.deliveries,
        ticketable=issue.issue_id is not None,
        chat=where(issue), notice_key=issue.notice_key or "", storm_key=issue.storm_key or "",
        since=format_local(issue.created_at, zone),
        updated=format_clock(issue.updated_at, zone, now=now),
        ticket_state=getattr(ticket, "state", None) if ticket is not None else None,
        tags=[f"{k}={v}" for k, v in issue.alert.tags[:20]],
        frames=[f"{f.filename}:{f.lineno or '?'} in {f.function}"
                for f in issue.alert.frames if f.in_app][-5:])
    return data


@dataclass(frozen=True, slots=True)
class WaitingRow:
    """An inbox row not done: pending (maybe waiting for a retry) or failed."""

    id: int
    resource: str
    action: str
    subject: str
    state: str
    attempts: int
    next_at: datetime
    error: str | None


def inbox_not_done(conn: Connection, limit: int) -> list[WaitingRow]:
    """Pending rows first (oldest first), then failed ones (newest first)."""
    c = tables.inbox.c
    query = (select(c.id, c.resource, c.action, c.subject, c.state, c.attempts, c.next_at,
                    c.error).where(c.state != tables.DONE)
             .order_by(c.state == tables.FAILED, case((c.state == tables.FAILED, -c.id),
                                                      else_=c.id)).limit(limit))
    return [WaitingRow(r.id, r.resource, r.action, r.subject, r.state, r.attempts,
                       as_utc(r.next_at), r.error)  # type: ignore[arg-type]
            for r in conn.execute(query)]


def _next(state: str, next_at: datetime, zone: str, now: datetime) -> str:
    if state == tables.FAILED:
        return "failed"
    return "due now" if next_at <= now else format_clock(next_at, zone, now=now)


def pending_table(rows: Sequence[WaitingRow], tasks: Sequence[Task], zone: str,
                  now: datetime) -> Table:
    """Inbox rows not done and unfinished tasks: what, for what, tries, next try, error."""
    lines = [[f"inbox #{r.id} {r.resource}.{r.action}", r.subject, str(r.attempts),
              _next(r.state, r.next_at, zone, now), _cut(r.error, ERROR_WIDTH)] for r in rows]
    for task in tasks:
        lines.append([f"task #{task.id} {task.kind}", task.subject, str(task.attempts),
                      _next(task.state, task.next_at, zone, now),
                      _cut(task.last_error, ERROR_WIDTH)])
    return Table(["what", "subject", "tries", "next", "last error"], lines)
