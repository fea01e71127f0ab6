"""Shared pieces of the GitLab ticket tests (no tests here): a bot with the alerts tables and
the ``gitlab:`` section pointing at the fake GitLab, alerts_issues rows inserted directly (the
pipeline normally writes them), a notice to thread into, and the task runner (with the chat
lane's handlers: what a ticket task says in the thread is a ``notice.*`` task that runs in a
later pass)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CORE_HANDLERS
from fakes.gitlab import FakeGitLab
from notice_platform import FakePlatform
from sqlalchemy import Connection, insert, select, update

from bot.alerts import model, tables, tickets
from bot.alerts.config import AlertsConfig, SentryConfig
from bot.alerts.model import Frame, Resource, SentryAlert
from bot.alerts.tasks import Task, TaskRunner, _task
from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.reply import Reply

TOKEN = "glpat-shiftbot-test-token"
PROJECT = "emfollow/gwcelery"
HANDLERS = [*CORE_HANDLERS, "handlers.restart_gitlab"]
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    clock = ManualClock(START)
    with use_clock(clock):
        yield clock


def gitlab_section(fake: FakeGitLab, **changes: Any) -> dict[str, Any]:
    section = {"url": fake.url, "token": TOKEN, "project": PROJECT,
               "labels": ["sentry", "shiftbot"], "timeout_seconds": 0.5}
    section.update(changes)
    return {key: value for key, value in section.items() if value is not None}


async def ticket_bot(make_bot: Any, fake: FakeGitLab | None, *,
                     alerts: dict[str, Any] | None = None, sentry: dict[str, Any] | None = None,
                     **gitlab: Any) -> Bot:
    """A bot whose gitlab: section points at ``fake`` (None: no gitlab: section at all)."""
    config: dict[str, Any] = {"bot": {"handlers": HANDLERS}, "notices": {"poll_seconds": 0.05}}
    if fake is not None:
        config["gitlab"] = gitlab_section(fake, **gitlab)
    bot: Bot = await make_bot(config)
    await bot.database.run(tables.create_tables)
    # The alerts:/sentry: sections are declared by handlers/alerts*.py (the pipeline's); set
    # them directly so these tests need nothing but the tickets module.
    bot.config.feature_sections["alerts"] = AlertsConfig(**(alerts or {}))
    bot.config.feature_sections["sentry"] = SentryConfig(**(sentry or {}))
    return bot


def alert(issue_id: str = "4711", **changes: Any) -> SentryAlert:
    values: dict[str, Any] = {
        "resource": Resource.ISSUE, "action": "created", "dedupe_key": f"issue:{issue_id}",
        "issue_id": issue_id, "short_id": "GWCELERY-1Z",
        "title": "TimeoutError: the task took too long",
        "culprit": "gwcelery.tasks.orchestrator in handle", "level": "error",
        "status": "unresolved", "project": "gwcelery", "environment": "production",
        "release": "gwcelery@2.5.0", "first_seen": START - timedelta(hours=1),
        "last_seen": START, "count": 3, "user_count": 0,
        "web_url": f"https://sentry.example.org/organizations/ligo/issues/{issue_id}/",
        "tags": (("htcondor.cluster_id", "123456.0"), ("server_name", "emfollow")),
        "frames": (Frame("gwcelery/tasks/orchestrator.py", "handle", 88, True,
                         "raise TimeoutError('too long')"),),
        "installation_uuid": "65027794-169a-4042-80d0-808ece377141",
    }
    values.update(changes)
    return SentryAlert(**values)


def _put_issue(conn: Connection, item: SentryAlert, notice_key: str | None,
               now: datetime) -> None:
    conn.execute(insert(tables.issues).values(
        subject=item.subject, issue_id=item.issue_id, short_id=item.short_id,
        project=item.project, environment=item.environment, level=item.level,
        status=item.status or "unresolved", title=item.title, count=item.count,
        first_seen=item.first_seen, last_seen=item.last_seen, deliveries=1, regressions=0,
        notice_key=notice_key, alert=model.dump(item), created_at=now, updated_at=now))


async def add_issue(bot: Bot, item: SentryAlert, notice_key: str | None = None) -> None:
    await bot.database.run(_put_issue, item, notice_key, START)


async def with_notice(bot: Bot, item: SentryAlert) -> tuple[FakePlatform, str]:
    """A platform and the alert's notice (already delivered): thread replies land there."""
    platform = FakePlatform("fake", {"ops": "C-OPS", "alerts": "C-ALERTS"})
    bot.platforms["fake"] = platform
    await bot.notices.start()
    key = f"alert:{item.subject}"
    await bot.notices.post("alerts", Reply(text=f"Sentry: {item.title}"), key=key)
    await bot.notices.delivered(key, timeout=5)
    await bot.database.run(lambda conn: conn.execute(
        update(tables.issues).where(tables.issues.c.subject == item.subject)
        .values(notice_key=key)))
    return platform, key


def thread_texts(platform: FakePlatform) -> list[str]:
    return [m.text for m in platform.messages if m.ref.thread_id]


def runner(bot: Bot) -> TaskRunner:
    # The thread messages of tickets are chat-lane tasks (bot/alerts/noticetasks.py).
    from bot.alerts import noticetasks

    return TaskRunner(bot, {**tickets.HANDLERS, **noticetasks.HANDLERS},
                      give_up_after=timedelta(hours=48))


async def drain(work: TaskRunner, passes: int = 10) -> int:
    """Passes until one finishes nothing (tasks queued by tasks run in the next pass); how
    many finished in all."""
    finished = 0
    for _ in range(passes):
        done = await work.run_due()
        if done == 0:
            return finished
        finished += done
    raise AssertionError(f"tasks still finishing after {passes} passes")


def of_kind(found: list[Task], *kinds: str) -> list[Task]:
    return [t for t in found if t.kind in kinds]


async def the_ticket_task(bot: Bot) -> Task:
    [task] = of_kind(await all_tasks(bot), "ticket")
    return task


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait (for real: the notices deliverer runs on its own) until ``predicate()``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def all_tasks(bot: Bot) -> list[Task]:
    rows = await bot.database.run(
        lambda conn: list(conn.execute(select(tables.tasks).order_by(tables.tasks.c.id))))
    return [_task(row) for row in rows]


async def mapping(bot: Bot, subject: str) -> tickets.TicketRow | None:
    return await bot.database.run(tickets.ticket_of, subject)


async def enqueue_ticket(bot: Bot, subject: str, now: datetime = START) -> bool:
    return await bot.database.run(tickets.want_ticket, subject, now, reason="test")


def payload(task: Task) -> str:
    return json.dumps(task.payload)
