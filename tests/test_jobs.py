"""Periodic jobs (bot/jobs.py): each grid instant runs once across bot processes on one database,
a raising job is counted and the scheduler goes on, an overrun is cut at its deadline."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from conftest import console
from postgres import temporary_postgres

from bot import lifecycle
from bot.hooks import JobSpec
from bot.jobs import ERROR, OK, TAKEN, TIMEOUT, Scheduler, next_instant, scheduled_instant
from bot.lifecycle import Lifecycle
from bot.pending import Status

REPO = Path(__file__).resolve().parent.parent


def test_instants_are_on_a_grid_every_process_computes_alike() -> None:
    assert next_instant(100.0, 30) == 120.0
    assert next_instant(120.0, 30) == 150.0  # strictly after: an instant never runs twice here
    assert next_instant(119.999, 0.5) == 120.0


async def test_two_bots_on_one_database_run_each_instant_once(make_bot) -> None:
    first, second = await make_bot(), await make_bot()
    runs: list[tuple[str, str]] = []

    def job_for(who: str) -> JobSpec:
        async def record(bot: object) -> None:
            runs.append((who, scheduled_instant().isoformat()))
        return JobSpec("test.shared", 0.2, record, jitter=0.5)

    schedulers = [Scheduler(first, [job_for("first")]), Scheduler(second, [job_for("second")])]
    for scheduler in schedulers:
        scheduler.start()
    await asyncio.sleep(2.1)
    for scheduler in schedulers:
        await scheduler.stop()
    instants = [instant for _, instant in runs]
    assert len(instants) >= 6
    assert len(set(instants)) == len(instants), Counter(instants).most_common(3)
    ok = sum(s.counts[("test.shared", OK)] for s in schedulers)
    taken = sum(s.counts[("test.shared", TAKEN)] for s in schedulers)
    assert ok == len(instants) and taken >= len(instants) - 2  # the loser of each instant


_PROCESS = textwrap.dedent("""
    import asyncio, os, sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    from conftest import BASE, deep_merge
    from bot.config import parse_config
    from bot.core import Bot
    from bot.hooks import JobSpec
    from bot.jobs import Scheduler, scheduled_instant

    async def main():
        raw = deep_merge(BASE, {{"bot": {{"database": sys.argv[1]}}}})
        bot = await Bot.create(parse_config(raw))
        async def record(bot):
            with open(sys.argv[2], "a") as out:
                out.write(f"{{os.getpid()}} {{scheduled_instant().isoformat()}}\\n")
        scheduler = Scheduler(bot, [JobSpec("test.processes", 0.25, record, jitter=0.4)])
        scheduler.start()
        await asyncio.sleep(float(sys.argv[3]))
        await scheduler.stop()
        await bot.close()

    asyncio.run(main())
""")


async def test_two_processes_on_one_sqlite_file_run_each_instant_once(tmp_path: Path) -> None:
    await _two_processes(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.postgres
async def test_two_processes_on_one_postgresql_database_run_each_instant_once(
        tmp_path: Path) -> None:
    with temporary_postgres() as url:
        if url is None:
            pytest.skip("no PostgreSQL server binaries here (Debian package 'postgresql')")
        await _two_processes(tmp_path, url)


async def _two_processes(tmp_path: Path, database: str) -> None:
    script = tmp_path / "proc.py"
    script.write_text(_PROCESS.format(tests=str(REPO / "tests"), repo=str(REPO)))
    log = tmp_path / "runs.log"
    # Migrate once first: two processes creating the schema together is another test's subject.
    await _run(script, database, log, "0")
    procs = [await asyncio.create_subprocess_exec(sys.executable, str(script), str(database),
                                                  str(log), "3") for _ in range(2)]
    assert [await asyncio.wait_for(p.wait(), 30) for p in procs] == [0, 0]
    lines = [line.split() for line in log.read_text().splitlines()]
    instants = [instant for _, instant in lines]
    assert len(instants) >= 6
    assert len(set(instants)) == len(instants), Counter(instants).most_common(3)
    assert len({pid for pid, _ in lines}) == 2  # both processes took part


async def _run(script: Path, *args: Path | str) -> None:
    """Run the script once to the end (here: to migrate the database before the race)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), *map(str, args))
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_a_raising_job_is_counted_and_the_scheduler_goes_on(make_bot) -> None:
    bot = await make_bot()
    calls = []

    async def broken(bot: object) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    async def fine(bot: object) -> None:
        calls.append(2)

    scheduler = Scheduler(bot, [JobSpec("test.broken", 0.15, broken, jitter=0),
                                JobSpec("test.fine", 0.15, fine, jitter=0)])
    scheduler.start()
    await asyncio.sleep(1.0)
    assert scheduler.running
    await scheduler.stop()
    assert scheduler.counts[("test.broken", ERROR)] >= 4  # it failed, and kept being run
    assert scheduler.counts[("test.fine", OK)] >= 4
    exposition = bot.metrics.exposition().decode()
    assert 'shiftbot_job_runs_total{job="test.broken",result="error"}' in exposition


async def test_an_overrunning_job_is_cut_at_its_deadline_and_never_overlaps(make_bot) -> None:
    bot = await make_bot()
    running, most, cut = [0], [0], []

    async def slow(bot: object) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cut.append(1)
            raise
        finally:
            running[0] -= 1

    # The deadline asked for (5 s) is longer than the period: a run gets at most the period.
    scheduler = Scheduler(bot, [JobSpec("test.slow", 0.2, slow, jitter=0, deadline=5)])
    scheduler.start()
    await asyncio.sleep(1.3)
    await scheduler.stop()
    assert scheduler.counts[("test.slow", TIMEOUT)] >= 2
    assert len(cut) >= 2 and most[0] == 1


async def test_the_request_expiry_sweep_is_a_job_of_the_lifecycle(
        make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "EXPIRY_SWEEP_SECONDS", 0.2)
    life = Lifecycle(make_config({"bot": {"confirmation_timeout_minutes": 0.005}}), http=False)
    bot = await life.start()
    try:
        assert {"core.expire-requests", "core.sweep-claims"} <= set(bot.scheduler.jobs)
        asked = await bot.handle(console("alice", "sample wipe a"))
        assert asked.request_id
        for _ in range(40):
            request = await bot.requests.get(asked.request_id)
            if request.status == Status.EXPIRED:
                break
            await asyncio.sleep(0.1)
        assert request.status == Status.EXPIRED  # swept, nobody clicked anything
        assert bot.scheduler.counts[("core.expire-requests", OK)] >= 1
    finally:
        await life.stop()
