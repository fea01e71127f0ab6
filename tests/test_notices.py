"""Durable notices: routing to every platform, once per key, order, retries, crash recovery,
replicas, mentions, update/thread. Real SQLite; platforms are tests/notice_platform.py fakes;
time moves with a ManualClock (no real waiting for backoff)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import CORE_HANDLERS
from notice_platform import DeliveryError, FakePlatform, RateLimited, TransientError

from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.reply import Reply

NOTICES: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.notices"]},
    "roles": {"shifter": {"allow": ["sample.*", "audit", "announce", "notices.pending"]}},
    "notices": {"retry_min_seconds": 1, "retry_max_seconds": 60, "poll_seconds": 0.05,
                "send_timeout_seconds": 0.2, "fail_after_hours": 1, "flush_timeout_seconds": 2,
                "unhealthy_after_seconds": 300},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    with use_clock(manual):
        yield manual


async def started(make_bot: Any, *platforms: FakePlatform, **overrides: Any) -> Bot:
    bot: Bot = await make_bot({**NOTICES, **overrides})
    for platform in platforms:
        bot.platforms[platform.name] = platform
    await bot.notices.start()
    return bot


async def settle(bot: Bot, clock: ManualClock, seconds: float, step: float = 10) -> None:
    """Let ``seconds`` of clock time pass in steps, delivering what becomes due."""
    for _ in range(int(seconds / step)):
        clock.advance(step)
        assert await bot.notices.idle(5)


async def test_alias_on_two_platforms_gets_one_post_on_each(make_bot, clock) -> None:
    slack, mm = FakePlatform("slack", {"ops": "C1"}), FakePlatform("mattermost", {"ops": "m1"})
    bot = await started(make_bot, slack, mm)
    assert await bot.notices.post("ops", Reply(text="hello"), key="k1") == []
    refs = await bot.notices.delivered("k1", 5)
    assert {(r.platform, r.channel_id) for r in refs} == {("slack", "C1"), ("mattermost", "m1")}
    assert slack.texts() == ["hello"] and mm.texts() == ["hello"]
    assert slack.messages[0].tag == "k1#0"
    # A key posts once, ever: the second post returns the first one's references.
    again = await bot.notices.post("ops", Reply(text="hello again"), key="k1")
    assert sorted(again, key=str) == sorted(refs, key=str)
    assert await bot.notices.idle(5)
    assert slack.texts() == ["hello"] and mm.texts() == ["hello"]


async def test_alias_mapped_on_one_platform_only(make_bot, clock) -> None:
    slack, mm = FakePlatform("slack", {"ops": "C1"}), FakePlatform("mattermost", {})
    bot = await started(make_bot, slack, mm)
    await bot.notices.post(["ops", "alerts"], Reply(text="x"), key="k")
    assert [r.platform for r in await bot.notices.delivered("k", 5)] == ["slack"]
    with pytest.raises(ValueError, match="no channel alias 'nowhere'"):
        await bot.notices.post("nowhere", Reply(text="x"), key="k2")


async def test_update_and_thread_go_to_the_posted_message(make_bot, clock) -> None:
    slack, mm = FakePlatform("slack", {"ops": "C1"}), FakePlatform("mattermost", {"ops": "m1"})
    bot = await started(make_bot, slack, mm)
    await bot.notices.post("ops", Reply(text="alert 4711 firing"), key="alert:4711")
    await bot.notices.update("alert:4711", Reply(text="alert 4711 resolved"))
    await bot.notices.thread("alert:4711", Reply(text="resolved by alice"))
    assert await bot.notices.idle(5)
    for platform in (slack, mm):
        root, reply = platform.messages
        assert platform.updates == [(root.ref, "alert 4711 resolved")]
        assert reply.ref.thread_id == root.ref.message_id and reply.text == "resolved by alice"
        assert reply.tag == "alert:4711#2"
    with pytest.raises(KeyError):
        await bot.notices.update("no-such-key", Reply(text="x"))


async def test_500_for_two_minutes_then_delivered_in_order(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1", "alerts": "C2"})
    broken_until = clock.now.timestamp() + 120
    slack.failure = lambda: (TransientError("HTTP 500") if clock.now.timestamp() < broken_until
                             else None)
    bot = await started(make_bot, slack)
    for i in range(5):
        await bot.notices.post("ops" if i % 2 else "alerts", Reply(text=f"n{i}"), key=f"k{i}")
    assert await bot.notices.idle(5)
    assert slack.messages == [] and slack.calls >= 2  # tried, failed, backing off
    failing_calls = slack.calls
    await settle(bot, clock, 250)
    assert slack.texts("C1") == ["n1", "n3"] and slack.texts("C2") == ["n0", "n2", "n4"]
    # Backed off (1, 2, 4, ... s) rather than hammering the platform: a few calls, not 120.
    assert failing_calls < 30 and slack.calls < 40
    assert (await bot.notices.unfinished()) == []


async def test_429_honours_retry_after(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    answers = iter([RateLimited(30.0)])
    slack.failure = lambda: next(answers, None)
    bot = await started(make_bot, slack)
    await bot.notices.post("ops", Reply(text="x"), key="k")
    assert await bot.notices.idle(5)
    pending = await bot.notices.unfinished()
    assert pending[0].last_error == "rate limited (retry after 30 s)"
    await settle(bot, clock, 20)
    assert slack.messages == []  # not before Retry-After
    await settle(bot, clock, 20)
    assert slack.texts() == ["x"]


async def test_refusal_fails_at_once_and_the_channel_goes_on(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    answers = iter([DeliveryError("channel_not_found")])
    slack.failure = lambda: next(answers, None)
    bot = await started(make_bot, slack)
    await bot.notices.post("ops", Reply(text="first"), key="k1")
    await bot.notices.update("k1", Reply(text="first, updated"))
    await bot.notices.post("ops", Reply(text="second"), key="k2")
    assert await bot.notices.idle(5)
    assert slack.texts() == ["second"] and slack.updates == []
    failed = {(r.key, r.step): r for r in await bot.notices.unfinished()}
    assert failed[("k1", 0)].last_error == "refused: channel_not_found"
    assert failed[("k1", 1)].last_error == "the notice's first message was not delivered"
    assert all(r.status == "failed" for r in failed.values())


async def test_given_up_after_fail_after_hours_is_counted_and_shown(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    slack.failure = lambda: TransientError("HTTP 503")
    bot = await started(make_bot, slack)
    await bot.notices.post("ops", Reply(text="x"), key="k")
    await settle(bot, clock, 600, step=60)
    state = (await bot.health.snapshot())["notices"]
    assert not state.ok and "1 waiting, oldest 600 s" in state.detail
    assert (await bot.notices.unfinished())[0].status == "pending"
    await settle(bot, clock, 3060, step=60)  # past fail_after_hours (1 h)
    row = (await bot.notices.unfinished())[0]
    assert row.status == "failed" and row.last_error.startswith("gave up after 1 h: ")
    assert (await bot.health.snapshot())["notices"].ok
    text = bot.metrics.exposition().decode()
    assert 'shiftbot_notices_failed_total{platform="slack"} 1.0' in text
    assert "shiftbot_outbox_depth 0.0" in text
    outcome = await bot.handle(_console("alice", "notices pending"))
    assert "given up on" in outcome.reply.text and outcome.reply.table is not None
    assert outcome.reply.table.rows[0][:4] == ["k", "0 post", "slack C1", "failed"]


async def test_hang_is_a_timeout_and_retried(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    hangs = iter([True])
    original = slack._call

    async def maybe_hang() -> None:
        if next(hangs, False):
            await asyncio.Event().wait()
        await original()

    slack._call = maybe_hang  # type: ignore[method-assign]
    bot = await started(make_bot, slack)
    await bot.notices.post("ops", Reply(text="x"), key="k")
    await asyncio.sleep(0.4)  # send_timeout_seconds is 0.2 in these tests
    assert (await bot.notices.unfinished())[0].last_error == "no answer within 0.2 s"
    await settle(bot, clock, 10)
    assert slack.texts() == ["x"]


async def test_crash_between_send_and_record_does_not_post_twice(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    slack.hang_after_post = True  # sent... and the process "dies" before recording it
    first = await started(make_bot, slack)
    await first.notices.post("ops", Reply(text="once"), key="k")
    for _ in range(100):
        if slack.messages:
            break
        await asyncio.sleep(0.01)
    await first.notices.stop(flush_timeout=0)  # the deliverer is killed mid-send
    assert [r.attempts for r in await first.notices.unfinished()] == [1]
    slack.hang_after_post = False
    second = await started(make_bot, slack)  # a restart on the same database
    clock.advance(60)  # the dead process's lease ran out
    assert await second.notices.idle(5)
    assert slack.texts() == ["once"]
    assert [r.message_id for r in await second.notices.delivered("k", 1)] == ["slack-1"]


async def test_two_bots_on_one_database_send_each_row_once(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1", "alerts": "C2"}, latency=0.001)
    one = await started(make_bot, slack)
    two = await started(make_bot, slack)
    for i in range(40):
        await (one if i % 2 else two).notices.post("ops" if i % 3 else "alerts",
                                                   Reply(text=str(i)), key=f"k{i}")
    for _ in range(50):
        await asyncio.gather(one.notices.idle(5), two.notices.idle(5))
        if len(slack.messages) == 40 and not await one.notices.unfinished():
            break
        clock.advance(2)
    tags = [m.tag for m in slack.messages]
    assert sorted(tags) == sorted(f"k{i}#0" for i in range(40))  # each once
    for channel, alias_of in (("C1", lambda i: i % 3), ("C2", lambda i: not i % 3)):
        assert slack.texts(channel) == [str(i) for i in range(40) if alias_of(i)]


async def test_mentions_people_groups_and_roles(make_bot, clock) -> None:
    slack, mm = FakePlatform("slack", {"ops": "C1"}), FakePlatform("mattermost", {"ops": "m1"})
    bot = await started(make_bot, slack, mm)
    await bot.notices.post("ops", Reply(text="look"), key="k1", mention=["dave", "shifters"])
    await bot.notices.post("ops", Reply(text="experts"), key="k2", mention=["expert"])
    bot.gate.add_role_provider("rota", lambda c: ["on-shift"] if c.person and
                               c.person.key == "bob" else [])
    await bot.notices.post("ops", Reply(text="shift"), key="k3", mention=["on-shift"])
    assert await bot.notices.idle(5)
    assert slack.texts() == ["<@U0DAVE001> <@U0ALICE01> <@U0BOB0001> look",
                             "<@U0CAROL01> <@U0ERIN001> experts", "<@U0BOB0001> shift"]
    # dave and erin have no Mattermost id: named plainly, nobody pinged by mistake
    assert mm.texts() == [f"Dave @{'a' * 26} @{'b' * 26} look", f"@{'c' * 26} Erin experts",
                          f"@{'b' * 26} shift"]


async def test_unknown_mention_is_an_error(make_bot, clock) -> None:
    bot = await started(make_bot, FakePlatform("slack", {"ops": "C1"}))
    with pytest.raises(ValueError, match="not a person, group or role"):
        await bot.notices.post("ops", Reply(text="x"), key="k", mention=["zoe"])


async def test_announce_queues_and_is_refused_without_permission(make_bot, clock) -> None:
    slack = FakePlatform("slack", {"ops": "C1"})
    bot = await started(make_bot, slack)
    done = await bot.handle(_console("alice", 'announce ops "disk full on the cluster"'))
    assert done.status == "ok" and "slack (C1)" in done.reply.text
    assert await bot.notices.idle(5)
    assert slack.texts() == ["disk full on the cluster"]
    bad = await bot.handle(_console("alice", "announce nowhere hi"))
    assert bad.status == "error" and "no channel alias" in bad.reply.text
    denied = await bot.handle(_console("dave", "announce ops hi", channel="ops"))
    assert denied.status == "denied"
    await bot.audit.flush()
    entries = await bot.audit.query(command_glob="announce")
    assert [(e.person, e.decision) for e in entries][:2] == [("dave", "denied"),
                                                             ("alice", "allowed")]
    assert slack.texts() == ["disk full on the cluster"]


def _console(user: str, text: str, channel: str | None = None) -> Any:
    from conftest import console

    return console(user, text, channel)
