"""Durable work decided by an alert: chat notices and GitLab/Sentry calls, retried with
backoff from the database across restarts (docs/alerts.md, "Failures").

Processing an inbox row is one transaction: the issue's row changes and the tasks it needs are
enqueued together, so a crash never leaves a decision half-made. :class:`TaskRunner` then
performs due tasks in id order. Tasks of one subject form two *lanes*, chat (kinds starting
with ``notice.``) and GitLab/Sentry (the rest): a task that must wait holds back the later
tasks of its lane (a thread reply never overtakes its post), never the other lane.

A handler raises :class:`Retry` (try again later; ``retry_after`` when the service said when)
or :class:`GiveUp` (never will work: recorded as failed, shown by ``alerts pending``); any other
exception is logged once with its traceback and retried. A task still failing after
``alerts.retry_hours`` is failed for good. A task performed just before a crash, and not yet
recorded, is performed again: handlers are idempotent (posts by notice key, tickets by the
mapping table and the marker search) or harmless to repeat (a message update).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import clock
from bot.alerts.tables import DONE, FAILED, PENDING, tasks
from bot.db import as_utc
from bot.secrets import masker

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

ERROR_MAX = 500
BACKOFF_FIRST = 15.0  # seconds before the second attempt; doubles up to BACKOFF_CAP
BACKOFF_CAP = 900.0
BATCH = 100  # due tasks fetched per pass


class Retry(Exception):
    """Try again later (``retry_after``: seconds the service asked for)."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 said_in_thread: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.said_in_thread = said_in_thread  # the handler told the alert's thread about it


class GiveUp(Exception):
    """This task can never succeed (a 401, a 404, a config problem): failed, not retried."""


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    subject: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    said_in_thread: bool
    created_at: datetime
    next_at: datetime
    last_error: str | None

    @property
    def lane(self) -> str:
        return lane_of(self.kind)


Handler = Callable[["Bot", Task], Awaitable[None]]


def enqueue(conn: Connection, subject: str, kind: str, payload: Mapping[str, Any] | None = None,
            *, now: datetime, once_key: str | None = None, due: datetime | None = None) -> bool:
    """Add a task; with ``once_key``, only when no unfinished task has that key (False then)."""
    values = {"subject": subject, "kind": kind, "payload": json.dumps(dict(payload or {})),
              "once_key": once_key, "state": PENDING, "attempts": 0,
              "next_at": due or now, "created_at": now, "said_in_thread": False}
    if once_key is None:
        conn.execute(insert(tasks).values(**values))
        return True
    try:
        with conn.begin_nested():
            conn.execute(insert(tasks).values(**values))
    except IntegrityError:
        return False
    return True


def pending_with(conn: Connection, once_key: str) -> Task | None:
    row = conn.execute(select(tasks).where(tasks.c.once_key == once_key)).first()
    return _task(row) if row is not None else None


def due(conn: Connection, now: datetime, limit: int = BATCH) -> list[Task]:
    rows = conn.execute(select(tasks).where(tasks.c.state == PENDING, tasks.c.next_at <= now)
                        .order_by(tasks.c.id).limit(limit))
    return [_task(row) for row in rows]


def blocked_lanes(conn: Connection, before: datetime) -> dict[tuple[str, str], int]:
    """(subject, lane) -> the id of its first pending task not due before ``before``: tasks
    of that lane with a larger id wait for it."""
    rows = conn.execute(select(tasks.c.subject, tasks.c.kind, func.min(tasks.c.id))
                        .where(tasks.c.state == PENDING, tasks.c.next_at > before)
                        .group_by(tasks.c.subject, tasks.c.kind))
    first: dict[tuple[str, str], int] = {}
    for subject, kind, task_id in rows:
        lane = (subject, lane_of(kind))
        first[lane] = min(task_id, first.get(lane, task_id))
    return first


def lane_of(kind: str) -> str:
    return "chat" if kind.startswith("notice.") else "calls"


def unfinished(conn: Connection, limit: int = 200) -> list[Task]:
    """Pending tasks, and failed ones (newest first after them), for ``alerts pending``."""
    rows = conn.execute(select(tasks).where(tasks.c.state != DONE)
                        .order_by((tasks.c.state == FAILED), tasks.c.id).limit(limit))
    return [_task(row) for row in rows]


