"""The fake Slack behaves like Slack for the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakes.slack import FakeSlack
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

_LOOPBACK = "127.0.0.1,localhost"
os.environ["NO_PROXY"] = ",".join(p for p in (os.environ.get("NO_PROXY"), _LOOPBACK) if p)
os.environ["no_proxy"] = os.environ["NO_PROXY"]

# Copied from the shared reference (slackapi/slack-api-specs, MIT): tests must not depend on
# where the checkout sits.
REFERENCE = Path(__file__).resolve().parent / "data" / "slack"




def _client(slack: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, **kwargs)


def _sample(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE / name).read_text())


# ------------------------------------------------------------------------------ Web API


async def test_auth_test_and_post_message_shapes(slack: FakeSlack) -> None:
    client = _client(slack)
    auth = await client.auth_test()
    assert auth["ok"] is True
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (
        slack.bot_user_id,
        slack.bot_id,
        slack.team_id,
    )
    assert set(auth.data) <= set(_sample("sample_auth.test.json"))

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}}]
    first = await client.chat_postMessage(channel="C00000001", text="hello", blocks=blocks)
    reply = await client.chat_postMessage(
        channel="#general", text="in thread", thread_ts=first["ts"]
    )
    assert first["ok"] and first["channel"] == "C00000001"
    assert first["message"]["text"] == "hello" and first["message"]["bot_id"] == slack.bot_id
    assert float(reply["ts"]) > float(first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]

    msgs = slack.messages("general")
    assert [(m.text, m.blocks, m.thread_ts) for m in msgs] == [
        ("hello", blocks, None),
        ("in thread", None, first["ts"]),
    ]
    call = slack.calls("chat.postMessage")[0]
    assert call.header("Authorization") == "Bearer xoxb-test"
    assert call.params["blocks"] == blocks and call.ok

    eph = await client.chat_postEphemeral(channel="C00000001", user="U00000001", text="psst")
    assert eph["message_ts"] and slack.messages("general", ephemeral=True)[0].ephemeral_to == (
        "U00000001"
    )
    upd = await client.chat_update(channel="C00000001", ts=first["ts"], text="edited")
    assert upd["text"] == "edited" and slack.message("general", first["ts"]).blocks == blocks


@pytest.mark.filterwarnings("ignore:The top-level `text` argument:UserWarning")
async def test_form_and_json_bodies_and_tokens(slack: FakeSlack) -> None:
    url = slack.api_url + "chat.postMessage"
    blocks = [{"type": "divider"}]
    async with aiohttp.ClientSession() as http:
        form = {
            "token": "xoxb-test",
            "channel": "C00000002",
            "text": "form",
            "blocks": json.dumps(blocks),
        }
        async with http.post(url, data=form) as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        headers = {"Authorization": "Bearer xoxb-test"}
        async with http.post(
            url, json={"channel": "C00000002", "text": "json"}, headers=headers
        ) as r:
            assert (await r.json())["ok"] is True
        async with http.post(url, json={"channel": "C00000002", "text": "x"}) as r:
            assert await r.json() == {"ok": False, "error": "not_authed"}
    assert [m.text for m in slack.messages("shifters")] == ["form", "json"]
    assert slack.messages("shifters")[0].blocks == blocks

    for token, error in (("xoxb-wrong", "invalid_auth"), ("xapp-test", "not_allowed_token_type")):
        with pytest.raises(SlackApiError) as exc:
            await AsyncWebClient(token=token, base_url=slack.api_url).chat_postMessage(
                channel="C00000001", text="x"
            )
        assert exc.value.response.status_code == 200 and exc.value.response["error"] == error

    client = _client(slack)
    for kwargs, error in (
        ({"channel": "C99999999", "text": "x"}, "channel_not_found"),
        ({"channel": "random", "text": "x"}, "not_in_channel"),
        ({"channel": "general"}, "no_text"),
        ({"channel": "general", "text": "x" * 40_001}, "msg_too_long"),
    ):
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(**kwargs)
        assert exc.value.response["error"] == error


async def test_conversations_list_pages_with_cursor(slack: FakeSlack) -> None:
    added = slack.add_channels(1000)
    client = _client(slack)
    seen: list[str] = []
    pages = 0
    async for page in await client.conversations_list(limit=200, exclude_archived=True):
        pages += 1
        seen += [c["id"] for c in page["channels"]]
    public = [c.id for c in slack.channels.values() if c.kind == "public_channel"]
    assert seen == public and len(seen) == len(added) + 3
    assert pages == -(-len(public) // 200)
    cursors = [c.params.get("cursor") for c in slack.calls("conversations.list")]
    assert cursors[0] is None and all(cursors[1:])

    private = await client.conversations_list(types="private_channel")
    assert [c["name"] for c in private["channels"]] == ["ops-private"]
    with pytest.raises(SlackApiError) as exc:
        await client.conversations_list(cursor="bm90LWEtY3Vyc29y")
    assert exc.value.response["error"] == "invalid_cursor"

    info = await client.conversations_info(channel=added[0].id)
    assert info["channel"]["name"] == "chan-0001" and info["channel"]["is_member"] is False
    assert set(info["channel"]) <= set(_sample("sample_conversations.info.json")["channel"]) | {
        "parent_conversation"
    }
    user = await client.users_info(user="U00000001")
    assert user["user"]["name"] == "alice"
    for call, error in (
        (client.conversations_info(channel="C404"), "channel_not_found"),
        (client.users_info(user="U404"), "user_not_found"),
    ):
        with pytest.raises(SlackApiError) as exc:
            await call
        assert exc.value.response["error"] == error


async def test_rate_limit_429_with_retry_after(slack: FakeSlack) -> None:
    client = _client(slack)
    slack.rate_limit("chat.postMessage", times=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(channel="general", text="x")
        assert exc.value.response.status_code == 429
        assert exc.value.response.headers["Retry-After"] == "7"
        assert exc.value.response["error"] == "ratelimited"
    assert (await client.chat_postMessage(channel="general", text="x"))["ok"]
    assert slack.rate_limited_count == 2

    # Per-channel "1 message/s": a burst is refused, another channel is not, time heals.
    slack.limit_channel_rate(1.0)
    await client.chat_postMessage(channel="general", text="1")
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="general", text="2")
    assert (
        exc.value.response.status_code == 429 and exc.value.response.headers["Retry-After"] == "1"
    )
    await client.chat_postMessage(channel="shifters", text="other channel")
    slack.advance(1.0)
    await client.chat_postMessage(channel="general", text="3")
    assert slack.rate_limited_count == 3
    assert [m.text for m in slack.messages("general")] == ["x", "1", "3"]


async def test_slack_sdk_retry_handler_honours_retry_after(slack: FakeSlack) -> None:
    client = _client(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    assert (await client.chat_postMessage(channel="general", text="eventually"))["ok"]
    first, second = slack.calls("chat.postMessage")
    assert first.status == 429 and second.ok and second.t - first.t >= 1.0


async def test_fail_next_ok_false_and_hang(slack: FakeSlack) -> None:
    client = _client(slack)
    slack.fail_next("chat.postMessage", status=503, times=1)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="general", text="x")
    assert exc.value.response.status_code == 503

    slack.ok_false("auth.test", "account_inactive")
    with pytest.raises(SlackApiError) as exc:
        await client.auth_test()
    assert exc.value.response["error"] == "account_inactive"
    assert (await client.auth_test())["ok"]

    slack.hang("auth.test", 0.3)
    t0 = time.monotonic()
    assert (await client.auth_test())["ok"] and time.monotonic() - t0 >= 0.3

    slack.hang("conversations.info", 30)
    with pytest.raises(asyncio.TimeoutError):
        await _client(slack, timeout=0.3).conversations_info(channel="C00000001")
    (pending,) = await slack.wait_for("conversations.info", answered=False)
    assert not pending.answered  # still hanging; stop() releases it


async def test_wait_for_traffic_without_sleeping(slack: FakeSlack) -> None:
    client = _client(slack)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="general", text="a")
        await client.chat_postMessage(channel="shifters", text="b")

    task = asyncio.create_task(later())
    calls = await slack.wait_for(lambda c: c.method == "chat.postMessage", count=2, timeout=2)
    assert [c.params["text"] for c in calls] == ["a", "b"]
    await task
    with pytest.raises(TimeoutError):
        await slack.wait_for("chat.update", timeout=0.1)


# ------------------------------------------------------------------------------ response_url


async def test_response_url_five_uses_then_refused(slack: FakeSlack) -> None:
    url = slack.new_response_url("general", "U00000001")
    assert url.startswith(f"http://127.0.0.1:{slack.port}/response/")
    hook = AsyncWebhookClient(url)
    results = [
        await hook.send(text=f"progress {i}", response_type="in_channel" if i == 5 else None)
        for i in range(1, 7)
    ]
    assert [(r.status_code, r.body) for r in results[:5]] == [(200, "ok")] * 5
    assert (results[5].status_code, results[5].body) == (404, "used_url")
    assert len(slack.response_posts(url)) == 6 and slack.response_url(url).uses == 5
    assert [m.text for m in slack.messages("general", ephemeral=True)] == [
        f"progress {i}" for i in range(1, 5)
    ]
    assert [m.text for m in slack.messages("general", ephemeral=False)] == ["progress 5"]

    late = slack.new_response_url("general", "U00000001")
    slack.advance(31 * 60)
    resp = await AsyncWebhookClient(late).send(text="too late")
    assert (resp.status_code, resp.body) == (404, "expired_url")


async def test_response_url_replace_and_delete_original(slack: FakeSlack) -> None:
    client = _client(slack)
    posted = await client.chat_postMessage(
        channel="general",
        text="alert",
        blocks=[
            {
                "type": "actions",
                "block_id": "b1",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "ack_alert",
                        "value": "42",
                        "text": {"type": "plain_text", "text": "Ack"},
                    }
                ],
            }
        ],
    )
    payload = slack.block_actions_payload("ack_alert", user_id="U00000002")
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["actions"][0]["block_id"] == "b1" and payload["actions"][0]["value"] == "42"
    hook = AsyncWebhookClient(payload["response_url"])
    assert (await hook.send(text="acked by bob", replace_original=True)).status_code == 200
    assert slack.message("general", posted["ts"]).text == "acked by bob"
    assert (await hook.send_dict({"delete_original": True})).status_code == 200
    assert slack.messages("general") == []


# ------------------------------------------------------------------------------ Socket Mode


def _socket_client(slack: FakeSlack, ping_interval: float = 5) -> SocketModeClient:
    client = SocketModeClient(
        app_token=slack.app_token,
        web_client=AsyncWebClient(base_url=slack.api_url),
        ping_interval=ping_interval,
    )

    async def ack(c: SocketModeClient, req: SocketModeRequest) -> None:
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(ack)
    return client


async def test_socket_mode_slash_command_is_acked_in_time(slack: FakeSlack) -> None:
    client = _socket_client(slack)
    try:
        await client.connect()
        conn = await slack.wait_for_connection(1)
        assert conn.hello["type"] == "hello" and conn.hello["num_connections"] == 1
        assert conn.hello["connection_info"]["app_id"] == slack.app_id
        (opened,) = slack.calls("apps.connections.open")
        assert opened.token == "xapp-test" and opened.ok

        env = await slack.send_slash_command("status tier0", channel_id="C00000002")
        assert env.ack == {"envelope_id": env.envelope_id}
        assert env.in_time and env.elapsed is not None and env.elapsed < 3
        assert env.accepts_response_payload is True
        sample = _sample("sample_app-backend_slash-commands_SlashCommandPayload.json")
        grid = slack.slash_command_payload("x", enterprise_id="E00000001", enterprise_name="Org")
        assert set(env.payload) < set(sample) == set(grid)
        assert env.payload["response_url"].startswith(slack.base_url + "/response/")
        assert slack.acks == [env]
    finally:
        await client.close()


async def test_socket_mode_disconnect_envelope_makes_client_reconnect(slack: FakeSlack) -> None:
    client = _socket_client(slack)
    try:
        await client.connect()
        first = await slack.wait_for_connection(1)
        await slack.socket_disconnect(reason="refresh_requested")
        second = await slack.wait_for_connection(2)
        await slack.wait_until(lambda: not first.is_open, 2, "old socket closed")
        assert slack.connection_count == 2 and slack.open_connections == [second]
        assert len(slack.calls("apps.connections.open")) == 2
        env = await slack.send_app_mention("status")
        assert env.connection == 2 and env.in_time
    finally:
        await client.close()


async def test_socket_mode_survives_killed_and_silent_sockets(slack: FakeSlack) -> None:
    client = _socket_client(slack, ping_interval=0.2)
    try:
        await client.connect()
        await slack.wait_for_connection(1)
        killed = await slack.kill_socket()
        assert killed.close_reason == "killed"
        await slack.wait_for_connection(2, timeout=3)

        silent = await slack.go_silent()
        await slack.wait_for_connection(3, timeout=3)
        assert silent.pings > 0
        await slack.wait_until(lambda: not silent.is_open, 3, "silent socket dropped")
        env = await slack.send_message_event("hello bot")
        assert env.connection == 3 and env.ack is not None
    finally:
        await client.close()


async def test_bolt_over_socket_mode_end_to_end(slack: FakeSlack) -> None:
    app = AsyncApp(client=slack.web_client(), signing_secret=slack.signing_secret)

    @app.command("/shiftbot")
    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"got {command['text']}")

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text="on it", thread_ts=event.get("thread_ts") or event["ts"])

    @app.event("message")
    async def on_dm(event: dict[str, Any], say: Any) -> None:
        await say(text=f"dm {event['channel_type']}")

    @app.action("ack_alert")
    async def on_click(ack: Any, respond: Any) -> None:
        await ack()
        await respond(text="acked", replace_original=True)

    handler = AsyncSocketModeHandler(app, slack.app_token)
    try:
        await handler.connect_async()
        await slack.wait_for_connection(1)

        env = await slack.send_slash_command("status")
        assert env.response_payload == {"text": "got status"} and env.in_time

        mention = await slack.send_app_mention("status please", channel_id="C00000002")
        (post,) = await slack.wait_for("chat.postMessage")
        assert mention.in_time and post.params["thread_ts"] == mention.payload["event"]["ts"]

        dm = await slack.send_message_event("hi", user_id="U00000002")
        assert dm.payload["event"]["channel"].startswith("D")
        await slack.wait_for("chat.postMessage", count=2)
        assert [m.text for m in slack.messages(dm.payload["event"]["channel"])] == ["dm im"]

        click = await slack.send_block_action("ack_alert", channel_id="C00000002")
        (use,) = await slack.wait_for("response_url")
        assert click.in_time and use.params["replace_original"] is True
        assert slack.messages("shifters")[0].text == "acked"
    finally:
        await handler.close_async()


# ------------------------------------------------------------------------------ HTTP mode


async def test_signed_http_requests_pass_bolt_verification(slack: FakeSlack) -> None:
    app = AsyncApp(client=slack.web_client(), signing_secret=slack.signing_secret)
    clicks: list[str] = []

    @app.command("/shiftbot")
    async def on_command(ack: Any) -> None:
        await ack("ok")

    @app.action("ack_alert")
    async def on_click(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        clicks.append(body["actions"][0]["value"])

    async def dispatch(signed: Any) -> int:
        req = AsyncBoltRequest(body=signed.body.decode(), headers=signed.headers)
        return (await app.async_dispatch(req)).status

    assert await dispatch(slack.signed_slash_command("status")) == 200
    assert await dispatch(slack.signed_slash_command("status", stale=True)) == 401
    assert await dispatch(slack.signed_slash_command("status", bad_signature=True)) == 401
    assert await dispatch(slack.signed_block_actions("ack_alert", value="7")) == 200
    assert clicks == ["7"]

    # Over the network, like Slack: bolt's own aiohttp app on loopback.
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        answer = await slack.deliver(url, slack.signed_slash_command("status"))
        assert (answer.status, answer.body, answer.in_time) == (200, "ok", True)
        refused = await slack.deliver(url, slack.signed_block_actions("ack_alert", stale=True))
        assert refused.status == 401
    finally:
        await runner.cleanup()

    body = b"token=x&text=hi"
    headers = slack.sign(body)
    assert SignatureVerifier(slack.signing_secret).is_valid_request(body, headers)
    assert not SignatureVerifier(slack.signing_secret).is_valid_request(
        body, slack.sign(body, slack.stale_timestamp())
    )


async def test_event_payloads_follow_the_schema(slack: FakeSlack) -> None:
    schema = _sample("event_wrapper_schema.json")
    mention = slack.app_mention_event("deploy status", channel_id="C00000001")
    reply = slack.message_event("and?", channel_id="C00000001", thread_ts=mention["ts"])
    for event in (mention, reply):
        wrapped = slack.event_callback(event)
        assert set(schema["required"]) <= set(wrapped)
        assert {"type", "event_ts"} <= set(wrapped["event"])
    assert mention["text"].startswith(f"<@{slack.bot_user_id}>")
    assert reply["thread_ts"] == mention["ts"] and reply["channel_type"] == "channel"
    assert reply["parent_user_id"] == mention["user"]
    dm = slack.message_event("hi")
    assert dm["channel_type"] == "im" and slack.channel(dm["channel"]).is_im
