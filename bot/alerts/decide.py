"""The decision for one inbox row: ONE transaction that updates the issue's row, decides the
storm, enqueues the chat notices and GitLab calls, and marks the row done (docs/alerts.md,
"Flows"). A crash before the commit leaves the row pending (decided again after a restart);
after it, the tasks are in the database and run with retries.

- unknown subject: new -> its row, ``notice.post`` (or into the storm summary), a ticket by
  ``auto_ticket`` (``new``);
- known and unresolved, a new event or a newer ``lastSeen``: repeat -> ``notice.update``
  (count, last seen) and ``tickets.note_repeat``;
- known and resolved/ignored here, then unresolved/a new event: regression -> regressions+1,
  a reply in the thread mentioning the route's people again, ``notice.update``,
  ``tickets.note_regression`` and a ticket by rule (``regressed``);
- resolved -> ``notice.update`` + ``tickets.note_resolved``; ignored -> ``notice.update``;
  assigned -> a thread reply;
- metric alerts: their own notice keyed by the metric alert id, updated when resolved.

Never a second top-level post for one subject: a post is enqueued only when the row has no
notice yet. Notice tasks carry only what to show (``view``); the handler renders the row as it
is when the message is sent, so a queue of updates always ends on the latest state.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from bot.alerts import issues, storm, tasks
from bot.alerts.config import AlertsConfig, Route
from bot.alerts.issues import IGNORED, RESOLVED, UNRESOLVED, IssueRow
from bot.alerts.model import Resource, SentryAlert
from bot.alerts.routing import NEW, REGRESSED, route_for, wants_auto_ticket

log = logging.getLogger(__name__)

POST, UPDATE, THREAD = "notice.post", "notice.update", "notice.thread"
NOTICE_KINDS = (POST, UPDATE, THREAD)
SUBJECT_MAX = 120  # alerts_tasks.subject
_KEEP = frozenset({"resource", "action", "dedupe_key"})  # never taken from an older alert


class TicketHooks(Protocol):
    """What the decision needs of bot/alerts/tickets.py (B's), called in its transaction."""

    def want_ticket(self, conn: Connection, subject: str, now: datetime, *,
                    reason: str) -> bool: ...
    def note_repeat(self, conn: Connection, subject: str, now: datetime,
                    comment_every: float) -> None: ...
    def note_regression(self, conn: Connection, subject: str, now: datetime) -> None: ...
    def note_resolved(self, conn: Connection, subject: str, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided (logged, counted by tests and the benchmark)."""

    subject: str
    outcome: str  # new, storm, repeat, regression, resolved, ignored, assigned, metric, stale,
    #               unrouted
    notice_key: str | None = None
    ticket: bool = False  # a ticket task was enqueued by rule


def notice_key(subject: str) -> str:
    return f"alert:{subject}"


def lane(key: str) -> str:
    """The task subject notice tasks of ``key`` share (their chat lane keeps them in order):
    the alert's subject, or the storm key (hashed when longer than the column)."""
    if key.startswith("alert:"):
        return key.removeprefix("alert:")[:SUBJECT_MAX]
    if len(key) <= SUBJECT_MAX:
        return key
    return "storm:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def enqueue_notice(conn: Connection, kind: str, key: str, view: str, now: datetime,
                   **payload: Any) -> None:
    """One chat task. Updates are coalesced: while an update of ``key`` waits, another adds
    nothing (the one waiting renders the latest state when it runs)."""
    once = f"{UPDATE}:{key}"[:200] if kind == UPDATE else None
    tasks.enqueue(conn, lane(key), kind, {"key": key, "view": view, **payload}, now=now,
                  once_key=once)


def merge(old: SentryAlert, new: SentryAlert) -> SentryAlert:
    """``new``, with what it lacks taken from ``old`` (an event alert has no count; a poll no
    tags), and the later ``last_seen`` / earlier ``first_seen`` of the two."""
    changes: dict[str, Any] = {}
    for f in fields(new):
        value = getattr(new, f.name)
        if f.name not in _KEEP and value in (None, "", (), {}):
            changes[f.name] = getattr(old, f.name)
    merged = replace(new, **changes)
    if old.last_seen and merged.last_seen and old.last_seen > merged.last_seen:
        merged = replace(merged, last_seen=old.last_seen)
    if old.first_seen and merged.first_seen and old.first_seen < merged.first_seen:
        merged = replace(merged, first_seen=old.first_seen)
    if old.count is not None and merged.count is not None and old.count > merged.count:
        merged = replace(merged, count=old.count)
    return merged


def status_of(alert: SentryAlert) -> str:
    if alert.action in (RESOLVED, IGNORED):
        return alert.action
    if alert.resource == Resource.ISSUE and alert.status in (RESOLVED, IGNORED) \
            and alert.action != "unresolved":
        return alert.status
    return UNRESOLVED


def decide(conn: Connection, alert: SentryAlert, settings: AlertsConfig, now: datetime,
           tickets: TicketHooks) -> Decision:
    """Decide what ``alert`` changes (the caller marks the inbox row done in this same
    transaction)."""
    route = route_for(settings, alert)
    issue = issues.get(conn, alert.subject, lock=True)
    if alert.resource == Resource.METRIC_ALERT:
        return _metric(conn, alert, issue, route, now)
    if issue is None:
        return _new(conn, alert, route, settings, now, tickets)
    merged = merge(issue.alert, alert)
    if alert.action == "assigned":
        issues.save(conn, merged, issue.status, now)
        if issue.notice_key:
            enqueue_notice(conn, THREAD, issue.notice_key, "assigned", now,
                           subject=alert.subject, assignee=alert.assignee)
        return Decision(alert.subject, "assigned", issue.notice_key)
    status = status_of(alert)
    if status in (RESOLVED, IGNORED):
        return _closed(conn, merged, issue, status, settings, now, tickets)
    if issue.status in (RESOLVED, IGNORED) and _comeback(alert, issue):
        return _regression(conn, merged, issue, route, settings, now, tickets)
    if not _newer(alert, issue):  # the same state by another path, or an old delivery
        issues.save(conn, merged, issue.status, now)
        if issue.notice_key:  # it may bring what the first lacked (counts, frames)
            enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                           subject=alert.subject)
        return Decision(alert.subject, "stale", issue.notice_key)
    issues.save(conn, merged, issue.status, now)
    if issue.notice_key is None:  # first seen resolved (or unrouted then): post it now
        return _first_post(conn, merged, route, settings, now, "repeat")
    enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                   subject=alert.subject)
    tickets.note_repeat(conn, alert.subject, now, settings.comment_every)
    return Decision(alert.subject, "repeat", issue.notice_key)


