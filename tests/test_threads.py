"""Thread-reply routing (bot/threads.py): a reply in a thread of a notice goes to the
``@on_thread_reply`` hook of the notice's owner; its answer is posted in that thread."""

from __future__ import annotations

import io
from typing import Any

import feature_handlers
import pytest
from conftest import CORE_HANDLERS
from notice_platform import FakePlatform

from bot import db
from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.core import Bot
from bot.identity import Inbound
from bot.reply import Reply

FEATURE = {"bot": {"handlers": [*CORE_HANDLERS, "feature_handlers"]},
           "notices": {"poll_seconds": 0.05}}
ALICE_SLACK = "U0ALICE01"


@pytest.fixture(autouse=True)
def _fresh_seen() -> None:
    feature_handlers.SEEN["replies"].clear()


def _notice(conn: Any, key: str, owner: str | None, platform: str, channel: str,
            message_id: str) -> None:
    """A notice delivered on ``platform`` (as the deliverer records it)."""
    now = db.utcnow()
    conn.execute(db.notices.insert().values(key=key, created_at=now, targets='["ops"]',
                                            mention="[]", owner=owner))
    conn.execute(db.notice_deliveries.insert().values(
        notice_key=key, step=0, kind="post", platform=platform, channel_id=channel,
        reply="{}", status="sent", attempts=1, next_at=now, message_id=message_id,
        created_at=now, sent_at=now))


async def _bot(make_bot: Any) -> tuple[Bot, FakePlatform]:
    bot = await make_bot(FEATURE)
    slack = FakePlatform("slack", {"ops": "C0OPS"})
    bot.platforms["slack"] = slack
    await bot.database.run(_notice, "meeting:1", "demo", "slack", "C0OPS", "1700000000.000100")
    await bot.database.run(_notice, "plain:1", None, "slack", "C0OPS", "1700000000.000200")
    return bot, slack


def _reply(text: str, thread: str, channel: str = "C0OPS", user: str = ALICE_SLACK) -> Inbound:
    return Inbound(platform="slack", user_id=user, text=text, channel_id=channel,
                   channel_alias="ops", thread_id=thread)


async def test_a_reply_goes_to_the_owner_and_its_answer_to_the_thread(make_bot) -> None:
    bot, slack = await _bot(make_bot)
    assert await bot.thread_reply(_reply("#action bob fix the disk", "1700000000.000100"))
    [ctx] = feature_handlers.SEEN["replies"]
    assert (ctx.owner, ctx.notice_key, ctx.caller.person.key, ctx.text) == (
        "demo", "meeting:1", "alice", "#action bob fix the disk")
    [answer] = slack.messages
    assert answer.ref.thread_id == "1700000000.000100" and answer.ref.channel_id == "C0OPS"
    assert answer.text == "noted from alice: #action bob fix the disk"


@pytest.mark.parametrize(("thread", "channel", "platform"), [
    ("1700000000.000999", "C0OPS", "slack"),  # a thread the bot did not open
    ("1700000000.000200", "C0OPS", "slack"),  # the bot's, but nobody owns it
    ("1700000000.000100", "C0OTHER", "slack"),  # the same id in another channel
    ("1700000000.000100", "C0OPS", "mattermost"),  # ... or on another platform
])
async def test_replies_nobody_owns_are_ignored(make_bot, thread: str, channel: str,
                                               platform: str) -> None:
    bot, slack = await _bot(make_bot)
    inbound = Inbound(platform=platform, user_id=ALICE_SLACK, text="hi", channel_id=channel,
                      thread_id=thread)
    assert await bot.thread_reply(inbound) is False
    assert feature_handlers.SEEN["replies"] == [] and slack.messages == []


async def test_an_owner_without_a_loaded_hook_and_a_silent_hook(make_bot) -> None:
    bot, slack = await _bot(make_bot)
    await bot.database.run(_notice, "gone:1", "meetings", "slack", "C0OPS", "1700000000.000300")
    assert await bot.thread_reply(_reply("hi", "1700000000.000300")) is False
    assert await bot.thread_reply(_reply("quiet", "1700000000.000100")) is True
    assert len(feature_handlers.SEEN["replies"]) == 1 and slack.messages == []


