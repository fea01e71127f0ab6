"""Shared by the meetings tests: a bot with the scheduler and the meetings feature on a fake
platform, a manual clock on Monday 30 March 2026 (the first Monday of Zurich summer time), and
helpers to move to a meeting's moments and to reply in its report thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CORE_HANDLERS, deep_merge
from notice_platform import FakePlatform

from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.identity import Inbound
from bot.render import render_text
from bot.schedule.service import ScheduleService

# 15:40 CEST; the WMCore meeting is 16:00-17:00 CEST (14:00-15:00 UTC).
T0 = datetime(2026, 3, 30, 13, 40, tzinfo=UTC)
START, END = datetime(2026, 3, 30, 14, 0, tzinfo=UTC), datetime(2026, 3, 30, 15, 0, tzinfo=UTC)
SLACK_IDS = {"alice": "U0ALICE01", "bob": "U0BOB0001", "carol": "U0CAROL01", "dave": "U0DAVE001",
             "erin": "U0ERIN001"}

WMCORE: dict[str, Any] = {
    "name": "wmcore", "title": "WMCore weekly", "channel": "ops", "zone": "Europe/Zurich",
    "weekly": {"days": ["mon"], "time": "16:00", "duration_minutes": 60},
    "reminders": ["10m"], "mention": ["shifters"], "agenda": "Disks, transfers",
    "links": ["https://indico.cern.ch/category/1234/"],
    "report": {"auto_close_hours": 4, "mention": ["shifters"]},
}

MEETINGS: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.meetings"],
            "timezone": "Europe/Zurich"},
    "roles": {"viewer": {"allow": ["help", "whoami", "sample.echo", "schedule", "report"]},
              "shifter": {"allow": ["sample.*", "audit", "report", "report.*"]}},
    "notices": {"poll_seconds": 0.05, "flush_timeout_seconds": 1},
    "schedule": {"lease_minutes": 2},
    "meetings": {"team_zones": ["America/Chicago"], "series": [WMCORE]},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@pytest.fixture
def workspace() -> FakePlatform:
    return FakePlatform("slack", {"ops": "C0OPS", "alerts": "C0ALERTS"})


async def meetings_bot(make_bot: Any, workspace: FakePlatform,
                       overrides: dict[str, Any] | None = None) -> Bot:
    """A bot whose first planning pass ran."""
    bot = await make_bot(deep_merge(MEETINGS, overrides or {}))
    bot.platforms[workspace.name] = workspace
    await bot.notices.start()
    await bot.services.require(ScheduleService).started()
    return bot


async def at(bot: Bot, clock: ManualClock, when: datetime) -> dict[str, str]:
    """Move the clock to ``when`` and run a planning pass (what is due fires); the notices
    are delivered before it returns. The pass's results by key."""
    clock.now = when
    result = await bot.services.require(ScheduleService).plan()
    assert await bot.notices.idle(5)
    return result.fired


def root_of(workspace: FakePlatform, title: str) -> str:
    """The message id of the (last) top-level message titled ``title``."""
    found = [m for m in workspace.messages if m.ref.thread_id is None
             and (m.reply.title or "").startswith(title)]
    assert found, f"no message titled {title!r} in {workspace.texts()}"
    return found[-1].ref.message_id


async def say(bot: Bot, person: str, text: str, thread: str, channel: str = "C0OPS") -> None:
    """``person`` replies ``text`` in the Slack thread ``thread``; notices delivered."""
    inbound = Inbound(platform="slack", user_id=SLACK_IDS[person], text=text,
                      channel_id=channel, channel_alias="ops", thread_id=thread)
    assert await bot.thread_reply(inbound)
    assert await bot.notices.idle(5)


async def items_recorded(bot: Bot, count: int, timeout: float = 5.0) -> None:
    """Wait until ``count`` items (undone ones too) are stored: replies that arrive through a
    real adapter are handled in the background, and their order matters."""
    from sqlalchemy import func, select

    from bot.meetings import store

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await bot.database.run(lambda c: c.execute(
            select(func.count()).select_from(store.items)).scalar())
        if found >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{found} of {count} items"
        await asyncio.sleep(0.02)


def thread_texts(workspace: FakePlatform, thread: str) -> list[str]:
    """The thread's messages as the console shows them."""
    return [render_text(m.reply, "console") for m in workspace.messages
            if m.ref.thread_id == thread]


async def run(bot: Bot, person: str, line: str) -> str:
    """A command typed on the console by ``person``: its answer as the console shows it."""
    outcome = await bot.handle(Inbound(platform="console", user_id=person, text=line,
                                       channel_id="ops", channel_alias="ops"))
    return render_text(outcome.reply, "console")


async def run_meeting(bot: Bot, clock: ManualClock, workspace: FakePlatform,
                      start: datetime = START, end: datetime = END) -> str:
    """The reminder, then the meeting's end: the report thread's root id."""
    fired = await at(bot, clock, start - timedelta(minutes=10))
    assert fired == {f"reminder:wmcore/{start:%Y-%m-%dT%H:%M:%S}Z-10m": "fired"}
    fired = await at(bot, clock, end + timedelta(seconds=5))
    assert fired == {f"report:wmcore/{start:%Y-%m-%dT%H:%M:%S}Z": "fired"}
    return root_of(workspace, "Meeting report: WMCore weekly")


__all__ = ["clock", "workspace"]  # fixtures
