"""Notices end to end (#12): ``bot.notices`` in a bot started by the real lifecycle with the
real Slack and Mattermost adapters, against both loopback fakes at once (real sockets, real
SQLite). What is checked is what the fakes stored: what people in each channel would see.

Time: retries and Retry-After are on the one clock (a ManualClock here), so "the platform is
down for two minutes" takes a few real seconds: the test moves the clock and lets the deliverer
send what became due (``notices.idle`` wakes it and waits)."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sample_handlers
from fakes.mattermost import FakeMattermost
from fakes.slack import FakeSlack
from notice_stack import (
    ALICE,
    DAVE,
    GENERAL,
    SHIFTERS,
    config,
    fakes,
    free_port,
    mm_replies,
    mm_top,
    slack_replies,
    slack_top,
)

from bot.clock import ManualClock, use_clock
from bot.config import parse_config
from bot.core import Bot
from bot.lifecycle import Lifecycle
from bot.messaging.port import NOTICE_TAG
from bot.reply import Action, Reply
from bot.runtime import build_adapters

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

OUTAGE = 120.0  # seconds of clock time the platforms fail for


@dataclass
class Stack:
    slack: FakeSlack
    mm: FakeMattermost
    bot: Bot
    clock: ManualClock
    url: str  # the bot's HTTP server

    async def settle(self, seconds: float, step: float = 5.0) -> None:
        """Let ``seconds`` of clock time pass in steps, sending what becomes due."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            assert await self.bot.notices.idle(10)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    with use_clock(manual):
        yield manual


@pytest.fixture
async def stack(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Stack]:
    sample_handlers.RUNS.clear()
    slack, mm = fakes()
    async with slack, mm:
        port = free_port()
        raw = config(slack, mm, f"sqlite:///{tmp_path / 'bot.db'}", http_port=port)
        lifecycle = Lifecycle(parse_config(raw, tmp_path), adapters=build_adapters)
        bot = await lifecycle.start()
        try:
            assert sorted(bot.platforms) == ["mattermost", "slack"]
            yield Stack(slack, mm, bot, clock, f"http://127.0.0.1:{port}")
        finally:
            await lifecycle.stop()


# ------------------------------------------------------------------------ routing


async def test_each_alias_gets_one_message_on_each_platform(stack: Stack) -> None:
    slack, mm, notices = stack.slack, stack.mm, stack.bot.notices
    await notices.post("ops", Reply(text="disk full on node1"), key="disk:1")
    await notices.post(["ops", "alerts"], Reply(text="pool drained"), key="pool:1")
    refs = await notices.delivered("disk:1", 10)
    assert sorted((r.platform, r.channel_id) for r in refs) == sorted(
        [("slack", SHIFTERS), ("mattermost", mm.channel("ops").id)])
    await notices.delivered("pool:1", 10)
    # A key posts once, ever: posting it again is a no-op that returns the first refs.
    again = await notices.post("ops", Reply(text="disk full, again"), key="disk:1")
    assert sorted(again, key=str) == sorted(refs, key=str)
    assert await notices.idle(10)

    ops = [("disk full on node1", "disk:1#0"), ("pool drained", "pool:1#0")]
    assert slack_top(slack, "ops") == ops and mm_top(mm, "ops") == ops
    assert slack_top(slack, "alerts") == mm_top(mm, "alerts") == [("pool drained",
                                                                   "pool:1#0")]
    by_platform = {r.platform: r.message_id for r in refs}
    assert slack.message(SHIFTERS, by_platform["slack"]).text == "disk full on node1"
    assert mm.post(by_platform["mattermost"])["message"] == "disk full on node1"
    # one request per message: nothing was sent twice behind the scenes
    assert len(slack.calls("chat.postMessage")) == 3
    assert len(mm.find_requests("POST /api/v4/posts")) == 3


async def test_update_and_thread_reply_land_on_their_own_message(stack: Stack) -> None:
    slack, mm, notices = stack.slack, stack.mm, stack.bot.notices
    await notices.post("alerts", Reply(text="alert 4711 firing"), key="alert:4711")
    await notices.post("alerts", Reply(text="alert 4712 firing"), key="alert:4712")
    await notices.update("alert:4711", Reply(text="alert 4711 resolved"))
    await notices.thread("alert:4711", Reply(text="resolved by alice"))
    await notices.thread("alert:4712", Reply(text="still looking"))
    assert await notices.idle(10)

    assert slack_top(slack, "alerts") == mm_top(mm, "alerts") == [
        ("alert 4711 resolved", "alert:4711#0"), ("alert 4712 firing", "alert:4712#0")]
    roots = {(r.platform, key): r.message_id for key in ("alert:4711", "alert:4712")
             for r in await notices.delivered(key, 5)}
    assert len(slack.message(GENERAL, roots["slack", "alert:4711"]).edits) == 1
    assert slack.message(GENERAL, roots["slack", "alert:4712"]).edits == []
    assert slack_replies(slack, "alerts", roots["slack", "alert:4711"]) == [
        ("resolved by alice", "alert:4711#2")]
    assert slack_replies(slack, "alerts", roots["slack", "alert:4712"]) == [
        ("still looking", "alert:4712#1")]
    assert mm_replies(mm, roots["mattermost", "alert:4711"]) == [
        ("resolved by alice", "alert:4711#2")]
    assert mm_replies(mm, roots["mattermost", "alert:4712"]) == [
        ("still looking", "alert:4712#1")]
    updated = mm.post(roots["mattermost", "alert:4711"])
    assert updated["edit_at"] and updated["props"][NOTICE_TAG] == "alert:4711#0"
    assert not mm.post(roots["mattermost", "alert:4712"])["edit_at"]


