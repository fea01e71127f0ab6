"""GitLab issues for Sentry issues: exactly one per Sentry issue (docs/alerts.md, "GitLab").

The ``alerts_tickets`` row (primary key: the subject) is the truth. Every attempt of a
``ticket`` task first looks there, then searches GitLab for the description marker
``<!-- sentry-issue:<id> -->`` (a database restored from an old backup, a crash between
GitLab's answer and our write, a 5xx or a timeout after GitLab created it), and creates only
when neither knows one. Two workers racing both insert the mapping; the second insert
conflicts, and the loser closes its own GitLab issue as a duplicate of the winner's.

The pipeline (``bot/alerts/service.py``) calls :func:`want_ticket`, :func:`note_repeat`,
:func:`note_regression` and :func:`note_resolved` inside its decision transaction; the task
runner performs the kinds of :data:`HANDLERS` later, retrying transient failures (429, 5xx,
timeouts) with backoff and giving up on the others (401, 403, 404, configuration).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import clock
from bot.alerts import model
from bot.alerts.config import ALERTS, SENTRY, AlertsConfig
from bot.alerts.description import marker_for, render_description, when
from bot.alerts.sentry_api import SentryApi, SentryError
from bot.alerts.tables import issues, tasks, tickets
from bot.alerts.tasks import GiveUp, Handler, Retry, Task, enqueue
from bot.db import as_utc
from bot.integrations.gitlab import GITLAB, GitLabClient, GitLabConfig, GitLabError, GitLabIssue
from bot.markup import user

if TYPE_CHECKING:
    from bot.config import Config
    from bot.core import Bot

log = logging.getLogger(__name__)

KINDS = ("ticket", "comment", "reopen", "resolved_note", "link_back")
EVENT_TIMEOUT = 5.0  # seconds for the latest event (the description does without it)


@dataclass(frozen=True, slots=True)
class TicketRow:
    subject: str
    project: str
    iid: int
    web_url: str
    state: str
    created_at: datetime
    commented_at: datetime | None
    repeats_uncommented: int
    linked_back: bool

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


# ---------------------------------------------------------------- called by the pipeline


def ticket_of(conn: Connection, subject: str) -> TicketRow | None:
    row = conn.execute(select(tickets).where(tickets.c.subject == subject)).first()
    if row is None:
        return None
    return TicketRow(row.subject, row.gitlab_project, row.iid, row.web_url, row.state,
                     as_utc(row.created_at), as_utc(row.commented_at),  # type: ignore[arg-type]
                     row.repeats_uncommented, bool(row.linked_back))


def want_ticket(conn: Connection, subject: str, now: datetime, *, reason: str) -> bool:
    """Queue the one ``ticket`` task of ``subject``; False when it is mapped or queued."""
    if ticket_of(conn, subject) is not None:
        return False
    return enqueue(conn, subject, "ticket", {"reason": reason}, now=now,
                   once_key=f"ticket:{subject}")


def note_repeat(conn: Connection, subject: str, now: datetime, comment_every: float) -> None:
    """Count one more event of a ticketed issue; one ``comment`` task sums them up, due
    ``comment_every`` seconds after the last comment (or the issue's creation)."""
    row = ticket_of(conn, subject)
    if row is None:
        return
    conn.execute(update(tickets).where(tickets.c.subject == subject).values(
        repeats_uncommented=tickets.c.repeats_uncommented + 1))
    _queue_comment(conn, subject, now, row.commented_at or row.created_at, comment_every)


def note_regression(conn: Connection, subject: str, now: datetime) -> None:
    """Reopen the ticket with a comment (when there is one; the pipeline decides on a new
    ticket by its rules)."""
    if ticket_of(conn, subject) is not None:
        enqueue(conn, subject, "reopen", {"at": now.isoformat()}, now=now,
                once_key=f"reopen:{subject}")


def note_resolved(conn: Connection, subject: str, now: datetime) -> None:
    """Say on the ticket that Sentry resolved it (the task checks alerts.comment_on_resolve)."""
    if ticket_of(conn, subject) is not None:
        enqueue(conn, subject, "resolved_note", {"at": now.isoformat()}, now=now)


def gitlab_ready(config: Config) -> str | None:
    """What keeps tickets from being opened, in words; None when nothing does."""
    settings = GITLAB.of(config)
    if settings is None:
        return "GitLab is not configured: load handlers.restart_gitlab (the gitlab: section)"
    missing = [f"gitlab.{name}" for name in ("url", "token", "project")
               if not getattr(settings, name)]
    if missing:
        return f"GitLab is not configured: {', '.join(missing)} missing"
    return None


# ---------------------------------------------------------------- database steps


def _queue_comment(conn: Connection, subject: str, now: datetime, last: datetime,
                   comment_every: float) -> None:
    due = max(now, last + timedelta(seconds=comment_every))
    enqueue(conn, subject, "comment", now=now, once_key=f"comment:{subject}", due=due)


def _issue_state(conn: Connection, subject: str) -> tuple[model.SentryAlert, str | None] | None:
    row = conn.execute(select(issues.c.alert, issues.c.notice_key)
                       .where(issues.c.subject == subject)).first()
    return (model.load(row.alert), row.notice_key) if row is not None else None


def _record(conn: Connection, subject: str, project: str, issue: GitLabIssue, web_url: str,
            now: datetime, link_back: bool, verb: str) -> tuple[TicketRow, bool]:
    """Insert the mapping unless one exists; (the mapping, whether ours is it). In the same
    transaction: the link for the alert's thread and its notice (said exactly once, after
    the alert's post: the chat lane), and the link back to Sentry."""
    try:
        with conn.begin_nested():
            conn.execute(insert(tickets).values(
                subject=subject, gitlab_project=project, iid=issue.iid, web_url=web_url,
                state="closed" if issue.state == "closed" else "opened", created_at=now,
                repeats_uncommented=0, linked_back=False))
    except IntegrityError:
        return ticket_of(conn, subject), False  # type: ignore[return-value]
    if link_back:
        enqueue(conn, subject, "link_back", now=now, once_key=f"link_back:{subject}")
    row = ticket_of(conn, subject)
    assert row is not None
    from bot.alerts.decide import refresh_notice  # decide queues tickets: imported late

    say_in(conn, subject, f"GitLab issue {row.ref} {verb}: {row.web_url}", now)
    refresh_notice(conn, subject, now)
    return row, True


def _commented(conn: Connection, subject: str, task_id: int, counted: int, now: datetime,
               comment_every: float) -> None:
    """The repeats are said: keep those that came meanwhile, and give this task's once_key
    up now (not when it is marked done) so they get their own comment."""
    conn.execute(update(tickets).where(tickets.c.subject == subject).values(
        repeats_uncommented=tickets.c.repeats_uncommented - counted, commented_at=now))
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(once_key=None))
    left = conn.execute(select(tickets.c.repeats_uncommented)
                        .where(tickets.c.subject == subject)).scalar_one()
    if left > 0:
        _queue_comment(conn, subject, now, now, comment_every)


