"""What a digest says, read from the other features' tables (synchronous; one connection).

Each section is read only when its tables exist: a feature that is not installed (never
migrated here) has no tables, and its section is left out (None), never an error. The
sections are plain dicts and lists (the template's data, and the chart's input):

- ``alerts``: Sentry issues with deliveries received in the period (``alerts_inbox``), with
  their GitLab ticket and its state (``alerts_issues``, ``alerts_tickets``);
- ``status``: status-check changes in the period (``status_changes``) and each check's level
  at the period's start (the chart's timeline);
- ``commands``: consequential commands run through the bot (the core ``audit`` table:
  restarts, condor rm/hold/release, ...) and every approval and denial;
- ``meetings``: meetings held in the period with their open action items;
- ``missed``: schedule occurrences nobody received (missed, failed, skipped);
- ``condor``: the queue by pool now against the previous digest's (the snapshots of
  :mod:`bot.digests.store`), and the snapshots in between (the chart).

The features' table definitions are imported (plain SQLAlchemy tables, no side effects);
whether they exist in this database is what decides.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, func, select

from bot import db
from bot.alerts import tables as alert_tables
from bot.db import as_utc
from bot.digests import store
from bot.meetings import store as meeting_store
from bot.schedule import store as schedule_store
from bot.status import store as status_store

# Commands worth a line in a digest (what changed something); reads are left out.
ACTED = ("restart", "restart.*", "condor.rm", "condor.hold", "condor.release",
         "condor.resubmit", "condor.submit", "status.ack", "status.silence", "status.unsilence",
         "alerts.ticket", "alerts.resolve", "alerts.ignore", "shift.swap", "shift.override",
         "schedule.pause", "schedule.resume", "announce", "digest.now", "report.ticket")
# Decisions shown whatever the command (someone decided on someone else's request).
DECIDED = ("approved", "denied by approver", "expired")
# Decisions on an ACTED command that are noise in a digest (the decision follows in a row).
QUIET = ("invalid", "confirmation requested")
LEVELS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
UNSENT = ("missed", "failed", "skipped")


def _cut(items: list[Any], limit: int) -> tuple[list[Any], int]:
    return items[:limit], max(0, len(items) - limit)


# ------------------------------------------------------------------------ alerts


def alerts(conn: Connection, start: datetime, end: datetime, limit: int) -> dict[str, Any] | None:
    """Issues with deliveries in [start, end), most deliveries first; alerts per day."""
    if not store.has_tables(conn, "alerts_inbox", "alerts_issues", "alerts_tickets"):
        return None
    inbox, issues, tickets = alert_tables.inbox, alert_tables.issues, alert_tables.tickets
    received = [(row.subject, as_utc(row.received_at)) for row in conn.execute(
        select(inbox.c.subject, inbox.c.received_at).where(
            inbox.c.received_at >= start, inbox.c.received_at < end))]
    by_subject = Counter(subject for subject, _ in received)
    per_day = Counter(f"{at:%Y-%m-%d}" for _, at in received if at is not None)
    rows = conn.execute(
        select(issues, tickets.c.iid, tickets.c.web_url, tickets.c.state.label("ticket_state"),
               tickets.c.gitlab_project)
        .outerjoin(tickets, tickets.c.subject == issues.c.subject)
        .where(issues.c.subject.in_(list(by_subject)))).all() if by_subject else []
    found = [_issue(row, by_subject[row.subject], start) for row in rows]
    found.sort(key=lambda i: (-i["received"], i["title"]))
    shown, more = _cut(found, limit)
    return {"issues": shown, "more": more, "received": len(received),
            "new": sum(1 for i in found if i["new"]), "per_day": dict(sorted(per_day.items())),
            "ticketed": sum(1 for i in found if i["ticket"])}


def _issue(row: Any, received: int, start: datetime) -> dict[str, Any]:
    created = as_utc(row.created_at)
    ticket = None
    if row.iid is not None:
        ticket = {"ref": f"{row.gitlab_project}#{row.iid}", "url": row.web_url,
                  "state": row.ticket_state}
    return {"subject": row.subject, "short_id": row.short_id or row.subject,
            "title": row.title or "", "level": row.level or "", "status": row.status,
            "project": row.project or "", "received": received,
            "new": created is not None and created >= start, "ticket": ticket}


# ------------------------------------------------------------------------ status


def status(conn: Connection, start: datetime, end: datetime, limit: int) -> dict[str, Any] | None:
    """Level changes, acknowledgements and silences in [start, end); levels at ``start``."""
    if not store.has_tables(conn, "status_changes"):
        return None
    changes = status_store.changes
    rows = conn.execute(select(changes).where(changes.c.at >= start, changes.c.at < end)
                        .order_by(changes.c.at, changes.c.id)).all()
    found = [{"check": r.check_name, "at": as_utc(r.at), "kind": r.kind,
              "from": LEVELS.get(r.from_level, "") if r.from_level is not None else "",
              "to": LEVELS.get(r.to_level, "") if r.to_level is not None else "",
              "to_level": r.to_level, "summary": r.summary or "", "who": r.who or "",
              "reason": r.reason or ""} for r in rows]
    last = (select(changes.c.check_name, func.max(changes.c.id).label("id"))
            .where(changes.c.at < start, changes.c.kind == "level")
            .group_by(changes.c.check_name).subquery())
    initial = {r.check_name: r.to_level for r in conn.execute(
        select(changes.c.check_name, changes.c.to_level).join(last, changes.c.id == last.c.id))}
    levels = [c for c in found if c["kind"] == "level"]
    shown, more = _cut(found, limit)
    return {"changes": shown, "more": more, "count": len(found), "level_changes": len(levels),
            "initial": initial,
            "timeline": [{"check": c["check"], "at": c["at"], "level": c["to_level"]}
                         for c in levels]}


# ------------------------------------------------------------------------ commands


def acted(command: str | None, decision: str) -> bool:
    """Is an audit row worth a digest line?"""
    if decision in DECIDED:
        return True
    if command is None or decision in QUIET:
        return False
    return any(fnmatchcase(command, glob) for glob in ACTED)


def commands(conn: Connection, start: datetime, end: datetime, limit: int) -> dict[str, Any]:
    """Consequential commands and decisions in [start, end), oldest first (the core's
    ``audit`` table always exists)."""
    audit = db.audit
    rows = conn.execute(select(audit).where(audit.c.ts >= start, audit.c.ts < end)
                        .order_by(audit.c.id)).all()
    found = [{"at": as_utc(r.ts), "who": r.person or f"{r.platform}:{r.platform_user}",
              "command": r.command or "", "arguments": r.arguments or "",
              "decision": r.decision, "outcome": r.outcome or "",
              "approver": r.approver or "", "request": r.request_id or "",
              "detail": r.detail or ""}
             for r in rows if acted(r.command, r.decision)]
    decisions = Counter(r["decision"] for r in found)
    shown, more = _cut(found, limit)
    return {"rows": shown, "more": more, "count": len(found),
            "approved": decisions.get("approved", 0),
            "denied": decisions.get("denied", 0) + decisions.get("denied by approver", 0)}


# ------------------------------------------------------------------------ meetings


def meetings(conn: Connection, start: datetime, end: datetime,
             limit: int) -> dict[str, Any] | None:
    """Meetings that started in [start, end) with their open action items."""
    if not store.has_tables(conn, "meeting_reports", "meeting_items", "meeting_tickets"):
        return None
    reports, items = meeting_store.reports, meeting_store.items
    tickets = meeting_store.tickets
    held = conn.execute(select(reports).where(reports.c.starts_at >= start,
                                              reports.c.starts_at < end)
                        .order_by(reports.c.starts_at)).all()
    out = []
    for report in held[:limit]:
        open_items = conn.execute(
            select(items.c.id, items.c.owner, items.c.text, tickets.c.url,
                   tickets.c.state.label("ticket_state"))
            .outerjoin(tickets, tickets.c.item_id == items.c.id)
            .where(items.c.report_id == report.id, items.c.kind == "action",
                   items.c.removed_at.is_(None), items.c.done_at.is_(None))
            .where(tickets.c.state.is_(None) | (tickets.c.state != "closed"))
            .order_by(items.c.id)).all()
        out.append({"title": report.title, "series": report.series,
                    "starts_at": as_utc(report.starts_at), "state": report.state,
                    "actions": [{"id": i.id, "owner": i.owner or "", "text": i.text,
                               "ticket": i.url or ""} for i in open_items]})
    return {"meetings": out, "more": max(0, len(held) - limit),
            "open_items": sum(len(m["actions"]) for m in out)}


# ------------------------------------------------------------------------ schedules


def missed(conn: Connection, start: datetime, end: datetime, limit: int) -> dict[str, Any] | None:
    """Occurrences due in [start, end) that nobody received (missed, failed, skipped)."""
    if not store.has_tables(conn, "schedule_occurrences"):
        return None
    occ = schedule_store.occurrences
    rows = conn.execute(select(occ).where(occ.c.state.in_(UNSENT), occ.c.at >= start,
                                          occ.c.at < end).order_by(occ.c.at)).all()
    found = [{"key": r.key, "series": r.series, "kind": r.kind, "at": as_utc(r.at),
              "state": r.state, "error": r.error or ""} for r in rows]
    shown, more = _cut(found, limit)
    return {"rows": shown, "more": more, "count": len(found)}


# ------------------------------------------------------------------------ condor


def condor(conn: Connection, start: datetime, end: datetime) -> dict[str, Any] | None:
    """The queue by pool at ``end`` against the previous digest's (``start``), and the
    snapshots in between (the chart); None when no snapshot was ever taken."""
    if not store.has_tables(conn, "digests_snapshots"):
        return None
    now = store.latest_at(conn, end)
    if not now:
        return None
    before = store.latest_at(conn, start)
    pools = []
    for pool, snap in sorted(now.items()):
        old = before.get(pool)
        states = sorted(set(snap.counts) | set(old.counts if old else {}))
        rows = [{"state": s, "now": snap.counts.get(s, 0),
                 "before": old.counts.get(s, 0) if old else None,
                 "delta": snap.counts.get(s, 0) - old.counts.get(s, 0) if old else None}
                for s in states if snap.counts.get(s, 0) or (old and old.counts.get(s, 0))]
        pools.append({"pool": pool, "taken_at": snap.taken_at, "total": snap.total,
                      "before_total": old.total if old else None,
                      "before_at": old.taken_at if old else None, "states": rows})
    # The line starts with the queue as the previous digest saw it.
    series = sorted([*before.values(), *(snap for snap in store.snapshots_between(
        conn, start, end) if snap.taken_at > start)], key=lambda snap: snap.taken_at)
    return {"pools": pools, "series": series}


def gather(conn: Connection, start: datetime, end: datetime, limit: int) -> dict[str, Any]:
    """Every section for [start, end) (None: that source is not installed here)."""
    return {"alerts": alerts(conn, start, end, limit), "status": status(conn, start, end, limit),
            "commands": commands(conn, start, end, limit),
            "meetings": meetings(conn, start, end, limit),
            "missed": missed(conn, start, end, limit), "condor": condor(conn, start, end)}