def _newer(alert: SentryAlert, issue: IssueRow) -> bool:
    """Is this delivery a repeat: a later ``lastSeen`` (an event's time; the API's once
    enriched) than known, or nothing to compare? ``issue.unresolved`` always is. Not a repeat:
    the event alert of the first event after its ``issue.created`` (Sentry sends both), a poll
    finding what a webhook brought, an event delivered after a later one."""
    if alert.resource == Resource.ISSUE and alert.action == "unresolved":
        return True
    if alert.last_seen is None or issue.last_seen is None:
        return alert.resource != Resource.POLL
    return alert.last_seen > issue.last_seen


def _comeback(alert: SentryAlert, issue: IssueRow) -> bool:
    """Is this delivery about an issue resolved or ignored here a regression? A new event
    always is (Sentry sends event alerts as they happen), as is ``issue.unresolved``; a poll
    or another issue webhook only with a later ``lastSeen``."""
    if alert.resource in (Resource.EVENT_ALERT, Resource.LEGACY):
        return True
    return _newer(alert, issue)


def _view(key: str) -> str:
    return "storm" if key.startswith("storm:") else "alert"


def _new(conn: Connection, alert: SentryAlert, route: Route | None, settings: AlertsConfig,
         now: datetime, tickets: TicketHooks) -> Decision:
    status = status_of(alert)
    if route is None or status != UNRESOLVED:
        issues.insert_new(conn, alert, status, now, notice_key=None, storm_key=None)
        return Decision(alert.subject, "unrouted" if route is None else status)
    verdict = storm.admit(conn, settings.storm, alert, now)
    key = verdict.storm_key or notice_key(alert.subject)
    issues.insert_new(conn, alert, status, now, notice_key=key, storm_key=verdict.storm_key)
    _post_or_join(conn, alert, route, verdict, key, now)
    ticket = wants_auto_ticket(settings.auto_ticket, alert, NEW) and tickets.want_ticket(
        conn, alert.subject, now, reason=NEW)
    return Decision(alert.subject, "new" if verdict.alone else "storm", key, ticket)


