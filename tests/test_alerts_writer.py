"""Group commit of the inbox (bot/alerts/writer.py): many deliveries, few transactions, each
answered after its own commit, a failed transaction fails its whole batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.alerts import inbox, tables, writer
from bot.alerts.model import Resource, SentryAlert


def delivery(n: int, key: str | None = None) -> writer.Delivery:
    alert = SentryAlert(Resource.EVENT_ALERT, "triggered", key or f"event:{n}",
                        issue_id=str(1000 + n % 7))
    return writer.Delivery(alert, f'{{"n": {n}}}', f"req-{n}")


@pytest.fixture
async def bot(make_bot: Any) -> Any:
    made = await make_bot()
    await made.database.run(tables.create_tables)
    return made


async def test_a_burst_is_stored_in_few_transactions(bot: Any, monkeypatch: Any) -> None:
    batches: list[int] = []
    real = writer._accept_all

    def counting(conn: Any, deliveries: list[writer.Delivery], now: Any) -> list[bool]:
        batches.append(len(deliveries))
        return real(conn, deliveries, now)

    monkeypatch.setattr(writer, "_accept_all", counting)
    store = writer.InboxWriter(bot.database)
    results = await asyncio.gather(*(store.store(delivery(n)) for n in range(200)))
    assert results == [True] * 200
    assert sum(batches) == 200 and len(batches) < 20, batches
    assert await bot.database.run(inbox.depth) == 200


async def test_duplicates_in_one_batch_are_stored_once(bot: Any) -> None:
    store = writer.InboxWriter(bot.database)
    results = await asyncio.gather(*(store.store(delivery(n, key="event:same"))
                                     for n in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert await bot.database.run(inbox.depth) == 1


async def test_a_failed_transaction_fails_its_batch_and_the_next_one_works(
        bot: Any, monkeypatch: Any) -> None:
    real = writer._accept_all
    calls = {"n": 0}

    def flaky(conn: Any, deliveries: list[writer.Delivery], now: Any) -> list[bool]:
        calls["n"] += 1
        result = real(conn, deliveries, now)
        if calls["n"] == 1:
            raise OSError("disk full")  # after the inserts: the transaction rolls back
        return result

    monkeypatch.setattr(writer, "_accept_all", flaky)
    store = writer.InboxWriter(bot.database)
    first = await asyncio.gather(*(store.store(delivery(n)) for n in range(5)),
                                 return_exceptions=True)
    assert calls["n"] == 1 and all(isinstance(r, OSError) for r in first)
    assert await bot.database.run(inbox.depth) == 0  # nothing half-stored
    assert await store.store(delivery(99)) is True
    assert await bot.database.run(inbox.depth) == 1


async def test_a_cancelled_request_does_not_stop_the_others(bot: Any) -> None:
    store = writer.InboxWriter(bot.database)
    tasks = [asyncio.create_task(store.store(delivery(n))) for n in range(10)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    done = await asyncio.gather(*tasks[1:])
    assert done == [True] * 9
    # The cancelled request's delivery was in the batch: stored anyway (Sentry may retry;
    # the dedupe key makes that a duplicate).
    assert await bot.database.run(inbox.depth) == 10