def _change(conn: Connection, subject: str, **values: Any) -> None:
    conn.execute(update(tickets).where(tickets.c.subject == subject).values(**values))


# ---------------------------------------------------------------- helpers of the handlers


def _alerts_settings(bot: Bot) -> AlertsConfig:
    return ALERTS.of(bot.config) or AlertsConfig()


def _gitlab(bot: Bot) -> tuple[GitLabConfig, GitLabClient, str]:
    problem = gitlab_ready(bot.config)
    if problem is not None:
        raise GiveUp(problem)
    settings = GITLAB.of(bot.config)
    assert settings is not None and settings.project is not None
    return settings, GitLabClient.from_config(settings), settings.project


def sentry_api(bot: Bot) -> SentryApi | None:
    """The Sentry API when ``sentry.token`` and ``sentry.org`` are set."""
    return SentryApi.from_config(SENTRY.of(bot.config))


def issue_url(settings: GitLabConfig, project: str, issue: GitLabIssue) -> str:
    """GitLab's ``web_url`` when it points into the configured instance (it is posted as a
    link), else the address built from the project."""
    base = (settings.url or "").rstrip("/")
    if issue.web_url.startswith(base + "/") and " " not in issue.web_url:
        return issue.web_url
    return f"{base}/{project}/-/issues/{issue.iid}"


def say_in(conn: Connection, subject: str, text: str, now: datetime, *,
           once_for: int | None = None) -> bool:
    """Queue a reply in the alert's thread on the notice's chat lane (so it follows the post,
    however late that is; a storm's lane when the alert is in its summary); False when the
    alert has no notice. ``once_for``: a task id; said once for it, noted on it in this
    transaction (a crash before its Retry is recorded does not say it twice)."""
    from bot.alerts.decide import THREAD, enqueue_notice  # decide queues tickets: imported late

    if once_for is not None and conn.execute(select(tasks.c.said_in_thread)
                                             .where(tasks.c.id == once_for)).scalar():
        return False
    key = conn.execute(select(issues.c.notice_key)
                       .where(issues.c.subject == subject)).scalar_one_or_none()
    if not key:
        return False
    enqueue_notice(conn, THREAD, key, "text", now, subject=subject, text=text)
    if once_for is not None:
        conn.execute(update(tasks).where(tasks.c.id == once_for).values(said_in_thread=True))
    return True


