"""Periodic checks with two bots on one database (SQLite, and PostgreSQL when a server can be
started): every check runs once per interval, whichever bot ticks, even when both tick at the
same moment; through the scheduler's claimed job as well; one notice per change."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from postgres import temporary_postgres
from test_status_feature_rig import (
    RUNS,
    SCRIPT,
    T0,
    Rig,
    _fresh_script,
    clock,
    scripted,
    status_rig,
)

from bot.clock import ManualClock
from bot.jobs import OK, TAKEN, Scheduler
from bot.status import store
from bot.status.model import Level
from bot.status.service import current_instant

__all__ = ["_fresh_script", "clock"]  # fixtures

CHECKS = {"fast": 20, "slow": 60, "rare": 300}  # name -> interval (s)


def checks() -> list[Any]:
    return [scripted(name, interval_seconds=seconds) for name, seconds in CHECKS.items()]


async def two_rigs(make_bot: Any, overrides: dict[str, Any] | None = None) -> list[Rig]:
    # One after the other: two bots creating the schema at once is another test's subject.
    return [await status_rig(make_bot, checks(), overrides=overrides, notify_after=1)
            for _ in range(2)]


def expected_runs(clock_start: Any, clock_end: Any) -> dict[str, int]:
    """How many instants of each check's grid fall in [start, end]."""
    return {name: len({current_instant(clock_start + (clock_end - clock_start) * i / 1000,
                                       seconds) for i in range(1001)})
            for name, seconds in CHECKS.items()}


async def run_together(rigs: list[Rig], clock: ManualClock, ticks: int) -> Counter[int]:
    """Both bots tick at the same moments (5 s apart); returns runs per bot."""
    per_bot: Counter[int] = Counter()
    for _ in range(ticks):
        before = len(RUNS)
        tasks = await asyncio.gather(*(rig.service.tick() for rig in rigs))
        for index, task in enumerate(tasks):
            if task is not None:
                await task
                per_bot[index] += 1
        assert len(RUNS) >= before
        clock.advance(5)
    for rig in rigs:
        assert await rig.bot.notices.idle(5)
    return per_bot


async def assert_once_per_interval(make_bot: Any, clock: ManualClock,
                                   overrides: dict[str, Any] | None = None) -> None:
    rigs = await two_rigs(make_bot, overrides)
    start = clock.now
    await run_together(rigs, clock, 10 * 12)  # ten minutes
    end = clock.now - (clock.now - start) / (10 * 12)  # the last tick's time
    runs = Counter(name for name, _ in RUNS)
    assert dict(runs) == expected_runs(start, end)
    stored = await rigs[0].bot.database.run(store.latest_results, store.PERIODIC)
    assert set(stored) == set(CHECKS)


async def test_each_interval_runs_once_across_two_bots(make_bot, clock) -> None:
    await assert_once_per_interval(make_bot, clock)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with temporary_postgres() as url:
        if url is None:
            pytest.skip("no PostgreSQL server binaries here (Debian package 'postgresql')")
        yield url


@pytest.mark.postgres
async def test_each_interval_runs_once_across_two_bots_on_postgresql(
        postgres_url, make_bot, clock) -> None:
    await assert_once_per_interval(make_bot, clock, {"bot": {"database": postgres_url}})


async def test_alternating_ticks_share_the_work_and_post_one_notice(make_bot, clock) -> None:
    rigs = await two_rigs(make_bot)
    ran: Counter[int] = Counter()
    for i in range(36):  # three minutes, the bots taking turns of three ticks
        if i == 12:
            SCRIPT["slow"] = Level.CRITICAL  # from 13:01 on
        before = len(RUNS)
        task = await rigs[i // 3 % 2].service.tick()
        if task is not None:
            await task
        ran[i // 3 % 2] += len(RUNS) - before
        clock.advance(5)
    for rig in rigs:
        assert await rig.bot.notices.idle(5)
    assert ran[0] and ran[1]  # both took part
    assert Counter(name for name, _ in RUNS) == {"fast": 9, "slow": 3, "rare": 1}
    text = rigs[0].out.getvalue() + rigs[1].out.getvalue()
    assert text.count("@alice @bob SLOW CRITICAL") == 1  # posted once, by one of them


async def test_the_scheduled_job_is_claimed_too(make_bot, clock) -> None:
    rigs = await two_rigs(make_bot)
    job = rigs[0].bot.registry.jobs["status.tick"]
    schedulers = [Scheduler(rig.bot, [job]) for rig in rigs]
    results: Counter[str] = Counter()
    instant = T0.timestamp()
    for _ in range(24):  # two minutes of ticks, both schedulers trying every instant
        clock.now = T0.fromtimestamp(instant, T0.tzinfo)
        outcomes = await asyncio.gather(*(s.run_once(job, instant) for s in schedulers))
        results.update(outcomes)
        for rig in rigs:
            await rig.service.tasks.wait(5)
        instant += job.seconds
    assert results == {OK: 24, TAKEN: 24}
    assert Counter(name for name, _ in RUNS) == {"fast": 6, "slow": 2, "rare": 1}
