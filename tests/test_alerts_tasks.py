"""The alerts' durable task queue (bot/alerts/tasks.py): order, lanes, retries, giving up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.alerts import tables
from bot.alerts import tasks as tq
from bot.clock import ManualClock, use_clock

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Any:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@pytest.fixture
async def bot(make_bot: Any) -> Any:
    made = await make_bot()
    await made.database.run(tables.create_tables)
    return made


async def add(bot: Any, subject: str, kind: str, **kwargs: Any) -> bool:
    return await bot.database.run(
        lambda conn: tq.enqueue(conn, subject, kind, {"n": kwargs.pop("n", 0)}, now=T0,
                                **kwargs))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.outcomes: dict[tuple[str, str], list[Exception | None]] = {}

    def handler(self, kind: str) -> Any:
        async def perform(bot: Any, task: tq.Task) -> None:
            self.calls.append((task.subject, kind, task.payload["n"]))
            planned = self.outcomes.get((task.subject, kind), [])
            if planned:
                outcome = planned.pop(0)
                if outcome is not None:
                    raise outcome
        return perform


def runner(bot: Any, recorder: Recorder, **kwargs: Any) -> tq.TaskRunner:
    kinds = ("notice.post", "notice.thread", "ticket", "comment")
    return tq.TaskRunner(bot, {k: recorder.handler(k) for k in kinds},
                         give_up_after=kwargs.pop("give_up_after", timedelta(hours=1)), **kwargs)


async def test_tasks_run_in_id_order_and_once(bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    for n in range(3):
        await add(bot, "sentry:1", "notice.post", n=n)
    assert await runner(bot, rec).run_due() == 3
    assert await runner(bot, rec).run_due() == 0
    assert [c[2] for c in rec.calls] == [0, 1, 2]


async def test_a_once_key_allows_one_unfinished_task(bot: Any, clock: ManualClock) -> None:
    assert await add(bot, "sentry:1", "ticket", once_key="ticket:sentry:1")
    assert not await add(bot, "sentry:1", "ticket", once_key="ticket:sentry:1")
    rec = Recorder()
    await runner(bot, rec).run_due()
    # Done: the key is free again (a later regression may need a new task of that kind).
    assert await add(bot, "sentry:1", "ticket", once_key="ticket:sentry:1")


async def test_a_waiting_task_holds_back_its_lane_only(bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    rec.outcomes[("sentry:1", "notice.post")] = [tq.Retry("chat down")]
    await add(bot, "sentry:1", "notice.post", n=1)
    await add(bot, "sentry:1", "ticket", n=2)
    await add(bot, "sentry:1", "notice.thread", n=3)
    await add(bot, "sentry:2", "notice.post", n=4)
    await runner(bot, rec).run_due()
    # The thread reply waits behind its post; the ticket and the other subject go on.
    assert [c[2] for c in rec.calls] == [1, 2, 4]
    clock.advance(tq.backoff(1))
    await runner(bot, rec).run_due()
    assert [c[2] for c in rec.calls] == [1, 2, 4, 1, 3]


async def test_retry_after_is_honoured_and_backoff_doubles(bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    rec.outcomes[("s", "ticket")] = [tq.Retry("429", retry_after=120), tq.Retry("500"),
                                      tq.Retry("500"), None]
    await add(bot, "s", "ticket")
    run = runner(bot, rec, first_backoff=10)
    await run.run_due()
    clock.advance(119)
    await run.run_due()
    assert len(rec.calls) == 1  # not before Retry-After
    clock.advance(1)
    await run.run_due()  # second failure -> 20 s (attempt 2)
    assert len(rec.calls) == 2
    clock.advance(19)
    await run.run_due()
    assert len(rec.calls) == 2
    clock.advance(1)
    await run.run_due()  # third failure -> 40 s
    clock.advance(40)
    await run.run_due()
    assert len(rec.calls) == 4
    assert await bot.database.run(tq.count_pending) == 0


async def test_give_up_and_errors_are_recorded(bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    rec.outcomes[("a", "ticket")] = [tq.GiveUp("gitlab.token is not configured")]
    rec.outcomes[("b", "ticket")] = [RuntimeError("bug")] * 5
    await add(bot, "a", "ticket")
    await add(bot, "b", "ticket")
    run = runner(bot, rec, give_up_after=timedelta(minutes=2), first_backoff=30)
    await run.run_due()
    left = await bot.database.run(tq.unfinished)
    states = {t.subject: (t.state, t.last_error) for t in left}
    assert states["a"] == ("failed", "gitlab.token is not configured")
    assert states["b"][0] == "pending" and "RuntimeError: bug" in states["b"][1]
    clock.advance(150)  # past give_up_after: the next failure is final
    await run.run_due()
    states = {t.subject: t.state for t in await bot.database.run(tq.unfinished)}
    assert states == {"a": "failed", "b": "failed"}


async def test_said_in_thread_is_remembered(bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    rec.outcomes[("s", "ticket")] = [tq.Retry("down", said_in_thread=True), tq.Retry("down")]
    await add(bot, "s", "ticket")
    seen: list[bool] = []

    async def watch(bot_: Any, task: tq.Task) -> None:
        seen.append(task.said_in_thread)
        await rec.handler("ticket")(bot_, task)

    run = tq.TaskRunner(bot, {"ticket": watch}, give_up_after=timedelta(hours=1))
    for _ in range(3):
        await run.run_due()
        clock.advance(tq.BACKOFF_CAP)
    assert seen == [False, True, True]


async def test_an_unknown_kind_fails_without_stopping_others(bot: Any,
                                                             clock: ManualClock) -> None:
    rec = Recorder()
    await add(bot, "s", "mystery")
    await add(bot, "s", "ticket")
    await runner(bot, rec).run_due()
    assert rec.calls == [("s", "ticket", 0)]
    [failed] = await bot.database.run(tq.unfinished)
    assert failed.kind == "mystery" and failed.state == "failed"


async def test_a_task_waiting_for_its_retry_holds_back_later_tasks_of_its_lane(
        bot: Any, clock: ManualClock) -> None:
    rec = Recorder()
    rec.outcomes[("s", "notice.post")] = [tq.Retry("chat down", retry_after=60)]
    await add(bot, "s", "notice.post", n=1)
    await runner(bot, rec).run_due()  # fails: due again in 60 s
    await add(bot, "s", "notice.thread", n=2)  # enqueued later, due now
    await add(bot, "s", "ticket", n=3)  # the other lane is not held
    await runner(bot, rec).run_due()
    assert [c[2] for c in rec.calls] == [1, 3]
    clock.advance(60)
    await runner(bot, rec).run_due()
    assert [c[2] for c in rec.calls] == [1, 3, 1, 2]
