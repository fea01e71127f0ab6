"""The chat lane's task handlers: ``notice.post``, ``notice.update``, ``notice.thread``
(bot/alerts/tasks.py runs them; docs/alerts.md, "Failures").

A task says which notice and what to show (``view``); the Reply is rendered here from the
database as it is now, so the message shows the latest count, state and ticket link however
late the task runs. ``bot.notices`` stores the message and delivers it with its own retries;
what can fail here is the notices call itself: an unknown key or channel alias can never
work (GiveUp), a platform that cannot resolve a channel now is retried (Retry).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from bot import clock
from bot.alerts import issues, posting, storm, tables
from bot.alerts.config import ALERTS, AlertsConfig
from bot.alerts.decide import POST, THREAD, UPDATE
from bot.alerts.tables import PENDING
from bot.alerts.tasks import GiveUp, Handler, Retry, Task
from bot.messaging.mentions import UnknownMention, check_names
from bot.messaging.port import TransientError
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)


def ticket_url(conn: Connection, subject: str) -> str | None:
    """The GitLab issue's link when one is mapped."""
    from bot.alerts.tickets import ticket_of

    ticket = ticket_of(conn, subject)
    return getattr(ticket, "web_url", None) if ticket is not None else None


def _render(conn: Connection, payload: dict[str, Any], window: float, zone: str,
            now: datetime) -> Reply:
    """The Reply a task's ``view`` stands for; KeyError when its rows are gone (pruned)."""
    view, subject = payload["view"], payload.get("subject", "")
    if view == "text":  # a line for the thread (tickets: the GitLab link, a failure)
        return Reply(text=str(payload["text"]))
    if view == "storm":
        found = storm.load(conn, payload["key"])
        if found is None:
            raise KeyError(payload["key"])
        return posting.storm_reply(found, issues.many(conn, found.subjects), window, zone, now)
    issue = issues.get(conn, subject)
    if issue is None:
        raise KeyError(subject)
    if view == "alert":
        return posting.alert_reply(issue, zone, now, ticket_url=ticket_url(conn, subject))
    if view == "metric":
        return posting.metric_reply(issue, zone, now)
    if view == "regression":
        return posting.regression_reply(issue, payload.get("was", "resolved"), zone, now)
    if view == "assigned":
        return posting.assigned_reply(issue, payload.get("assignee"))
    raise ValueError(f"unknown notice view {view!r}")


async def render(bot: Bot, payload: dict[str, Any]) -> Reply:
    settings = ALERTS.of(bot.config) or AlertsConfig()
    return await bot.database.run(_render, payload, settings.storm.window,
                                  bot.config.bot.timezone, clock.utcnow())


def mention_names(bot: Bot, names: list[str]) -> list[str]:
    """The names the notices accept; a role nobody grants now is left out (logged), so the
    alert still goes out."""
    accepted: list[str] = []
    for name in names:
        try:
            accepted += check_names([name], bot.gate)
        except UnknownMention as exc:
            log.warning("alerts notice: %s; not mentioned", exc)
    return accepted


async def _perform(bot: Bot, task: Task) -> None:
    payload = task.payload
    key = payload["key"]
    try:
        reply = await render(bot, payload)
    except (KeyError, ValueError) as exc:
        raise GiveUp(f"nothing to show for {key}: {exc}") from None
    try:
        if task.kind == POST:
            await bot.notices.post(payload["channels"], reply, key=key,
                                   mention=mention_names(bot, payload.get("mention", [])))
        elif task.kind == UPDATE:
            await bot.notices.update(key, reply)
        else:
            await bot.notices.thread(key, reply,
                                     mention=mention_names(bot, payload.get("mention", [])))
    except TransientError as exc:
        raise Retry(str(exc)) from None
    except (KeyError, ValueError) as exc:  # an unknown notice key or channel alias
        if task.kind != POST and await bot.database.run(_post_waiting, task):
            # Its post is still queued (waiting for a retry): this waits behind it.
            raise Retry(f"waiting for the post of {key}") from None
        raise GiveUp(f"{task.kind} {key}: {exc}") from None


def _post_waiting(conn: Connection, task: Task) -> bool:
    """Is an earlier post of the same lane still pending (not due yet)? The task runner holds
    a lane only behind tasks due in the same pass."""
    c = tables.tasks.c
    return conn.execute(select(c.id).where(
        c.subject == task.subject, c.kind == POST, c.state == PENDING, c.id < task.id)
        .limit(1)).first() is not None


HANDLERS: dict[str, Handler] = {POST: _perform, UPDATE: _perform, THREAD: _perform}
