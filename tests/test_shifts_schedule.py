"""Heads-up, handover and escalation through the real scheduler, on the console, with a
manual clock: the Monday 09:00 handover across the 2026 DST changes (Europe/Zurich and
America/Chicago), acknowledgement by button and command, escalation in the handover's thread,
and the on-shift role following the rota."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_shifts_rig import (
    HANDOVER,
    HEADS_UP,
    NEXT_HANDOVER,
    T0,
    clock,
    minutes,
    shift_rig,
)

from bot.reply import Reply
from bot.schedule import store as schedule_store
from bot.shifts.api import next_shift, shifter_at

__all__ = ["clock"]  # fixture

SECOND = timedelta(seconds=1)


async def test_heads_up_then_handover_then_escalation_in_its_thread(make_bot: Any,
                                                                     clock: Any) -> None:
    rig = await shift_rig(make_bot)
    assert rig.out.getvalue() == ""
    assert await rig.at(HEADS_UP - SECOND) == ""
    heads_up = await rig.at(HEADS_UP + 10 * SECOND)
    assert heads_up.startswith("[#ops 1] Shift heads-up: alice\n@alice Heads-up: ")
    assert "alice's shift starts Mon 2026-03-30 09:00 CEST (in 2 days)" in heads_up
    assert "until Mon 2026-04-06 09:00 CEST" in heads_up and "dave hands over" in heads_up

    assert await rig.at(HANDOVER - SECOND) == ""
    handover = await rig.at(HANDOVER + 5 * SECOND)
    assert handover.startswith("[#ops 2] Shift handover to alice\n@alice Shift handover: ")
    assert "dave → alice, from Mon 2026-03-30 09:00 CEST" in handover
    assert "escalates in 30m" in handover
    rig.button("Acknowledge", handover)

    assert await rig.at(HANDOVER + minutes(30) - SECOND) == ""
    escalation = await rig.at(HANDOVER + minutes(30) + 5 * SECOND)
    assert escalation.startswith("[#ops > 2] ")  # message 2 (the handover)'s thread
    assert "Not acknowledged after 30m" in escalation
    assert "Fallback: shifters (alice, bob)" in escalation
    assert "alice has not confirmed" in escalation
    assert "\n@alice @bob Not acknowledged" in escalation  # really mentioned
    assert await rig.at(HANDOVER + minutes(90)) == ""  # each once


async def test_acknowledge_button_by_the_incoming_shifter_stops_the_escalation(
        make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    handover = await rig.at(HANDOVER + 5 * SECOND)
    button = rig.button("Acknowledge", handover)

    refused = await rig.run(f"click {button}", "bob")  # has shift.ack, is not incoming
    assert "only alice (the incoming shifter)" in refused
    denied = await rig.run(f"click {button}", "mallory")  # nobody: the gate refuses
    assert "Not allowed" in denied

    clock.advance(4 * 60)
    done = await rig.run(f"click {button}", "alice")
    assert "alice acknowledged shift from Mon 2026-03-30 09:00 CEST" in done
    assert re.search(r"\[#ops 1 updated\] \[OK\] Shift handover to alice\n@alice ", done)
    assert "Acknowledged by alice at 09:04 CEST" in done
    assert "[Acknowledge:" not in done.split("updated]")[1]
    again = await rig.run("shift ack", "alice")
    assert "acknowledged already by alice" in again
    assert await rig.at(HANDOVER + minutes(31)) == ""  # no escalation
    rows = await rig.bot.database.run(schedule_store.recorded_since, HANDOVER)
    assert {k.split(":")[0]: r.state for k, r in rows.items()} == {
        "handover": "fired", "escalate": "fired"}


async def test_an_expert_may_acknowledge_for_the_shifter_and_audit_records_it(
        make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    await rig.at(HANDOVER + 5 * SECOND)
    done = await rig.run("shift ack", "carol")  # expert: shift.override
    assert "carol acknowledged alice's shift" in done
    assert "Acknowledged by carol" in done
    audit = await rig.run("audit", "alice")
    assert "shift.ack" in audit and "carol" in audit


async def test_acknowledged_ahead_the_handover_posts_acknowledged_and_never_escalates(
        make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    await rig.at(HEADS_UP + SECOND)
    early = await rig.run("shift ack", "dave")  # dave is on shift: his own handover
    assert "dave acknowledged shift from Mon 2026-03-23" in early
    ahead = await rig.run("shift ack", "alice")
    assert "(ahead of the handover)" in ahead
    handover = await rig.at(HANDOVER + SECOND)
    assert "Acknowledged by alice" in handover and "[Acknowledge:" not in handover
    assert await rig.at(HANDOVER + minutes(31)) == ""


async def test_a_swap_before_the_heads_up_changes_who_is_told_and_who_acknowledges(
        make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    swapped = await rig.run("shift swap alice bob", "bob")
    assert "\n@alice @bob Shift swap by bob" in swapped
    assert "bob now takes Mon 2026-03-30 09:00 CEST to Mon 2026-04-06 09:00 CEST" in swapped
    assert "alice now takes Mon 2026-04-06 09:00 CEST to Mon 2026-04-13 09:00 CEST" in swapped
    heads_up = await rig.at(HEADS_UP + SECOND)
    assert "\n@bob Heads-up" in heads_up and "bob's shift starts" in heads_up
    handover = await rig.at(HANDOVER + SECOND)
    assert "dave → bob" in handover
    refused = await rig.run(f"click {rig.button('Acknowledge', handover)}", "alice")
    assert "only bob" in refused
    next_one = await rig.at(NEXT_HANDOVER + SECOND)
    assert "bob → alice" in next_one and "\n@alice Shift handover" in next_one


async def test_the_on_shift_role_follows_the_rota(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    assert rig.allowed("dave", "sample.slow") and not rig.allowed("alice", "sample.slow")
    why = await rig.run("why sample.slow", "dave")
    assert "on-shift" in why and "provider shifts" in why
    await rig.bot.notices.post("ops", Reply("who is on?"), key="t1", mention=["on-shift"])
    assert await rig.bot.notices.idle(5)
    await rig.at(HANDOVER - SECOND)
    assert rig.allowed("dave", "sample.slow")
    await rig.at(HANDOVER)
    assert not rig.allowed("dave", "sample.slow") and rig.allowed("alice", "sample.slow")
    await rig.bot.notices.post("ops", Reply("who now?"), key="t2", mention=["on-shift"])
    assert await rig.bot.notices.idle(5)
    lines = rig.out.getvalue().splitlines()
    # Message 2 is the handover's own post, between the two.
    assert "[#ops 1] @dave who is on?" in lines and "[#ops 3] @alice who now?" in lines
    # an override moves the role at once
    await rig.run("shift override erin now 2026-03-31", "carol")
    assert rig.allowed("erin", "sample.slow") and not rig.allowed("alice", "sample.slow")
    slot = shifter_at(rig.bot, HANDOVER + minutes(1))
    assert slot is not None and slot.person == "erin"
    upcoming = next_shift(rig.bot, HANDOVER + minutes(1))
    assert upcoming is not None and upcoming.person == "alice"
    assert upcoming.start == datetime(2026, 3, 31, 7, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "monday", "utc_hour"), [
    ("Europe/Zurich", date(2026, 3, 30), 7), ("Europe/Zurich", date(2026, 10, 26), 8),
    ("America/Chicago", date(2026, 3, 9), 14), ("America/Chicago", date(2026, 11, 2), 15)])
async def test_the_monday_0900_handover_fires_at_0900_local_across_dst(
        make_bot: Any, clock: Any, zone: str, monday: date, utc_hour: int) -> None:
    clock.now = datetime.combine(monday - timedelta(days=3), time(12), tzinfo=UTC)
    rig = await shift_rig(make_bot, {"bot": {"timezone": zone}, "shifts": {
        "zone": zone, "rota": {"zone": zone}, "heads_up_days": 0, "ack_minutes": 0}})
    expected = datetime.combine(monday, time(utc_hour), tzinfo=UTC)
    assert expected.astimezone(ZoneInfo(zone)).hour == 9
    assert await rig.at(expected - minutes(1)) == ""
    posted = await rig.at(expected + SECOND)
    assert "Shift handover to " in posted
    assert f"from Mon {monday:%Y-%m-%d} 09:00" in posted
    assert await rig.at(expected + minutes(10)) == ""  # and only once


async def test_schedule_list_shows_the_shift_occurrences(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    listed = await rig.run("schedule list --days 4", "alice")
    for kind in ("heads-up", "handover", "escalate"):
        assert kind in listed
    assert "shift handover dave → alice" in listed
    assert T0 < HEADS_UP