async def say(bot: Bot, subject: str, text: str, *, once_for: int | None = None) -> bool:
    """:func:`say_in` in its own transaction."""
    return await bot.database.run(say_in, subject, text, clock.utcnow(), once_for=once_for)


def _retry_or_give_up(exc: GitLabError, what: str) -> Retry | GiveUp:
    if exc.transient:
        return Retry(f"{what}: {exc}", retry_after=exc.retry_after)
    return GiveUp(f"{what}: {exc}")


def _at(task: Task, alert: model.SentryAlert | None) -> datetime:
    text = task.payload.get("at")
    if isinstance(text, str):
        return datetime.fromisoformat(text)
    return (alert.last_seen if alert is not None else None) or clock.utcnow()


async def _latest_event(bot: Bot, alert: model.SentryAlert) -> dict[str, Any] | None:
    """The latest event from the Sentry API for the frames; None when not configured or
    failing (the description then shows the frames the alert carried)."""
    if not alert.issue_id:
        return None
    try:
        api = sentry_api(bot)
        if api is None:
            return None
        event = await asyncio.wait_for(api.latest_event(alert.issue_id), EVENT_TIMEOUT)
    except Exception as exc:  # the ticket matters more than its frames
        log.info("alerts: no latest event for %s (%s); using the alert's frames",
                 alert.subject, type(exc).__name__)
        return None
    return event if isinstance(event, dict) else None


# ---------------------------------------------------------------- the task kinds


async def open_ticket(bot: Bot, task: Task) -> None:
    """``ticket``: the mapping, else the marker in GitLab, else a new issue; then the link in
    the alert's thread and, when configured, in Sentry."""
    gitlab, client, project = _gitlab(bot)
    known = await bot.database.run(_issue_state, task.subject)
    if known is None:
        raise GiveUp(f"no alert is known for {task.subject}: nothing to open an issue from")
    alert, notice_key = known
    if await bot.database.run(ticket_of, task.subject) is not None:
        return  # recorded (and said, in that transaction) before
    try:
        issue, found = await _find_or_create(bot, client, gitlab, project, alert)
    except GitLabError as exc:
        raise await _not_opened(bot, task, exc, notice_key) from None
    settings = _alerts_settings(bot)
    link_back = settings.link_back and sentry_api(bot) is not None
    url = issue_url(gitlab, project, issue)
    row, ours = await bot.database.run(_record, task.subject, project, issue, url,
                                       clock.utcnow(), link_back,
                                       "found" if found else "opened")
    if not ours:  # another worker recorded one first and says so in the thread
        if row.iid != issue.iid:
            await _close_duplicate(client, project, issue, row)
        return
    log.info("alerts: %s -> GitLab issue %s (%s)", task.subject, row.ref,
             "found by its marker" if found else "opened")


async def _find_or_create(bot: Bot, client: GitLabClient, gitlab: GitLabConfig, project: str,
                          alert: model.SentryAlert) -> tuple[GitLabIssue, bool]:
    marker = marker_for(alert.subject)
    found = await client.find_issue_with(project, marker)
    if found is not None:
        return found, True
    event = await _latest_event(bot, alert)
    job = alert.condor_job
    description = render_description(alert, event, _alerts_settings(bot),
                                     f"condor analyze {job}" if job else None,
                                     directories=bot.renderer.directories)
    title = f"{alert.short_id}: {alert.title}" if alert.short_id else alert.title
    return await client.create_issue(project, title, description, list(gitlab.labels)), False


async def _not_opened(bot: Bot, task: Task, exc: GitLabError,
                      notice_key: str | None) -> Retry | GiveUp:
    """Tell the thread (a transient failure: once) that the issue is not there yet."""
    if not exc.transient:
        await say(bot, task.subject, f"GitLab issue could not be opened: {user(exc)}")
        return GiveUp(f"GitLab issue for {task.subject} not opened: {exc}")
    said = not task.said_in_thread and await say(
        bot, task.subject, f"GitLab issue not opened yet: {user(exc)}; retrying",
        once_for=task.id)
    return Retry(f"GitLab issue for {task.subject} not opened yet: {exc}",
                 retry_after=exc.retry_after, said_in_thread=said)


