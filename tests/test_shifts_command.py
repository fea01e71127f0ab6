"""The shift commands on the console: who, next, list, swap, override, ack; their usage
errors for bad dates and people, permissions, audit, and the config checks."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import deep_merge
from test_shifts_rig import HANDOVER, SHIFTS, clock, shift_rig

from bot.config import ConfigError
from bot.features import bind_sections
from bot.registry import Registry
from handlers.shifts import check_config, refresh

__all__ = ["clock"]  # fixture

# Any console message to #ops (a post ``[#ops 3]``, an update, a thread reply).
POSTED = re.compile(r"^\[#ops\b", re.M)


async def test_who_now_on_a_day_at_an_instant_and_next(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    now = await rig.run("shift who")
    assert "dave is on shift now: Mon 2026-03-23 09:00 CET to Mon 2026-03-30 09:00 CEST" in now
    assert "Next: alice from Mon 2026-03-30 09:00 CEST" in now
    day = await rig.run("shift who 2026-03-30")  # the handover day: both
    assert "dave is on shift now: Mon 2026-03-23" in day
    assert "alice is on shift on Mon 2026-03-30: Mon 2026-03-30 09:00 CEST" in day
    assert "Next: bob from Mon 2026-04-06" in day
    instant = await rig.run("shift who 2026-04-07T23:30")
    assert "bob is on shift at Tue 2026-04-07 23:30 CEST" in instant
    upcoming = await rig.run("shift next")
    assert "alice is on shift next: Mon 2026-03-30 09:00 CEST to Mon 2026-04-06" in upcoming
    assert "Next: bob" in upcoming
    before = await rig.run("shift who 2025-12-01")
    assert "Nobody is on shift on Mon 2025-12-01; next: alice from Mon 2026-01-05" in before


@pytest.mark.parametrize(("line", "message"), [
    ("shift who 2026-02-30", "'2026-02-30' is not a date"),
    ("shift who yesterday", "is not a date"),
    ("shift who 2026-03-30T24:10", "24:10 is not a time of day"),
    ("shift override mallory 2026-04-01 2026-04-02", "no person 'mallory'"),
    ("shift override bob 2026-04-02 2026-04-01", "TO must be after FROM"),
    ("shift override bob 2026-03-01 2026-03-02", "would end in the past"),
    ("shift override bob 2026-04-01 2027-06-01", "at most 366 days"),
    ("shift override bob 1.4.2026 2026-04-02", "'1.4.2026' is not a date"),
    ("shift swap alice alice", "two different people"),
    ("shift swap alice zed", "no person 'zed'"),
    ("shift swap alice bob 2026-W99", "not an ISO week"),
    ("shift swap dave bob 2026-W13", "dave's shift in that week has started already"),
    ("shift swap alice bob 2026-W15", "alice has no shift in the week of 2026-04-06"),
    ("shift swap erin bob", "erin has no shift in the next 400 days"),
    ("shift list --weeks 0", "weeks"),
    ("shift ack", "only dave (the incoming shifter)"),
])
async def test_usage_errors_say_what_is_wrong(make_bot: Any, clock: Any, line: str,
                                             message: str) -> None:
    rig = await shift_rig(make_bot, person="carol" if "override" in line else "bob")
    if line == "shift ack":
        rig.console.session.person = "bob"  # a shifter, not incoming, no shift.override
    out = await rig.run(line)
    assert message in out, out
    assert not POSTED.search(out)  # nothing was posted


async def test_list_shows_the_rota_with_overrides_and_swaps(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    listed = await rig.run("shift list --weeks 3")
    rows = [line for line in listed.splitlines() if "2026-" in line]
    assert [r.split()[0] for r in rows] == ["dave", "alice", "bob", "dave"]
    assert "now" in rows[0]
    made = await rig.run("shift override erin 2026-04-08 2026-04-09T18:00", "carol")
    assert "carol put erin on shift from Wed 2026-04-08 09:00 CEST until Thu 2026-04-09 " \
           "18:00 CEST (override #1)" in made
    assert "Replaces: bob Mon 2026-04-06 09:00 CEST to Mon 2026-04-13 09:00 CEST" in made
    await rig.run("shift swap dave alice", "alice")
    listed = await rig.run("shift list --weeks 3")
    rows = [line for line in listed.splitlines() if "2026-" in line]
    assert [r.split()[0] for r in rows] == ["dave", "alice", "bob", "erin", "bob", "alice"]
    assert "override #1" in rows[3] and "swap #2" in rows[5]


async def test_permissions_and_audit(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot)
    assert "Not allowed" in await rig.run("shift override bob now tomorrow", "bob")
    assert "Not allowed" in await rig.run("shift swap alice bob", "dave")  # viewer only
    assert "Not allowed" in await rig.run("shift who", "mallory")
    swapped = await rig.run("shift swap alice bob", "bob")
    assert "Swapped; alice and bob are notified" in swapped
    await rig.run("shift override me now 2026-03-28", "carol")
    audit = await rig.run("audit --limit 10", "carol")
    for entry in ("shift.swap", "shift.override", "shift.who"):
        assert entry in audit
    assert audit.count("denied") >= 3


async def test_a_swap_without_a_channel_answers_in_the_channel_instead(make_bot: Any,
                                                                        clock: Any) -> None:
    rig = await shift_rig(make_bot, {"shifts": {"channel": None}})
    out = await rig.run("shift swap alice bob", "bob")
    assert "Shift swap by bob: alice and bob trade shifts." in out and not POSTED.search(out)


async def test_ack_moves_with_overrides_made_by_another_process(make_bot: Any,
                                                                 clock: Any) -> None:
    rig = await shift_rig(make_bot)
    other = await shift_rig(make_bot)
    clock.now = HANDOVER + timedelta(minutes=1)
    await other.run("shift override erin now 2026-03-31", "carol")
    # the first process learns it within a minute (the refresh job); here: at once
    await refresh(rig.bot)
    assert rig.allowed("erin", "sample.slow") and not rig.allowed("alice", "sample.slow")
    assert "erin acknowledged shift" in await rig.run("shift ack", "erin")


async def test_commands_without_shifts_configured(make_bot: Any, clock: Any) -> None:
    rig = await shift_rig(make_bot, {"shifts": {"rota": None, "channel": None}})
    assert "no shifts are configured" in await rig.run("shift who")
    assert "shifts" not in rig.bot.gate.providers  # no role provider without a rota


def test_check_config_finds_unknown_people_channels_and_fallbacks(make_config: Any) -> None:
    config = make_config(deep_merge(SHIFTS, {"shifts": {
        "channel": "nowhere", "fallback": ["shifters", "ghosts"],
        "rota": {"people": ["alice", "zed"]},
        "ranges": [{"person": "yann", "from": "2026-05-01", "to": "2026-05-02"}]}}))
    assert bind_sections(config, Registry().load(config.bot.handlers).sections) == []
    problems = {p.path: p for p in check_config(config)}
    assert "unknown person 'zed'" in problems["shifts.rota.people[1]"].message
    assert "unknown person 'yann'" in problems["shifts.ranges[0].person"].message
    assert "unknown channel alias 'nowhere'" in problems["shifts.channel"].message
    assert "'ghosts'" in problems["shifts.fallback[1]"].message
    assert "shifts.fallback[0]" not in problems


def test_check_config_warns_when_notices_have_no_scheduler(make_config: Any) -> None:
    handlers = [h for h in SHIFTS["bot"]["handlers"] if h != "handlers.schedule"]
    config = make_config(deep_merge(SHIFTS, {"bot": {"handlers": handlers}}))
    bind_sections(config, Registry().load(config.bot.handlers).sections)
    (problem,) = check_config(config)
    assert problem.severity == "warning" and "need the scheduler" in problem.message


async def test_a_bad_rota_is_a_config_error_with_its_path(make_bot: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        await make_bot(deep_merge(SHIFTS, {"shifts": {"rota": {"handover_day": "tuesday"}}}))
    assert "shifts.rota" in str(caught.value) and "not a tuesday" in str(caught.value)
