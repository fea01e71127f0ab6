"""Shared by the schedule tests: a bot with handlers.schedule, announcements, a shared fake
platform (one "workspace" for restarts and replicas) and helpers to read what was recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CORE_HANDLERS, deep_merge
from notice_platform import FakePlatform

from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.schedule import store
from bot.schedule.model import Occurrence
from bot.schedule.service import ScheduleService

# Sunday 29 March 2026, noon UTC: Zurich switched to summer time this night.
T0 = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
MONDAY_REPORT = datetime(2026, 3, 30, 14, 0, tzinfo=UTC)  # Monday 16:00 CEST
REPORT_KEY = "announcement:report/2026-03-30T14:00:00Z"

ANNOUNCEMENTS = [
    {"name": "report", "channel": "ops", "text": "Shift report due", "grace_minutes": 10,
     "weekly": {"days": ["mon"], "time": "16:00", "zone": "Europe/Zurich"}},
    {"name": "digest", "channel": "ops", "text": "Nightly digest", "grace_minutes": 120,
     "daily": {"time": "02:30"}},
]

SCHEDULE: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule"], "timezone": "Europe/Zurich"},
    "roles": {"viewer": {"allow": ["help", "whoami", "why", "who-can", "sample.echo",
                                   "sample.table", "schedule"]},
              "shifter": {"allow": ["sample.*", "audit", "schedule.pause",
                                    "schedule.resume"]}},
    "notices": {"poll_seconds": 0.05, "flush_timeout_seconds": 1},
    "schedule": {"announcements": ANNOUNCEMENTS, "lease_minutes": 2},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@pytest.fixture
def workspace() -> FakePlatform:
    return FakePlatform("slack", {"ops": "C0OPS", "alerts": "C0ALERTS"})


def service(bot: Bot) -> ScheduleService:
    return bot.services.require(ScheduleService)


async def schedule_bot(make_bot: Any, workspace: FakePlatform, overrides: dict[str, Any]
                       | None = None) -> Bot:
    """A bot whose first planning pass ran (it waits for the platforms, as in production)."""
    bot = await make_bot(deep_merge(SCHEDULE, overrides or {}))
    bot.platforms[workspace.name] = workspace
    await bot.notices.start()
    await service(bot).started()
    return bot


async def settle(*bots: Bot) -> None:
    for bot in bots:
        assert await bot.notices.idle(5)


def posts(workspace: FakePlatform, text: str) -> int:
    return sum(text in t for t in workspace.texts())


async def row(bot: Bot, key: str) -> store.Recorded | None:
    return await bot.database.run(store.get, key)


async def states(bot: Bot, since: datetime = T0 - timedelta(days=30)) -> dict[str, str]:
    return {k: r.state for k, r in (await bot.database.run(store.recorded_since, since)).items()}


class ScriptedSource:
    """A source the test controls: its occurrences, failures to expand and to fire."""

    name = "scripted"

    def __init__(self, occurrences: list[Occurrence]) -> None:
        self.occs = occurrences
        self.max_grace = max((o.grace for o in occurrences), default=timedelta(0))
        self.expand_error: Exception | None = None
        self.fire_errors: list[Exception] = []  # raised by the next fires, in order
        self.fired: list[str] = []

    def series(self) -> list[str]:
        return sorted({o.series for o in self.occs})

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        if self.expand_error is not None:
            raise self.expand_error
        return [o for o in self.occs if start <= o.at < end]

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        self.fired.append(occurrence.key)
        if self.fire_errors:
            raise self.fire_errors.pop(0)
