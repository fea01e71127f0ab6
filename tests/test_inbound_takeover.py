"""Inbound claims handed over when their holder dies (bot/messaging/inbound.py, #16 "Replicas").

Several ``InboundClaims`` on one SQLite file stand for replicas (each its own owner and
connection pool). The bot clock is a ``ManualClock``: leases run out when the test moves it,
never in real time; the sweeps themselves tick every few milliseconds (``poll``). A "dead"
holder is a claim taken and then never renewed nor finished (as after SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import db
from bot.clock import ManualClock, use_clock
from bot.identity import Inbound
from bot.messaging.claims import Claims, Won
from bot.messaging.inbound import TAKEOVER, InboundClaims, Takeover

LEASE = timedelta(seconds=20)
TTL = timedelta(minutes=10)
TICK = 0.005  # the sweeps' real-time tick in these tests


@pytest.fixture
def now() -> Any:
    manual = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    with use_clock(manual):
        yield manual


@pytest.fixture
async def replicas(tmp_path: Path, now: ManualClock) -> AsyncIterator[Callable[..., Any]]:
    """``replicas(n, **kw)``: n InboundClaims ("replicas") on one database file."""
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    opened: list[db.Database] = []

    def make(count: int, **kwargs: Any) -> list[InboundClaims]:
        out = []
        for _ in range(count):
            database = db.Database(url)
            if not opened:
                database.migrate()
            opened.append(database)
            claims = Claims(database, owner=f"replica-{len(opened)}")
            out.append(InboundClaims(claims, "mattermost", TTL, lease=LEASE, poll=TICK,
                                     sweep=TICK, **kwargs))
        return out

    yield make
    await asyncio.sleep(TICK * 4)  # let the sweeps see their last marks
    for database in opened:
        database.close()


async def dead_holder(inbound: InboundClaims, key: str) -> None:
    """Claim ``key`` as a process that then dies: never renewed, never done."""
    won = await Claims(inbound.claims.database, "dead:1:000000").claim_delivery(
        f"inbound:mattermost:{key}", LEASE)
    assert isinstance(won, Won) and not won.taken_over


async def until(check: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(TICK)


async def state(inbound: InboundClaims, key: str) -> Any:
    return (await inbound.claims.states([f"inbound:mattermost:{key}"])).get(
        f"inbound:mattermost:{key}")


class Delivery:
    """One replica's handling of a delivery: ``first(key)`` in a task of its own (as the
    adapters run each), then work that lasts until :meth:`finish` (or raises)."""

    def __init__(self, inbound: InboundClaims, key: str) -> None:
        self.release = asyncio.Event()
        self.takeover: Takeover | None = None
        self.result: bool | None = None
        self.task = asyncio.create_task(self._run(inbound, key))

    async def _run(self, inbound: InboundClaims, key: str) -> bool:
        self.result = await inbound.first(key)
        self.takeover = TAKEOVER.get()
        if self.result:
            await self.release.wait()
        return self.result

    def finish(self) -> None:
        self.release.set()


# ------------------------------------------------------------------ expiry and takeover


async def test_a_stood_back_delivery_is_taken_over_once_the_dead_holders_lease_ran_out(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    [survivor] = replicas(1)
    await dead_holder(survivor, "p1")
    first_claimed = (await state(survivor, "p1")).claimed_at
    waiting = Delivery(survivor, "p1")
    await until(lambda: survivor.waiting == 1, "the survivor to keep the delivery")
    now.advance(LEASE.total_seconds() - 1)
    await asyncio.sleep(TICK * 10)
    assert waiting.result is None and survivor.waiting == 1  # the lease still runs
    now.advance(2)
    await until(lambda: waiting.result is not None, "the takeover")
    assert waiting.result is True
    assert waiting.takeover is not None and waiting.takeover.since == first_claimed
    assert (await state(survivor, "p1")).owner == survivor.claims.owner
    waiting.finish()
    await waiting.task
    await until_done(survivor, "p1")
    assert survivor.holding == 0 and survivor.waiting == 0  # nothing kept


async def test_a_delivery_seen_only_after_the_holders_lease_ran_out_is_a_takeover_too(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    [late] = replicas(1)
    await dead_holder(late, "p1")
    now.advance(LEASE.total_seconds() + 1)
    delivery = Delivery(late, "p1")
    await until(lambda: delivery.result is not None, "the claim")
    assert delivery.result is True and delivery.takeover is not None
    delivery.finish()
    # ...but a finished delivery whose dedupe window passed is a new one, not a takeover
    await until_done(late, "p1")
    now.advance(TTL.total_seconds() + 1)
    late.local.forget("p1")
    again = Delivery(late, "p1")
    await until(lambda: again.result is not None, "the claim")
    assert again.result is True and again.takeover is None
    again.finish()


async def test_a_holder_stopped_mid_command_cancelled_is_taken_over(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    holder, survivor = replicas(2)
    running = Delivery(holder, "p1")
    await until(lambda: running.result is True, "the holder's claim")
    waiting = Delivery(survivor, "p1")
    await until(lambda: survivor.waiting == 1, "the survivor to stand back")
    running.task.cancel()  # the process stopping: not done, its lease runs out
    await until(lambda: holder.holding == 0, "the holder to let go")
    now.advance(LEASE.total_seconds() + 1)
    await until(lambda: waiting.result is not None, "the takeover")
    assert waiting.result is True
    waiting.finish()


# ------------------------------------------------------------------ renewal


async def test_a_running_command_keeps_its_claim_however_long_it_runs(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    holder, other = replicas(2)
    running = Delivery(holder, "p1")
    await until(lambda: running.result is True, "the holder's claim")
    waiting = Delivery(other, "p1")
    await until(lambda: other.waiting == 1, "the other to stand back")
    for _ in range(12):  # four minutes, in steps of a third of the lease
        now.advance(LEASE.total_seconds() / 3 + 0.1)
        await until_renewed(holder, "p1", now)
        await asyncio.sleep(TICK * 6)
        assert waiting.result is None, "taken over from a live holder"
    running.finish()
    await until(lambda: waiting.result is not None, "the other to let go")
    assert waiting.result is False and other.waiting == 0


async def until_done(inbound: InboundClaims, key: str) -> None:
    for _ in range(1000):
        found = await state(inbound, key)
        if found is not None and found.done:
            return
        await asyncio.sleep(TICK)
    raise AssertionError(f"{key} was not marked done")


async def until_renewed(inbound: InboundClaims, key: str, now: ManualClock) -> None:
    """Until the lease on ``key`` reaches a full lease from the clock's time now."""
    for _ in range(1000):
        if (await state(inbound, key)).expires_at >= now.now + LEASE - timedelta(seconds=1):
            return
        await asyncio.sleep(TICK)
    raise AssertionError(f"{key} was not renewed")


