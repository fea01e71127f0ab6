"""Slack inbound for #12 against the loopback FakeSlack, both modes: command buttons run as
the clicker through the gate, human thread replies go to ``Bot.thread_reply``, and two bot
processes on one database run each delivery once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sample_handlers
from fakes.slack import FakeSlack
from slack_rig import ALICE, BOB, MALLORY, SHIFTERS, Factory, _clear_runs, buttons, rig, slack

from bot.adapters.slack import blocks
from bot.adapters.slack.listeners import event_kind
from bot.core import Bot
from bot.identity import Inbound
from bot.reply import Action, Choice, Reply

__all__ = ["_clear_runs", "rig", "slack"]  # fixtures


# ------------------------------------------------------------------------ command buttons


def notice_with_button(command: str) -> Reply:
    return Reply(text="job 12.0 held: memory", actions=[Action.run("Analyze", command)])


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_command_button_runs_as_the_clicker_through_the_gate(
        rig: Factory, slack: FakeSlack, mode: str) -> None:
    r = await rig(mode)
    ref = await r.port.post(SHIFTERS, notice_with_button("sample echo analyzed --public"))
    posted = slack.message("shifters", ref.message_id)
    assert posted is not None
    (button,) = buttons(posted.blocks).values()
    assert button["value"].startswith("a") and "sample" not in str(button)  # only an id

    async def click(user: str) -> None:
        if mode == "http":
            await slack.deliver(r.url, slack.signed_block_actions(
                button["action_id"], user_id=user, channel_id=SHIFTERS, message_ts=ref.message_id))
        else:
            await slack.send_block_action(button["action_id"], user_id=user,
                                          channel_id=SHIFTERS, message_ts=ref.message_id)

    await click(MALLORY)  # not a configured person: refused, nothing runs
    (refusal,) = await slack.wait_for("response_url")
    assert "Not allowed" in refusal.params["text"]
    assert refusal.params["response_type"] == "ephemeral"
    assert sample_handlers.RUNS == []
    (denied,) = await r.bot.audit.query(who=f"slack:{MALLORY}")
    assert (denied.command, denied.decision) == ("sample.echo", "denied")

    await click(ALICE)
    posts = await slack.wait_for("response_url", count=2)
    assert posts[1].params["text"] == "analyzed"
    assert posts[1].params["response_type"] == "in_channel"
    assert sample_handlers.RUNS == [("sample.echo", "alice", {"words": ["analyzed"],
                                                              "times": 1})]
    shown = slack.message("shifters", ref.message_id)
    assert shown is not None and buttons(shown.blocks)  # the notice keeps its button


async def test_destructive_command_button_asks_the_clicker_to_confirm(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    ref = await r.port.post(SHIFTERS, notice_with_button("sample wipe scratch"))
    posted = slack.message("shifters", ref.message_id)
    assert posted is not None
    (button,) = buttons(posted.blocks).values()
    await slack.deliver(r.url, slack.signed_block_actions(
        button["action_id"], user_id=ALICE, channel_id=SHIFTERS, message_ts=ref.message_id))
    (card,) = await slack.wait_for("response_url")
    assert card.params["response_type"] == "ephemeral" and sample_handlers.RUNS == []
    confirm = buttons(card.params["blocks"])["shiftbot.confirm"]
    (request,) = slack.messages("shifters", ephemeral=True)
    await slack.deliver(r.url, slack.signed_block_actions(
        "shiftbot.confirm", value=confirm["value"], user_id=ALICE, channel_id=SHIFTERS,
        message_ts=request.ts))
    await slack.wait_until(lambda: bool(sample_handlers.RUNS), 5, "wipe ran")
    assert sample_handlers.RUNS == [("sample.wipe", "alice", {"target": "scratch"})]


async def test_unknown_or_forged_command_button_runs_nothing(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    forged = "a" + "0" * 20
    await slack.deliver(r.url, slack.signed_block_actions(
        f"shiftbot.run.{forged}", value=forged, user_id=ALICE, channel_id=SHIFTERS))
    (answer,) = await slack.wait_for("response_url")
    assert "nothing was run" in answer.params["text"] and sample_handlers.RUNS == []


# ------------------------------------------------------------------------ thread listening


def record_thread_replies(bot: Bot, owned: bool = True) -> list[Inbound]:
    """Stands in for ``Bot.thread_reply`` (the feature hooks' router)."""
    seen: list[Inbound] = []

    async def thread_reply(inbound: Inbound) -> bool:
        seen.append(inbound)
        return owned

    bot.thread_reply = thread_reply  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_human_thread_replies_go_to_thread_reply(
        rig: Factory, slack: FakeSlack, mode: str) -> None:
    r = await rig(mode)
    seen = record_thread_replies(r.bot)
    root = await r.port.post(SHIFTERS, Reply(text="Meeting report"), tag="meeting-1#0")

    async def send(event: dict[str, Any]) -> None:
        if mode == "http":
            assert (await slack.deliver(r.url, slack.signed_event(event))).status == 200
        else:
            assert (await slack.send_event(event)).in_time

    reply = slack.message_event("#topic <http://x.org|x.org> down", user_id=ALICE,
                                channel_id=SHIFTERS, thread_ts=root.message_id)
    await send(reply)
    await slack.wait_until(lambda: bool(seen), 3, "thread reply routed")
    (inbound,) = seen
    assert (inbound.platform, inbound.user_id, inbound.channel_id, inbound.channel_alias) == (
        "slack", ALICE, SHIFTERS, "ops")
    assert inbound.thread_id == root.message_id and inbound.text == "#topic x.org down"

    # ignored: channel chatter outside threads, edits, bot posts, and mentions (commands)
    await send(slack.message_event("just chatting", user_id=BOB, channel_id=SHIFTERS))
    await send(slack.message_event("edit", user_id=BOB, channel_id=SHIFTERS,
                                   thread_ts=root.message_id, subtype="message_changed"))
    await send(slack.message_event("mine", user_id=slack.bot_user_id, bot_id=slack.bot_id,
                                   channel_id=SHIFTERS, thread_ts=root.message_id))
    await send(slack.message_event(f"<@{slack.bot_user_id}> sample echo hi", user_id=BOB,
                                   channel_id=SHIFTERS, thread_ts=root.message_id))
    # "also send to channel" is still a reply; a retried delivery is routed once
    broadcast = slack.message_event("#action @bob restart", user_id=BOB, channel_id=SHIFTERS,
                                    thread_ts=root.message_id, subtype="thread_broadcast")
    if mode == "http":
        signed = slack.signed_event(broadcast)
        await slack.deliver(r.url, signed)
        signed.headers["X-Slack-Retry-Num"] = "1"
        await slack.deliver(r.url, signed)
    else:
        payload = slack.event_callback(broadcast)
        await slack.send_envelope("events_api", payload)
        await slack.send_envelope("events_api", payload, retry_attempt=1)
    await slack.wait_until(lambda: len(seen) == 2, 3, "broadcast routed")
    await asyncio.sleep(0.2)
    assert [i.text for i in seen] == ["#topic x.org down", "#action @bob restart"]
    assert sample_handlers.RUNS == []  # no reply was taken for a command


async def test_thread_replies_are_ignored_without_a_router(
        rig: Factory, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until (or unless) the bot routes thread replies, they are ignored, never commands."""
    r = await rig()
    monkeypatch.delattr(Bot, "thread_reply", raising=False)
    root = await r.port.post(SHIFTERS, Reply(text="root"))
    await slack.deliver(r.url, slack.signed_event(slack.message_event(
        "sample echo hi", user_id=ALICE, channel_id=SHIFTERS, thread_ts=root.message_id)))
    await asyncio.sleep(0.2)
    assert sample_handlers.RUNS == [] and slack.calls("chat.postEphemeral") == []


# ------------------------------------------------------------------------ replicas


async def test_two_processes_run_each_socket_delivery_once(
        rig: Factory, slack: FakeSlack) -> None:
    """Slack may hand a retry to the other replica's socket: the claim in the shared
    database lets exactly one run it."""
    first, second = await rig("socket"), await rig("socket")
    one, two = slack.open_connections[-2:]
    for i in range(10):
        command = slack.slash_command_payload(f"sample echo c{i}", user_id=ALICE,
                                              channel_id=SHIFTERS)
        event = slack.event_callback(slack.app_mention_event(
            f"sample echo m{i}", user_id=ALICE, channel_id=SHIFTERS))
        await asyncio.gather(
            slack.send_envelope("slash_commands", command, connection=one),
            slack.send_envelope("slash_commands", command, connection=two),
            slack.send_envelope("events_api", event, connection=one),
            slack.send_envelope("events_api", event, connection=two, retry_attempt=1))
    await slack.wait_until(lambda: len(sample_handlers.RUNS) >= 20, 10, "20 runs")
    await asyncio.sleep(0.3)
    words = sorted(str(run[2]["words"][0]) for run in sample_handlers.RUNS)
    assert words == sorted([f"c{i}" for i in range(10)] + [f"m{i}" for i in range(10)])
    assert first.bot.database is not second.bot.database


async def test_two_processes_receiving_the_same_http_retry_run_it_once(
        rig: Factory, slack: FakeSlack) -> None:
    first, second = await rig(), await rig()
    root = await first.port.post(SHIFTERS, Reply(text="root"))
    seen_first, seen_second = record_thread_replies(first.bot), record_thread_replies(second.bot)
    mention = slack.signed_event(slack.app_mention_event(
        "sample echo once", user_id=ALICE, channel_id=SHIFTERS))
    reply = slack.signed_event(slack.message_event(
        "a note", user_id=ALICE, channel_id=SHIFTERS, thread_ts=root.message_id))
    click_payload = slack.signed_block_actions("shiftbot.confirm", value="nosuchreq",
                                               user_id=ALICE, channel_id=SHIFTERS)
    for signed in (mention, reply, click_payload):
        answers = await asyncio.gather(slack.deliver(first.url, signed),
                                       slack.deliver(second.url, signed))
        assert [a.status for a in answers] == [200, 200]
    await slack.wait_until(lambda: bool(sample_handlers.RUNS), 3, "mention ran")
    await slack.wait_until(lambda: len(slack.response_posts()) >= 1, 3, "click answered")
    await asyncio.sleep(0.3)
    assert sample_handlers.RUNS == [("sample.echo", "alice", {"words": ["once"], "times": 1})]
    assert len(seen_first) + len(seen_second) == 1
    assert len(slack.response_posts()) == 1  # the click was answered by one process


def test_command_buttons_render_only_their_id_and_parse_back() -> None:
    stored = Action("Analyze", command="condor analyze 1.0", action_id="a" + "1" * 20)
    decide = Action("Approve", Choice.APPROVE, "k3x9qa")
    (block,) = [b for b in blocks.message(Reply(text="x", actions=[stored, decide]))["blocks"]
                if b["type"] == "actions"]
    run, approve = block["elements"]
    assert (run["action_id"], run["value"]) == ("shiftbot.run.a" + "1" * 20, "a" + "1" * 20)
    assert "condor" not in str(block)
    assert blocks.parse_run(run) == "a" + "1" * 20 and blocks.parse_action(run) is None
    assert blocks.parse_action(approve) == (Choice.APPROVE, "k3x9qa")
    assert blocks.parse_run(approve) is None
    assert blocks.parse_run({**run, "value": "a" + "2" * 20}) is None  # id and value disagree
    with pytest.raises(ValueError, match="not stored"):
        blocks.message(Reply(text="x", actions=[Action.run("Hold", "condor hold 1.0")]))


@pytest.mark.parametrize(("event", "kind"), [
    ({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "2"}, "command"),
    ({"type": "message", "user": "U1", "channel": "D1", "channel_type": "im", "ts": "2"},
     "command"),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "2"}, None),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "2", "thread_ts": "1"}, "thread"),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "1", "thread_ts": "1"}, None),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "2", "thread_ts": "1",
      "subtype": "thread_broadcast"}, "thread"),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "2", "thread_ts": "1",
      "subtype": "message_changed"}, None),
    ({"type": "message", "user": "UBOT", "channel": "C1", "ts": "2", "thread_ts": "1"}, None),
    ({"type": "message", "user": "U2", "bot_id": "B2", "channel": "C1", "ts": "2",
      "thread_ts": "1"}, None),
    ({"type": "message", "user": "U1", "channel": "C1", "ts": "2", "thread_ts": "1",
      "text": "<@UBOT> condor q"}, None),
])
def test_which_events_are_commands_or_thread_replies(event: dict[str, Any],
                                                      kind: str | None) -> None:
    assert event_kind(event, "UBOT") == kind