# ------------------------------------------------------------------------ buttons


async def test_a_command_button_runs_as_the_clicker_on_each_platform(stack: Stack) -> None:
    slack, mm, notices = stack.slack, stack.mm, stack.bot.notices
    reply = Reply(text="VPN session expired", actions=[Action.run("Log in", "sample login")])
    await notices.post("ops", reply, key="vpn:1")
    refs = {r.platform: r.message_id for r in await notices.delivered("vpn:1", 10)}

    # Slack: a signed block_actions POST, as Slack sends a click in HTTP mode.
    message = slack.message(SHIFTERS, refs["slack"])
    (button,) = [e for b in message.blocks or [] if b["type"] == "actions"
                 for e in b["elements"]]

    async def slack_click(user: str) -> None:
        signed = slack.signed_block_actions(button["action_id"], user_id=user,
                                            channel_id=SHIFTERS, message_ts=refs["slack"])
        assert (await slack.deliver(stack.url + "/slack/events", signed)).status == 200

    await slack_click(DAVE)  # a viewer: may not log in
    (refusal,) = await slack.wait_for("response_url")
    assert "Not allowed" in refusal.params["text"]
    assert refusal.params["response_type"] == "ephemeral" and sample_handlers.RUNS == []
    await slack_click(ALICE)
    answers = await slack.wait_for("response_url", count=2)
    assert answers[1].params["text"] == "logged in"
    assert sample_handlers.RUNS == [("sample.login", "alice", {"token": None})]

    # Mattermost: the server POSTs the button's signed integration context to the bot.
    post = mm.post(refs["mattermost"])
    action = post["props"]["attachments"][0]["actions"][0]
    assert action["integration"]["url"] == stack.url + "/mattermost/action"
    refused = await mm.click(None, post["id"], action["id"], "dave")
    assert refused.status == 200 and "may not run" in (refused.ephemeral_text or "")
    assert len(sample_handlers.RUNS) == 1
    ran = await mm.click(None, post["id"], action["id"], "bob")
    assert ran.ephemeral_text == "logged in"
    assert sample_handlers.RUNS[1:] == [("sample.login", "bob", {"token": None})]

    rows = await stack.bot.audit.query(command_glob="sample.*")
    assert sorted((e.person, e.platform, e.decision) for e in rows) == [
        ("alice", "slack", "allowed"), ("bob", "mattermost", "allowed"),
        ("dave", "mattermost", "denied"), ("dave", "slack", "denied")]
    # the notice and its button stay for the next person
    assert slack.message(SHIFTERS, refs["slack"]).blocks == message.blocks
    assert mm.post(post["id"])["props"]["attachments"] == post["props"]["attachments"]


# ------------------------------------------------------------------------ outages


async def post_burst(stack: Stack) -> None:
    """Six notices over two channels, an update and a thread reply: order matters in each."""
    notices = stack.bot.notices
    for i in range(6):
        await notices.post("alerts" if i % 2 == 0 else "ops", Reply(text=f"n{i}"),
                           key=f"n{i}")
    await notices.update("n0", Reply(text="n0 updated"))
    await notices.thread("n1", Reply(text="n1 reply"))


async def check_burst_delivered_once(stack: Stack) -> None:
    slack, mm, notices = stack.slack, stack.mm, stack.bot.notices
    assert await notices.unfinished() == []
    alerts = [("n0 updated", "n0#0"), ("n2", "n2#0"), ("n4", "n4#0")]
    ops = [("n1", "n1#0"), ("n3", "n3#0"), ("n5", "n5#0")]
    assert slack_top(slack, "alerts") == alerts and mm_top(mm, "alerts") == alerts
    assert slack_top(slack, "ops") == ops and mm_top(mm, "ops") == ops
    roots = {r.platform: r.message_id for r in await notices.delivered("n1", 1)}
    assert slack_replies(slack, "ops", roots["slack"]) == [("n1 reply", "n1#1")]
    assert mm_replies(mm, roots["mattermost"]) == [("n1 reply", "n1#1")]
    # what the outbox recorded is the message people see (found again after a lost answer)
    for i in range(6):
        for ref in await notices.delivered(f"n{i}", 1):
            if ref.platform == "slack":
                shown = slack.message(ref.channel_id, ref.message_id)
                assert shown is not None and shown.metadata["event_payload"]["tag"] == f"n{i}#0"
            else:
                assert mm.post(ref.message_id)["props"][NOTICE_TAG] == f"n{i}#0"


