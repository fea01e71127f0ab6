"""The Slack adapter end to end: real bolt, real sockets, the loopback FakeSlack.

HTTP mode: signed requests POSTed to the bot's ``/slack/events``. Socket Mode: envelopes pushed
over the fake's WebSocket. Every test checks what Slack would have shown (the fake's messages)
and what really ran (``sample_handlers.RUNS``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import sample_handlers
from fakes.slack import FakeSlack, Message, User

from bot import db
from bot.adapters.slack import SlackAdapter
from bot.adapters.slack.outbound import Post
from bot.commands import Context
from bot.config import Config
from bot.core import Bot
from bot.http import HttpServer
from bot.reply import Reply
from bot.runtime import attach_http, serve

ALICE, BOB, CAROL, DAVE, MALLORY = "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001", "U0MALLORY"
GENERAL, SHIFTERS = "C00000001", "C00000002"  # aliases: alerts (by id), ops (by #name)
USERS = [User(ALICE, "alice"), User(BOB, "bob"), User(CAROL, "carol"), User(DAVE, "dave"),
         User("U0ERIN001", "erin"), User(MALLORY, "mallory")]



@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    sample_handlers.RUNS.clear()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(users=USERS) as fake:
        yield fake


@dataclass
class Rig:
    bot: Bot
    http: HttpServer
    adapter: SlackAdapter
    slack: FakeSlack

    @property
    def url(self) -> str:
        return f"{self.http.url}/slack/events"

    def runs(self, command: str | None = None) -> list[tuple[str, str, dict[str, object]]]:
        return [r for r in sample_handlers.RUNS if command is None or r[0] == command]


Factory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(make_bot: Callable[..., Awaitable[Bot]], slack: FakeSlack) -> AsyncIterator[Factory]:
    made: list[Rig] = []

    async def factory(mode: str = "http", **overrides: Any) -> Rig:
        section = {
            "mode": mode, "bot_token": slack.bot_token, "app_token": slack.app_token,
            "signing_secret": slack.signing_secret, "api_url": slack.api_url,
            "commands": {"/shiftbot": None, "/sample": "sample"},
            "channels": {"ops": "#shifters", "alerts": GENERAL},
            "ping_interval_seconds": 0.2, **overrides,
        }
        bot = await make_bot({"slack": section})
        http = attach_http(bot, "127.0.0.1", 0)
        assert bot.config.slack is not None
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        made.append(Rig(bot, http, adapter, slack))
        if mode == "socket":
            await slack.wait_for_connection(slack.connection_count or 1)
        return made[-1]

    yield factory
    for r in made:
        await r.adapter.stop()
        await r.http.stop()


def blocks_text(message: Message | dict[str, Any]) -> str:
    blocks = message.blocks if isinstance(message, Message) else message.get("blocks")
    return "\n".join(b["text"]["text"] for b in blocks or [] if b.get("type") == "section")


def buttons(blocks: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks or [] if b["type"] == "actions"
            for e in b["elements"]}


async def metric(rig: Rig, name: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{rig.http.url}/metrics") as resp:
        text = await resp.text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


async def healthz(rig: Rig) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{rig.http.url}/healthz") as resp:
        return resp.status, await resp.json()


# ------------------------------------------------------------------------ HTTP mode


async def test_signed_slash_command_is_answered_inline(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    answer = await slack.deliver(r.url, slack.signed_slash_command(
        "sample echo hello there", user_id=ALICE, channel_id=SHIFTERS))
    assert answer.status == 200 and answer.in_time and answer.elapsed < 1.0
    body = answer.json()
    assert body["response_type"] == "ephemeral" and "hello there" in body["text"]
    assert r.runs() == [("sample.echo", "alice", {"words": ["hello", "there"], "times": 1})]
    (shown,) = slack.messages("shifters", ephemeral=True)
    assert shown.ephemeral_to == ALICE and shown.source == "ack"

    # an alias slash command maps to its family; --public answers in the channel
    answer = await slack.deliver(r.url, slack.signed_slash_command(
        "echo loud --public", command="/sample", user_id=ALICE, channel_id=SHIFTERS))
    assert answer.json()["response_type"] == "in_channel"
    assert [m.text for m in slack.messages("shifters", ephemeral=False)] == ["loud"]
    # aliases match channel ids: one conversations.list paging at startup, none per command
    assert r.adapter.channels.lookups == 1 and slack.calls("conversations.info") == []
    assert slack.calls("chat.postMessage") == []  # the answers were the acks themselves


async def test_slow_command_acks_at_once_then_answers_via_response_url(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    signed = slack.signed_slash_command("sample slow --seconds 1", user_id=ALICE,
                                        channel_id=SHIFTERS)
    answer = await slack.deliver(r.url, signed)
    assert answer.status == 200 and answer.elapsed < 0.5
    assert "Working on `sample slow`" in answer.json()["text"]
    url = signed.payload["response_url"]
    await slack.wait_until(lambda: any("done slowly" in (c.params.get("text") or "")
                                       for c in slack.response_posts(url)), 5, "result")
    texts = [c.params["text"] for c in slack.response_posts(url)]
    assert texts == ["_working_", "done slowly"]  # progress, then the result
    assert all(c.params["response_type"] == "ephemeral" for c in slack.response_posts(url))
    assert len(r.runs("sample.slow")) == 1


async def test_fast_command_over_its_budget_is_finished_later(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig(ack_budget_seconds=0.2)
    spec = r.bot.lookup("sample echo x")
    assert spec is not None
    original = spec.handler

    async def sluggish(ctx: Context) -> Reply:
        await asyncio.sleep(0.6)
        return await original(ctx)

    spec.handler = sluggish
    try:
        signed = slack.signed_slash_command("sample echo late", user_id=ALICE)
        answer = await slack.deliver(r.url, signed)
        assert answer.elapsed < 0.5 and "Working on `sample echo`" in answer.json()["text"]
        (post,) = await slack.wait_for("response_url", timeout=3)
        assert post.params["text"] == "late" and post.url_id in signed.payload["response_url"]
    finally:
        spec.handler = original


@pytest.mark.parametrize("how", ["stale", "bad_signature", "unsigned"])
async def test_bad_signatures_get_401_and_nothing_runs(
        rig: Factory, slack: FakeSlack, how: str) -> None:
    r = await rig()
    if how == "unsigned":
        signed = slack.signed_slash_command("sample echo hi", user_id=ALICE)
        for header in ("X-Slack-Signature", "X-Slack-Request-Timestamp"):
            signed.headers.pop(header)
    else:
        signed = slack.signed_slash_command("sample echo hi", user_id=ALICE, **{how: True})
    answer = await slack.deliver(r.url, signed)
    click = await slack.deliver(r.url, slack.signed_block_actions(
        "shiftbot.confirm", value="abcdef", user_id=ALICE, stale=True))
    assert (answer.status, click.status) == (401, 401)
    await asyncio.sleep(0.1)
    assert r.runs() == [] and slack.calls("chat.postMessage") == []
    assert slack.response_posts() == []
    assert await metric(r, "shiftbot_auth_failures_total") == (
        'shiftbot_auth_failures_total{source="slack"} 2.0')


async def test_errors_and_denials_are_ephemeral_and_never_show_a_traceback(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    cases = [(MALLORY, "sample echo hi --public"), (ALICE, "sample fail crash"),
             (ALICE, "sample fail expected"), (ALICE, "sample nosuch")]
    for user, text in cases:
        body = (await slack.deliver(r.url, slack.signed_slash_command(
            text, user_id=user, channel_id=SHIFTERS))).json()
        assert body["response_type"] == "ephemeral", text
        assert "Traceback" not in body["text"] and "secret-token-value" not in body["text"]
    assert slack.messages("shifters", ephemeral=False) == []
    texts = [m.text or "" for m in slack.messages("shifters", ephemeral=True)]
    assert "Not allowed" in texts[0] and "internal error" in texts[1]
    assert "did not answer within 10 s" in texts[2]


async def test_channel_limited_grant_follows_the_channel_alias(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    # "#shifters" (alias "ops") is resolved to its id once, at startup; messages match the id
    for _ in range(2):
        await slack.deliver(r.url, slack.signed_event(slack.app_mention_event(
            "sample echo hey", user_id=DAVE, channel_id=SHIFTERS)))  # #shifters is alias "ops"
    await slack.wait_for("chat.postEphemeral", count=2)
    assert len(r.runs()) == 2 and len(slack.calls("conversations.list")) == 1

    in_ops = await slack.deliver(r.url, slack.signed_slash_command(
        "sample echo hi", user_id=DAVE, channel_id=SHIFTERS))
    elsewhere = await slack.deliver(r.url, slack.signed_slash_command(
        "sample echo hi", user_id=DAVE, channel_id=GENERAL))  # alias "alerts"
    assert in_ops.json()["text"] == "hi"
    assert "Not allowed" in elsewhere.json()["text"]
    assert r.runs()[2:] == [("sample.echo", "dave", {"words": ["hi"], "times": 1})]
    assert slack.calls("conversations.info") == []
    assert len(slack.calls("conversations.list")) == 1


async def test_mention_in_a_thread_is_answered_in_that_thread(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    parent = slack.message_event("jobs are piling up", user_id=BOB, channel_id=SHIFTERS)
    first = slack.app_mention_event("sample table --rows 3", user_id=ALICE,
                                    channel_id=SHIFTERS, thread_ts=parent["ts"])
    answer = await slack.deliver(r.url, slack.signed_event(first))
    assert answer.status == 200 and answer.elapsed < 0.5
    (post,) = await slack.wait_for("chat.postMessage")
    assert post.params["thread_ts"] == parent["ts"] and post.params["channel"] == SHIFTERS
    assert "job-2" in blocks_text(post.params)

    # a private answer stays in the thread too, and a retried delivery runs nothing twice
    private = slack.signed_event(slack.app_mention_event(
        "sample echo psst", user_id=ALICE, channel_id=SHIFTERS, thread_ts=parent["ts"]))
    await slack.deliver(r.url, private)
    private.headers["X-Slack-Retry-Num"] = "1"
    private.headers["X-Slack-Retry-Reason"] = "http_timeout"
    assert (await slack.deliver(r.url, private)).status == 200
    (eph,) = await slack.wait_for("chat.postEphemeral")
    assert eph.params["thread_ts"] == parent["ts"] and eph.params["user"] == ALICE
    await asyncio.sleep(0.1)
    assert len(r.runs("sample.echo")) == 1
    # a top-level mention answers in the channel (not in a thread)
    await slack.deliver(r.url, slack.signed_event(slack.app_mention_event(
        "sample table --rows 1", user_id=ALICE, channel_id=SHIFTERS)))
    posts = await slack.wait_for("chat.postMessage", count=2)
    assert "thread_ts" not in posts[1].params


async def test_destructive_command_confirm_button_runs_it_once(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    answer = await slack.deliver(r.url, slack.signed_slash_command(
        "sample wipe scratch", user_id=ALICE, channel_id=SHIFTERS))
    body = answer.json()
    confirm = buttons(body["blocks"])["shiftbot.confirm"]
    assert body["response_type"] == "ephemeral" and r.runs() == []
    assert confirm["style"] == "danger" and confirm["confirm"]["style"] == "danger"
    assert "sample wipe scratch" in confirm["confirm"]["text"]["text"]
    assert "shiftbot.cancel" in buttons(body["blocks"])
    (request,) = slack.messages("shifters", ephemeral=True)

    # someone else cannot confirm alice's request
    bob = slack.signed_block_actions("shiftbot.confirm", user_id=BOB, channel_id=SHIFTERS,
                                     message_ts=request.ts)
    assert (await slack.deliver(r.url, bob)).status == 200
    (refusal,) = await slack.wait_for("response_url")
    assert refusal.params["response_type"] == "ephemeral"
    assert "only alice" in refusal.params["text"].lower() and not refusal.params["replace_original"]
    assert slack.messages("shifters", ephemeral=True)[-1].ephemeral_to == BOB

    click = slack.signed_block_actions("shiftbot.confirm", user_id=ALICE, channel_id=SHIFTERS,
                                       message_ts=request.ts)
    assert click.payload["actions"][0]["value"] == confirm["value"]
    assert (await slack.deliver(r.url, click)).elapsed < 0.5
    posts = await slack.wait_for("response_url", count=3)
    update, result = posts[1].params, posts[2].params
    assert update["replace_original"] is True and "Confirmed by alice" in update["text"]
    assert "shiftbot.confirm" not in buttons(update["blocks"])  # the buttons are gone
    assert result["text"] == "wiped scratch"
    assert slack.message("shifters", request.ts).text == update["text"]  # replaced in place

    # a second click (double click, or a stale copy of the message) runs nothing again
    again = slack.signed_block_actions("shiftbot.confirm", user_id=ALICE, channel_id=SHIFTERS,
                                       message_ts=request.ts, value=confirm["value"])
    await slack.deliver(r.url, again)
    posts = await slack.wait_for("response_url", count=4)
    assert "already decided" in posts[3].params["text"]
    assert r.runs() == [("sample.wipe", "alice", {"target": "scratch"})]


async def test_approval_needs_a_second_person_with_the_role(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    acked = await slack.deliver(r.url, slack.signed_slash_command(
        "sample restart web", user_id=ALICE, channel_id=SHIFTERS))
    assert acked.status == 200 and not acked.body  # the card is posted, not acked
    (card,) = await slack.wait_for("chat.postMessage")
    assert set(buttons(card.params["blocks"])) == {"shiftbot.approve", "shiftbot.deny"}
    (request,) = slack.messages("shifters", ephemeral=False)
    assert request.source == "chat.postMessage"

    async def click(user: str) -> dict[str, Any]:
        before = len(slack.response_posts())
        await slack.deliver(r.url, slack.signed_block_actions(
            "shiftbot.approve", user_id=user, channel_id=SHIFTERS, message_ts=request.ts))
        posts = await slack.wait_for("response_url", count=before + 1)
        return posts[before].params

    for user, why in ((ALICE, "cannot decide your own"), (DAVE, "needs role expert"),
                      (MALLORY, "only configured people")):
        refusal = await click(user)
        assert why in refusal["text"].lower() and refusal["response_type"] == "ephemeral"
        assert not refusal["replace_original"]
    assert r.runs() == [] and buttons(slack.message("shifters", request.ts).blocks)

    update = await click(CAROL)
    (result,) = (await slack.wait_for("response_url", count=5))[4:]
    assert update["replace_original"] is True and "Approved by carol" in update["text"]
    assert result.params["text"] == "restarted web"
    shown = slack.message("shifters", request.ts)
    assert shown is not None and "Approved by carol" in (shown.text or "")
    assert not buttons(shown.blocks)
    assert r.runs() == [("sample.restart", "alice", {"service": "web"})]



async def _approval_card(r: Rig, slack: FakeSlack, text: str) -> tuple[Message, str]:
    """An approval request asked by mentioning the bot: a real message with buttons."""
    await slack.deliver(r.url, slack.signed_event(slack.app_mention_event(
        text, user_id=ALICE, channel_id=SHIFTERS)))
    (post,) = await slack.wait_for("chat.postMessage")
    approve = buttons(post.params["blocks"])["shiftbot.approve"]
    (request,) = await r.bot.requests.list_pending()
    assert request.id in approve["value"]
    card = slack.messages("shifters", ephemeral=False)[-1]
    assert card.source == "chat.postMessage" and buttons(card.blocks)
    return card, request.id


async def test_typed_approve_updates_the_request_message(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    card, request_id = await _approval_card(r, slack, "sample restart web")
    # carol approves by typing, not by clicking: the card must not keep live buttons
    typed = await slack.deliver(r.url, slack.signed_slash_command(
        f"approve {request_id}", user_id=CAROL, channel_id=SHIFTERS))
    assert typed.status == 200
    (update,) = await slack.wait_for("chat.update")
    assert update.params["channel"] == SHIFTERS and update.params["ts"] == card.ts
    shown = slack.message("shifters", card.ts)
    assert shown is not None and "Approved by carol" in (shown.text or "")
    assert not buttons(shown.blocks)
    assert r.runs() == [("sample.restart", "alice", {"service": "web"})]


async def test_slash_command_card_is_updated_by_a_typed_approve(
        rig: Factory, slack: FakeSlack) -> None:
    """An approval asked with a slash command is a real message (it has a ts), so a decision
    typed elsewhere replaces its buttons with the outcome."""
    r = await rig()
    await slack.deliver(r.url, slack.signed_slash_command(
        "sample restart web", user_id=ALICE, channel_id=SHIFTERS))
    (post,) = await slack.wait_for("chat.postMessage")
    (request,) = await r.bot.requests.list_pending()
    await r.bot.settle()
    card = slack.messages("shifters", ephemeral=False)[-1]
    await slack.deliver(r.url, slack.signed_slash_command(
        f"approve {request.id}", user_id=CAROL, channel_id=SHIFTERS))
    (update,) = await slack.wait_for("chat.update")
    assert update.params["ts"] == card.ts and post.params["channel"] == SHIFTERS
    shown = slack.message("shifters", card.ts)
    assert shown is not None and "Approved by carol" in (shown.text or "")
    assert not buttons(shown.blocks)
    assert r.runs() == [("sample.restart", "alice", {"service": "web"})]


async def test_slash_command_card_outside_the_bots_channels_uses_response_url(
        rig: Factory, slack: FakeSlack) -> None:
    """Slash commands work in channels the bot is not in: chat.postMessage answers
    not_in_channel and the card goes through the command's response_url instead."""
    r = await rig()
    outside = slack.channel("random")
    assert not outside.is_member
    await slack.deliver(r.url, slack.signed_slash_command(
        "sample restart web", user_id=ALICE, channel_id=outside.id))
    (posted,) = await slack.wait_for("response_url")
    assert posted.params["response_type"] == "in_channel"
    assert set(buttons(posted.params["blocks"])) == {"shiftbot.approve", "shiftbot.deny"}
    assert [c.response.get("error") for c in slack.calls("chat.postMessage")] == [
        "not_in_channel"]