def count_pending(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(tasks)
                        .where(tasks.c.state == PENDING)).scalar_one()


def mark_done(conn: Connection, task_id: int, now: datetime) -> None:
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(
        state=DONE, once_key=None, done_at=now, attempts=tasks.c.attempts + 1))


def mark_retry(conn: Connection, task_id: int, next_at: datetime, error: str, *,
               said_in_thread: bool) -> None:
    values: dict[str, Any] = {"next_at": next_at, "last_error": error[:ERROR_MAX],
                              "attempts": tasks.c.attempts + 1}
    if said_in_thread:
        values["said_in_thread"] = True
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))


def mark_failed(conn: Connection, task_id: int, error: str, now: datetime) -> None:
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(
        state=FAILED, once_key=None, done_at=now, last_error=error[:ERROR_MAX],
        attempts=tasks.c.attempts + 1))


def backoff(attempts: int, first: float = BACKOFF_FIRST) -> float:
    """Seconds before the next try after ``attempts`` failed ones (1 -> 15 s, 2 -> 30 s...)."""
    return min(first * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


class TaskRunner:
    """Performs due tasks; one runner at a time per database (the caller holds the lease)."""

    def __init__(self, bot: Bot, handlers: Mapping[str, Handler], *,
                 give_up_after: timedelta, first_backoff: float = BACKOFF_FIRST) -> None:
        self.bot = bot
        self.first_backoff = first_backoff
        self.handlers = dict(handlers)
        self.give_up_after = give_up_after

    async def run_due(self) -> int:
        """One pass over the due tasks; returns how many finished (done or failed)."""
        now = clock.utcnow()
        # A lane is held by its first unfinished task: one waiting for a retry (not due) or
        # one that fails in this pass; later tasks of the lane never overtake it.
        waiting = await self.bot.database.run(blocked_lanes, now)
        held: set[tuple[str, str]] = set()
        finished = 0
        for task in await self.bot.database.run(due, now):
            lane = (task.subject, task.lane)
            if lane in held or waiting.get(lane, task.id) < task.id:
                continue
            if await self._perform(task):
                finished += 1
            else:
                held.add(lane)
        return finished

    async def _perform(self, task: Task) -> bool:
        handler = self.handlers.get(task.kind)
        database = self.bot.database
        if handler is None:
            await database.run(mark_failed, task.id, f"no handler for {task.kind!r}",
                               clock.utcnow())
            return True
        try:
            await handler(self.bot, task)
        except GiveUp as exc:
            log.error("alerts: %s for %s failed for good: %s", task.kind, task.subject,
                      masker.mask(str(exc)))
            await database.run(mark_failed, task.id, masker.mask(str(exc)), clock.utcnow())
            return True
        except Retry as exc:
            return await self._again(task, masker.mask(str(exc)), exc.retry_after,
                                     exc.said_in_thread)
        except Exception as exc:
            log.exception("alerts: %s for %s raised; retried", task.kind, task.subject)
            return await self._again(task, masker.mask(f"{type(exc).__name__}: {exc}"), None,
                                     False)
        await database.run(mark_done, task.id, clock.utcnow())
        return True

    async def _again(self, task: Task, error: str, retry_after: float | None,
                     said: bool) -> bool:
        now = clock.utcnow()
        if now - task.created_at >= self.give_up_after:
            log.error("alerts: %s for %s still failing after %s; given up: %s", task.kind,
                      task.subject, self.give_up_after, error)
            await self.bot.database.run(mark_failed, task.id, error, now)
            return True
        # The service's own Retry-After is honoured as said; otherwise exponential backoff.
        wait = retry_after if retry_after is not None else backoff(task.attempts + 1,
                                                                    self.first_backoff)
        await self.bot.database.run(mark_retry, task.id, now + timedelta(seconds=wait), error,
                                    said_in_thread=said)
        return False


def _task(row: Any) -> Task:
    return Task(row.id, row.subject, row.kind, json.loads(row.payload or "{}"), row.state,
                row.attempts, bool(row.said_in_thread), as_utc(row.created_at),  # type: ignore[arg-type]
                as_utc(row.next_at), row.last_error)  # type: ignore[arg-type]
