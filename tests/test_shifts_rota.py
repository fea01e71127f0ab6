"""The computed rota as pure functions: wrap-around, handovers across the 2026 DST changes of
Europe/Zurich and America/Chicago, ranges, overrides spanning handovers (latest wins), swaps,
merging, the config's validation and the dates people type."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.shifts.config import ShiftsConfig, period_days
from bot.shifts.dates import BadDate, parse_day, parse_instant, parse_week
from bot.shifts.rota import BaseRota, Layer, RotaPlan, ShiftError, choose_swap
from bot.shifts.service import build_plan

PEOPLE = ("alice", "bob", "carol")
ZURICH, CHICAGO = "Europe/Zurich", "America/Chicago"
# 2026's changes: (zone, the Sunday clocks change, whether they spring forward)
CHANGES = [(ZURICH, date(2026, 3, 29), True), (ZURICH, date(2026, 10, 25), False),
           (CHICAGO, date(2026, 3, 8), True), (CHICAGO, date(2026, 11, 1), False)]


def weekly(zone: str = ZURICH, people: tuple[str, ...] = PEOPLE, start: date = date(2026, 1, 5),
           days: int = 7, at: time = time(9, 0)) -> RotaPlan:
    return RotaPlan(BaseRota(people, start, days, at, zone), (), zone, at)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(at: datetime, zone: str) -> datetime:
    return at.astimezone(ZoneInfo(zone))


# ------------------------------------------------------------------------ the base rota


@pytest.mark.parametrize("zone", [ZURICH, CHICAGO, "UTC", "Asia/Kolkata"])
def test_every_handover_of_the_year_is_monday_0900_local_and_wraps_around(zone: str) -> None:
    plan = weekly(zone)
    start, end = utc(2026, 1, 1), utc(2027, 1, 1)
    handovers = plan.handovers(start, end)
    assert len(handovers) == 52  # Mondays 5 Jan .. 28 Dec 2026
    for i, handover in enumerate(handovers):
        wall = local(handover.at, zone)
        assert (wall.weekday(), wall.hour, wall.minute) == (0, 9, 0)
        assert handover.incoming == PEOPLE[i % 3]
        assert handover.outgoing == (None if i == 0 else PEOPLE[(i - 1) % 3])
        assert handover.end == (handovers[i + 1].at if i + 1 < len(handovers) else handover.end)


@pytest.mark.parametrize(("zone", "sunday", "spring"), CHANGES)
def test_the_week_across_a_dst_change_is_an_hour_shorter_or_longer(
        zone: str, sunday: date, spring: bool) -> None:
    plan = weekly(zone)
    before = plan.slot_at(datetime.combine(sunday, time(12), tzinfo=UTC))
    assert before is not None
    assert local(before.start, zone).date() == sunday - timedelta(days=6)
    assert local(before.end, zone).date() == sunday + timedelta(days=1)
    assert before.end - before.start == timedelta(hours=167 if spring else 169)
    assert local(before.end, zone).hour == 9 == local(before.start, zone).hour
    after = plan.slot_at(before.end)
    assert after is not None and after.start == before.end
    assert after.end - after.start == timedelta(hours=168)


def test_the_2026_handover_instants_in_utc() -> None:
    zurich, chicago = weekly(ZURICH), weekly(CHICAGO)
    assert [h.at for h in zurich.handovers(utc(2026, 3, 20), utc(2026, 4, 1))] == [
        utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]  # CET, then CEST
    assert [h.at for h in zurich.handovers(utc(2026, 10, 15), utc(2026, 10, 30))] == [
        utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)]
    assert [h.at for h in chicago.handovers(utc(2026, 3, 1), utc(2026, 3, 12))] == [
        utc(2026, 3, 2, 15), utc(2026, 3, 9, 14)]  # CST, then CDT
    assert [h.at for h in chicago.handovers(utc(2026, 10, 20), utc(2026, 11, 5))] == [
        utc(2026, 10, 26, 14), utc(2026, 11, 2, 15)]


def test_a_nonexistent_handover_time_moves_forward_and_an_ambiguous_one_happens_once() -> None:
    plan = weekly(ZURICH, days=1, at=time(2, 30))
    spring = plan.handovers(utc(2026, 3, 28), utc(2026, 3, 30, 1))
    assert [h.at for h in spring] == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30),
                                      utc(2026, 3, 30, 0, 30)]  # 02:30 CET, "03:30 CEST", CEST
    fall = plan.handovers(utc(2026, 10, 24), utc(2026, 10, 26, 2))
    assert [h.at for h in fall] == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30),
                                    utc(2026, 10, 26, 1, 30)]  # the first 02:30 only


def test_nobody_before_the_rota_starts_and_next_finds_the_first() -> None:
    plan = weekly(start=date(2026, 6, 1))
    assert plan.person_at(utc(2026, 5, 1)) is None and plan.slot_at(utc(2026, 5, 1)) is None
    first = plan.next_slot(utc(2026, 1, 1))
    assert first is not None and first.person == "alice" and first.start == utc(2026, 6, 1, 7)


# ------------------------------------------------------------------------ layers


def test_an_override_spanning_a_handover_moves_the_handovers() -> None:
    plan = weekly()  # 2026-03-30: week 12 of the rota -> alice (12 % 3 == 0)
    assert plan.person_at(utc(2026, 3, 31)) == "alice"
    # bob from Wednesday 1 April 14:00 to Wednesday 8 April 09:00 (Zurich): across Monday 6th
    wed, next_wed = utc(2026, 4, 1, 12), utc(2026, 4, 8, 7)
    layered = plan.with_layers([Layer("bob", wed, next_wed, "override #1")])
    got = [(h.at, h.outgoing, h.incoming) for h in layered.handovers(utc(2026, 3, 29),
                                                                      utc(2026, 4, 21))]
    # the rota's Monday-6 handover alice->bob disappears: bob's override and his week merge
    assert got == [(utc(2026, 3, 30, 7), "carol", "alice"), (wed, "alice", "bob"),
                   (utc(2026, 4, 13, 7), "bob", "carol"), (utc(2026, 4, 20, 7), "carol", "alice")]
    merged = layered.slot_at(utc(2026, 4, 7))
    assert merged is not None and (merged.start, merged.end) == (wed, utc(2026, 4, 13, 7))
    assert merged.origin == "override #1, rota"


def test_the_latest_layer_wins_where_layers_overlap() -> None:
    a, b = utc(2026, 4, 1), utc(2026, 4, 3)
    first, second = Layer("dave", a, b, "override #1"), Layer("erin", a + timedelta(days=1),
                                                              b + timedelta(days=1), "override #2")
    plan = weekly().with_layers([first, second])
    assert plan.person_at(a + timedelta(hours=12)) == "dave"
    assert plan.person_at(a + timedelta(days=1, hours=12)) == "erin"
    reversed_plan = weekly().with_layers([second, first])
    assert reversed_plan.person_at(a + timedelta(days=1, hours=12)) == "dave"
    assert reversed_plan.person_at(b + timedelta(hours=12)) == "erin"


def test_person_at_agrees_with_the_timeline_under_random_overrides() -> None:
    rng = random.Random(15)
    base = weekly(CHICAGO, people=("alice", "bob", "carol", "dave"))
    start = utc(2026, 2, 1)
    layers = []
    for i in range(12):
        begin = start + timedelta(hours=rng.randrange(0, 24 * 300))
        layers.append(Layer(rng.choice(["alice", "bob", "erin"]), begin,
                            begin + timedelta(hours=rng.randrange(1, 24 * 20)), f"override #{i}"))
    plan = base.with_layers(layers)
    timeline = plan.timeline(start, start + timedelta(days=330))
    for previous, slot in itertools.pairwise(timeline):
        assert previous.end <= slot.start
        assert previous.person != slot.person or previous.end != slot.start  # merged
    at = start
    while at < start + timedelta(days=320):
        slot = next(s for s in timeline if s.covers(at))
        assert plan.person_at(at) == slot.person
        assert plan.slot_at(at) == slot
        at += timedelta(hours=rng.randrange(1, 30))


def test_ranges_only_have_gaps_and_a_handover_after_a_gap_has_no_outgoing() -> None:
    settings = ShiftsConfig.model_validate({"ranges": [
        {"person": "alice", "from": "2026-03-23", "to": "2026-03-30"},
        {"person": "bob", "from": "2026-03-30", "to": "2026-04-06"},
        {"person": "carol", "from": "2026-04-08T14:00", "to": "2026-04-10"}]})
    plan = build_plan(settings, ZURICH)
    got = [(h.at, h.outgoing, h.incoming) for h in plan.handovers(utc(2026, 3, 1),
                                                                   utc(2026, 5, 1))]
    assert got == [(utc(2026, 3, 23, 8), None, "alice"), (utc(2026, 3, 30, 7), "alice", "bob"),
                   (utc(2026, 4, 8, 12), None, "carol")]
    assert plan.person_at(utc(2026, 4, 7)) is None
    assert plan.slot_at(utc(2026, 4, 9)).end == utc(2026, 4, 10, 7)  # type: ignore[union-attr]


# ------------------------------------------------------------------------ swaps


def _apply(plan: RotaPlan, first: str, second: str, now: datetime,
           week: tuple[datetime, datetime] | None = None) -> RotaPlan:
    mine, theirs = choose_swap(plan, first, second, now, week)
    return plan.with_layers([*plan.layers, Layer(second, mine.start, mine.end, "swap #1"),
                             Layer(first, theirs.start, theirs.end, "swap #1")])


@pytest.mark.parametrize(("first", "second"), [("bob", "carol"), ("carol", "bob"),
                                               ("alice", "carol"), ("carol", "alice")])
def test_a_swap_trades_exactly_the_two_nearest_shifts(first: str, second: str) -> None:
    plan = weekly()
    now = utc(2026, 3, 31)  # alice on shift (week of 30 March)
    before = plan.timeline(now, now + timedelta(days=70))
    after = _apply(plan, first, second, now).timeline(now, now + timedelta(days=70))
    mine = next(s for s in before if s.person == first and s.start > now)
    theirs = min((s for s in before if s.person == second and s.start > now),
                 key=lambda s: abs(s.start - mine.start))
    for at in (s.start + timedelta(hours=1) for s in before):
        old = next(s.person for s in before if s.covers(at))
        new = next(s.person for s in after if s.covers(at))
        expected = (second if mine.covers(at) else first if theirs.covers(at) else old)
        assert new == expected, at


def test_a_swap_in_a_given_week_and_its_refusals() -> None:
    plan = weekly()
    now = utc(2026, 3, 31)  # alice's week
    week = (utc(2026, 4, 26, 22), utc(2026, 5, 3, 22))  # ISO 2026-W18 in Zurich: bob's
    swapped = _apply(plan, "bob", "alice", now, week)
    assert swapped.person_at(utc(2026, 4, 28)) == "alice"
    assert swapped.person_at(utc(2026, 5, 5)) == "carol"  # untouched
    assert swapped.person_at(utc(2026, 4, 21)) == "bob"  # alice's nearest (20 April) now bob's
    with pytest.raises(ShiftError, match="started already"):
        choose_swap(plan, "alice", "bob", now, (utc(2026, 3, 29, 22), utc(2026, 4, 5, 22)))
    with pytest.raises(ShiftError, match="no shift in the week"):
        choose_swap(plan, "carol", "bob", now, week)
    with pytest.raises(ShiftError, match="two different"):
        choose_swap(plan, "bob", "bob", now)
    with pytest.raises(ShiftError, match="erin has no shift"):
        choose_swap(plan, "bob", "erin", now)


# ------------------------------------------------------------------------ config and dates


def test_config_validation() -> None:
    assert [period_days(p) for p in ("1w", "2w", "10d", 3)] == [7, 14, 10, 3]
    for bad in ("1h", "0d", "w", "400d"):
        with pytest.raises(ValueError):
            period_days(bad)
    good = {"people": ["alice"], "start_date": "2026-01-05", "handover_day": "monday"}
    ShiftsConfig.model_validate({"rota": good})
    problems = [{**good, "handover_day": "tuesday"}, {**good, "period": "10d"},
                {**good, "zone": "Mars/Olympus"}, {**good, "people": []}]
    for rota in problems:
        with pytest.raises(ValidationError):
            ShiftsConfig.model_validate({"rota": rota})
    with pytest.raises(ValidationError, match="after 'from'"):
        ShiftsConfig.model_validate({"ranges": [{"person": "a", "from": "2026-03-02",
                                                 "to": "2026-03-01"}]})
    with pytest.raises(ValidationError, match=r"extra|unknown|not permitted"):
        ShiftsConfig.model_validate({"rota": good, "heads_up": 2})


def test_dates_people_type() -> None:
    plan = weekly()
    now = utc(2026, 3, 28, 12)  # Saturday, CET
    assert parse_instant("now", plan, now) == now
    assert parse_instant("2026-03-30", plan, now) == utc(2026, 3, 30, 7)  # 09:00 CEST
    assert parse_instant("2026-03-27", plan, now) == utc(2026, 3, 27, 8)  # 09:00 CET
    assert parse_instant("2026-03-30T14:15", plan, now) == utc(2026, 3, 30, 12, 15)
    assert parse_instant("tomorrow", plan, now) == utc(2026, 3, 29, 7)
    assert parse_day("2026-03-29", plan, now) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert parse_day("2026-03-29T10:00", plan, now) is None
    assert parse_week("2026-W14", plan) == parse_week("2026-04-02", plan) == (
        utc(2026, 3, 29, 22), utc(2026, 4, 5, 22))
    for bad in ("2026-13-01", "yesterday", "2026-03-30T25:00", "30.3.2026"):
        with pytest.raises(BadDate):
            parse_instant(bad, plan, now)
    for bad in ("2026-W60", "next", "2026-02-30"):
        with pytest.raises(BadDate):
            parse_week(bad, plan)
