"""Slack's platform port against the loopback FakeSlack (real sockets, real SQLite): post,
thread, update, ephemeral, find_tagged after a crash, error mapping; and the fake's history and
metadata themselves."""

from __future__ import annotations

import pytest
from fakes.slack import FakeSlack, Message
from slack_rig import ALICE, BOB, GENERAL, MALLORY, SHIFTERS, Factory, _clear_runs, rig, slack
from slack_sdk.errors import SlackApiError

from bot.messaging.port import (
    NOTICE_TAG,
    DeliveryError,
    MessageRef,
    Platform,
    RateLimited,
    TransientError,
)
from bot.reply import Reply

__all__ = ["_clear_runs", "rig", "slack"]  # fixtures


# ------------------------------------------------------------------------ the port


async def test_port_posts_updates_threads_and_whispers(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    port = r.port
    assert isinstance(port, Platform) and port.name == "slack"
    assert await port.channel_for("alerts") == GENERAL  # configured by id
    assert await port.channel_for("ops") == SHIFTERS  # configured by #name, resolved
    assert await port.channel_for("nowhere") is None  # not mapped on Slack
    assert port.mention(ALICE) == f"<@{ALICE}>"

    ref = await port.post(SHIFTERS, Reply(text="disk *full* on node1", title="Alert"),
                          tag="alert-1#0")
    assert ref == MessageRef("slack", SHIFTERS, ref.message_id, None)
    shown = slack.message("shifters", ref.message_id)
    assert shown is not None and "disk *full* on node1" in (shown.text or "")
    assert shown.metadata == {"event_type": NOTICE_TAG, "event_payload": {"tag": "alert-1#0"}}

    reply = await port.post(SHIFTERS, Reply(text="ticket 4711 opened"), thread_id=ref.message_id,
                            tag="alert-1#1")
    assert reply.thread_id == ref.message_id
    assert [m.text for m in slack.messages("shifters", thread_ts=ref.message_id)] == [
        "ticket 4711 opened"]

    await port.update(ref, Reply(text="resolved"))
    shown = slack.message("shifters", ref.message_id)
    assert shown is not None and shown.text == "resolved" and len(shown.edits) == 1
    assert shown.metadata is not None  # an update keeps the tag

    await port.ephemeral(SHIFTERS, ALICE, Reply(text="only for you"))
    (private,) = slack.messages("shifters", ephemeral=True)
    assert private.ephemeral_to == ALICE and private.text == "only for you"


async def test_find_tagged_after_a_crash(rig: Factory, slack: FakeSlack) -> None:
    """A notice posted by one process is found by the next one (nothing in memory)."""
    first = await rig()
    root = await first.port.post(GENERAL, Reply(text="shift change"), tag="shift-7#0")
    in_thread = await first.port.post(GENERAL, Reply(text="handover notes"),
                                      thread_id=root.message_id, tag="shift-7#2")
    for i in range(5):  # later traffic, from people and from the bot
        slack.message_event(f"chatter {i}", user_id=BOB, channel_id=GENERAL)
        await first.port.post(GENERAL, Reply(text=f"other {i}"), tag=f"other-{i}#0")
    # a message by someone else carrying the same metadata is not ours
    slack._messages.append(Message(GENERAL, "1.000001", "forged", None, None, MALLORY, "user",
                                   metadata={"event_type": NOTICE_TAG,
                                             "event_payload": {"tag": "forged#0"}}))
    await first.adapter.stop()

    second = await rig()  # "after the restart"
    port = second.port
    assert await port.find_tagged(GENERAL, "shift-7#0") == root
    assert await port.find_tagged(GENERAL, "shift-7#2") is None  # a reply: not in history
    assert await port.find_tagged(GENERAL, "shift-7#2", thread_id=root.message_id) == in_thread
    assert await port.find_tagged(GENERAL, "never-sent#0") is None
    assert await port.find_tagged(GENERAL, "forged#0") is None
    assert await port.find_tagged(GENERAL, "x#0", thread_id="1.999999") is None  # no thread
    history = slack.calls("conversations.history")
    assert history and all(c.params["include_all_metadata"] in ("1", "true") for c in history)


async def test_find_tagged_pages_back_through_a_busy_channel(
        rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    old = await r.port.post(GENERAL, Reply(text="early"), tag="early#0")
    for i in range(250):
        slack.message_event(f"busy {i}", user_id=BOB, channel_id=GENERAL)
    assert await r.port.find_tagged(GENERAL, "early#0") == old
    assert len(slack.calls("conversations.history")) == 2  # 200 a page


async def test_port_errors_map_onto_the_port_contract(rig: Factory, slack: FakeSlack) -> None:
    r = await rig()
    port = r.port
    slack.rate_limit("chat.postMessage", retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await port.post(GENERAL, Reply(text="x"))
    assert limited.value.retry_after == 7
    slack.fail_next("chat.update", status=500)
    with pytest.raises(TransientError):
        await port.update(MessageRef("slack", GENERAL, "1.0"), Reply(text="x"))
    slack.hang("chat.postEphemeral", 3)  # longer than request_timeout_seconds (1 s)
    with pytest.raises(TransientError):
        await port.ephemeral(GENERAL, ALICE, Reply(text="x"))
    with pytest.raises(DeliveryError, match="channel_not_found"):
        await port.post("C0NOSUCH1", Reply(text="x"))
    slack.ok_false("chat.postMessage", "msg_too_long")
    with pytest.raises(DeliveryError, match="msg_too_long"):
        await port.post(GENERAL, Reply(text="x"))
    slack.rate_limit("conversations.history", retry_after=3)
    with pytest.raises(RateLimited):
        await port.find_tagged(GENERAL, "a#0")
    slack.fail_next("conversations.replies", status=503)
    with pytest.raises(TransientError):
        await port.find_tagged(GENERAL, "a#0", thread_id="1.0")
    # nothing was retried behind the caller's back: one call per failure
    assert len(slack.calls("chat.postMessage")) == 3
    assert len(slack.calls("chat.update")) == 1
    # and the port is fine afterwards
    assert (await port.post(GENERAL, Reply(text="after"))).message_id


# ------------------------------------------------------------------------ the fake itself


async def test_fake_history_and_metadata_follow_slack(slack: FakeSlack) -> None:
    client = slack.web_client()
    meta = {"event_type": NOTICE_TAG, "event_payload": {"tag": "t#0"}}
    root = await client.chat_postMessage(channel=GENERAL, text="root", metadata=meta)
    await client.chat_postMessage(channel=GENERAL, text="reply", thread_ts=root["ts"])
    await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="psst")
    await client.chat_postMessage(channel=GENERAL, text="second")
    plain = await client.conversations_history(channel=GENERAL)
    assert [m["text"] for m in plain["messages"]] == ["second", "root"]  # newest first
    assert "metadata" not in plain["messages"][1]  # only with include_all_metadata
    assert plain["messages"][1]["reply_count"] == 1
    full = await client.conversations_history(channel=GENERAL, include_all_metadata=True,
                                              limit=1)
    assert full["has_more"] and full["messages"][0]["text"] == "second"
    cursor = full["response_metadata"]["next_cursor"]
    older = await client.conversations_history(channel=GENERAL, include_all_metadata=True,
                                               cursor=cursor)
    assert older["messages"][0]["metadata"] == meta and not older["has_more"]
    thread = await client.conversations_replies(channel=GENERAL, ts=root["ts"])
    assert [m["text"] for m in thread["messages"]] == ["root", "reply"]
    for call, error in ((client.chat_postMessage(channel=GENERAL, text="x",
                                                 metadata={"event_payload": {}}),
                         "invalid_metadata_format"),
                        (client.conversations_replies(channel=GENERAL, ts="1.0"),
                         "thread_not_found"),
                        (client.conversations_history(channel="C00000003"), "not_in_channel")):
        with pytest.raises(SlackApiError, match=error):
            await call
