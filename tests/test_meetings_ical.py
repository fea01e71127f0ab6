"""iCal/Indico series (bot/meetings/ical.py) from a feed served on loopback: RRULE across the
DST change, EXDATE, a moved occurrence (RECURRENCE-ID), a cancelled occurrence, Indico's
"[Cancelled]" events, a title filter; the bearer token sent; a feed that goes down keeps its
last good copy (also after a restart) and its failure is logged once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from test_meetings_rig import at, clock, meetings_bot, workspace

from bot.meetings.config import MeetingsConfig
from bot.meetings.ical import expand
from bot.meetings.model import uid_suffix
from bot.schedule.service import ScheduleService

__all__ = ["clock", "workspace"]  # fixtures

TOKEN = "indp_shiftbotTestToken42"
ZONE = """BEGIN:VTIMEZONE
TZID:Europe/Zurich
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE"""
EVENTS = """BEGIN:VEVENT
UID:compops-weekly@example.org
SUMMARY:CompOps weekly
DTSTART;TZID=Europe/Zurich:20260316T160000
DTEND;TZID=Europe/Zurich:20260316T170000
RRULE:FREQ=WEEKLY;BYDAY=MO
EXDATE;TZID=Europe/Zurich:20260323T160000
END:VEVENT
BEGIN:VEVENT
UID:compops-weekly@example.org
RECURRENCE-ID;TZID=Europe/Zurich:20260330T160000
SUMMARY:CompOps weekly (moved to Tuesday)
DTSTART;TZID=Europe/Zurich:20260331T100000
DTEND;TZID=Europe/Zurich:20260331T110000
END:VEVENT
BEGIN:VEVENT
UID:compops-weekly@example.org
RECURRENCE-ID;TZID=Europe/Zurich:20260406T160000
SUMMARY:CompOps weekly
STATUS:CANCELLED
DTSTART;TZID=Europe/Zurich:20260406T160000
DTEND;TZID=Europe/Zurich:20260406T170000
END:VEVENT
BEGIN:VEVENT
UID:indico-event-1501@indico.cern.ch
SUMMARY:[Cancelled] CompOps special
DTSTART:20260401T130000Z
DTEND:20260401T140000Z
URL:https://indico.cern.ch/event/1501/
END:VEVENT
BEGIN:VEVENT
UID:indico-event-1502@indico.cern.ch
SUMMARY:CompOps special
DTSTART:20260402T130000Z
DTEND:20260402T143000Z
URL:https://indico.cern.ch/event/1502/
END:VEVENT
BEGIN:VEVENT
UID:indico-event-1503@indico.cern.ch
SUMMARY:Lunch seminar
DTSTART:20260402T100000Z
DTEND:20260402T110000Z
END:VEVENT"""
FEED = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + ZONE + "\n" + EVENTS + \
    "\nEND:VCALENDAR\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class FeedServer:
    """Serves FEED at /export/categ/7.ics to requests with the bearer token; ``down`` makes
    it answer 503."""

    def __init__(self) -> None:
        self.down = False
        self.body = FEED
        self.seen: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Authorization", ""))
        if self.down:
            return web.Response(status=503, text="maintenance")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="unauthorized")
        return web.Response(text=self.body, content_type="text/calendar")


@pytest.fixture
async def feed() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_get("/export/categ/7.ics", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/export/categ/7.ics"
    yield server
    await runner.cleanup()


def spec_of(url: str = "https://indico.invalid/export/categ/7.ics",
            **feed: Any) -> dict[str, Any]:
    return {"name": "compops", "title": "CompOps", "channel": "ops", "zone": "Europe/Zurich",
            "ical": {"url": url, "token": TOKEN, **feed}, "reminders": ["10m"],
            "mention": [], "report": {"auto_close_hours": 2, "mention": []}}


def series(**feed: Any) -> Any:
    return MeetingsConfig.model_validate({"series": [spec_of(**feed)]}).series[0]


def test_expansion_honours_exdate_moves_and_cancellations() -> None:
    meetings = expand(FEED, series(), utc(2026, 3, 10), utc(2026, 4, 20))
    assert [(m.title, m.start, m.end) for m in meetings] == [
        ("CompOps weekly", utc(2026, 3, 16, 15), utc(2026, 3, 16, 16)),  # CET
        # 23 March: EXDATE
        ("CompOps weekly (moved to Tuesday)", utc(2026, 3, 31, 8), utc(2026, 3, 31, 9)),
        ("Lunch seminar", utc(2026, 4, 2, 10), utc(2026, 4, 2, 11)),
        ("CompOps special", utc(2026, 4, 2, 13), utc(2026, 4, 2, 14, 30)),
        # 1 April "[Cancelled] CompOps special" and 6 April (STATUS:CANCELLED) left out
        ("CompOps weekly", utc(2026, 4, 13, 14), utc(2026, 4, 13, 15)),  # CEST
    ]
    moved = meetings[1]
    assert moved.base == utc(2026, 3, 30, 14)  # named by its RECURRENCE-ID
    suffix = uid_suffix("compops-weekly@example.org")
    assert moved.key("reminder", timedelta(minutes=10)) == \
        f"reminder:compops/2026-03-30T14:00:00Z-10m{suffix}"
    assert meetings[3].links == (("event", "https://indico.cern.ch/event/1502/"),)


def test_title_filter_and_windows_in_pieces() -> None:
    only = expand(FEED, series(title_filter="^CompOps"), utc(2026, 3, 10), utc(2026, 4, 20))
    assert "Lunch seminar" not in [m.title for m in only] and len(only) == 4
    whole = expand(FEED, series(), utc(2026, 3, 10), utc(2026, 4, 20))
    cut = utc(2026, 3, 31, 8)
    parts = expand(FEED, series(), utc(2026, 3, 10), cut) + \
        expand(FEED, series(), cut, utc(2026, 4, 20))
    assert [m.meeting_key for m in parts] == [m.meeting_key for m in whole]


@pytest.mark.parametrize("title", ["[Cancelled] X", "CANCELLED: X", "X (canceled)",
                                   "(Cancelled) X", "  [cancelled]X"])
def test_indico_cancelled_titles(title: str) -> None:
    body = FEED.replace("SUMMARY:CompOps special\n", f"SUMMARY:{title}\n")
    titles = [m.title for m in expand(body, series(), utc(2026, 4, 1), utc(2026, 4, 3))]
    assert titles == ["Lunch seminar"]


async def test_feed_fetched_with_the_token_and_planned(make_bot, clock, workspace,
                                                       feed) -> None:
    clock.now = utc(2026, 3, 31, 7, 30)
    bot = await meetings_bot(make_bot, workspace, {"meetings": {"series": [spec_of(feed.url)]}})
    assert feed.seen == [f"Bearer {TOKEN}"]
    upcoming = await bot.services.require(ScheduleService).upcoming(utc(2026, 4, 3))
    assert [(o.kind, o.at) for o in upcoming if o.series == "compops"] == [
        ("reminder", utc(2026, 3, 31, 7, 50)), ("report", utc(2026, 3, 31, 9)),
        ("report-close", utc(2026, 3, 31, 11)), ("reminder", utc(2026, 4, 2, 9, 50)),
        ("report", utc(2026, 4, 2, 11)), ("reminder", utc(2026, 4, 2, 12, 50)),
        ("report-close", utc(2026, 4, 2, 13)), ("report", utc(2026, 4, 2, 14, 30)),
        ("report-close", utc(2026, 4, 2, 16, 30))]
    assert await at(bot, clock, utc(2026, 3, 31, 7, 50, 5)) == {
        f"reminder:compops/2026-03-30T14:00:00Z-10m{uid_suffix('compops-weekly@example.org')}":
        "fired"}
    assert workspace.messages[-1].reply.title == "CompOps weekly (moved to Tuesday) in 10 minutes"


async def test_a_feed_that_goes_down_keeps_its_last_good_copy(make_bot, clock, workspace, feed,
                                                              caplog) -> None:
    clock.now = utc(2026, 3, 31, 7, 30)
    overrides = {"meetings": {"series": [spec_of(feed.url)], "feed_refresh_minutes": 1}}
    bot = await meetings_bot(make_bot, workspace, overrides)
    from handlers.meetings import feeds_of, refresh_feeds

    feed.down = True
    caplog.set_level(logging.INFO, "bot.meetings.ical")
    for minutes in (2, 4, 6):
        clock.now = utc(2026, 3, 31, 7, 30) + timedelta(minutes=minutes)
        await refresh_feeds(bot)
    assert len(feed.seen) == 4  # the first fetch, then one per refresh
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "HTTP 503" in failures[0].getMessage()
    assert TOKEN not in caplog.text
    service = bot.services.require(ScheduleService)
    assert len(await service.upcoming(utc(2026, 4, 3))) == 9  # the copy still plans

    # A restart while the feed is down: the database's copy stands in.
    other = await meetings_bot(make_bot, workspace, overrides)
    assert len(await other.services.require(ScheduleService).upcoming(utc(2026, 4, 3))) == 9
    assert feeds_of(other).failing == set()  # it did not need to fetch
    feed.down = False
    clock.now += timedelta(minutes=2)
    await refresh_feeds(bot)
    assert "meeting feed compops is back" in caplog.text


async def test_a_feed_never_fetched_fails_its_expansion_only(make_bot, clock, workspace,
                                                             feed) -> None:
    feed.down = True
    bot = await meetings_bot(make_bot, workspace, {"meetings": {"series": [spec_of(feed.url)]}})
    service = bot.services.require(ScheduleService)
    assert service.last is not None and service.last.failed_sources == ["meetings"]
