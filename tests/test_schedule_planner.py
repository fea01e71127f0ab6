"""The planner and the claim before send: restarts, downtime within and beyond the grace
window, two bot processes on one database (SQLite, PostgreSQL), pauses, failures, and one
wake-up really fired by APScheduler."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from notice_platform import FakePlatform
from test_schedule_rig import (
    MONDAY_REPORT,
    REPORT_KEY,
    T0,
    ScriptedSource,
    clock,
    posts,
    row,
    schedule_bot,
    service,
    settle,
    states,
    workspace,
)

from bot.clock import ManualClock
from bot.schedule import store
from bot.schedule.model import FAILED, FIRED, FIRING, MISSED, SKIPPED, Occurrence

__all__ = ["clock", "workspace"]  # fixtures


def fresh_postgres(url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def jobs_of(bot: Any) -> set[str]:
    scheduler = service(bot).scheduler
    assert scheduler is not None
    return {job.id for job in scheduler.get_jobs()}


# ------------------------------------------------------------------------ planning


async def test_future_occurrences_become_one_wakeup_each(make_bot: Any, clock: ManualClock,
                                                         workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    planned = service(bot).jobs
    assert planned[REPORT_KEY] == MONDAY_REPORT
    assert REPORT_KEY in jobs_of(bot)
    digests = sorted(at for key, at in planned.items() if key.startswith("announcement:digest"))
    assert len(digests) == 7 and all(at.hour == 0 and at.minute == 30 for at in digests)
    assert service(bot).jobs.keys() <= jobs_of(bot)
    again = await service(bot).plan()  # a second pass changes nothing
    assert again.scheduled == len(planned) and not again.fired
    await settle(bot)
    assert workspace.messages == []
    assert await states(bot) == {}


async def test_vanished_occurrence_loses_its_wakeup_and_a_failing_source_keeps_its(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    occs = [Occurrence(f"test:s{i}/x{i}", f"s{i}", "test", T0 + timedelta(hours=i + 1),
                       timedelta(minutes=5)) for i in range(3)]
    source = ScriptedSource(occs)
    service(bot).register(source)
    await service(bot).tasks.wait(5)  # the pass a registration starts
    assert {o.key for o in occs} <= jobs_of(bot)
    source.occs = occs[1:]
    await service(bot).plan()
    assert occs[0].key not in jobs_of(bot) and occs[1].key in jobs_of(bot)
    source.expand_error = RuntimeError("feed down")
    result = await service(bot).plan()
    assert result.failed_sources == ["scripted"]
    assert {occs[1].key, occs[2].key} <= jobs_of(bot)  # the last good plan stands


# ------------------------------------------------------------------------ restarts, downtime


async def test_restart_between_planning_and_sending_posts_once(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform) -> None:
    first = await schedule_bot(make_bot, workspace)
    assert REPORT_KEY in service(first).jobs
    await first.close()  # stopped before the wake-up
    clock.now = MONDAY_REPORT + timedelta(minutes=3)
    second = await schedule_bot(make_bot, workspace)  # its first pass catches up
    await settle(second)
    assert posts(workspace, "Shift report due") == 1
    assert (await row(second, REPORT_KEY)).state == FIRED  # type: ignore[union-attr]
    await service(second).plan()
    occ = next(o for o in service(second).expanded["announcements"] if o.key == REPORT_KEY)
    assert await service(second).fire(occ) == store.TAKEN
    await settle(second)
    assert posts(workspace, "Shift report due") == 1


async def test_crash_after_sending_before_recording_posts_once(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform) -> None:
    first = await schedule_bot(make_bot, workspace)
    clock.now = MONDAY_REPORT
    occ = next(o for o in service(first).expanded["announcements"] if o.key == REPORT_KEY)
    # The first process claims and posts, then dies before recording "fired".
    won = await first.database.run(store.claim, occ, service(first).owner, clock.now,
                                   service(first).lease)
    assert won == store.CLAIMED
    await service(first).sources["announcements"].fire(first, occ)
    await settle(first)
    await first.close()
    second = await schedule_bot(make_bot, workspace)
    assert (await row(second, REPORT_KEY)).state == FIRING  # type: ignore[union-attr]
    clock.advance(150)  # past the 2-minute lease, inside the 10-minute grace
    result = await service(second).plan()
    assert result.fired == {REPORT_KEY: FIRED}
    await settle(second)
    assert posts(workspace, "Shift report due") == 1  # the notice's key: not twice


async def test_downtime_within_grace_sends_once_late(make_bot: Any, clock: ManualClock,
                                                     workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    await bot.close()
    clock.now = MONDAY_REPORT + timedelta(minutes=9, seconds=59)
    again = await schedule_bot(make_bot, workspace)
    await settle(again)
    assert posts(workspace, "Shift report due") == 1
    for _ in range(3):
        clock.advance(60)
        await service(again).plan()
    await settle(again)
    assert posts(workspace, "Shift report due") == 1


async def test_downtime_beyond_grace_is_recorded_missed_never_dropped(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    await bot.close()
    clock.now = T0 + timedelta(days=4)  # Thursday: the report and four digests passed
    again = await schedule_bot(make_bot, workspace)
    await settle(again)
    assert workspace.messages == []
    recorded = await states(again)
    assert recorded[REPORT_KEY] == MISSED
    missed_digests = sorted(k for k, s in recorded.items()
                            if k.startswith("announcement:digest") and s == MISSED)
    assert missed_digests == [f"announcement:digest/2026-{d}T00:30:00Z"
                              for d in ("03-30", "03-31", "04-01", "04-02")]
    rows, total = await again.database.run(store.unsent, T0, 50, None)
    assert total == 5 and {r.state for r in rows} == {MISSED}


async def test_a_wakeup_that_comes_too_late_is_missed(make_bot: Any, clock: ManualClock,
                                                      workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    occ = next(o for o in service(bot).expanded["announcements"] if o.key == REPORT_KEY)
    clock.now = MONDAY_REPORT + timedelta(minutes=10, seconds=1)  # the loop was blocked
    assert await service(bot).fire(occ) == MISSED
    await settle(bot)
    assert workspace.messages == []
    assert (await row(bot, REPORT_KEY)).state == MISSED  # type: ignore[union-attr]


# ------------------------------------------------------------------------ two processes


async def _two_processes_post_once(make_bot: Any, clock: ManualClock, workspace: FakePlatform,
                                   overrides: dict[str, Any] | None = None) -> None:
    one = await schedule_bot(make_bot, workspace, overrides)
    two = await schedule_bot(make_bot, workspace, overrides)
    assert REPORT_KEY in service(one).jobs and REPORT_KEY in service(two).jobs
    clock.now = MONDAY_REPORT
    occ = next(o for o in service(one).expanded["announcements"] if o.key == REPORT_KEY)
    # Both wake-ups fire at once, and both planners pass right after.
    results = await asyncio.gather(service(one).fire(occ), service(two).fire(occ),
                                   service(one).plan(), service(two).plan())
    assert sorted(results[:2]) == [FIRED, store.TAKEN]
    await settle(one, two)
    assert posts(workspace, "Shift report due") == 1
    assert (await row(two, REPORT_KEY)).state == FIRED  # type: ignore[union-attr]


async def test_two_bots_on_one_sqlite_file_post_once(make_bot: Any, clock: ManualClock,
                                                     workspace: FakePlatform) -> None:
    await _two_processes_post_once(make_bot, clock, workspace)


async def test_two_bots_on_postgresql_post_once(make_bot: Any, clock: ManualClock,
                                                workspace: FakePlatform,
                                                postgres_url: str) -> None:
    url = fresh_postgres(postgres_url)
    await _two_processes_post_once(make_bot, clock, workspace, {"bot": {"database": url}})


async def test_many_concurrent_claims_have_one_winner(make_bot: Any, clock: ManualClock,
                                                      workspace: FakePlatform) -> None:
    one = await schedule_bot(make_bot, workspace)
    two = await schedule_bot(make_bot, workspace)
    source = ScriptedSource([Occurrence(f"test:s/{i}", "s", "test", T0 + timedelta(hours=1),
                                        timedelta(minutes=5)) for i in range(20)])
    service(one).register(source)
    service(two).register(source)
    clock.advance(3600)
    await asyncio.gather(*(service(b).fire(o) for o in source.occs for b in (one, two)))
    assert sorted(source.fired) == sorted(o.key for o in source.occs)  # each once


# ------------------------------------------------------------------------ pause, failures


async def test_paused_series_is_skipped_and_recorded_then_resumed(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform) -> None:
    bot = await schedule_bot(make_bot, workspace)
    assert await bot.database.run(store.pause, "report", "Alice", clock.now, "holidays")
    clock.now = MONDAY_REPORT
    occ = next(o for o in service(bot).expanded["announcements"] if o.key == REPORT_KEY)
    assert await service(bot).fire(occ) == SKIPPED
    await service(bot).plan()
    await settle(bot)
    assert posts(workspace, "Shift report due") == 0
    skipped = await row(bot, REPORT_KEY)
    assert skipped is not None and skipped.state == SKIPPED and "Alice" in (skipped.error or "")
    assert await bot.database.run(store.resume, "report") is not None
    await service(bot).plan()  # resuming does not send what was skipped
    clock.now = MONDAY_REPORT + timedelta(days=7)
    await service(bot).plan()
    await settle(bot)
    assert posts(workspace, "Shift report due") == 1


async def test_failed_send_is_retried_inside_its_grace_and_logged_once(
        make_bot: Any, clock: ManualClock, workspace: FakePlatform,
        caplog: pytest.LogCaptureFixture) -> None:
    bot = await schedule_bot(make_bot, workspace)
    retried = Occurrence("test:retried/1", "retried", "test", T0 + timedelta(minutes=1),
                         timedelta(minutes=10))
    doomed = Occurrence("test:doomed/1", "doomed", "test", T0 + timedelta(minutes=1),
                        timedelta(minutes=3))
    source = ScriptedSource([retried, doomed])
    source.fire_errors = [RuntimeError("platform down token=abc"), RuntimeError("again")]
    service(bot).register(source)
    await service(bot).tasks.wait(5)  # the pass a registration starts
    clock.advance(60)
    caplog.set_level(logging.WARNING)
    first = await service(bot).plan()
    assert set(first.fired.values()) == {FAILED}
    clock.advance(60 * 5)  # the doomed one is past its grace now, the other is not
    second = await service(bot).plan()
    assert second.fired == {retried.key: FIRED}
    assert (await row(bot, doomed.key)).state == FAILED  # type: ignore[union-attr]
    assert source.fired.count(retried.key) == 2 and source.fired.count(doomed.key) == 1
    tracebacks = [r for r in caplog.records if r.exc_info and "test:" in r.getMessage()]
    assert len(tracebacks) == 2  # one per occurrence, not one per attempt


# ------------------------------------------------------------------------ DST, real wake-ups


async def test_fall_back_night_fires_the_0230_digest_once(make_bot: Any, clock: ManualClock,
                                                          workspace: FakePlatform) -> None:
    clock.now = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Saturday, 00:00 CEST
    bot = await schedule_bot(make_bot, workspace)
    for minutes in range(0, 6 * 60, 5):  # every 5 minutes until 04:00 CET
        clock.now = datetime(2026, 10, 24, 22, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        await service(bot).plan()
    await settle(bot)
    assert posts(workspace, "Nightly digest") == 1
    assert (await states(bot))["announcement:digest/2026-10-25T00:30:00Z"] == FIRED


async def test_apscheduler_really_wakes_the_occurrence(make_bot: Any,
                                                       workspace: FakePlatform) -> None:
    """No manual clock: time-machine moves the real one to 0.2 s before the 02:30 CEST digest
    of the fall-back night and a planning pass runs; APScheduler's own wake-up sends it,
    once, not before its time (the bot starts first: its startup time is not in the 0.2 s)."""
    bot = await schedule_bot(make_bot, workspace)
    key = "announcement:digest/2026-10-25T00:30:00Z"
    due = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    with time_machine.travel(due - timedelta(seconds=0.2), tick=True):
        await service(bot).plan()
        assert key in jobs_of(bot) and await row(bot, key) is None
        assert "announcement:digest/2026-10-25T01:30:00Z" not in service(bot).jobs
        for _ in range(100):
            if await row(bot, key) is not None:
                break
            await asyncio.sleep(0.05)
        await settle(bot)
        sent = await row(bot, key)
        assert sent is not None and sent.state == FIRED and sent.updated_at >= due
        assert posts(workspace, "Nightly digest") == 1
        assert key not in jobs_of(bot)