def _post_or_join(conn: Connection, alert: SentryAlert, route: Route,
                  verdict: storm.StormVerdict, key: str, now: datetime) -> None:
    if verdict.alone or verdict.opened:
        enqueue_notice(conn, POST, key, _view(key), now, subject=alert.subject,
                       channels=list(route.channels), mention=list(route.mention))
    else:
        enqueue_notice(conn, UPDATE, key, "storm", now, subject=alert.subject)


def _first_post(conn: Connection, alert: SentryAlert, route: Route | None,
                settings: AlertsConfig, now: datetime, outcome: str) -> Decision:
    if route is None:
        return Decision(alert.subject, "unrouted")
    key = notice_key(alert.subject)
    issues.set_notice(conn, alert.subject, key)
    enqueue_notice(conn, POST, key, "alert", now, subject=alert.subject,
                   channels=list(route.channels), mention=list(route.mention))
    return Decision(alert.subject, outcome, key)


def _closed(conn: Connection, alert: SentryAlert, issue: IssueRow, status: str,
            settings: AlertsConfig, now: datetime, tickets: TicketHooks) -> Decision:
    """Resolved or ignored in Sentry (or by ``alerts resolve``: :func:`set_local_status`)."""
    issues.save(conn, alert, status, now)
    if issue.status == status:  # Sentry confirming what a command did: nothing new to say
        return Decision(alert.subject, "stale", issue.notice_key)
    if issue.notice_key:
        enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                       subject=alert.subject)
    if status == RESOLVED and settings.comment_on_resolve:
        tickets.note_resolved(conn, alert.subject, now)
    return Decision(alert.subject, status, issue.notice_key)


def _regression(conn: Connection, alert: SentryAlert, issue: IssueRow, route: Route | None,
                settings: AlertsConfig, now: datetime, tickets: TicketHooks) -> Decision:
    issues.save(conn, alert, UNRESOLVED, now, regressed=True)
    tickets.note_regression(conn, alert.subject, now)
    ticket = wants_auto_ticket(settings.auto_ticket, alert, REGRESSED) and tickets.want_ticket(
        conn, alert.subject, now, reason=REGRESSED)
    if issue.notice_key is None:
        decision = _first_post(conn, alert, route, settings, now, "regression")
        return replace(decision, ticket=ticket)
    mention = list(route.mention) if route is not None else []
    enqueue_notice(conn, THREAD, issue.notice_key, "regression", now, subject=alert.subject,
                   was=issue.status, mention=mention)
    enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                   subject=alert.subject)
    return Decision(alert.subject, "regression", issue.notice_key, ticket)


def _metric(conn: Connection, alert: SentryAlert, issue: IssueRow | None, route: Route | None,
            now: datetime) -> Decision:
    status = RESOLVED if alert.action == "resolved" else UNRESOLVED
    if issue is None:
        key = notice_key(alert.subject) if route is not None else None
        issues.insert_new(conn, alert, status, now, notice_key=key, storm_key=None)
        if key is None or route is None:
            return Decision(alert.subject, "unrouted")
        enqueue_notice(conn, POST, key, "metric", now, subject=alert.subject,
                       channels=list(route.channels), mention=list(route.mention))
        return Decision(alert.subject, "metric", key)
    issues.save(conn, merge(issue.alert, alert), status, now)
    if issue.notice_key:
        enqueue_notice(conn, UPDATE, issue.notice_key, "metric", now, subject=alert.subject)
    return Decision(alert.subject, "metric", issue.notice_key)


def set_local_status(conn: Connection, subject: str, status: str, now: datetime,
                     settings: AlertsConfig, tickets: TicketHooks) -> IssueRow | None:
    """``alerts resolve``/``alerts ignore`` after Sentry accepted the change: the row, the
    notice and the ticket follow (None: unknown subject)."""
    issue = issues.get(conn, subject, lock=True)
    if issue is None:
        return None
    if issue.status != status:
        issues.set_status(conn, subject, status, now)
        if issue.notice_key:
            enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                           subject=subject)
        if status == RESOLVED and settings.comment_on_resolve:
            tickets.note_resolved(conn, subject, now)
    return issues.get(conn, subject)


def refresh_notice(conn: Connection, subject: str, now: datetime) -> bool:
    """Queue an update of the subject's notice (a ticket was opened: show its link)."""
    issue = issues.get(conn, subject)
    if issue is None or issue.notice_key is None:
        return False
    enqueue_notice(conn, UPDATE, issue.notice_key, _view(issue.notice_key), now,
                   subject=subject)
    return True
