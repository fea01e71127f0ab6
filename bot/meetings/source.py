"""The meetings' schedule source: reminders, report threads and auto-closes as occurrences.

For each meeting (``model.Meeting``: from a weekly rule, a feed or the demo rule):

- ``reminder`` at each offset before the start (``reminder:<series>/<start>-10m``): title, time
  in the team's zones with the DST warning, links, agenda, the open action items of the series,
  mentioning ``on-shift`` (left out while nobody holds that role);
- ``report`` at the end (``report:<series>/<start>``): opens the report thread (a notice owned
  by "meetings"), mentioning the shifter;
- ``report-close`` ``report.auto_close_hours`` later: closes the report if still open.

Each occurrence carries what its firing needs in ``data`` (a feed's event may be gone from the
feed by then), and posts notices keyed by the occurrence key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.meetings import reports, store, tickets, views
from bot.meetings.config import MeetingsConfig, SeriesSpec
from bot.meetings.ical import Feeds, expand
from bot.meetings.model import AUTOCLOSE, REMINDER, REPORT, Meeting, once_meetings, rule_meetings
from bot.messaging.mentions import UnknownMention, check_names
from bot.schedule.model import Occurrence

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

AUTOCLOSE_GRACE = timedelta(days=1)
FEED_BACK = timedelta(days=1)  # a feed's meeting may last up to this long


def mention_names(bot: Bot, names: Sequence[str]) -> list[str]:
    """The names the notices accept; a role nobody grants now (``on-shift`` without the
    rota) is left out, so the reminder still goes out."""
    accepted = []
    for name in names:
        try:
            accepted += check_names([name], bot.gate)
        except UnknownMention as exc:
            log.info("meetings: %s; not mentioned", exc)
    return accepted


class MeetingsSource:
    """A :class:`bot.schedule.model.Source` of the configured meeting series."""

    name = "meetings"

    def __init__(self, settings: MeetingsConfig, started_at: datetime, feeds: Feeds) -> None:
        self.settings = settings
        self.specs = {spec.name: spec for spec in settings.series}
        self.started_at = started_at.replace(microsecond=0)
        self.feeds = feeds
        self.reminder_grace = timedelta(minutes=settings.reminder_grace_minutes)
        self.report_grace = timedelta(hours=settings.report_grace_hours)
        graces = [self.report_grace, AUTOCLOSE_GRACE, *(self._reminder_grace(s)
                                                        for s in settings.series)]
        self.max_grace = max(graces)

    def series(self) -> Sequence[str]:
        return list(self.specs)

    def _reminder_grace(self, spec: SeriesSpec) -> timedelta:
        if spec.grace_minutes is not None:
            return timedelta(minutes=spec.grace_minutes)
        return self.reminder_grace

    # ------------------------------------------------------------------ expansion

    async def meetings(self, spec: SeriesSpec, start: datetime, end: datetime) -> list[Meeting]:
        """The series' meetings starting in [start, end)."""
        if spec.weekly is not None:
            return rule_meetings(spec, spec.weekly, start, end)
        if spec.once_after_start is not None:
            return once_meetings(spec, self.started_at, start, end)
        # Off the loop: a feed not expanded for this day yet costs milliseconds to parse.
        return await asyncio.to_thread(expand, await self.feeds.body(spec), spec, start, end)

    def _reach(self, spec: SeriesSpec) -> tuple[timedelta, timedelta]:
        """How far before a window a meeting may start and still have an occurrence in it
        (its end and auto-close), and how far after (its earliest reminder)."""
        length = FEED_BACK
        if spec.weekly is not None:
            length = timedelta(minutes=spec.weekly.duration_minutes)
        elif spec.once_after_start is not None:
            length = timedelta(minutes=spec.once_after_start.duration_minutes)
        hours = spec.report.auto_close_hours if spec.report.enabled else None
        back = length + timedelta(hours=hours or 0)
        ahead = max(spec.offsets, default=timedelta(0))
        return back, ahead

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        found: list[Occurrence] = []
        for spec in self.specs.values():
            back, ahead = self._reach(spec)
            for meeting in await self.meetings(spec, start - back, end + ahead):
                found += [o for o in self.of_meeting(spec, meeting) if start <= o.at < end]
        return found

    def of_meeting(self, spec: SeriesSpec, meeting: Meeting) -> list[Occurrence]:
        data: dict[str, Any] = {"channel": spec.channel, "meeting": meeting.meeting_key,
                                "meeting_title": meeting.title, "start": meeting.start.isoformat(),
                                "end": meeting.end.isoformat(),
                                "base": meeting.base.isoformat(), "suffix": meeting.suffix,
                                "links": [list(link) for link in meeting.links]}
        occs = [Occurrence(meeting.key(REMINDER, offset), spec.name, REMINDER,
                           meeting.start - offset, self._reminder_grace(spec),
                           {**data, "title": f"{meeting.title}: reminder "
                                          f"{views.in_words(offset)} before",
                            "offset": offset.total_seconds()})
                for offset in spec.offsets]
        if spec.report.enabled:
            occs.append(Occurrence(meeting.key(REPORT), spec.name, REPORT, meeting.end,
                                   self.report_grace, {**data, "title": f"{meeting.title} "
                                                       "report thread"}))
            hours = spec.report.auto_close_hours
            if hours:
                occs.append(Occurrence(meeting.key(AUTOCLOSE), spec.name, AUTOCLOSE,
                                       meeting.end + timedelta(hours=hours), AUTOCLOSE_GRACE,
                                       {**data, "title": f"{meeting.title} report auto-close",
                                        "report": meeting.key(REPORT)}))
        return occs

    # ------------------------------------------------------------------ firing

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        spec = self.specs.get(occurrence.series)
        if spec is None:
            raise LookupError(f"meeting series '{occurrence.series}' is no longer configured")
        meeting = _meeting_of(spec, occurrence.data)
        if occurrence.kind == REMINDER:
            await self._remind(bot, spec, meeting, occurrence)
        elif occurrence.kind == REPORT:
            await reports.open_thread(bot, spec, meeting, occurrence.key,
                                      mention_names(bot, spec.report.mention))
        elif occurrence.kind == AUTOCLOSE:
            await reports.auto_close(bot, str(occurrence.data["report"]))
        else:
            raise ValueError(f"unknown meeting occurrence kind {occurrence.kind!r}")

    async def _remind(self, bot: Bot, spec: SeriesSpec, meeting: Meeting,
                      occurrence: Occurrence) -> None:
        limit = self.settings.open_items_listed
        open_items = await bot.database.run(store.open_actions, spec.name, limit + 1)
        closed = await tickets.refresh_states(bot, spec, open_items)
        open_items = [(i, t) for i, t in open_items if i.id not in closed]
        reply = views.reminder_reply(
            spec, title=meeting.title, start=meeting.start, end=meeting.end,
            offset=timedelta(seconds=float(occurrence.data["offset"])),
            zones=views.team_zones(spec, self.settings.team_zones), links=meeting.links,
            open_items=open_items[:limit], more_items=max(0, len(open_items) - limit))
        reply.data["series"] = spec.name
        await bot.notices.post(spec.channel, reply, key=occurrence.key,
                               mention=mention_names(bot, spec.mention))


def _meeting_of(spec: SeriesSpec, data: dict[str, Any]) -> Meeting:
    links = tuple((str(label), str(url)) for label, url in data.get("links") or [])
    return Meeting(spec.name, str(data["meeting_title"]), datetime.fromisoformat(data["start"]),
                   datetime.fromisoformat(data["end"]), datetime.fromisoformat(data["base"]),
                   str(data.get("suffix") or ""), links)
