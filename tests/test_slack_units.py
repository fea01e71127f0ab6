"""The Slack adapter's parts: Block Kit rendering, text cleaning, dedupe, channels, outbox."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from fakes.slack import FakeSlack
from slack_sdk.errors import SlackApiError

from bot.adapters.slack import blocks
from bot.adapters.slack.adapter import Where, route
from bot.adapters.slack.channels import ChannelDirectory
from bot.adapters.slack.inbound import clean_text
from bot.adapters.slack.liveness import SocketWatchdog
from bot.adapters.slack.outbound import RESPONSE_URL, Outbox, Post, Responder, retry_after
from bot.config import SlackConfig
from bot.reply import Action, Choice, Level, Reply, Table, Visibility

# ------------------------------------------------------------------------ blocks


def test_long_table_is_split_into_sections_with_balanced_code_fences() -> None:
    rows = [[str(i), "x" * 60, "held"] for i in range(200)]
    reply = Reply(text="queue", title="200 jobs", table=Table(["id", "name", "state"], rows))
    message = blocks.message(reply)
    sections = [b["text"]["text"] for b in message["blocks"]]
    assert len(sections) > 1 and len(message["blocks"]) <= 50
    assert all(len(s) <= blocks.SECTION_LIMIT for s in sections)
    assert all(s.count("```") % 2 == 0 for s in sections)
    assert sections[0].startswith("*200 jobs*") and "199" in "".join(sections)
    assert len(message["text"]) <= blocks.FALLBACK_LIMIT
    assert message["text"].count("```") % 2 == 0 and message["text"].endswith(" ...")


def test_too_long_messages_are_capped_with_a_note() -> None:
    message = blocks.message(Reply(text="\n".join(f"line {i} {'y' * 90}"
                                                  for i in range(2000))))
    assert len(message["blocks"]) == blocks.MAX_SECTIONS
    assert "more lines not shown" in message["blocks"][-1]["text"]["text"]
    assert sum(len(b["text"]["text"]) for b in message["blocks"]) < 40_000


def test_text_is_escaped_and_levels_are_marked() -> None:
    message = blocks.message(Reply.error("a < b && c > d"))
    # Errors always have a title ("Error" when the caller gave none).
    assert message["blocks"][0]["text"]["text"] == ":x: *Error*\na &lt; b &amp;&amp; c &gt; d"
    assert blocks.message(Reply(text="fine", level=Level.OK))["text"] == "fine"


def test_buttons_round_trip_and_carry_a_native_confirm_dialog() -> None:
    reply = Reply(text="sure?", actions=[
        Action("Confirm", Choice.CONFIRM, "k3x9qa", style="danger", confirm_text="Run `x`?"),
        Action("Cancel", Choice.CANCEL, "k3x9qa")])
    actions = blocks.message(reply)["blocks"][-1]
    confirm, cancel = actions["elements"]
    assert actions["type"] == "actions"
    assert confirm["style"] == "danger" and confirm["confirm"]["text"]["text"] == "Run `x`?"
    assert "style" not in cancel and "confirm" not in cancel
    assert blocks.parse_action(confirm) == (Choice.CONFIRM, "k3x9qa")
    assert blocks.parse_action(cancel) == (Choice.CANCEL, "k3x9qa")
    assert blocks.parse_action({"action_id": "shiftbot.explode", "value": "x"}) is None
    assert blocks.parse_action({"action_id": "other.confirm", "value": "x"}) is None
    assert blocks.parse_action({"action_id": "shiftbot.confirm", "value": ""}) is None
    assert blocks.message(reply, with_actions=False)["blocks"][-1]["type"] == "section"


# ------------------------------------------------------------------------ inbound text


@pytest.mark.parametrize(("raw", "expected"), [
    ("<@U0000BOT1> condor q --all", "condor q --all"),
    ("<@U0000BOT1>: condor q", "condor q"),
    ("hey <@U0000BOT1> sample echo hi", "sample echo hi"),
    ("  <@U0000BOT1|shiftbot>   help  ", "help"),
    ("condor q <http://node1.example.org|node1.example.org>", "condor q node1.example.org"),
    ("why condor rm in <#C00000002|shifters>", "why condor rm in #shifters"),
    ("sample echo a &lt; b &amp;&amp; c", "sample echo a < b && c"),
    ("sample echo <@U0ALICE01> says hi", "sample echo <@U0ALICE01> says hi"),
])
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw, "U0000BOT1") == expected


# ------------------------------------------------------------------------ channels


async def test_channel_names_are_resolved_with_paging_and_cached(slack: FakeSlack) -> None:
    slack.add_channels(2500)
    late = slack.add_channel("late-ops")
    client = slack.web_client()
    directory = ChannelDirectory(client, {"ops": "#late-ops", "alerts": "C00000001"})
    assert slack.calls() == []  # nothing at construction (the adapter's start() pages)
    assert await directory.resolve("alerts") == "C00000001" and slack.calls() == []
    ids = await asyncio.gather(*(directory.resolve("ops") for _ in range(5)))
    assert set(ids) == {late.id}
    pages = slack.calls("conversations.list")
    assert len(pages) == 3 and all(int(c.params["limit"]) == 1000 for c in pages)
    assert await directory.alias_for(late.id) == "ops"  # learnt while paging
    assert await directory.alias_for("C00000001") == "alerts"
    together = await asyncio.gather(*(directory.alias_for("C00000002") for _ in range(5)))
    assert together == [None] * 5  # no alias: the channel's name is never asked for
    assert slack.calls("conversations.info") == [] and len(slack.calls()) == 3
    assert await directory.resolve("#general") == "C00000001"
    with pytest.raises(LookupError):
        await directory.resolve("#nope")
    await directory.close()


async def test_channel_lookup_failure_degrades_to_no_alias(slack: FakeSlack) -> None:
    directory = ChannelDirectory(slack.web_client(), {"ops": "#shifters"})
    slack.fail_next("conversations.list", status=500)
    assert await directory.alias_for("C00000002") is None
    assert "conversations.list failed" in directory.table.unresolved["ops"]
    await directory.close()


# ------------------------------------------------------------------------ outbox


async def test_response_url_used_up_falls_back_to_the_web_api(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        outbox = Outbox(slack.web_client(retry_handlers=[]), session)
        url = slack.new_response_url("general", "U00000001")
        responder = Responder(url)
        fallback = Post("chat.postEphemeral", {"channel": "C00000001", "user": "U00000001",
                                               "text": "via api"})
        for i in range(6):
            await outbox.send("C00000001", Post(RESPONSE_URL, {"text": f"r{i}"}, responder,
                                                fallback=fallback))
        assert responder.uses == 5 and responder.left() == 0
        assert [c.params["text"] for c in slack.response_posts(url)] == [f"r{i}" for i in range(5)]
        assert slack.calls("chat.postEphemeral")[0].params["text"] == "via api"

        # expired (Slack says 404): marked gone, the fallback is used
        old = Responder(slack.new_response_url("general", "U00000001"))
        slack.advance(31 * 60)
        await outbox.send("C00000001", Post(RESPONSE_URL, {"text": "late"}, old,
                                            fallback=fallback))
        assert old.gone and len(slack.calls("chat.postEphemeral")) == 2
        with pytest.raises(Exception, match="no fallback"):
            await outbox.send("C00000001", Post(RESPONSE_URL, {"text": "x"}, old))
        await outbox.close()


async def test_outbox_maps_errors_to_retry_or_give_up(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        outbox = Outbox(slack.web_client(retry_handlers=[]), session)
        outbox.sender.base_delay = 0.01
        url = slack.new_response_url("general", "U00000001")
        slack.fail_next(RESPONSE_URL, status=502, times=2)
        slack.fail_next("chat.postMessage", status=503)
        await outbox.send("C00000001", Post(RESPONSE_URL, {"text": "a"}, Responder(url)))
        await outbox.send("C00000001", Post("chat.postMessage",
                                            {"channel": "C00000001", "text": "b"}))
        assert [m.text for m in slack.messages("general")] == ["a", "b"]
        assert outbox.sender.stats.retried == 3
        with pytest.raises(SlackApiError):  # permanent: not retried
            await outbox.send("C99", Post("chat.postMessage", {"channel": "C99", "text": "x"}))
        assert len([c for c in slack.calls("chat.postMessage") if c.error]) == 2
        await outbox.close()


def test_retry_after_header_parsing() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": ["3"]}) == 3.0
    assert retry_after({"Retry-After": "soon"}) == 1.0
    assert retry_after(None, 2.0) == 2.0


# ------------------------------------------------------------------------ routing


def test_replies_are_routed_by_visibility_and_origin() -> None:
    eph, chan, thread = (Reply(text="t", visibility=v) for v in
                         (Visibility.EPHEMERAL, Visibility.CHANNEL, Visibility.THREAD))
    responder = Responder("http://127.0.0.1:1/response/x")
    slash = Where("C1", "U1", responder=responder)
    mention = Where("C1", "U1", message_ts="1.5")
    in_thread = Where("C1", "U1", thread_ts="1.0", message_ts="1.5")
    dm = Where("D1", "U1", is_direct=True, message_ts="2.0")

    def shape(post: Post) -> tuple[str, object, object]:
        target = post.fallback.method if post.fallback else None
        return post.method, post.args.get("thread_ts") or post.args.get("response_type"), target

    assert shape(route(eph, slash)) == (RESPONSE_URL, "ephemeral",
                                              "chat.postEphemeral")
    assert shape(route(chan, slash)) == (RESPONSE_URL, "in_channel",
                                               "chat.postMessage")
    assert shape(route(eph, mention)) == ("chat.postEphemeral", None, None)
    assert shape(route(chan, mention)) == ("chat.postMessage", None, None)
    assert shape(route(thread, mention)) == ("chat.postMessage", "1.5", None)
    assert shape(route(chan, in_thread)) == ("chat.postMessage", "1.0", None)
    assert shape(route(eph, in_thread)) == ("chat.postEphemeral", "1.0", None)
    assert shape(route(eph, dm)) == ("chat.postMessage", None, None)
    body = route(eph, slash).args
    assert body["replace_original"] is False and json.dumps(body)


# ------------------------------------------------------------------------ socket watchdog


class _Session:
    closed = False


class _StuckClient:
    """A Socket Mode client whose socket is open but deaf, and which never notices."""

    def __init__(self) -> None:
        self.closed = False
        self.stale = False
        self.current_session: _Session | None = _Session()
        self.last_ping_pong_time: float | None = None
        self.on_message_listeners: list[object] = []
        self.forced = 0

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        self.forced += 1
        self.current_session = _Session()


async def test_watchdog_forces_a_reconnect_on_a_deaf_socket_and_reports_health() -> None:
    now = [1000.0]
    client = _StuckClient()
    dog = SocketWatchdog(client, ping_interval=0.02, unhealthy_after=1.0, clock=lambda: now[0])
    assert dog.working()  # a new session gets a grace period
    await client.on_message_listeners[0]("hello")  # type: ignore[operator]
    assert dog.working() and dog.state().ok
    dog.last_heard = time.time() - 1  # nothing heard for 50 ping intervals
    assert not dog.working()
    dog._check()  # starts the bad window
    now[0] += 0.1
    dog._check()  # past 3 x ping_interval: force
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert client.forced == 1 and dog.forced_reconnects == 1
    state = dog.state()
    assert state.ok and "reconnecting" in state.detail
    now[0] += 2
    assert not dog.state().ok  # more than unhealthy_after without a working connection
    dog.last_heard = time.time()
    assert dog.state().ok
    await dog.stop()
    assert dog.state().detail == "socket mode stopped"


def test_app_manifest_grants_what_the_adapter_uses() -> None:
    manifest = yaml.safe_load((Path(__file__).parent.parent / "config/slack-app-manifest.yaml")
                              .read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "app_mentions:read", "im:history", "chat:write", "channels:read",
            "groups:read", "channels:history", "groups:history"} <= scopes
    # thread replies (message.channels/groups) need the history scopes; so does find_tagged
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention", "message.im", "message.channels", "message.groups"}
    assert manifest["settings"]["socket_mode_enabled"] is True  # the default mode
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/shiftbot"]
    assert SlackConfig.model_fields["commands"].default == {"/shiftbot": None}
    assert manifest["features"]["app_home"]["messages_tab_read_only_enabled"] is False