SLACK_SENDS = ("chat.postMessage", "chat.update", "conversations.history",
               "conversations.replies")
MM_SENDS = ("POST /api/v4/posts", "PUT /api/v4/posts/*", "GET /api/v4/channels/*/posts",
            "GET /api/v4/posts/*/thread")


def attempts(stack: Stack) -> collections.Counter[str]:
    """Requests that tried to send a notice or find it, per platform."""
    return collections.Counter(
        slack=sum(len(stack.slack.calls(method)) for method in SLACK_SENDS),
        mattermost=sum(len(stack.mm.find_requests(spec)) for spec in MM_SENDS))


async def test_500_for_two_minutes_then_all_delivered_in_order_once(stack: Stack) -> None:
    slack, mm = stack.slack, stack.mm
    # The first post of each platform is made but its answer lost (a gateway's 500 after the
    # work): retrying must find that message, not post it again. Then everything fails.
    slack.fail_next("chat.postMessage", 500, stored=True)
    mm.fail_next("POST /api/v4/posts", 500, stored=True)
    slack.fail_next("*", 500, times=None)
    mm.fail_next("/api/v4/*", 500, times=None)
    await post_burst(stack)
    assert await stack.bot.notices.idle(10)
    await stack.settle(OUTAGE)
    assert len(slack.messages()) == 1 and len(mm_top(mm, "ops") + mm_top(mm, "alerts")) == 1
    tried = attempts(stack)
    # Backed off (1, 2, 4 ... s per channel) instead of hammering: a handful of tries each.
    assert 4 <= tried["slack"] <= 30 and 4 <= tried["mattermost"] <= 30, tried
    pending = await stack.bot.notices.unfinished()
    assert pending and all(r.status == "pending" for r in pending)
    assert any("500" in (r.last_error or "") for r in pending)

    slack.clear_faults()
    mm.clear_faults()
    await stack.settle(90)  # the longest backoff (60 s) has come round
    await check_burst_delivered_once(stack)


async def test_429_for_two_minutes_waits_retry_after_then_delivers(stack: Stack) -> None:
    slack, mm = stack.slack, stack.mm
    slack.rate_limit("*", times=None, retry_after=30)
    mm.rate_limit("/api/v4/*", times=None, retry_after=30)
    await post_burst(stack)
    assert await stack.bot.notices.idle(10)
    first = attempts(stack)
    assert first["slack"] >= 2 and first["mattermost"] >= 2  # both channels tried once
    heads = [r for r in await stack.bot.notices.unfinished() if r.attempts]
    assert {r.last_error for r in heads} == {"rate limited (retry after 30 s)"}
    await stack.settle(25)
    assert attempts(stack) == first  # not one request before Retry-After
    await stack.settle(10)
    again = attempts(stack)
    assert again["slack"] > first["slack"] and again["mattermost"] > first["mattermost"]
    await stack.settle(OUTAGE - 35)
    assert slack.messages() == [] and mm_top(mm, "ops") == mm_top(mm, "alerts") == []
    # one request per channel each 30 s (at 0, 30, 60, 90, 120): none right after a 429
    tried = attempts(stack)
    assert tried["slack"] <= 2 * 5 and tried["mattermost"] <= 2 * 5, tried

    slack.clear_faults()
    mm.clear_faults()
    await stack.settle(60)
    await check_burst_delivered_once(stack)


async def test_a_head_that_must_wait_holds_back_every_row_behind_it(stack: Stack) -> None:
    """Order per channel: nothing goes before a row that must wait, however deep in the batch
    (HEAD's deliver.py held back only the row right behind it and sent the next one)."""
    slack, mm, notices = stack.slack, stack.mm, stack.bot.notices
    slack.rate_limit("chat.postMessage", retry_after=10)
    mm.rate_limit("POST /api/v4/posts", retry_after=10)
    await notices.post("ops", Reply(text="m0"), key="m0")
    assert await notices.idle(10)  # m0 waits 10 s
    for i in range(1, 4):
        await notices.post("ops", Reply(text=f"m{i}"), key=f"m{i}")
    assert await notices.idle(10)  # queued behind m0
    # m0's retry first looks for it (its answer may have been lost): that look-up fails once,
    # so m0 must wait again, and so must m1, m2 and m3 behind it.
    slack.fail_next("conversations.history", 500)
    mm.fail_next("GET /api/v4/channels/*/posts", 500)
    before = attempts(stack)
    await stack.settle(10)
    assert slack_top(slack, "ops") == [] and mm_top(mm, "ops") == []
    assert attempts(stack) - before == collections.Counter(slack=1, mattermost=1)
    await stack.settle(30)
    expected = [(f"m{i}", f"m{i}#0") for i in range(4)]
    assert slack_top(slack, "ops") == expected and mm_top(mm, "ops") == expected