async def test_a_failing_hook_is_logged_not_raised(make_bot, monkeypatch, caplog) -> None:
    bot, slack = await _bot(make_bot)

    async def broken(ctx: Any) -> Reply:
        raise RuntimeError("boom")

    monkeypatch.setitem(bot.registry.thread_hooks, "demo", broken)
    assert await bot.thread_reply(_reply("hi", "1700000000.000100")) is True
    assert "the demo thread hook failed" in caplog.text and slack.messages == []


async def test_a_stranger_reaches_the_hook_as_an_unknown_caller(make_bot) -> None:
    bot, slack = await _bot(make_bot)
    assert await bot.thread_reply(_reply("hello", "1700000000.000100", user="U0NOBODY1"))
    assert feature_handlers.SEEN["replies"][0].caller.person is None
    assert slack.texts() == ["noted from stranger: hello"]


async def test_console_reply_in_a_simulated_thread(make_bot) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(await make_bot(FEATURE), ConsoleSession("alice"), out=out)
    await console.start()
    await console.bot.notices.post("ops", Reply(text="meeting report"), key="m", owner="demo")
    assert await console.bot.notices.idle(5)
    assert await console.thread_line("/reply 1 #topic disks")
    assert await console.thread_line("/reply 7 anyone?") is False
    lines = out.getvalue().splitlines()
    assert lines == ["[#ops 1] meeting report", "[#ops > 1] noted from alice: #topic disks",
                     "No message 7 in this console session."]


# ----------------------------------------------------------------- end to end, on the fake Slack


async def test_slack_thread_reply_reaches_the_owner_end_to_end(make_bot) -> None:
    """A notice delivered to the fake Slack, a person answers in its thread (a real signed
    Events API request): the owner's hook gets it and its answer lands in that thread."""
    from fakes.slack import FakeSlack
    from slack_rig import SHIFTERS, USERS

    from bot.adapters.slack import SlackAdapter
    from bot.runtime import attach_http

    async with FakeSlack(users=USERS) as slack:
        bot = await make_bot({**FEATURE, "slack": {
            "mode": "http", "bot_token": slack.bot_token, "signing_secret":
            slack.signing_secret, "api_url": slack.api_url, "channels": {"ops": "#shifters"},
            "request_timeout_seconds": 1}})
        http = attach_http(bot, "127.0.0.1", 0)
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        try:
            await bot.notices.start()
            await bot.notices.post("ops", Reply(text="Meeting report"), key="meeting:7",
                                   owner="demo")
            [root] = await bot.notices.delivered("meeting:7", 5)
            event = slack.message_event("#action bob fix the disk", user_id=ALICE_SLACK,
                                        channel_id=SHIFTERS, thread_ts=root.message_id)
            assert (await slack.deliver(f"{http.url}/slack/events",
                                        slack.signed_event(event))).status == 200
            await slack.wait_until(lambda: bool(slack.messages(SHIFTERS, thread_ts=root
                                                               .message_id)), 5, "answer")
            [answer] = slack.messages(SHIFTERS, thread_ts=root.message_id)
            assert answer.text == "noted from alice: #action bob fix the disk"
            [ctx] = feature_handlers.SEEN["replies"]
            assert (ctx.platform, ctx.notice_key) == ("slack", "meeting:7")
        finally:
            await bot.notices.stop(0)
            await adapter.stop()
            await http.stop()


async def test_mattermost_thread_reply_reaches_the_owner_end_to_end(make_bot) -> None:
    """The same on the fake Mattermost: a websocket ``posted`` event with ``root_id``."""
    from mattermost_harness import running

    async with running(make_bot, overrides=FEATURE) as st:
        mm, bot = st.mm, st.bot
        await bot.notices.start()
        try:
            await bot.notices.post("ops", Reply(text="Meeting report"), key="meeting:8",
                                   owner="demo")
            [root] = await bot.notices.delivered("meeting:8", 5)
            await mm.post_as("alice", "ops", "#topic disks", root_id=root.message_id)
            answer = await mm.wait_for_post(
                "ops", user=mm.bot, timeout=5,
                predicate=lambda p: p["root_id"] == root.message_id)
            assert answer["message"] == "noted from alice: #topic disks"
            [ctx] = feature_handlers.SEEN["replies"]
            assert (ctx.platform, ctx.caller.person.key) == ("mattermost", "alice")
        finally:
            await bot.notices.stop(0)
