"""``/metrics`` gauges for operations: the alerts inbox (depth, oldest age) sampled in the
background at most once per interval, never on the scrape's path; the scheduler's last pass."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from conftest import CORE_HANDLERS
from sqlalchemy import insert

from bot import db
from bot.alerts.tables import DONE, PENDING, inbox
from bot.metrics import Sampler, watch_operations
from bot.schedule.service import PassResult, service_of

ALERTS = {"bot": {"handlers": [*CORE_HANDLERS, "handlers.alerts", "handlers.schedule"]}}


def gauge(bot: Any, name: str) -> float:
    for line in bot.metrics.exposition().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def settled(bot: Any) -> None:
    for sampler in bot.metrics.samplers:
        if sampler._task is not None:
            await sampler._task


def add_rows(conn: Any, states: list[str], age: timedelta) -> None:
    at = db.utcnow() - age
    conn.execute(insert(inbox), [
        {"dedupe_key": f"k{i}-{state}-{age}", "resource": "issue", "action": "created",
         "subject": "s", "body": "{}", "received_at": at, "state": state, "next_at": at}
        for i, state in enumerate(states)])


async def test_inbox_depth_counts_pending_rows_only(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot, interval=0)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0  # first scrape: the last sample
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0
    await bot.database.run(add_rows, [PENDING, PENDING, DONE, PENDING], timedelta(minutes=5))
    gauge(bot, "shiftbot_alerts_inbox_depth")  # starts a sample
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 3
    assert 290 < gauge(bot, "shiftbot_alerts_inbox_oldest_age_seconds") < 400


async def test_samples_at_most_once_per_interval_and_never_block_a_scrape(
        make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    calls: list[int] = []
    gate = asyncio.Event()

    async def slow() -> None:
        calls.append(1)
        await gate.wait()

    bot.metrics.samplers.append(Sampler("slow", slow, interval=3600))
    for _ in range(5):
        bot.metrics.exposition()  # answers at once though the sample is still running
        await asyncio.sleep(0)
    gate.set()
    await settled(bot)
    for _ in range(5):
        bot.metrics.exposition()
        await asyncio.sleep(0)
    assert calls == [1]


async def test_a_failing_sample_keeps_the_last_value(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot, interval=0)
    await bot.database.run(add_rows, [PENDING], timedelta(seconds=1))
    gauge(bot, "shiftbot_alerts_inbox_depth")
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 1

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("database away")

    bot.database.run = down  # type: ignore[method-assign]
    gauge(bot, "shiftbot_alerts_inbox_depth")
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 1


async def test_schedule_last_pass_age(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot)
    assert gauge(bot, "shiftbot_schedule_last_pass_age_seconds") == -1  # no pass yet
    service = service_of(bot)
    at = db.utcnow() - timedelta(minutes=7)
    service.last = PassResult(at, at, at)
    assert 415 < gauge(bot, "shiftbot_schedule_last_pass_age_seconds") < 500


async def test_without_the_features_nothing_is_sampled(make_bot: Any) -> None:
    bot = await make_bot()
    watch_operations(bot)
    assert bot.metrics.samplers == []
    assert gauge(bot, "shiftbot_schedule_last_pass_age_seconds") == -1
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0