async def test_expired_request_message_says_so(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    r.bot.config.bot.approval_timeout_minutes = 0.001  # 60 ms
    card, request_id = await _approval_card(r, slack, "sample restart db")
    (request,) = await r.bot.requests.list_pending()
    await asyncio.sleep(max(0.0, (request.expires_at - db.utcnow()).total_seconds()) + 0.01)
    assert [e.id for e in await r.bot.expire_requests()] == [request_id]
    (update,) = await slack.wait_for("chat.update")
    assert update.params["ts"] == card.ts
    shown = slack.message("shifters", card.ts)
    assert shown is not None and f"Request {request_id} expired" in (shown.text or "")
    assert not buttons(shown.blocks) and r.runs() == []


async def test_clicked_request_message_is_updated_once(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    card, _request_id = await _approval_card(r, slack, "sample restart web")
    await slack.deliver(r.url, slack.signed_block_actions(
        "shiftbot.approve", user_id=CAROL, channel_id=SHIFTERS, message_ts=card.ts))
    posts = await slack.wait_for("response_url", count=2)
    assert posts[0].params["replace_original"] is True
    assert "Approved by carol" in posts[0].params["text"]
    # the click's own update is the only one: the decision listener leaves the card alone
    await r.adapter.clicked.updated_by_click(card.ts)
    await r.bot.settle()
    assert slack.calls("chat.update") == []
    shown = slack.message("shifters", card.ts)
    assert shown is not None and len(shown.edits) == 1 and not buttons(shown.blocks)

async def test_http_mode_health_and_route(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    await slack.wait_for("auth.test")
    await slack.wait_until(lambda: r.adapter.identity is not None, 2, "identity")
    status, body = await healthz(r)
    assert status == 200 and body["components"]["slack"]["ok"] is True
    # url_verification (Slack checks the Request URL when you save it) is signed too
    challenge = slack.sign(b'{"type":"url_verification","challenge":"c4"}')
    async with aiohttp.ClientSession() as http, http.post(
            r.url, data=b'{"type":"url_verification","challenge":"c4"}',
            headers={**challenge, "Content-Type": "application/json"}) as resp:
        assert resp.status == 200 and "c4" in await resp.text()


# ------------------------------------------------------------------------ Socket Mode


async def test_socket_mode_command_mention_and_dm(rig: Factory, slack: FakeSlack) -> None:
    r = await rig("socket")
    env = await slack.send_slash_command("sample echo over the socket", user_id=ALICE,
                                         channel_id=SHIFTERS)
    assert env.in_time and env.response_payload is not None
    assert env.response_payload["text"] == "over the socket"
    assert slack.calls("apps.connections.open")[0].token == slack.app_token

    parent = slack.message_event("hmm", user_id=BOB, channel_id=SHIFTERS)
    mention = await slack.send_app_mention("sample echo in thread --public", user_id=ALICE,
                                           channel_id=SHIFTERS, thread_ts=parent["ts"])
    assert mention.in_time
    (post,) = await slack.wait_for("chat.postMessage")
    assert post.params["thread_ts"] == parent["ts"] and post.params["text"] == "in thread"

    dm = await slack.send_message_event("sample echo direct", user_id=ALICE)
    posts = await slack.wait_for("chat.postMessage", count=2)
    assert dm.in_time and posts[1].params["channel"] == dm.payload["event"]["channel"]
    assert posts[1].params["text"] == "direct"  # a DM answer is a plain message in the DM
    # the bot's own messages and edits are ignored
    await slack.send_message_event("sample echo me", user_id=slack.bot_user_id,
                                   bot_id=slack.bot_id)
    await slack.send_message_event("sample echo edited", user_id=ALICE, subtype="message_changed")
    await asyncio.sleep(0.1)
    assert len(r.runs()) == 3


async def test_socket_mode_slow_command_and_buttons(rig: Factory, slack: FakeSlack) -> None:
    r = await rig("socket")
    env = await slack.send_slash_command("sample slow --seconds 0", user_id=ALICE)
    assert env.in_time and env.elapsed is not None and env.elapsed < 0.5
    assert env.response_payload is not None
    assert "Working on" in env.response_payload["text"]
    await slack.wait_until(lambda: any(c.params.get("text") == "done slowly"
                                       for c in slack.response_posts()), 3, "slow result")

    env = await slack.send_slash_command("sample wipe tmp", user_id=ALICE, channel_id=SHIFTERS)
    request = slack.messages("shifters", ephemeral=True)[-1]
    assert buttons(request.blocks)["shiftbot.confirm"]["confirm"]
    before = len(slack.response_posts())
    click = await slack.send_block_action("shiftbot.confirm", user_id=ALICE,
                                          channel_id=SHIFTERS, message_ts=request.ts)
    assert click.in_time
    posts = await slack.wait_for("response_url", count=before + 2)
    assert posts[-1].params["text"] == "wiped tmp"
    # the same click delivered twice (a retry) runs nothing twice
    await slack.send_envelope("interactive", click.payload)
    await asyncio.sleep(0.1)
    assert r.runs("sample.wipe") == [("sample.wipe", "alice", {"target": "tmp"})]


async def test_socket_mode_reconnects_after_disconnect_and_killed_socket(
        rig: Factory, slack: FakeSlack) -> None:
    await rig("socket")
    await slack.socket_disconnect(reason="refresh_requested")
    await slack.wait_for_connection(2)
    env = await slack.send_slash_command("sample echo after refresh", user_id=ALICE)
    assert env.connection == 2 and env.response_payload == {
        **env.response_payload, "text": "after refresh"}

    await slack.kill_socket()
    await slack.wait_for_connection(3, timeout=3)
    env = await slack.send_slash_command("sample echo after kill", user_id=ALICE)
    assert env.connection == 3 and env.in_time
    assert env.response_payload is not None and env.response_payload["text"] == "after kill"


async def test_socket_mode_silent_socket_is_replaced(rig: Factory, slack: FakeSlack) -> None:
    r = await rig("socket")
    silent = await slack.go_silent()
    await slack.wait_for_connection(2, timeout=3)
    await slack.wait_until(lambda: not silent.is_open, 3, "silent socket dropped")
    env = await slack.send_slash_command("sample echo still here", user_id=ALICE)
    assert env.connection == 2 and env.response_payload is not None
    assert env.response_payload["text"] == "still here"
    assert r.adapter.watchdog is not None and r.adapter.watchdog.working()


async def test_health_turns_unhealthy_without_a_working_socket(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig("socket", unhealthy_after_seconds=0.6)
    status, body = await healthz(r)
    assert status == 200 and body["components"]["slack"]["detail"] == "socket mode connected"

    slack.fail_next("apps.connections.open", status=500, times=None)  # Slack is down
    await slack.kill_socket()
    await asyncio.sleep(0.2)
    status, body = await healthz(r)
    assert status == 200 and "reconnecting" in body["components"]["slack"]["detail"]
    t0 = time.monotonic()
    while (await healthz(r))[0] == 200:
        assert time.monotonic() - t0 < 3, "never turned unhealthy"
        await asyncio.sleep(0.1)
    status, body = await healthz(r)
    assert status == 503 and body["components"]["slack"]["ok"] is False
    assert "no working Socket Mode connection" in body["components"]["slack"]["detail"]

    slack.clear_faults()  # Slack is back
    await slack.wait_for_connection(2, timeout=3)
    t0 = time.monotonic()
    while (await healthz(r))[0] != 200:
        assert time.monotonic() - t0 < 3, "never recovered"
        await asyncio.sleep(0.1)
    env = await slack.send_slash_command("sample echo back", user_id=ALICE)
    assert env.response_payload is not None and env.response_payload["text"] == "back"


# ------------------------------------------------------------------------ outbound


async def test_burst_of_50_posts_through_a_429_storm_arrives_complete_and_in_order(
        rig: Factory, slack: FakeSlack) -> None:
    """The adapter's sender (answers, progress notes, request updates): queued per channel,
    429 and 5xx retried from the head of the queue, nothing dropped."""
    r = await rig()
    slack.limit_channel_rate(per_second=50, burst=25)
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    slack.fail_next("chat.postMessage", status=503, times=2)
    t0 = time.monotonic()
    ops_id = await r.adapter.platform.channel_for("ops")
    assert ops_id == SHIFTERS

    def send(channel: str, text: str) -> Awaitable[Any]:
        return r.adapter.outbox.send(channel, Post("chat.postMessage",
                                                   {"channel": channel, "text": text}))

    ops = [send(SHIFTERS, f"message {i}") for i in range(50)]
    alerts = [send(GENERAL, f"alert {i}") for i in range(5)]
    results = await asyncio.wait_for(asyncio.gather(*ops, *alerts), 20)
    assert all(result["ts"] for result in results)
    assert [m.text for m in slack.messages("shifters")] == [f"message {i}" for i in range(50)]
    assert [m.text for m in slack.messages("general")] == [f"alert {i}" for i in range(5)]
    assert slack.rate_limited_count >= 2
    calls = [c for c in slack.calls("chat.postMessage") if c.params["channel"] == SHIFTERS]
    for refused, retry in itertools.pairwise(calls):
        if refused.status == 429:  # Retry-After (1 s here) honoured before the next post
            assert retry.t - refused.t >= 0.95
    assert len(slack.calls("conversations.list")) == 1  # "#shifters" resolved once
    assert time.monotonic() - t0 < 10


async def test_shiftbot_run_starts_and_stops_the_slack_adapter(
        make_config: Callable[..., Config], slack: FakeSlack) -> None:
    config = make_config({"bot": {"http": {"host": "127.0.0.1", "port": 0}}, "slack": {
        "bot_token": slack.bot_token, "app_token": slack.app_token, "api_url": slack.api_url}})
    stop = asyncio.Event()
    running = asyncio.create_task(serve(config, stop))
    await slack.wait_for_connection(1)
    env = await slack.send_slash_command("sample echo via shiftbot run", user_id=ALICE)
    assert env.response_payload is not None
    assert env.response_payload["text"] == "via shiftbot run"
    stop.set()
    await asyncio.wait_for(running, 15)
    assert slack.open_connections == []
