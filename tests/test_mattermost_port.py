"""Mattermost's side of the platform port, command buttons and thread listening, end to end:
the real adapter (mattermostautodriver REST, its own websocket) against the fake server."""

from __future__ import annotations

from typing import Any

import pytest
import sample_handlers
from mattermost_harness import Stack, running

from bot.identity import Inbound
from bot.messaging.port import NOTICE_TAG, DeliveryError, MessageRef, Platform
from bot.reply import Action, Reply
from bot.sender import RateLimited, TransientError

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")


def port(st: Stack) -> Platform:
    platform = st.bot.platforms["mattermost"]
    assert isinstance(platform, Platform)
    return platform


async def test_post_thread_update_ephemeral_and_find_tagged(make_bot) -> None:
    async with running(make_bot) as st:
        mm, platform = st.mm, port(st)
        ops = await platform.channel_for("ops")
        assert ops == mm.channel("ops").id
        assert await platform.channel_for("nowhere") is None  # not mapped on Mattermost

        ref = await platform.post(ops, Reply("disk *full*", title="Alert"), tag="alert:1#post")
        stored = mm.post(ref.message_id)
        assert stored["props"][NOTICE_TAG] == "alert:1#post" and stored["root_id"] == ""
        assert "disk *full*" in stored["message"] and ref == MessageRef(
            "mattermost", ops, ref.message_id, None)

        reply = await platform.post(ops, Reply("first reply"), thread_id=ref.message_id,
                                    tag="alert:1#thread:1")
        assert mm.post(reply.message_id)["root_id"] == ref.message_id
        # A reply's id as the thread: Mattermost wants the first post; the port finds it.
        again = await platform.post(ops, Reply("second reply"), thread_id=reply.message_id)
        assert mm.post(again.message_id)["root_id"] == ref.message_id

        await platform.update(ref, Reply("disk ok again", actions=[
            Action.run("Queue", "sample table")]))
        updated = mm.post(ref.message_id)
        assert updated["message"] == "disk ok again"
        assert updated["props"][NOTICE_TAG] == "alert:1#post"  # the tag survives the update
        assert [a["name"] for a in updated["props"]["attachments"][0]["actions"]] == ["Queue"]
        assert [r.method for r in mm.find_requests("/api/v4/posts/*")
                if r.method == "PUT"] == ["PUT"]

        assert await platform.find_tagged(ops, "alert:1#post") == MessageRef(
            "mattermost", ops, ref.message_id, None)
        found = await platform.find_tagged(ops, "alert:1#thread:1", thread_id=ref.message_id)
        assert found is not None and found.message_id == reply.message_id
        assert found.thread_id == ref.message_id
        assert await platform.find_tagged(ops, "alert:2#post") is None
        # Someone else's post carrying the same prop is not the bot's notice.
        await mm.post_as("alice", "ops", "copycat", props={NOTICE_TAG: "alert:3#post"})
        assert await platform.find_tagged(ops, "alert:3#post") is None

        alice = mm.user("alice")
        await platform.ephemeral(ops, alice.id, Reply("only for you"))
        assert [p["message"] for p in mm.ephemeral_posts("alice")] == ["only for you"]
        assert platform.mention(alice.id) == "@alice"


async def test_mention_looks_up_unknown_ids_once(make_bot) -> None:
    async with running(make_bot, users=("alice", "bob", "carol", "dave", "erin")) as st:
        erin = st.mm.user("erin")  # not in the config: not looked up at startup
        platform = port(st)
        assert platform.mention(erin.id) == erin.id  # not known yet: no false mention
        await st.mm.wait_for(lambda: platform.mention(erin.id) == "@erin")
        lookups = [r for r in st.mm.find_requests("POST /api/v4/users/ids")
                   if erin.id in (r.json or [])]
        assert len(lookups) == 1


async def test_errors_are_mapped_for_the_deliverer(make_bot) -> None:
    async with running(make_bot) as st:
        mm, platform = st.mm, port(st)
        ops = mm.channel("ops").id
        mm.rate_limit("POST /api/v4/posts", retry_after=7)
        with pytest.raises(RateLimited) as limited:
            await platform.post(ops, Reply("x"))
        assert limited.value.retry_after == 7
        mm.rate_limit("POST /api/v4/posts", retry_after=None)  # X-Ratelimit-Reset only
        with pytest.raises(RateLimited) as limited:
            await platform.post(ops, Reply("x"))
        assert limited.value.retry_after == 1
        mm.fail_next("POST /api/v4/posts", status=500)
        with pytest.raises(TransientError):
            await platform.post(ops, Reply("x"))
        mm.hang("POST /api/v4/posts", seconds=3)  # longer than the 1 s request timeout
        with pytest.raises(TransientError):
            await platform.post(ops, Reply("x"))
        mm.release_hangs()
        secret = mm.add_channel("secret", "P", members=["alice"])  # the bot is no member: 403
        with pytest.raises(DeliveryError):
            await platform.post(secret.id, Reply("x"))
        with pytest.raises(DeliveryError):
            await platform.post(ops, Reply("x"), thread_id="x" * 26)  # no such root: 400
        mm.fail_next("PUT /api/v4/posts/*", status=404)
        ref = await platform.post(ops, Reply("to update"))
        with pytest.raises(DeliveryError):
            await platform.update(ref, Reply("y"))
        # Nothing was retried behind the deliverer's back (one request per call).
        assert st.adapter.outbox.sender.stats.retried == 0


