"""iCalendar series: fetch the feed, keep its last good copy, expand its events.

A feed is fetched with the bot's shared httpx client (``Authorization: Bearer`` when a token is
configured: Indico's ``indp_...``) within ``meetings.feed_timeout_seconds``, every
``meetings.feed_refresh_minutes``, by a periodic job; the planner only reads the copy (so a
slow or dead feed never holds up planning). Only the very first expansion, with no copy at all,
waits for a fetch (within the deadline). The good text is kept in ``meeting_feeds``: a feed
that fails keeps its last good copy, and its error is logged once per failure streak.

Events are expanded with ``icalendar`` + ``recurring-ical-events``, which honour ``RRULE``,
``EXDATE`` and moved occurrences (``RECURRENCE-ID``). Left out: ``STATUS:CANCELLED`` (a whole
event or one occurrence), titles marked cancelled Indico-style (``[Cancelled] ...``,
``CANCELLED: ...``, ``(canceled)``), all-day events, and titles the series' ``title_filter``
does not match.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from bot import clock
from bot.httpclient import shared_client
from bot.meetings import store
from bot.meetings.config import SeriesSpec
from bot.meetings.model import Meeting, uid_suffix
from bot.schedule.local import to_utc
from bot.secrets import masker

if TYPE_CHECKING:  # httpx, icalendar (~100 ms) load with the first feed, not at start-up
    import icalendar

    from bot.core import Bot

log = logging.getLogger(__name__)

CANCELLED_TITLE = re.compile(r"^\s*[\[(]?\s*cancell?ed\b|[\[(]\s*cancell?ed\s*[\])]",
                             re.IGNORECASE)
MAX_BODY = 5_000_000  # characters of a feed we accept


class FeedError(Exception):
    pass


def is_cancelled(event: icalendar.cal.Component) -> bool:
    status = str(event.get("STATUS") or "").upper()
    return status == "CANCELLED" or bool(CANCELLED_TITLE.search(str(event.get("SUMMARY") or "")))


def _utc(value: datetime, zone: str) -> datetime:
    """A feed's time in UTC; a floating (naive) time is read in the series' zone."""
    return to_utc(value, zone) if value.tzinfo is None else value.astimezone(UTC)


# Parsing and expanding a feed costs milliseconds; the planner asks for every feed on every
# pass with a window that moves by minutes. So a feed's meetings are expanded once per body
# and week-aligned window (a new body, or the next week, expands again) and filtered here;
# the parsed calendar is kept per body too.
_EXPANDED: dict[tuple[str, str, date, date], tuple[Meeting, ...]] = {}
_PARSED: dict[str, icalendar.Calendar] = {}
_CACHED_MAX = 256


def expand(body: str, spec: SeriesSpec, start: datetime, end: datetime) -> list[Meeting]:
    """The feed's meetings starting in [start, end) (see the module's docstring)."""
    # Events that started a day before the window may still have their start inside it in
    # another zone's reading; the instant check below is exact.
    first = (start - timedelta(days=1)).date()
    first -= timedelta(days=first.weekday())  # the Monday before
    last = (end + timedelta(days=2)).date()
    last += timedelta(days=7 - last.weekday())  # the Monday after
    key = (spec.model_dump_json(), body, first, last)
    meetings = _EXPANDED.get(key)
    if meetings is None:
        meetings = _expand(body, spec, datetime.combine(first, time(), UTC),
                           datetime.combine(last, time(), UTC))
        if len(_EXPANDED) >= _CACHED_MAX:
            _EXPANDED.clear()
        _EXPANDED[key] = meetings
    return [m for m in meetings if start <= m.start < end]


def _expand(body: str, spec: SeriesSpec, start: datetime, end: datetime) -> tuple[Meeting, ...]:
    feed = spec.ical
    assert feed is not None
    import icalendar
    import recurring_ical_events

    calendar = _PARSED.get(body)
    if calendar is None:
        if len(_PARSED) >= _CACHED_MAX:
            _PARSED.clear()
        calendar = _PARSED[body] = icalendar.Calendar.from_ical(body)
    length = timedelta(minutes=feed.duration_minutes)
    wanted = re.compile(feed.title_filter) if feed.title_filter else None
    meetings = []
    for event in recurring_ical_events.of(calendar).between(start, end):
        meeting = _meeting(event, spec, length, wanted)
        if meeting is not None:
            meetings.append(meeting)
    return tuple(sorted(meetings, key=lambda m: (m.start, m.suffix)))


def _meeting(event: icalendar.cal.Component, spec: SeriesSpec, length: timedelta,
             wanted: re.Pattern[str] | None) -> Meeting | None:
    title = " ".join(str(event.get("SUMMARY") or spec.display_title).split())
    if is_cancelled(event) or (wanted is not None and not wanted.search(title)):
        return None
    began = event.decoded("DTSTART")
    if not isinstance(began, datetime):  # an all-day event (a date): not a meeting
        return None
    starts = _utc(began, spec.zone)
    ends = _end(event, starts, spec.zone, length)
    recurrence = event.get("RECURRENCE-ID")
    base = starts
    if recurrence is not None:
        original = event.decoded("RECURRENCE-ID")
        if isinstance(original, datetime):
            base = _utc(original, spec.zone)
        elif isinstance(original, date):
            base = to_utc(datetime.combine(original, datetime.min.time()), spec.zone)
    links = []
    url = str(event.get("URL") or "").strip()
    if url.startswith(("https://", "http://")):
        links.append(("event", url))
    return Meeting(spec.name, title, starts, ends, base, uid_suffix(str(event.get("UID") or
                                                                        title)), tuple(links))


def _end(event: icalendar.cal.Component, starts: datetime, zone: str,
         length: timedelta) -> datetime:
    if event.get("DTEND") is not None:
        value = event.decoded("DTEND")
        if isinstance(value, datetime):
            ends = _utc(value, zone)
            return ends if ends > starts else starts + length
    if event.get("DURATION") is not None:
        duration = event.decoded("DURATION")
        if isinstance(duration, timedelta) and duration > timedelta(0):
            return starts + duration
    return starts + length


class Feeds:
    """The feeds' copies in memory (read by the planner), refreshed in the background."""

    def __init__(self, bot: Bot, refresh: timedelta, timeout: float) -> None:
        self.bot = bot
        self.refresh = refresh
        self.timeout = timeout
        self.bodies: dict[str, str] = {}
        self.fetched: dict[str, datetime] = {}
        self.failing: set[str] = set()  # logged once per failure streak
        self.locks: dict[str, asyncio.Lock] = {}

    async def body(self, spec: SeriesSpec) -> str:
        """The series' feed text: in memory, else the database's copy, else fetched now."""
        if spec.name in self.bodies:
            return self.bodies[spec.name]
        row = await self.bot.database.run(store.feed, spec.name)
        if row is not None and row.body is not None:
            self.bodies[spec.name] = row.body
            self.fetched[spec.name] = row.fetched_at or clock.utcnow()
            return row.body
        if not await self.fetch(spec):
            raise FeedError(f"meeting feed {spec.name}: no copy yet and the fetch failed")
        return self.bodies[spec.name]

    def due(self, spec: SeriesSpec, now: datetime) -> bool:
        last = self.fetched.get(spec.name)
        return last is None or now - last >= self.refresh

    async def fetch(self, spec: SeriesSpec) -> bool:
        """Fetch and keep the feed; False (the last copy stays) when it failed."""
        lock = self.locks.setdefault(spec.name, asyncio.Lock())
        import icalendar

        async with lock:
            now = clock.utcnow()
            try:
                body = await asyncio.wait_for(self._get(spec), self.timeout + 1)
                icalendar.Calendar.from_ical(body)  # refuse a body that is no calendar
            except Exception as exc:
                error = masker.mask(_describe(exc))
                await self.bot.database.run(store.store_feed, spec.name, now, error=error)
                self._log_failure(spec.name, error)
                self.fetched[spec.name] = now  # the next try after the refresh interval
                return False
            await self.bot.database.run(store.store_feed, spec.name, now, body=body)
            self.bodies[spec.name] = body
            self.fetched[spec.name] = now
            if spec.name in self.failing:
                self.failing.discard(spec.name)
                log.info("meeting feed %s is back", spec.name)
            return True

    async def _get(self, spec: SeriesSpec) -> str:
        feed = spec.ical
        assert feed is not None
        headers = {"Accept": "text/calendar, */*;q=0.5", "User-Agent": "shiftbot"}
        if feed.token is not None:
            headers["Authorization"] = f"Bearer {feed.token.get_secret_value()}"
        client = await shared_client()
        response = await client.get(feed.url, headers=headers, timeout=self.timeout,
                                    follow_redirects=True)
        if response.status_code != 200:
            raise FeedError(f"HTTP {response.status_code}")
        if len(response.text) > MAX_BODY:
            raise FeedError(f"the feed is larger than {MAX_BODY} characters")
        return response.text

    def _log_failure(self, name: str, error: str) -> None:
        if name in self.failing:
            log.debug("meeting feed %s still fails: %s", name, error)
            return
        self.failing.add(name)
        log.error("meeting feed %s failed (%s); its last good copy stands", name, error)


def _describe(exc: Exception) -> str:
    import httpx

    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException)):
        return "no answer within the deadline"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach it: {type(exc).__name__}"
    if isinstance(exc, ValueError):
        return f"not an iCalendar file: {str(exc)[:200]}"
    return str(exc)[:300] or type(exc).__name__
