"""The whole scheduling stack across the four DST changes of 2026, under time-machine.

No manual clock: ``time_machine.travel(..., tick=True)`` moves the real clock (and with it
``bot.clock.utcnow``, APScheduler's ``datetime.now`` and the notices) to shortly before an
occurrence in the week of a DST change (Europe/Zurich 29 Mar / 25 Oct, America/Chicago
8 Mar / 1 Nov). A bot with the real ScheduleService, APScheduler, the feature's source and
notices on the console starts there; its first planning pass must schedule a wake-up (not
catch up), APScheduler must really fire it, and exactly one post must appear at the instant
computed here independently with zoneinfo. A restart right after (a new bot on the same
SQLite file) posts nothing. The 02:30 digest of the fall-back night also meets its second
02:30 (CET) with a bot running through it: nothing is posted then.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from conftest import CORE_HANDLERS, deep_merge

import handlers.digests
import handlers.meetings
import handlers.shifts
from bot import clock
from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.core import Bot
from bot.schedule import store
from bot.schedule.model import FIRED
from bot.schedule.service import ScheduleService

# Imported at collection, not by the first bot: every start-up must fit in LEAD.
PRELOADED = (handlers.digests, handlers.meetings, handlers.shifts)

ZURICH, CHICAGO = ZoneInfo("Europe/Zurich"), ZoneInfo("America/Chicago")
LEAD = timedelta(seconds=1.5)  # the travel lands this long before the instant (bot start-up)
LATE = timedelta(seconds=2)  # a post must appear within this after its instant
WAIT = 5.0  # real seconds at most for APScheduler's wake-up and the post
QUIET = 0.3  # real seconds a restarted bot gets to (wrongly) post again
# The Monday after each change: Zurich's go on Sunday 29 Mar / 25 Oct, Chicago's on Sunday
# 8 Mar / 1 Nov; the Monday is the first weekday on the new offset.
MONDAYS = {"zurich-spring": date(2026, 3, 30), "zurich-fall": date(2026, 10, 26),
           "chicago-spring": date(2026, 3, 9), "chicago-fall": date(2026, 11, 2)}

BASE: dict[str, Any] = {
    "bot": {"timezone": "Europe/Zurich"},
    "notices": {"poll_seconds": 0.05, "flush_timeout_seconds": 1},
    "schedule": {"lease_minutes": 2},
}


def local(day: date, at: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``zone`` (zoneinfo, not bot code)."""
    hour, minute = map(int, at.split(":"))
    return datetime.combine(day, wall(hour, minute, fold=fold), zone).astimezone(UTC)


def shown(instant: datetime, zone: ZoneInfo, pattern: str) -> str:
    """``instant`` as a post shows it (strftime in ``zone``)."""
    return instant.astimezone(zone).strftime(pattern)


def meeting(zone: ZoneInfo, at: str) -> dict[str, Any]:
    spec = {"name": "weekly", "title": "Weekly meeting", "channel": "ops", "zone": zone.key,
            "weekly": {"days": ["mon"], "time": at, "duration_minutes": 60},
            "reminders": ["10m"]}
    return {"bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.meetings"]},
            "meetings": {"team_zones": ["Europe/Zurich", "America/Chicago"], "series": [spec]}}


def handover(zone: ZoneInfo) -> dict[str, Any]:
    rota = {"people": ["alice", "bob", "dave"], "period": "1w", "start_date": "2026-01-05",
            "handover_day": "monday", "handover_time": "09:00", "zone": zone.key}
    return {"bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.shifts"]},
            "roles": {"on-shift": {"description": "granted by the rota", "allow": ["help"]}},
            "shifts": {"channel": "ops", "rota": rota, "heads_up_days": 0, "ack_minutes": 0}}


DIGEST: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.digests"]},
    "digests": {"channel": "ops", "at_handover": False, "chart": False, "snapshot_minutes": 0,
                "daily": {"time": "02:30", "zone": "Europe/Zurich"}},
}


@dataclass(frozen=True)
class Case:
    name: str
    config: dict[str, Any]
    at: datetime  # the expected UTC instant of the one post
    title: str  # how the post's first line starts
    shows: str  # the local time the post's text must show
    warns: bool = False  # the reminder warns that Europe and the US are off their usual gap
    again: datetime | None = None  # an instant a wrong implementation would post it again


def unusual_gap(instant: datetime) -> bool:
    """Zurich and Chicago are not as far apart as in January (one of them changed)."""
    def gap(at: datetime) -> timedelta:
        zurich, chicago = (at.astimezone(zone).utcoffset() for zone in (ZURICH, CHICAGO))
        assert zurich is not None and chicago is not None
        return zurich - chicago

    return gap(instant) != gap(datetime(2026, 1, 15, tzinfo=UTC))


def meeting_cases() -> list[Case]:
    cases = []
    for change, monday in MONDAYS.items():
        for zone, at in ((ZURICH, "16:00"), (CHICAGO, "10:00")):
            city = zone.key.split("/")[1].lower()
            start = local(monday, at, zone)
            cases.append(Case(f"meeting-{city}-{at}-{change}", meeting(zone, at),
                              start - timedelta(minutes=10), "Weekly meeting in 10 minutes",
                              shown(start, zone, "%Y-%m-%d %H:%M %Z"), unusual_gap(start)))
    return cases


