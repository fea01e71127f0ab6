"""The schedule commands on the console (list, missed, pause, resume: permissioned and
audited), the announcements' config checks, and a demo announcement a minute after start."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from conftest import deep_merge
from sqlalchemy import select
from test_schedule_rig import MONDAY_REPORT, SCHEDULE, T0, clock, service

from bot import db
from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.clock import ManualClock
from bot.config import ConfigError
from bot.core import Bot
from bot.features import run_checks

__all__ = ["clock"]  # fixture


class Console:
    def __init__(self, bot: Bot, adapter: ConsoleAdapter, out: io.StringIO) -> None:
        self.bot, self.adapter, self.out = bot, adapter, out

    async def run(self, line: str, person: str = "alice") -> str:
        self.adapter.session.person = person
        start = len(self.out.getvalue())
        await self.adapter.run_once(line)
        assert await self.bot.notices.idle(5)
        return self.out.getvalue()[start:]


async def console_bot(make_bot: Any, overrides: dict[str, Any] | None = None) -> Console:
    bot = await make_bot(deep_merge(SCHEDULE, overrides or {}))
    out = io.StringIO()
    adapter = ConsoleAdapter(bot, ConsoleSession("alice"), out=out)
    await adapter.start()
    await service(bot).started()
    return Console(bot, adapter, out)


async def audited(bot: Bot, command: str) -> list[tuple[str, str | None]]:
    await bot.audit.flush()

    def read(conn: Any) -> list[tuple[str, str | None]]:
        rows = conn.execute(select(db.audit.c.decision, db.audit.c.outcome)
                            .where(db.audit.c.command == command))
        return [(r.decision, r.outcome) for r in rows]

    return await bot.database.run(read)


async def test_list_shows_local_and_utc_times(make_bot: Any, clock: ManualClock) -> None:
    console = await console_bot(make_bot)
    text = await console.run("schedule list")
    assert "2026-03-30 16:00 CEST" in text and "2026-03-30 14:00 UTC" in text
    assert "2026-03-30 02:30 CEST" in text and "2026-03-30 00:30 UTC" in text
    assert "8 occurrences in the next 7 days" in text
    only = await console.run("schedule list --series report --days 14")
    assert only.count("Shift report due") == 2 and "Nightly digest" not in only
    assert "2026-04-06 16:00 CEST" in only and "02:30" not in only
    unknown = await console.run("schedule list --series nope")
    assert "no scheduled series 'nope'" in unknown and "digest, report" in unknown


async def test_pause_resume_permissioned_audited_and_effective(make_bot: Any,
                                                               clock: ManualClock) -> None:
    console = await console_bot(make_bot)
    denied = await console.run("schedule pause report", person="dave")
    assert "Not allowed" in denied
    done = await console.run("schedule pause report christmas break")
    assert "alice paused report: christmas break" in done
    assert "is paused already" in await console.run("schedule pause report")
    listed = await console.run("schedule list --series report")
    assert "Paused: report by alice" in listed and "paused" in listed.splitlines()[-1] + listed
    clock.now = MONDAY_REPORT
    await service(console.bot).plan()
    assert "Shift report due" not in await console.run("schedule missed")
    missed = await console.run("schedule missed")
    assert "skipped" in missed and "series paused by alice" in missed
    resumed = await console.run("schedule resume report")
    assert "alice resumed report (paused by alice: christmas break)" in resumed
    assert "is not paused" in await console.run("schedule resume report")
    assert ("denied", None) in await audited(console.bot, "schedule.pause")
    assert ("allowed", "ok") in await audited(console.bot, "schedule.pause")
    assert ("allowed", "ok") in await audited(console.bot, "schedule.resume")


async def test_missed_lists_what_downtime_lost(make_bot: Any, clock: ManualClock) -> None:
    console = await console_bot(make_bot)
    assert "Nothing missed" in await console.run("schedule missed")
    await console.bot.close()
    clock.now = T0 + timedelta(days=2)
    again = await console_bot(make_bot)
    text = await again.run("schedule missed")
    assert "3 occurrences in the last 7 days nobody received as planned" in text
    assert text.count("missed") >= 3 and "2026-03-30 16:00 CEST" in text
    assert "--series" not in text
    assert "1 occurrence" in await again.run("schedule missed --series report")


async def test_demo_announcement_a_minute_after_start(make_bot: Any, clock: ManualClock) -> None:
    demo = {"name": "demo-hello", "channel": "ops", "text": "The scheduler works",
            "in_minutes_after_start": 1}
    console = await console_bot(make_bot, {"schedule": {"announcements": [demo]}})
    assert "The scheduler works" not in console.out.getvalue()
    listed = await console.run("schedule list")
    assert "demo-hello" in listed and "1 occurrence" in listed
    before = len(console.out.getvalue())
    clock.advance(59)
    await service(console.bot).plan()
    assert await console.bot.notices.idle(5)
    assert "The scheduler works" not in console.out.getvalue()[before:]
    clock.advance(2)
    await service(console.bot).plan()
    await service(console.bot).plan()
    assert await console.bot.notices.idle(5)
    assert console.out.getvalue()[before:].count("The scheduler works") == 1


# ------------------------------------------------------------------------ config


def _section(**announcement: Any) -> dict[str, Any]:
    base = {"name": "x", "channel": "ops", "text": "hi", "daily": {"time": "09:00"}}
    return {"schedule": {"announcements": [{**base, **announcement}]}}


@pytest.mark.parametrize(("announcement", "words"), [
    ({"weekly": {"days": ["mon"], "time": "16:00"}}, "exactly one of"),
    ({"daily": {"time": "09:00", "zone": "Europe/Zürich"}}, "unknown IANA timezone"),
    ({"daily": None, "weekly": {"days": ["mondy"], "time": "16:00"}}, "unknown weekday"),
    ({"name": "has/slash"}, "pattern"),
    ({"daily": {"time": "25:00"}}, "time"),
])
async def test_bad_announcements_are_refused(make_bot: Any, announcement: dict[str, Any],
                                             words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await make_bot(deep_merge(SCHEDULE, _section(**announcement)))
    assert words in str(caught.value) and "schedule.announcements[0]" in str(caught.value)


async def test_config_checks_channels_and_mentions(make_bot: Any, make_config: Any) -> None:
    config = make_config(deep_merge(SCHEDULE, _section(channel="nowhere", mention=["ghost"])))
    bot = await make_bot(config=config)
    problems = {p.path: p for p in run_checks(config, bot.registry)}
    assert problems["schedule.announcements[0].channel"].severity == "error"
    assert problems["schedule.announcements[0].mention[0]"].severity == "warning"
