"""The announcements source: ``schedule.announcements`` as plain notices on a rule.

The smallest real source, and the proof of the scheduler: "shift report due" every Monday
15:00 Zurich, a daily 02:30 reminder, or a demo line a minute after start. Each occurrence
posts one notice keyed by its occurrence key (``announcement:<name>/<UTC instant>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.reply import Reply, Visibility
from bot.schedule.config import AnnouncementSpec
from bot.schedule.local import expand_daily, expand_weekly
from bot.schedule.model import Occurrence, occurrence_key

if TYPE_CHECKING:
    from bot.core import Bot

KIND = "announcement"


class Announcements:
    """A :class:`bot.schedule.model.Source` of the configured announcements."""

    name = "announcements"

    def __init__(self, specs: Sequence[AnnouncementSpec], default_zone: str,
                 started_at: datetime) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.default_zone = default_zone
        # "in N minutes after start" counts from here (whole seconds: a readable key).
        self.started_at = started_at.replace(microsecond=0)
        graces = [timedelta(minutes=spec.grace_minutes) for spec in specs]
        self.max_grace = max(graces, default=timedelta(0))

    def series(self) -> Sequence[str]:
        return list(self.specs)

    def instants(self, spec: AnnouncementSpec, start: datetime, end: datetime) -> list[datetime]:
        """The UTC instants of ``spec`` with ``start <= at < end``."""
        if spec.weekly is not None:
            rule = spec.weekly
            return expand_weekly(rule.weekdays, rule.time, rule.zone or self.default_zone,
                                 window_start=start, window_end=end,
                                 every_weeks=rule.every_weeks, start_date=rule.start_date,
                                 end_date=rule.end_date)
        if spec.daily is not None:
            daily = spec.daily
            return expand_daily(daily.time, daily.zone or self.default_zone, window_start=start,
                                window_end=end, start_date=daily.start_date,
                                end_date=daily.end_date)
        at = self.started_at + timedelta(minutes=spec.in_minutes_after_start or 0)
        return [at] if start <= at < end else []

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        return [Occurrence(occurrence_key(KIND, spec.name, at), spec.name, KIND, at,
                           timedelta(minutes=spec.grace_minutes),
                           {"title": spec.title or _headline(spec.text),
                            "channel": spec.channel})
                for spec in self.specs.values() for at in self.instants(spec, start, end)]

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        spec = self.specs.get(occurrence.series)
        if spec is None:
            raise LookupError(f"announcement '{occurrence.series}' is no longer configured")
        reply = Reply(text=spec.text, title=spec.title, visibility=Visibility.CHANNEL)
        await bot.notices.post(spec.channel, reply, key=occurrence.key, mention=spec.mention)


def _headline(text: str, limit: int = 60) -> str:
    """A text's first line, cut to ``limit`` (what `schedule list` shows of it)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
