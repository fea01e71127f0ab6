"""Meetings as concrete instants, and how their time reads in the team's zones.

A :class:`Meeting` is one meeting of a series (from a weekly rule, a feed's event or the demo
rule). Its identity is the series, its *base* instant (the rule's start; a feed event's
``RECURRENCE-ID``, or its start when it does not recur) and, for a feed, a short hash of the
event's ``UID``: every key of its reminders, its report thread and its auto-close derives from
that, so a re-plan, a restart or a second bot process computes the same keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.meetings.config import MeetingRule, SeriesSpec
from bot.schedule.local import expand_weekly
from bot.schedule.model import instant_text, occurrence_key
from bot.timefmt import local_time, zone_label

REMINDER, REPORT, AUTOCLOSE = "reminder", "report", "report-close"


def uid_suffix(uid: str) -> str:
    """``@`` and 10 hex digits of the UID's SHA-1: short, stable, safe in a key."""
    return "@" + hashlib.sha1(uid.encode("utf-8", "surrogatepass")).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Meeting:
    series: str
    title: str
    start: datetime  # UTC
    end: datetime
    base: datetime  # the identity instant (see the module's docstring)
    suffix: str = ""  # a feed event's uid_suffix
    links: tuple[tuple[str, str], ...] = field(default=())  # the event's own (label, url)

    @property
    def meeting_key(self) -> str:
        return f"{self.series}/{instant_text(self.base)}{self.suffix}"

    def key(self, kind: str, offset: timedelta | None = None) -> str:
        """The key of this meeting's occurrence of ``kind`` (a reminder: ``-offset``)."""
        return occurrence_key(kind, self.series, self.base,
                              None if offset is None else -offset) + self.suffix


def rule_meetings(spec: SeriesSpec, rule: MeetingRule, start: datetime,
                  end: datetime) -> list[Meeting]:
    """The meetings of a weekly rule starting in [start, end)."""
    instants = expand_weekly(rule.weekdays, rule.time, spec.zone, window_start=start,
                             window_end=end, every_weeks=rule.every_weeks,
                             start_date=rule.start_date, end_date=rule.end_date)
    skipped = set(rule.skip_dates)
    length = timedelta(minutes=rule.duration_minutes)
    return [Meeting(spec.name, spec.display_title, at, at + length, at) for at in instants
            if local_time(at, spec.zone).date() not in skipped]


def once_meetings(spec: SeriesSpec, started_at: datetime, start: datetime,
                  end: datetime) -> list[Meeting]:
    """The demo rule: one meeting ``minutes`` after the bot started."""
    once = spec.once_after_start
    assert once is not None
    at = started_at.replace(microsecond=0) + timedelta(minutes=once.minutes)
    if not start <= at < end:
        return []
    return [Meeting(spec.name, spec.display_title, at,
                    at + timedelta(minutes=once.duration_minutes), at)]


# ------------------------------------------------------------------------ team zones


def zone_times(at: datetime, zones: list[str]) -> list[str]:
    """``16:00 CEST (Europe/Zurich)``, ``09:00 CDT (America/Chicago)``, ... with the local
    date when it differs from the first zone's."""
    out = []
    first_date = None
    for zone in zones:
        local = local_time(at, zone)
        first_date = first_date or local.date()
        day = "" if local.date() == first_date else f" {local:%a %d %b}"
        out.append(f"{local:%H:%M}{day} {zone_label(local)} ({zone})")
    return out


def _offset_hours(at: datetime, zone: str) -> float:
    offset = local_time(at, zone).utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600


def _usual_differences(at: datetime, a: str, b: str) -> set[float]:
    """The offset difference of zones ``a`` and ``b`` in mid-January and mid-July of the
    instant's year (both on standard time, both on summer time)."""
    year = at.astimezone(UTC).year
    probes = (datetime(year, 1, 15, 12, tzinfo=UTC), datetime(year, 7, 15, 12, tzinfo=UTC))
    return {_offset_hours(p, a) - _offset_hours(p, b) for p in probes}


def dst_warning(at: datetime, zones: list[str]) -> str | None:
    """A warning when two of the team's zones are this week apart by other than their usual
    difference (Europe and the US switch daylight saving time on different dates: 16:00 in
    Zurich is 09:00 in Chicago most of the year, 10:00 for a few weeks)."""
    for i, a in enumerate(zones):
        for b in zones[i + 1:]:
            now = _offset_hours(at, a) - _offset_hours(at, b)
            usual = _usual_differences(at, a, b)
            if now not in usual:
                typical = " or ".join(f"{abs(d):g} h" for d in sorted(usual, key=abs))
                return (f"Daylight saving time differs this week: {a} and {b} are "
                        f"{abs(now):g} h apart (usually {typical}); check the time.")
    return None