def handover_cases() -> list[Case]:
    # The handover post shows its time in the bot's zone (Europe/Zurich).
    return [Case(f"handover-{zone.key.split('/')[1].lower()}-{change}", handover(zone),
                 at, "Shift handover to", shown(at, ZURICH, "from %a %Y-%m-%d %H:%M %Z"))
            for change, monday in MONDAYS.items() for zone in (ZURICH, CHICAGO)
            for at in [local(monday, "09:00", zone)]]


DIGEST_CASES = [
    # 02:30 does not exist on 29 Mar: the digest goes out at 03:30 CEST, the gap later.
    Case("digest-0230-spring-forward", DIGEST, local(date(2026, 3, 29), "03:30", ZURICH),
         "Daily shift digest", "→ 2026-03-29 03:30 CEST"),
    # 02:30 happens twice on 25 Oct: the first (CEST) sends, the second (CET) does not.
    Case("digest-0230-fall-back", DIGEST, local(date(2026, 10, 25), "02:30", ZURICH, fold=0),
         "Daily shift digest", "→ 2026-10-25 02:30 CEST",
         again=local(date(2026, 10, 25), "02:30", ZURICH, fold=1)),
]

CASES = [*meeting_cases(), *handover_cases(), *DIGEST_CASES]


class StampedOut(io.StringIO):
    """The console's output; each message line to #ops (a post, an update, a thread reply)
    is kept with the bot clock's time at which it was printed."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[datetime, str]] = []

    def write(self, text: str) -> int:
        now = clock.utcnow()
        self.posts += [(now, line) for line in text.splitlines() if line.startswith("[#ops")]
        return super().write(text)


@dataclass
class Rig:
    bot: Bot
    out: StampedOut

    @property
    def service(self) -> ScheduleService:
        return self.bot.services.require(ScheduleService)


async def console_bot(make_bot: Any, config: dict[str, Any]) -> Rig:
    """A bot on the console whose first planning pass ran (on the test's SQLite file)."""
    bot = await make_bot(deep_merge(BASE, config))
    out = StampedOut()
    await ConsoleAdapter(bot, ConsoleSession("alice"), out=out).start()
    await bot.services.require(ScheduleService).started()
    assert await bot.notices.idle(5)
    return Rig(bot, out)


def wakeups_at(rig: Rig, at: datetime) -> list[str]:
    """The keys of the APScheduler wake-ups planned for the instant ``at``."""
    assert rig.service.scheduler is not None
    planned = [key for key, when in rig.service.jobs.items() if when == at]
    return [key for key in planned if rig.service.scheduler.get_job(key) is not None]


async def first_post(rig: Rig) -> None:
    """Wait (real time) until something is posted, then until the notices are idle."""
    deadline = time.monotonic() + WAIT
    while not rig.out.posts and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert rig.out.posts, f"nothing posted within {WAIT} s"
    await asyncio.sleep(QUIET)  # a second post of the same wake-up would show by now
    assert await rig.bot.notices.idle(5)


async def wait_past(instant: datetime, extra: float = QUIET) -> None:
    """Sleep (real time) until the traveled clock is ``extra`` s past ``instant``."""
    remaining = (instant - clock.utcnow()).total_seconds() + extra
    assert remaining < WAIT, "the travel landed too early"
    await asyncio.sleep(max(remaining, 0))


async def restart_posts_nothing(make_bot: Any, first: Rig, config: dict[str, Any]) -> Rig:
    await first.bot.close()
    again = await console_bot(make_bot, config)
    await asyncio.sleep(QUIET)
    assert await again.bot.notices.idle(5)
    assert again.out.posts == [], "the restarted bot posted again"
    return again


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_one_post_at_its_instant_across_dst(make_bot: Any, case: Case) -> None:
    assert clock._now is clock._system, "a manual clock would hide time-machine's"
    with time_machine.travel(case.at - LEAD, tick=True):
        rig = await console_bot(make_bot, case.config)
        assert rig.out.posts == [], "posted before its time (a catch-up or a wrong instant)"
        keys = wakeups_at(rig, case.at)
        assert len(keys) == 1, f"one wake-up expected at {case.at}: {rig.service.jobs}"
        await first_post(rig)

        [(posted_at, line)] = rig.out.posts
        assert case.at <= posted_at < case.at + LATE, (posted_at, case.at)
        assert line.split("] ", 1)[1].startswith(case.title), line
        text = rig.out.getvalue()
        assert case.shows in text, (case.shows, text)
        assert ("Daylight saving time differs this week" in text) == case.warns, text
        recorded = await rig.bot.database.run(store.get, keys[0])
        assert recorded is not None and recorded.state == FIRED
        assert keys[0] not in rig.service.jobs  # APScheduler's wake-up sent it, once

        again = await restart_posts_nothing(make_bot, rig, case.config)
        assert wakeups_at(again, case.at) == []
    if case.again is not None:
        await second_instant_posts_nothing(make_bot, again, case.config, case.again)


async def second_instant_posts_nothing(make_bot: Any, running: Rig, config: dict[str, Any],
                                       instant: datetime) -> None:
    """A bot running through ``instant`` (started before it) posts nothing there."""
    await running.bot.close()
    with time_machine.travel(instant - LEAD, tick=True):
        rig = await console_bot(make_bot, config)
        assert wakeups_at(rig, instant) == []
        await wait_past(instant)
        assert await rig.bot.notices.idle(5)
        assert rig.out.posts == [], f"posted again at {instant}"