async def _close_duplicate(client: GitLabClient, project: str, issue: GitLabIssue,
                           kept: TicketRow) -> None:
    """Another worker mapped its issue first: ours is closed as its duplicate (best effort:
    the mapping is already right)."""
    try:
        await client.add_note(project, issue.iid, f"Duplicate of #{kept.iid}, opened at the "
                              "same time by another shiftbot worker.")
        await client.set_issue_state(project, issue.iid, "close")
    except GitLabError as exc:
        log.warning("alerts: duplicate GitLab issue %s#%s left open: %s", project, issue.iid,
                    exc)


async def comment_repeats(bot: Bot, task: Task) -> None:
    """``comment``: one note for the events counted since the last one."""
    row = await bot.database.run(ticket_of, task.subject)
    if row is None or row.repeats_uncommented <= 0:
        return
    _, client, _ = _gitlab(bot)
    known = await bot.database.run(_issue_state, task.subject)
    alert = known[0] if known else None
    count = row.repeats_uncommented
    last = when(alert.last_seen) if alert else "-"
    total = alert.count if alert and alert.count is not None else "?"
    body = (f"{count} more event{'s' if count != 1 else ''} since "
            f"{when(row.commented_at or row.created_at)} (last seen {last}, total count "
            f"{total}).")
    try:
        await client.add_note(row.project, row.iid, body)
    except GitLabError as exc:
        raise _retry_or_give_up(exc, f"comment on {row.ref}") from None
    await bot.database.run(_commented, task.subject, task.id, count, clock.utcnow(),
                           _alerts_settings(bot).comment_every)


async def reopen_ticket(bot: Bot, task: Task) -> None:
    """``reopen``: a regression reopens the issue, says when, and tells the thread."""
    row = await bot.database.run(ticket_of, task.subject)
    if row is None:
        return
    _, client, _ = _gitlab(bot)
    known = await bot.database.run(_issue_state, task.subject)
    try:
        await client.set_issue_state(row.project, row.iid, "reopen")
        await client.add_note(row.project, row.iid, "Regressed in Sentry at "
                              f"{when(_at(task, known[0] if known else None))}: reopened.")
    except GitLabError as exc:
        raise _retry_or_give_up(exc, f"reopen {row.ref}") from None
    await bot.database.run(_change, task.subject, state="opened")
    await say(bot, task.subject, f"GitLab issue {row.ref} reopened: "
              f"{row.web_url}")


async def note_resolution(bot: Bot, task: Task) -> None:
    """``resolved_note``: Sentry resolved the issue (when alerts.comment_on_resolve)."""
    row = await bot.database.run(ticket_of, task.subject)
    if row is None or not _alerts_settings(bot).comment_on_resolve:
        return
    _, client, _ = _gitlab(bot)
    known = await bot.database.run(_issue_state, task.subject)
    body = f"Resolved in Sentry at {when(_at(task, known[0] if known else None))}."
    try:
        await client.add_note(row.project, row.iid, body)
    except GitLabError as exc:
        raise _retry_or_give_up(exc, f"comment on {row.ref}") from None


async def link_back(bot: Bot, task: Task) -> None:
    """``link_back``: the GitLab issue as the Sentry issue's external issue."""
    row = await bot.database.run(ticket_of, task.subject)
    api = sentry_api(bot)
    if row is None or row.linked_back or api is None or not _alerts_settings(bot).link_back:
        return
    known = await bot.database.run(_issue_state, task.subject)
    alert = known[0] if known else None
    if alert is None or not alert.issue_id or not alert.installation_uuid:
        raise GiveUp(f"cannot link {row.ref} in Sentry: no integration installation is known "
                     "for this issue (only Integration Platform webhooks tell it)")
    try:
        await api.link_external(alert.installation_uuid, alert.issue_id, row.web_url,
                                row.project, row.ref)
    except SentryError as exc:
        if exc.transient:
            raise Retry(f"link {row.ref} in Sentry: {exc}", retry_after=exc.retry_after) from None
        raise GiveUp(f"link {row.ref} in Sentry: {exc}") from None
    await bot.database.run(_change, task.subject, linked_back=True)


HANDLERS: dict[str, Handler] = {
    "ticket": open_ticket,
    "comment": comment_repeats,
    "reopen": reopen_ticket,
    "resolved_note": note_resolution,
    "link_back": link_back,
}
