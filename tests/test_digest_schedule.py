"""Scheduled digests: one at each handover of the rota, one a day at 02:30 Europe/Zurich across
both DST changes of 2026 (once per local day, never twice on the fall-back night), catch-up
inside the grace window, and the commands `digest preview` / `digest now`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import CORE_HANDLERS
from sqlalchemy import select
from test_digest_rig import T0, clock, digest_rig, seed

from bot.clock import ManualClock
from bot.digests import store
from bot.schedule import store as schedule_store
from bot.schedule.service import ScheduleService

__all__ = ["clock"]  # fixture

ROTA: dict[str, Any] = {"people": ["alice", "bob", "dave"], "period": "1w",
                        "start_date": "2026-01-05", "handover_day": "monday",
                        "handover_time": "09:00", "zone": "Europe/Zurich"}
SCHEDULED: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.shifts",
                         "handlers.digests"]},
    "schedule": {"lease_minutes": 2},
}
HANDOVER = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST: dave -> alice
PREVIOUS_HANDOVER = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 CET: bob -> dave
# Any console message to #ops (a post ``[#ops 3]``, an update, a thread reply): "posts nothing".
POSTED = re.compile(r"^\[#ops\b", re.M)


async def _scheduled(make_bot: Any, digests: dict[str, Any], shifts: bool = True) -> Any:
    overrides: dict[str, Any] = {**SCHEDULED, "digests": digests}
    if shifts:
        overrides["shifts"] = {"rota": ROTA, "heads_up_days": 0, "ack_minutes": 0}
    rig = await digest_rig(make_bot, overrides)
    await rig.bot.services.require(ScheduleService).started()
    return rig


async def _at(rig: Any, clock: ManualClock, when: datetime) -> dict[str, str]:
    clock.now = when
    result = await rig.bot.services.require(ScheduleService).plan()
    assert await rig.bot.notices.idle(5)
    return result.fired


def _digests(rig: Any) -> list[str]:
    return re.findall(r"^\[#ops \d+\] (.*digest.*)$", rig.out.getvalue(), flags=re.M)


async def test_a_digest_at_each_handover(make_bot: Any, clock: ManualClock) -> None:
    clock.now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    rig = await _scheduled(make_bot, {"channel": "ops", "at_handover": True,
                                      "snapshot_minutes": 0})
    key = "digest:handover/2026-03-30T07:00:00Z"
    fired = await _at(rig, clock, HANDOVER + timedelta(seconds=2))
    assert fired == {key: "fired"}
    assert _digests(rig) == ["Shift handover digest"]
    text = rig.out.getvalue()
    # The first digest covers the outgoing shift (dave's, from the previous handover).
    assert "2026-03-23 09:00 CET → 2026-03-30 09:00 CEST" in text
    assert "on shift: dave" in text
    # Re-planning (or a second process) never posts it again; it is recorded with its period.
    assert await _at(rig, clock, HANDOVER + timedelta(minutes=5)) == {}
    sent = await rig.bot.database.run(store.get_sent, key)
    assert sent is not None and sent.period_start == PREVIOUS_HANDOVER
    assert sent.period_end == HANDOVER
    # The next handover's digest starts where this one ended.
    await _at(rig, clock, HANDOVER + timedelta(days=7, seconds=2))
    assert _digests(rig) == ["Shift handover digest"] * 2
    assert "2026-03-30 09:00 CEST → 2026-04-06 09:00 CEST (since the last digest)" in \
        rig.out.getvalue()
    assert "on shift: alice" in rig.out.getvalue()


async def test_no_rota_no_handover_digest(make_bot: Any, clock: ManualClock) -> None:
    clock.now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    rig = await _scheduled(make_bot, {"channel": "ops", "at_handover": True,
                                      "snapshot_minutes": 0}, shifts=False)
    assert await _at(rig, clock, HANDOVER + timedelta(days=1)) == {}
    upcoming = await rig.bot.services.require(ScheduleService).upcoming(
        clock.now + timedelta(days=14))
    assert [o for o in upcoming if o.kind == "digest"] == []


async def _daily_run(make_bot: Any, clock: ManualClock, first: datetime,
                     last: datetime) -> tuple[Any, list[str]]:
    """Walk the clock from ``first`` to ``last`` in 10-minute steps, planning each time;
    the keys of the daily digests fired, in order."""
    clock.now = first
    rig = await _scheduled(make_bot, {"channel": "ops", "at_handover": False,
                                      "daily": {"time": "02:30", "zone": "Europe/Zurich"},
                                      "snapshot_minutes": 0}, shifts=False)
    fired: list[str] = []
    when = first
    while when < last:
        when += timedelta(minutes=10)
        fired += [k for k, result in (await _at(rig, clock, when)).items()
                  if result == "fired"]
    return rig, fired


async def test_daily_at_0230_across_the_fall_back_night(make_bot: Any,
                                                         clock: ManualClock) -> None:
    rig, fired = await _daily_run(make_bot, clock, datetime(2026, 10, 23, 23, 0, tzinfo=UTC),
                                  datetime(2026, 10, 26, 3, 0, tzinfo=UTC))
    # 02:30 CEST on the 24th and on the 25th (the ambiguous 02:30: its first time, once),
    # 02:30 CET on the 26th.
    assert fired == ["digest:daily/2026-10-24T00:30:00Z", "digest:daily/2026-10-25T00:30:00Z",
                     "digest:daily/2026-10-26T01:30:00Z"]
    assert _digests(rig) == ["Daily shift digest"] * 3
    texts = rig.out.getvalue()
    assert "2026-10-24 02:30 CEST → 2026-10-25 02:30 CEST (since the last digest)" in texts
    assert "2026-10-25 02:30 CEST → 2026-10-26 02:30 CET (since the last digest)" in texts


async def test_daily_at_0230_across_the_spring_forward_night(make_bot: Any,
                                                              clock: ManualClock) -> None:
    _rig, fired = await _daily_run(make_bot, clock, datetime(2026, 3, 28, 0, 0, tzinfo=UTC),
                                   datetime(2026, 3, 30, 2, 0, tzinfo=UTC))
    # 02:30 does not exist on the 29th: it moves forward by the gap, to 03:30 CEST.
    assert fired == ["digest:daily/2026-03-28T01:30:00Z", "digest:daily/2026-03-29T01:30:00Z",
                     "digest:daily/2026-03-30T00:30:00Z"]


async def test_downtime_inside_and_beyond_the_grace(make_bot: Any, clock: ManualClock) -> None:
    clock.now = datetime(2026, 10, 23, 23, 0, tzinfo=UTC)
    rig = await _scheduled(make_bot, {"channel": "ops", "at_handover": False, "grace_hours": 3,
                                      "daily": {"time": "02:30", "zone": "Europe/Zurich"},
                                      "snapshot_minutes": 0}, shifts=False)
    # Two hours late: still sent. Then the next one is found 5 hours late: missed, recorded.
    assert await _at(rig, clock, datetime(2026, 10, 24, 2, 30, tzinfo=UTC)) == {
        "digest:daily/2026-10-24T00:30:00Z": "fired"}
    await _at(rig, clock, datetime(2026, 10, 25, 5, 40, tzinfo=UTC))
    row = await rig.bot.database.run(schedule_store.get, "digest:daily/2026-10-25T00:30:00Z")
    assert row is not None and row.state == "missed"
    assert _digests(rig) == ["Daily shift digest"]
    # The next digest reports it, and covers the time since the last one sent.
    await _at(rig, clock, datetime(2026, 10, 26, 1, 31, tzinfo=UTC))
    text = rig.out.getvalue()
    assert "2026-10-24 02:30 CEST → 2026-10-26 02:30 CET (since the last digest)" in text
    assert "digest-daily (digest): missed" in text


async def test_preview_posts_nothing_and_now_posts_once(make_bot: Any,
                                                       clock: ManualClock) -> None:
    rig = await digest_rig(make_bot)
    await seed(rig.bot)
    text = await rig.run("digest preview")
    assert "Shift digest (preview)" in text and not POSTED.search(text)
    assert await rig.bot.database.run(store.previous_end, T0 + timedelta(days=1)) == \
        T0 - timedelta(days=1)  # nothing recorded by the preview
    text = await rig.run("digest now")
    assert "The shift digest is posted to #ops." in text
    assert re.search(r"^\[#ops \d+\] \[WARNING\] Shift digest", text, re.M)
    assert "Alerts: 3 deliveries" in text
    # The next one covers the time since `digest now`.
    clock.now = T0 + timedelta(hours=2)
    text = await rig.run("digest now")
    assert "2026-03-31 09:00 CEST → 2026-03-31 11:00 CEST (since the last digest)" in text
    assert "Alerts: none received" in text


async def test_commands_are_permissioned_and_audited(make_bot: Any,
                                                    clock: ManualClock) -> None:
    rig = await digest_rig(make_bot, {"grants": [{"role": "viewer", "people": ["dave"]},
                                                 {"role": "shifter", "groups": ["shifters"]}]})
    assert "Shift digest (preview)" in await rig.run("digest preview", "dave")
    denied = await rig.run("digest now", "dave")
    assert not POSTED.search(denied) and "Not allowed" in denied
    assert re.search(r"^\[#ops \d+\] Shift digest", await rig.run("digest now", "alice"), re.M)
    await rig.bot.audit.flush()
    from bot import db

    rows = await rig.bot.database.run(lambda c: c.execute(
        select(db.audit.c.person, db.audit.c.command, db.audit.c.decision)
        .order_by(db.audit.c.id)).all())
    assert [tuple(r) for r in rows] == [("dave", "digest.preview", "allowed"),
                                        ("dave", "digest.now", "denied"),
                                        ("alice", "digest.now", "allowed")]


async def test_now_without_a_channel_says_so(make_bot: Any, clock: ManualClock) -> None:
    rig = await digest_rig(make_bot, {"digests": {"channel": None}})
    text = await rig.run("digest now")
    assert "digests.channel is not set" in text
    assert "Shift digest (preview)" in await rig.run("digest preview")
