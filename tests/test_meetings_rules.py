"""Meeting series from weekly rules (bot/meetings/model.py, source.py): Monday 16:00
Europe/Zurich across the 2026 DST changes, biweekly parity, skipped dates, reminders at their
offsets, the report thread and its auto-close, stable keys, and the team-zone DST warning
(Europe and the US switch on different dates)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.meetings.config import MeetingsConfig, parse_offset
from bot.meetings.ical import Feeds
from bot.meetings.model import dst_warning, zone_times
from bot.meetings.source import MeetingsSource
from bot.timefmt import local_time

ZURICH, CHICAGO = "Europe/Zurich", "America/Chicago"
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def series(**overrides: Any) -> dict[str, Any]:
    spec = {"name": "wmcore", "title": "WMCore weekly", "channel": "ops", "zone": ZURICH,
            "weekly": {"days": ["mon"], "time": "16:00", "duration_minutes": 60},
            "reminders": ["1d", "10m"], "report": {"auto_close_hours": 4}}
    spec.update(overrides)
    return spec


def source(*specs: dict[str, Any], **settings: Any) -> MeetingsSource:
    config = MeetingsConfig.model_validate({"series": list(specs), **settings})
    return MeetingsSource(config, utc(2026, 1, 1), Feeds(None, timedelta(minutes=30), 5))  # type: ignore[arg-type]


async def starts(src: MeetingsSource, name: str, start: datetime, end: datetime) -> list[datetime]:
    return [m.start for m in await src.meetings(src.specs[name], start, end)]


async def test_monday_1600_zurich_across_both_2026_changes() -> None:
    src = source(series())
    march = await starts(src, "wmcore", utc(2026, 3, 16), utc(2026, 4, 7))
    assert march == [utc(2026, 3, 16, 15), utc(2026, 3, 23, 15), utc(2026, 3, 30, 14),
                     utc(2026, 4, 6, 14)]
    october = await starts(src, "wmcore", utc(2026, 10, 19), utc(2026, 11, 3))
    assert october == [utc(2026, 10, 19, 14), utc(2026, 10, 26, 15), utc(2026, 11, 2, 15)]


async def test_every_monday_of_the_year_is_1600_in_zurich_once() -> None:
    src = source(series())
    year = await starts(src, "wmcore", *YEAR)
    local = [local_time(at, ZURICH) for at in year]
    assert all((t.weekday(), t.hour, t.minute) == (0, 16, 0) for t in local)
    assert [t.date() for t in local] == [date(2026, 1, 5) + timedelta(weeks=n) for n in range(52)]


async def test_windows_in_pieces_give_the_whole() -> None:
    """Planning passes cut time anywhere: no occurrence lost or doubled at a cut."""
    src = source(series())
    whole = await src.occurrences(None, utc(2026, 3, 20), utc(2026, 4, 20))  # type: ignore[arg-type]
    cuts = [utc(2026, 3, 20), utc(2026, 3, 29, 14, 50), utc(2026, 3, 30, 14, 0),
            utc(2026, 3, 30, 15, 0), utc(2026, 3, 30, 19, 0), utc(2026, 4, 20)]
    pieces = []
    for a, b in itertools.pairwise(cuts):
        pieces += await src.occurrences(None, a, b)  # type: ignore[arg-type]
    assert sorted(o.key for o in pieces) == sorted(o.key for o in whole)
    assert len({o.key for o in whole}) == len(whole)


@pytest.mark.parametrize("start_date", [date(2026, 3, 30), date(2026, 4, 1), date(2026, 4, 6)])
async def test_biweekly_parity_follows_the_start_date(start_date: date) -> None:
    rule = {"days": ["mon"], "time": "16:00", "every_weeks": 2, "start_date": str(start_date)}
    src = source(series(weekly=rule))
    found = await starts(src, "wmcore", utc(2026, 1, 1), utc(2026, 7, 1))
    dates = [local_time(at, ZURICH).date() for at in found]
    monday = start_date - timedelta(days=start_date.weekday())  # of the parity week
    # The first meeting on or after the start date, in a week of its parity.
    assert dates[0] == (monday if monday >= start_date else monday + timedelta(weeks=2))
    assert all((b - a).days == 14 for a, b in itertools.pairwise(dates))


async def test_the_two_parities_split_the_weekly_meetings() -> None:
    even = {"days": ["mon"], "time": "16:00", "every_weeks": 2, "start_date": "2026-03-30"}
    odd = {**even, "start_date": "2026-03-23"}
    src = source(series(name="a", weekly=even), series(name="b", weekly=odd),
                 series(name="all"))
    window = (utc(2026, 4, 1), utc(2026, 12, 31))
    a, b = await starts(src, "a", *window), await starts(src, "b", *window)
    assert not set(a) & set(b)
    assert sorted(a + b) == await starts(src, "all", *window)


async def test_skipped_dates_have_no_meeting() -> None:
    rule = {"days": ["mon", "fri"], "time": "16:00", "skip_dates": ["2026-12-28", "2027-01-01"]}
    src = source(series(weekly=rule))
    dates = [local_time(at, ZURICH).date() for at in
             await starts(src, "wmcore", utc(2026, 12, 20), utc(2027, 1, 10))]
    assert dates == [date(2026, 12, 21), date(2026, 12, 25), date(2027, 1, 4),
                     date(2027, 1, 8)]


async def test_reminders_report_and_auto_close_of_one_meeting() -> None:
    src = source(series())
    occs = await src.occurrences(None, utc(2026, 3, 29), utc(2026, 3, 31))  # type: ignore[arg-type]
    assert [(o.kind, o.key, o.at) for o in sorted(occs, key=lambda o: o.at)] == [
        ("reminder", "reminder:wmcore/2026-03-30T14:00:00Z-1d", utc(2026, 3, 29, 14)),
        ("reminder", "reminder:wmcore/2026-03-30T14:00:00Z-10m", utc(2026, 3, 30, 13, 50)),
        ("report", "report:wmcore/2026-03-30T14:00:00Z", utc(2026, 3, 30, 15)),
        ("report-close", "report-close:wmcore/2026-03-30T14:00:00Z", utc(2026, 3, 30, 19)),
    ]
    assert all(o.series == "wmcore" and o.data["meeting_title"] == "WMCore weekly" for o in occs)


@pytest.mark.parametrize("offsets", [["10m"], ["1d", "10m"], ["2h", "90s", "1w"], []])
async def test_every_offset_gives_one_reminder_that_long_before(offsets: list[str]) -> None:
    src = source(series(reminders=offsets, report={"enabled": False}))
    meetings = await src.meetings(src.specs["wmcore"], utc(2026, 6, 1), utc(2026, 6, 30))
    occs = await src.occurrences(None, utc(2026, 5, 20), utc(2026, 7, 10))  # type: ignore[arg-type]
    wanted = sorted((m.start - parse_offset(o)) for m in meetings for o in offsets)
    got = sorted(o.at for o in occs if utc(2026, 6, 1) <= datetime.fromisoformat(
        o.data["start"]) < utc(2026, 6, 30))
    assert got == wanted and all(o.kind == "reminder" for o in occs)


def test_offsets_parse_and_refuse() -> None:
    assert [parse_offset(t).total_seconds() for t in ("10m", "1d", "2h", "90s", "1w", "1.5h")] \
        == [600, 86400, 7200, 90, 604800, 5400]
    for bad in ("10", "m", "-5m", "0m", "40d", "ten minutes"):
        with pytest.raises(ValueError):
            parse_offset(bad)


def test_config_refuses_two_rules_or_none_and_bad_zones() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MeetingsConfig.model_validate({"series": [series(ical={"url": "https://x/a.ics"})]})
    with pytest.raises(ValueError, match="exactly one"):
        MeetingsConfig.model_validate({"series": [series(weekly=None)]})
    with pytest.raises(ValueError, match="IANA"):
        MeetingsConfig.model_validate({"series": [series(zone="Mars/Olympus")]})
    with pytest.raises(ValueError, match="duplicate"):
        MeetingsConfig.model_validate({"series": [series(), series()]})


async def test_team_zones_and_the_dst_warning_over_the_year() -> None:
    """16:00 in Zurich is 09:00 in Chicago, except in the weeks one of them switched and the
    other not yet (8-29 March, 25 Oct-1 Nov 2026): 10:00, with a warning."""
    src = source(series())
    for at in await starts(src, "wmcore", *YEAR):
        chicago = local_time(at, CHICAGO)
        warning = dst_warning(at, [ZURICH, CHICAGO])
        mismatch = date(2026, 3, 8) <= at.date() < date(2026, 3, 29) or \
            date(2026, 10, 25) <= at.date() < date(2026, 11, 1)
        assert (chicago.hour == 10) == mismatch == (warning is not None), at
    assert zone_times(utc(2026, 3, 16, 15), [ZURICH, CHICAGO]) == [
        "16:00 CET (Europe/Zurich)", "10:00 CDT (America/Chicago)"]
    assert "6 h apart (usually 7 h)" in (dst_warning(utc(2026, 3, 16, 15), [ZURICH, CHICAGO])
                                         or "")
    assert dst_warning(utc(2026, 3, 16, 15), [ZURICH, "UTC", "Asia/Tokyo"]) is None
