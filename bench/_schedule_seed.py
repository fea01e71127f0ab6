"""iCal feeds for bench/bench_schedule.py: 20 meeting series backed by feeds served on loopback.

Each feed is what a real one holds: a weekly ``RRULE`` event in Europe/Zurich (across the
29 March DST change) with two ``EXDATE`` s, one occurrence moved (``RECURRENCE-ID``) and one
cancelled (``STATUS:CANCELLED``), plus an Indico-style category export: ~30 one-off ``VEVENT`` s
in UTC with URLs, every fifth titled ``[Cancelled] ...``. The bot fetches each feed once (its
first pass, as ``meetings.feeds`` would) and keeps the copy in ``meeting_feeds``; the measured
passes expand those copies (parse + ``recurring-ical-events``) like every planning pass does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.meetings.config import MeetingsConfig
from bot.meetings.ical import expand
from bot.schedule.local import to_utc

TOKEN = "indp_benchToken"
ONE_OFFS = 30
FIRST_WEEK = datetime(2026, 1, 5)  # a Monday; the rule starts here (local time)
INDICO_FROM = datetime(2026, 2, 20, 8, 0, tzinfo=UTC)  # the one-offs: every 3 days from here
ZURICH = """BEGIN:VTIMEZONE
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


def _local(value: datetime) -> str:
    return f"{value:%Y%m%dT%H%M%S}"


def _utc(value: datetime) -> str:
    return f"{value:%Y%m%dT%H%M%SZ}"


def _event(lines: list[str]) -> str:
    return "\n".join(["BEGIN:VEVENT", *lines, "END:VEVENT"])


def weekly_start(index: int) -> datetime:
    """Feed ``index``'s rule: weekday ``index % 5``, 09:00..16:30 local, from FIRST_WEEK."""
    return FIRST_WEEK + timedelta(days=index % 5, hours=9 + index % 8, minutes=30 * (index % 2))


def exdates(index: int) -> list[datetime]:
    return [weekly_start(index) + timedelta(weeks=w) for w in (12, 14)]  # 30 Mar and 13 Apr wk


def moved(index: int) -> tuple[datetime, datetime]:
    """(the occurrence it replaces, where it went: a day later, two hours earlier)."""
    original = weekly_start(index) + timedelta(weeks=13)
    return original, original + timedelta(days=1, hours=-2)


def feed_body(index: int) -> str:
    """Feed ``index`` (see the module's docstring)."""
    uid = f"bench-weekly-{index}@example.org"
    start = weekly_start(index)
    zoned = "DTSTART;TZID=Europe/Zurich:"
    ended = "DTEND;TZID=Europe/Zurich:"
    original, moved_to = moved(index)
    cancelled = start + timedelta(weeks=15)
    events = [
        _event([f"UID:{uid}", f"SUMMARY:Feed {index} weekly", zoned + _local(start),
                ended + _local(start + timedelta(hours=1)), "RRULE:FREQ=WEEKLY;COUNT=60",
                *(f"EXDATE;TZID=Europe/Zurich:{_local(d)}" for d in exdates(index))]),
        _event([f"UID:{uid}", f"RECURRENCE-ID;TZID=Europe/Zurich:{_local(original)}",
                f"SUMMARY:Feed {index} weekly (moved)", zoned + _local(moved_to),
                ended + _local(moved_to + timedelta(hours=1))]),
        _event([f"UID:{uid}", f"RECURRENCE-ID;TZID=Europe/Zurich:{_local(cancelled)}",
                f"SUMMARY:Feed {index} weekly", "STATUS:CANCELLED", zoned + _local(cancelled),
                ended + _local(cancelled + timedelta(hours=1))]),
    ]
    for n in range(ONE_OFFS):
        at = INDICO_FROM + timedelta(days=3 * n, hours=index % 6)
        title = f"{'[Cancelled] ' if n % 5 == 4 else ''}Feed {index} special {n}"
        event_id = 10_000 * (index + 1) + n
        events.append(_event([f"UID:indico-event-{event_id}@indico.example", f"SUMMARY:{title}",
                              f"DTSTART:{_utc(at)}", f"DTEND:{_utc(at + timedelta(minutes=90))}",
                              f"URL:https://indico.example/event/{event_id}/"]))
    return "\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//shiftbot bench//EN", ZURICH,
                      *events, "END:VCALENDAR", ""])


def meetings_section(count: int, base_url: str) -> dict[str, Any]:
    """The ``meetings:`` section: ``count`` feed series with two reminders each."""
    series = [{"name": f"feed-{i}", "channel": "ops", "zone": "Europe/Zurich",
               "ical": {"url": f"{base_url}/export/categ/{i}.ics", "token": TOKEN},
               "reminders": ["1d", "10m"], "report": {"auto_close_hours": 4}}
              for i in range(count)]
    return {"series": series, "team_zones": ["America/Chicago"]}


class FeedServer:
    """The feeds on 127.0.0.1 (``/export/categ/<i>.ics``, bearer token required)."""

    def __init__(self, count: int) -> None:
        self.bodies = {f"/export/categ/{i}.ics": feed_body(i) for i in range(count)}
        self.requests = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        body = self.bodies.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(text=body, content_type="text/calendar")

    async def __aenter__(self) -> FeedServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def check_feed_expansion(index: int, settings: MeetingsConfig, start: datetime,
                         end: datetime) -> int:
    """Feed ``index`` expanded as the planner does honours what the feed says (so the bench
    measures real expansions); the number of its meetings in [start, end)."""
    spec = settings.series[index]
    meetings = expand(feed_body(index), spec, start, end)
    titles = {m.title for m in meetings}
    assert not any("Cancelled" in t for t in titles), titles
    zurich = "Europe/Zurich"
    starts = {m.start for m in meetings}
    for gone in exdates(index):
        assert to_utc(gone, zurich) not in starts, gone
    original, moved_to = moved(index)
    if start <= to_utc(moved_to, zurich) < end:
        assert to_utc(original, zurich) not in starts
        assert to_utc(moved_to, zurich) in starts
    return len(meetings)