async def audit_rows(st: Stack) -> list[Any]:
    return await st.bot.audit.query(command_glob="sample.*")


async def test_a_command_button_runs_as_the_clicker_through_the_gate(make_bot) -> None:
    async with running(make_bot) as st:
        mm, platform = st.mm, port(st)
        ref = await platform.post(mm.channel("ops").id, Reply("Log in?", actions=[
            Action.run("Log in", "sample login")]))
        stored = mm.post(ref.message_id)
        button = stored["props"]["attachments"][0]["actions"][0]
        context = button["integration"]["context"]
        assert context["a"] == "run" and "sample" not in str(context)  # only the opaque id

        refused = await mm.click(None, ref.message_id, button["id"], "dave")  # a viewer
        assert refused.status == 200 and "may not run" in (refused.ephemeral_text or "")
        assert sample_handlers.RUNS == []  # nothing ran
        denial = (await audit_rows(st))[0]
        assert (denial.person, denial.command, denial.decision) == ("dave", "sample.login",
                                                                     "denied")

        ran = await mm.click(None, ref.message_id, button["id"], "alice")
        assert ran.ephemeral_text == "logged in"
        assert sample_handlers.RUNS == [("sample.login", "alice", {"token": None})]
        assert mm.post(ref.message_id)["message"] == stored["message"]  # the notice stays

        forged = st.click_payload(stored, button["id"], "alice")
        forged["context"] = {**forged["context"], "r": "a" + "0" * 20}
        assert (await st.post_action(forged)).status_code == 401
        again = st.click_payload(stored, button["id"], "alice")
        first = await st.post_action(again)
        repeat = await st.post_action(again)  # the same click (trigger id) sent again
        assert first.json()["ephemeral_text"] == "logged in"
        assert repeat.json()["ephemeral_text"] == "That click was already handled."
        assert len(sample_handlers.RUNS) == 2


async def test_a_visible_answer_to_a_button_goes_to_the_notice_thread(make_bot) -> None:
    async with running(make_bot) as st:
        mm, platform = st.mm, port(st)
        ref = await platform.post(mm.channel("ops").id, Reply("Queue?", actions=[
            Action.run("Show", "sample table --rows 3")]))
        button = mm.post(ref.message_id)["props"]["attachments"][0]["actions"][0]
        await mm.click(None, ref.message_id, button["id"], "alice")
        answer = await mm.wait_for_post(predicate=lambda p: p["root_id"] == ref.message_id)
        assert "job-2" in answer["message"]


async def test_without_a_public_url_the_buttons_say_what_to_type(make_bot) -> None:
    async with running(make_bot) as st:
        st.bot.config.bot.http.public_url = None
        ref = await port(st).post(st.mm.channel("ops").id, Reply("Queue?", actions=[
            Action.run("Show", "sample table")]))
        stored = st.mm.post(ref.message_id)
        assert "Reply `!sample table`." in stored["message"]
        assert "attachments" not in stored["props"]


async def test_human_replies_in_threads_go_to_thread_reply(make_bot) -> None:
    async with running(make_bot) as st:
        mm, got = st.mm, []

        async def thread_reply(inbound: Inbound) -> bool:
            got.append(inbound)
            return True

        st.bot.thread_reply = thread_reply  # type: ignore[attr-defined]
        ref = await port(st).post(mm.channel("ops").id, Reply("meeting notes"))
        await mm.post_as("bob", "ops", "chatter outside any thread")
        reply = await mm.post_as("alice", "ops", "#topic disk", root_id=ref.message_id)
        command = await mm.post_as("alice", "ops", "!sample echo in thread",
                                   root_id=ref.message_id)
        answer = await st.ephemeral("alice", lambda p: p["root_id"] == ref.message_id)
        assert answer["message"] == "in thread"  # a command in a thread stays a command
        await mm.wait_for(lambda: got)
        assert [(i.text, i.thread_id, i.user_id, i.channel_alias) for i in got] == [
            ("#topic disk", ref.message_id, mm.user("alice").id, "ops")]
        # Replayed (a resumed socket sends it again): routed once.
        mm.publish("posted", {"post": __import__("json").dumps(mm.post(reply["id"])),
                              "channel_type": "O", "sender_name": "@alice"},
                   channel_id=mm.channel("ops").id)
        await port(st).post(mm.channel("ops").id, Reply("barrier"))
        await mm.wait_for_post(predicate=lambda p: p["message"] == "barrier")
        assert len(got) == 1 and command["id"] != reply["id"]