# ------------------------------------------------------------------ one survivor


async def test_of_several_survivors_exactly_one_takes_the_delivery_over(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    survivors = replicas(5)
    await dead_holder(survivors[0], "p1")
    waiting = [Delivery(s, "p1") for s in survivors]
    await until(lambda: all(s.waiting == 1 for s in survivors), "all to stand back")
    now.advance(LEASE.total_seconds() + 1)
    await until(lambda: any(w.result for w in waiting), "a takeover")
    await asyncio.sleep(TICK * 20)
    winners = [w for w in waiting if w.result]
    assert len(winners) == 1
    assert all(w.result is None for w in waiting if w not in winners)  # still keeping it
    # Time goes on in steps shorter than a third of the lease, with the sweeps running in
    # between: the winner renews, so nobody else takes it. (One jump longer than the lease
    # would be a winner paused that long: then a takeover is right.)
    for _ in range(8):
        now.advance(LEASE.total_seconds() / 4)
        await asyncio.sleep(TICK * 20)
    assert [w for w in waiting if w.result] == winners
    winners[0].finish()
    await until(lambda: all(w.result is not None for w in waiting), "the others let go")
    assert sorted(w.result for w in waiting) == [False] * 4 + [True]
    assert all(s.waiting == 0 for s in survivors)


# ------------------------------------------------------------------ completed: never again


async def test_a_completed_delivery_is_never_taken_over(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    holder, other, late = replicas(3)
    running = Delivery(holder, "p1")
    await until(lambda: running.result is True, "the holder's claim")
    waiting = Delivery(other, "p1")
    await until(lambda: other.waiting == 1, "the other to stand back")
    running.finish()
    await until(lambda: waiting.result is not None, "the other to let go")
    assert waiting.result is False and waiting.takeover is None
    assert (await state(holder, "p1")).done
    for seconds in (LEASE.total_seconds() + 1, 300):  # holder gone: its lease long over
        now.advance(seconds)
        assert await late.claims.take_over(["inbound:mattermost:p1"], LEASE) == {}
        late.local.forget("p1")
        assert await late.first("p1") is False  # a replay: refused at once, not kept
        assert late.waiting == 0


async def test_a_handled_error_is_completed_too(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    holder, other = replicas(2)

    async def failing() -> None:
        assert await holder.first("p1")
        raise RuntimeError("handler bug")

    task = asyncio.create_task(failing())
    with pytest.raises(RuntimeError):
        await task
    await until_done(holder, "p1")
    now.advance(LEASE.total_seconds() + 1)
    assert await other.first("p1") is False


# ------------------------------------------------------------------ memory


async def test_stood_back_deliveries_are_bounded_and_forgotten(
        replicas: Callable[..., list[InboundClaims]], now: ManualClock) -> None:
    [survivor] = replicas(1, max_waiting=3)
    holder = replicas(1)[0]
    running = [Delivery(holder, f"p{i}") for i in range(5)]
    await until(lambda: all(r.result for r in running), "the holder's claims")
    waiting = [Delivery(survivor, f"p{i}") for i in range(5)]
    await until(lambda: sum(w.result is False for w in waiting) == 2, "two refused at once")
    assert survivor.waiting == 3
    running[0].finish()
    await until(lambda: survivor.waiting == 2, "a done one forgotten")
    # the others' holder keeps renewing past the dedupe window: the survivor lets go
    for _ in range(int(TTL / LEASE) * 3 + 3):
        now.advance(LEASE.total_seconds() / 3 + 0.1)
        await asyncio.sleep(TICK * 3)
    await until(lambda: survivor.waiting == 0, "every stood-back delivery forgotten")
    assert not any(w.result for w in waiting)
    await until(lambda: holder.holding == 0, "the holder's safety net")
    for r in running:
        r.finish()


async def test_a_task_never_waits_for_a_delivery_it_holds_itself(
        replicas: Callable[..., list[InboundClaims]]) -> None:
    one, two = replicas(2)
    assert await one.first("p1")
    assert await two.first("p1") is False  # would wait for itself forever
    assert two.waiting == 0


async def test_no_wait_stands_back_at_once(
        replicas: Callable[..., list[InboundClaims]]) -> None:
    holder, other = replicas(2)
    running = Delivery(holder, "p1")
    await until(lambda: running.result is True, "the holder's claim")
    assert await other.first("p1", wait=False) is False
    assert other.waiting == 0
    running.finish()


# ------------------------------------------------------------------ after a takeover: the audit


def _taken_over(since: datetime) -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(TAKEOVER.set, Takeover("inbound:mattermost:p1", since))
    return context


async def _in(context: contextvars.Context, work: Awaitable[Any]) -> Any:
    return await asyncio.get_running_loop().create_task(work, context=context)  # type: ignore[arg-type]


def _audited(bot: Any, command: str) -> list[Any]:
    from sqlalchemy import select

    return bot.database.call(lambda conn: list(conn.execute(
        select(db.audit).where(db.audit.c.command == command))))


async def test_a_taken_over_command_that_already_ran_is_not_run_again(
        make_bot: Callable[..., Awaitable[Any]], now: ManualClock) -> None:
    bot = await make_bot()
    alice = Inbound("mattermost", "a" * 26, "sample echo zebra --public", channel_id="c1")
    claimed = now.now
    now.advance(1)
    first = await bot.handle(alice)  # the replica that died had run it
    assert "zebra" in first.reply.text
    await bot.audit.flush()
    taken = await _in(_taken_over(claimed), bot.handle(alice))
    assert "the command ran: ok" in taken.reply.text and "zebra" not in taken.reply.text
    assert len(_audited(bot, "sample.echo")) == 1
    # another person's same line, or one audited before the delivery was claimed, runs
    bob = Inbound("mattermost", "b" * 26, "sample echo zebra --public", channel_id="c1")
    assert "zebra" in (await _in(_taken_over(claimed), bot.handle(bob))).reply.text
    later = now.advance(5)
    assert "zebra" in (await _in(_taken_over(later), bot.handle(alice))).reply.text
    await bot.audit.flush()
    assert len(_audited(bot, "sample.echo")) == 3


async def test_a_taken_over_destructive_command_points_to_its_request(
        make_bot: Callable[..., Awaitable[Any]], now: ManualClock) -> None:
    bot = await make_bot()
    alice = Inbound("mattermost", "a" * 26, "sample wipe db", channel_id="c1")
    claimed = now.now
    asked = await bot.handle(alice)
    assert asked.request_id
    await bot.audit.flush()
    taken = await _in(_taken_over(claimed), bot.handle(alice))
    assert asked.request_id in taken.reply.text and "not run again" in taken.reply.text
    assert len(_audited(bot, "sample.wipe")) == 1  # no second request opened
