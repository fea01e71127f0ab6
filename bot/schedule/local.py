"""Wall-clock rules to UTC instants, with daylight saving time decided once, here.

People say "Monday 16:00 Europe/Zurich" and "daily at 02:30": local wall times. Twice a year a
local time does not exist (spring forward: 02:30 is skipped) or exists twice (fall back: 02:30
happens in summer time, then again in winter time). APScheduler's CronTrigger fires a daily
02:30 twice on the fall-back day and shifts it on spring-forward (SCHEDULING.md), so rules are
expanded here into concrete UTC instants and APScheduler only gets one-shot dates. The rule:

- a **nonexistent** local time moves forward by the gap: 02:30 on 29 March 2026 in Zurich is
  03:30 CEST (01:30 UTC), the same instant as "02:30 in the offset before the change";
- an **ambiguous** local time fires once, at its first occurrence (``fold=0``: summer time):
  02:30 on 25 October 2026 in Zurich is 02:30 CEST (00:30 UTC), not also 02:30 CET.

That is exactly what PEP 495 gives ``datetime(..., tzinfo=ZoneInfo(...), fold=0)``; the tests
pin it across the 2026 changes of Europe/Zurich and America/Chicago.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from bot.timefmt import zone_of

# Biweekly rules count weeks from this Monday unless given a start date.
WEEK_ANCHOR = date(1970, 1, 5)
FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALL_DAYS = frozenset(range(7))


def to_utc(local: datetime, zone: str | tzinfo) -> datetime:
    """The UTC instant of the naive wall time ``local`` in ``zone`` (DST rule above)."""
    if local.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall time")
    return local.replace(tzinfo=zone_of(zone), fold=0).astimezone(UTC)


def exists(local: datetime, zone: str | tzinfo) -> bool:
    """Does the naive wall time ``local`` happen in ``zone`` (False in a spring-forward gap)?"""
    back = to_utc(local, zone).astimezone(zone_of(zone)).replace(tzinfo=None)
    return back == local


def is_ambiguous(local: datetime, zone: str | tzinfo) -> bool:
    """Does ``local`` happen twice in ``zone`` (the fall-back hour)?"""
    tz = zone_of(zone)
    first = local.replace(tzinfo=tz, fold=0).utcoffset()
    second = local.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second and exists(local, zone)


def weekday_number(name: str | int) -> int:
    """``"mon"``, ``"Monday"``, ``0`` -> 0 (Monday) ... 6 (Sunday)."""
    if isinstance(name, int):
        if 0 <= name <= 6:
            return name
        raise ValueError(f"weekday number {name} is not 0 (Monday) .. 6 (Sunday)")
    word = name.strip().lower()
    for number, full in enumerate(FULL_WEEKDAYS):
        if word in (full, full[:3]):
            return number
    raise ValueError(f"unknown weekday {name!r} (mon, tue, ... sun)")


def _week_index(day: date, anchor: date) -> int:
    """Weeks between the Monday of ``anchor``'s week and ``day``'s (negative before it)."""
    monday = anchor - timedelta(days=anchor.weekday())
    return (day - monday).days // 7


def _local_dates(start: datetime, end: datetime, zone: tzinfo) -> Iterable[date]:
    """Every local date a wall time in [start, end) can fall on (a day of margin each side:
    an instant's local date differs from its UTC date by up to 14 hours either way)."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def expand_weekly(days: Iterable[int | str], at: time, zone: str | tzinfo, *,
                  window_start: datetime, window_end: datetime, every_weeks: int = 1,
                  start_date: date | None = None,
                  end_date: date | None = None) -> list[datetime]:
    """The UTC instants, sorted, with ``window_start <= instant < window_end`` of "every
    ``every_weeks`` weeks on ``days`` at the wall time ``at`` in ``zone``". Weeks count from
    ``start_date``'s week (default: a fixed Monday, so replicas agree); dates before
    ``start_date`` or after ``end_date`` are left out. One instant per intended local date,
    always (the DST rule of :func:`to_utc`)."""
    if every_weeks < 1:
        raise ValueError("every_weeks must be >= 1")
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("the window must be timezone-aware")
    wanted = frozenset(weekday_number(d) for d in days)
    tz = zone_of(zone)
    anchor = start_date or WEEK_ANCHOR
    wall = at.replace(tzinfo=None, fold=0)
    instants = []
    for day in _local_dates(window_start, window_end, tz):
        if day.weekday() not in wanted:
            continue
        if (start_date and day < start_date) or (end_date and day > end_date):
            continue
        if every_weeks > 1 and _week_index(day, anchor) % every_weeks:
            continue
        instant = to_utc(datetime.combine(day, wall), tz)
        if window_start <= instant < window_end:
            instants.append(instant)
    return instants


def expand_daily(at: time, zone: str | tzinfo, *, window_start: datetime,
                 window_end: datetime, start_date: date | None = None,
                 end_date: date | None = None) -> list[datetime]:
    """Every day at the wall time ``at`` in ``zone`` (see :func:`expand_weekly`)."""
    return expand_weekly(ALL_DAYS, at, zone, window_start=window_start, window_end=window_end,
                         start_date=start_date, end_date=end_date)


def zone_info(name: str) -> ZoneInfo:
    """A named IANA zone, or ValueError saying so (config validation)."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. 'Europe/Zurich')") from exc
