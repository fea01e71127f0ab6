"""with_deadline(): awaiting in the current task with a deadline armed only on suspension."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import console

from bot.core import OutcomeStatus
from bot.tasks import with_deadline


async def test_a_coroutine_that_never_suspends_needs_no_deadline() -> None:
    async def quick() -> str:
        return "done"

    assert await with_deadline(quick(), 0) == "done"  # a zero deadline never gets a chance


async def test_suspending_coroutines_run_to_the_end_in_the_same_task() -> None:
    caller = asyncio.current_task()
    seen: list[object] = []

    async def steps() -> int:
        for _ in range(3):
            seen.append(asyncio.current_task())
            await asyncio.sleep(0.01)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, 42)
        return await future

    assert await with_deadline(steps(), 5) == 42
    assert seen == [caller] * 3


async def _hangs(cleaned: asyncio.Event) -> None:
    try:
        await asyncio.sleep(30)
    finally:
        cleaned.set()


async def test_overrun_raises_timeout_and_stops_the_coroutine() -> None:
    cleaned = asyncio.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await with_deadline(_hangs(cleaned), 0.1)
    assert time.monotonic() - started < 2 and cleaned.is_set()


async def test_errors_after_a_suspension_come_through() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await with_deadline(fails(), 5)


async def test_cancelling_the_caller_reaches_the_coroutine() -> None:
    cleaned = asyncio.Event()
    task = asyncio.create_task(with_deadline(_hangs(cleaned), 60))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_a_handler_over_its_timeout_is_stopped_and_audited(make_bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    spec = bot.registry.find_words("sample slow")
    assert spec is not None
    monkeypatch.setattr(spec, "timeout", 0.2)
    started = time.monotonic()
    outcome = await bot.handle(console("alice", "sample slow --seconds 20"))
    assert time.monotonic() - started < 5
    assert outcome.status == OutcomeStatus.ERROR
    assert "did not finish within 0.2 s" in (outcome.reply.text or "")
    (entry,) = await bot.audit.query(command_glob="sample.slow")
    assert entry.outcome == "timeout"
