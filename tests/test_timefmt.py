"""Times shown to people: the configured zone, named, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.timefmt import format_clock, format_local, local_time, zone_label, zone_name

ZURICH = "Europe/Zurich"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("moment", "shown"), [
    # 2026-03-29: at 01:00 UTC Zurich jumps from 02:00 CET to 03:00 CEST (02:xx never exists)
    (utc(2026, 3, 29, 0, 59), "2026-03-29 01:59 CET"),
    (utc(2026, 3, 29, 1, 0), "2026-03-29 03:00 CEST"),
    # 2026-10-25: at 01:00 UTC Zurich falls back from 03:00 CEST to 02:00 CET (02:xx twice)
    (utc(2026, 10, 25, 0, 30), "2026-10-25 02:30 CEST"),
    (utc(2026, 10, 25, 1, 30), "2026-10-25 02:30 CET"),
    (utc(2026, 12, 3, 13, 5), "2026-12-03 14:05 CET"),
])
def test_local_time_names_its_zone_across_dst(moment: datetime, shown: str) -> None:
    assert format_local(moment, ZURICH) == shown


def test_the_repeated_hour_is_told_apart() -> None:
    """The night clocks go back, 02:30 happens twice: only the zone name tells them apart."""
    first, second = utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)
    assert format_clock(first, ZURICH, now=second) == "02:30 CEST"
    assert format_clock(second, ZURICH, now=second) == "02:30 CET"
    assert (format_local(first, ZURICH, seconds=True), format_local(second, ZURICH, seconds=True)
            ) == ("2026-10-25 02:30:00 CEST", "2026-10-25 02:30:00 CET")


def test_clock_keeps_the_date_when_it_is_not_today_in_the_zone() -> None:
    # 22:50 UTC on the 25th is 23:50 CET; 23:30 UTC is already 00:30 CET on the 26th. In UTC
    # both are the 25th: the local date decides, so "expired at 23:50" says which day.
    expired, now = utc(2026, 10, 25, 22, 50), utc(2026, 10, 25, 23, 30)
    assert format_clock(expired, ZURICH, now=now) == "2026-10-25 23:50 CET"
    assert format_clock(expired, "UTC", now=now) == "22:50 UTC"
    assert format_clock(now + timedelta(minutes=15), ZURICH, now=now) == "00:45 CET"


def test_naive_times_are_utc_and_other_zones_are_named() -> None:
    """SQLite hands back naive datetimes (stored as UTC); zones whose abbreviation is only an
    offset ("+04") are named by their IANA name instead."""
    naive = datetime(2026, 7, 1, 12, 0)
    assert format_local(naive, ZURICH) == "2026-07-01 14:00 CEST"
    assert format_local(naive, "UTC", seconds=True) == "2026-07-01 12:00:00 UTC"
    assert format_local(naive, "Asia/Dubai") == "2026-07-01 16:00 Asia/Dubai"
    assert format_local(naive, "America/New_York") == "2026-07-01 08:00 EDT"
    assert zone_label(local_time(naive, timezone(timedelta(hours=-3)))) == "UTC-0300"
    assert zone_name(ZURICH) == ZURICH and zone_name(UTC) == "UTC"
