"""DST decided once (bot/schedule/local.py): weekly, daily and handover rules across the 2026
changes of Europe/Zurich (29 Mar, 25 Oct) and America/Chicago (8 Mar, 1 Nov).

Besides fixed expectations, every expansion is checked against a brute-force oracle that
scans UTC in 15-minute steps: exactly one instant per intended local date, the first of an
ambiguous wall time, a nonexistent one moved forward by the gap; and expanding a window in
pieces gives what expanding it whole gives (no double or lost instants at window edges).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedule.local import (
    exists,
    expand_daily,
    expand_weekly,
    is_ambiguous,
    to_utc,
    weekday_number,
)

ZURICH, CHICAGO = "Europe/Zurich", "America/Chicago"
CHANGES = {ZURICH: (date(2026, 3, 29), date(2026, 10, 25)),
           CHICAGO: (date(2026, 3, 8), date(2026, 11, 1))}
STEP = timedelta(minutes=15)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def oracle(day: date, at: time, zone: str) -> datetime:
    """The intended instant by brute force: the first UTC instant whose wall time in
    ``zone`` is ``day at``; none (a gap): the wall time read in the offset before the gap."""
    tz = ZoneInfo(zone)
    wanted = datetime.combine(day, at)
    u = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
    while u < datetime.combine(day + timedelta(days=2), time(0), tzinfo=UTC):
        wall = u.astimezone(tz).replace(tzinfo=None)
        if wall == wanted:
            return u
        if wall > wanted:  # jumped over it: a gap
            before = (u - STEP).astimezone(tz).utcoffset()
            assert before is not None
            return (wanted - before).replace(tzinfo=UTC)
        u += STEP
    raise AssertionError("no instant found")


# ------------------------------------------------------------------------ to_utc


@pytest.mark.parametrize(("zone", "local", "expected"), [
    # spring forward: 02:30 does not exist, it moves forward by the gap (03:30 summer time)
    (ZURICH, datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 30)),
    (CHICAGO, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 8, 30)),
    # fall back: the ambiguous wall time is the first one (summer time)
    (ZURICH, datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30)),
    (CHICAGO, datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 6, 30)),
    # and around them nothing moves
    (ZURICH, datetime(2026, 3, 29, 1, 59), utc(2026, 3, 29, 0, 59)),
    (ZURICH, datetime(2026, 3, 29, 3, 0), utc(2026, 3, 29, 1, 0)),
    (ZURICH, datetime(2026, 10, 25, 3, 0), utc(2026, 10, 25, 2, 0)),
    (CHICAGO, datetime(2026, 11, 1, 2, 30), utc(2026, 11, 1, 8, 30)),
])
def test_to_utc_decides_gaps_and_repeats_once(zone: str, local: datetime,
                                              expected: datetime) -> None:
    assert to_utc(local, zone) == expected
    assert to_utc(local, zone) == oracle(local.date(), local.time(), zone)


def test_gap_and_repeat_are_recognised() -> None:
    assert not exists(datetime(2026, 3, 29, 2, 30), ZURICH)
    assert exists(datetime(2026, 3, 29, 3, 30), ZURICH)
    assert is_ambiguous(datetime(2026, 10, 25, 2, 30), ZURICH)
    assert not is_ambiguous(datetime(2026, 10, 25, 3, 30), ZURICH)
    assert is_ambiguous(datetime(2026, 11, 1, 1, 0), CHICAGO)
    assert not is_ambiguous(datetime(2026, 11, 1, 2, 0), CHICAGO)
    with pytest.raises(ValueError):
        to_utc(datetime(2026, 1, 1, tzinfo=UTC), ZURICH)


# ------------------------------------------------------------------------ fixed expectations


def _around(day: date) -> tuple[datetime, datetime]:
    """Two weeks either side of a change, as a UTC window."""
    return (datetime.combine(day - timedelta(days=14), time(0), tzinfo=UTC),
            datetime.combine(day + timedelta(days=15), time(0), tzinfo=UTC))


@pytest.mark.parametrize(("zone", "change", "before", "after"), [
    (ZURICH, 0, 15, 14), (ZURICH, 1, 14, 15), (CHICAGO, 0, 22, 21), (CHICAGO, 1, 21, 22)])
def test_weekly_monday_1600(zone: str, change: int, before: int, after: int) -> None:
    day = CHANGES[zone][change]
    start, end = _around(day)
    got = expand_weekly(["mon"], time(16, 0), zone, window_start=start, window_end=end)
    mondays = [d for d in (day - timedelta(days=14) + timedelta(days=i) for i in range(29))
               if d.weekday() == 0]
    assert len(got) == len(mondays) == 4
    for instant, monday in zip(got, mondays, strict=True):
        hour = before if monday < day else after
        assert instant == datetime.combine(monday, time(hour), tzinfo=UTC)


@pytest.mark.parametrize(("zone", "change", "on_the_day"), [
    (ZURICH, 0, utc(2026, 3, 29, 1, 30)),   # 03:30 CEST: moved forward by the gap
    (ZURICH, 1, utc(2026, 10, 25, 0, 30)),  # 02:30 CEST, once (not also 02:30 CET)
    (CHICAGO, 0, utc(2026, 3, 8, 8, 30)),   # 03:30 CDT
    (CHICAGO, 1, utc(2026, 11, 1, 8, 30)),  # 02:30 CST (Chicago repeats 01:00-02:00)
])
def test_daily_0230_one_per_day(zone: str, change: int, on_the_day: datetime) -> None:
    day = CHANGES[zone][change]
    start, end = _around(day)
    got = expand_daily(time(2, 30), zone, window_start=start, window_end=end)
    assert len(got) == 29  # one per local date, none twice, none lost
    assert len({i.astimezone(ZoneInfo(zone)).date() for i in got}) == 29
    assert on_the_day in got
    assert [i for i in got if i.astimezone(ZoneInfo(zone)).date() == day] == [on_the_day]


@pytest.mark.parametrize(("zone", "monday", "expected"), [
    (ZURICH, date(2026, 3, 23), utc(2026, 3, 23, 8)), (ZURICH, date(2026, 3, 30),
                                                       utc(2026, 3, 30, 7)),
    (ZURICH, date(2026, 10, 19), utc(2026, 10, 19, 7)), (ZURICH, date(2026, 10, 26),
                                                         utc(2026, 10, 26, 8)),
    (CHICAGO, date(2026, 3, 2), utc(2026, 3, 2, 15)), (CHICAGO, date(2026, 3, 9),
                                                       utc(2026, 3, 9, 14)),
    (CHICAGO, date(2026, 10, 26), utc(2026, 10, 26, 14)), (CHICAGO, date(2026, 11, 2),
                                                           utc(2026, 11, 2, 15)),
])
def test_monday_0900_handover(zone: str, monday: date, expected: datetime) -> None:
    start = datetime.combine(monday - timedelta(days=3), time(0), tzinfo=UTC)
    got = expand_weekly([0], time(9, 0), zone, window_start=start,
                        window_end=start + timedelta(days=7))
    assert got == [expected]


# ------------------------------------------------------------------------ the whole year


@pytest.mark.parametrize("zone", [ZURICH, CHICAGO])
@pytest.mark.parametrize("at", [time(0, 0), time(1, 30), time(2, 0), time(2, 30), time(3, 0),
                                time(9, 0), time(16, 0), time(23, 45)])
def test_daily_all_year_matches_the_oracle(zone: str, at: time) -> None:
    start, end = utc(2026, 1, 1), utc(2027, 1, 1)
    got = expand_daily(at, zone, window_start=start, window_end=end)
    tz = ZoneInfo(zone)
    days = sorted({i.astimezone(tz).date() for i in got})
    assert len(got) == len(days)  # never two on one local date
    first = start.astimezone(tz).date()
    expected = [oracle(first + timedelta(days=n), at, zone) for n in range(366)]
    assert got == [e for e in expected if start <= e < end]


@pytest.mark.parametrize("zone", [ZURICH, CHICAGO])
@pytest.mark.parametrize("hours", [1, 7, 13, 25])
def test_pieces_make_the_whole(zone: str, hours: int) -> None:
    """Planning passes expand consecutive windows: together they must give each instant
    exactly once, whatever the window edges (DST days included)."""
    start, end = utc(2026, 2, 20), utc(2026, 11, 20)
    whole = expand_daily(time(2, 30), zone, window_start=start, window_end=end)
    whole += expand_weekly(["mon", "fri"], time(16, 0), zone, window_start=start,
                           window_end=end)
    pieces: list[datetime] = []
    edge = start
    while edge < end:
        nxt = min(edge + timedelta(hours=hours), end)
        pieces += expand_daily(time(2, 30), zone, window_start=edge, window_end=nxt)
        pieces += expand_weekly(["mon", "fri"], time(16, 0), zone, window_start=edge,
                                window_end=nxt)
        edge = nxt
    assert sorted(pieces) == sorted(whole)
    assert len(set(pieces)) == len(pieces)


def test_biweekly_counts_weeks_from_the_start_date() -> None:
    start, end = utc(2026, 3, 1), utc(2026, 5, 1)
    got = expand_weekly(["mon"], time(16, 0), ZURICH, window_start=start, window_end=end,
                        every_weeks=2, start_date=date(2026, 3, 16))
    assert [i.date() for i in got] == [date(2026, 3, 16), date(2026, 3, 30), date(2026, 4, 13),
                                       date(2026, 4, 27)]
    assert got[1] == utc(2026, 3, 30, 14)  # across the change: 16:00 CEST


def test_weekday_names() -> None:
    assert [weekday_number(d) for d in ("mon", "Monday", "SUN", "fri", 3)] == [0, 0, 6, 4, 3]
    for bad in ("mo", "mond", "xyz", 7):
        with pytest.raises(ValueError):
            weekday_number(bad)
