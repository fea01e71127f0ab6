"""The fake Mattermost works with the real mattermostautodriver client and acts like the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import WSMsgType, web
from fakes.mattermost import FakeMattermost
from mattermostautodriver import AsyncTypedDriver
from mattermostautodriver.exceptions import (
    NoAccessTokenProvided,
    NotEnoughPermissions,
    UnknownMattermostError,
)

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"

ID = re.compile(r"^[a-z0-9]{26}$")

# the driver's websocket passes ssl=None for ws://, which aiohttp 3.14 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")


@pytest.fixture
async def mm() -> AsyncIterator[FakeMattermost]:
    async with FakeMattermost(ping_interval=0.05, auth_timeout=0.3) as fake:
        yield fake


@pytest.fixture
async def driver(mm: FakeMattermost) -> AsyncIterator[AsyncTypedDriver]:
    drv = AsyncTypedDriver(mm.driver_options())
    yield drv
    await drv.close()


class BotApp:
    """A stand-in for the bot's HTTP server: records requests, answers what the test says."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answer: Callable[[bytes], web.Response] = lambda body: web.json_response({})
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> BotApp:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "GET":
            body = request.query_string.encode()
        self.requests.append((dict(request.headers), body))
        return self.answer(body)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def bot_app() -> AsyncIterator[BotApp]:
    app = await BotApp().start()
    yield app
    await app.close()


async def run_websocket(drv: AsyncTypedDriver) -> tuple[list[dict[str, Any]], asyncio.Task[Any]]:
    """Start the driver's websocket loop; collect every frame it hands to the handler."""
    frames: list[dict[str, Any]] = []

    async def handler(message: str) -> None:
        frames.append(json.loads(message))

    task = asyncio.create_task(drv.init_websocket(handler))
    return frames, task


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def events(frames: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("event") == name]


# ------------------------------------------------------------------------------------- REST


async def test_driver_login_post_team_and_channel(mm: FakeMattermost,
                                                  driver: AsyncTypedDriver) -> None:
    me = await driver.login()
    assert me["id"] == mm.bot.id and me["username"] == "shiftbot" and me["is_bot"] is True
    assert driver.client.userid == mm.bot.id

    team = await driver.teams.get_team_by_name("ops-team")
    assert team["id"] == mm.team.id
    channel = await driver.channels.get_channel_by_name_for_team_name("ops-team", "ops")
    assert channel["id"] == mm.channel("ops").id and channel["type"] == "O"
    assert (await driver.channels.get_channel(channel["id"]))["name"] == "ops"

    post = await driver.posts.create_post(channel["id"], "hello shifters")
    assert ID.match(post["id"])
    assert post["channel_id"] == channel["id"] and post["user_id"] == mm.bot.id
    assert post["root_id"] == "" and post["props"] == {} and post["create_at"] > 1e12
    assert mm.find_requests("POST /api/v4/posts")[-1].status == 201
    assert mm.posts("ops")[-1]["message"] == "hello shifters"

    reply = await driver.posts.create_post(channel["id"], "in thread", root_id=post["id"])
    thread = await driver.posts.get_post_thread(post["id"])
    assert thread["order"] == [reply["id"], post["id"]]
    assert set(thread["posts"]) == {post["id"], reply["id"]}

    users = await driver.users.get_users_by_usernames(["alice", "nobody"])
    assert [u["username"] for u in users] == ["alice"]
    assert (await driver.users.get_user_by_username("bob"))["id"] == mm.user("bob").id
    assert (await driver.users.get_user(mm.user("carol").id))["username"] == "carol"


async def test_json_content_type_and_error_shape(mm: FakeMattermost) -> None:
    async with httpx.AsyncClient(base_url=mm.api_url) as client:
        ok = await client.get("/users/me", headers={"Authorization": f"Bearer {mm.bot_token}"})
        assert ok.headers["content-type"] == "application/json"
        missing = await client.get("/users/me")
        wrong = await client.get("/users/me", headers={"Authorization": "Bearer nope"})
        unknown = await client.get("/no/such/route",
                                   headers={"Authorization": f"Bearer {mm.bot_token}"})
    for resp, status in ((missing, 401), (wrong, 401), (unknown, 404)):
        assert resp.status_code == status
        assert resp.headers["content-type"] == "application/json"
        body = resp.json()
        assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}
        assert body["status_code"] == status


async def test_bad_token_login_raises(mm: FakeMattermost) -> None:
    drv = AsyncTypedDriver(mm.driver_options(token="wrong"))
    with pytest.raises(NoAccessTokenProvided):
        await drv.login()
    await drv.close()


async def test_update_patch_ephemeral_and_permissions(mm: FakeMattermost,
                                                      driver: AsyncTypedDriver) -> None:
    await driver.login()
    ops = mm.channel("ops").id
    props = {"attachments": [{"text": "t", "actions": [
        {"id": "ack", "name": "Ack", "type": "button",
         "integration": {"url": "http://127.0.0.1:9/a", "context": {"k": 1}}}]}]}
    post = await driver.posts.create_post(ops, "card", props=props)
    # clients never see the integration; the server keeps it
    assert "integration" not in post["props"]["attachments"][0]["actions"][0]
    assert mm.post(post["id"])["props"]["attachments"][0]["actions"][0]["integration"]["url"]

    patched = await driver.posts.patch_post(post["id"], message="card v2")
    assert patched["message"] == "card v2" and patched["props"]["attachments"]
    updated = await driver.posts.update_post(post["id"], id=post["id"], message="card v3")
    assert updated["message"] == "card v3" and updated["props"] == {}  # PUT replaces props
    assert updated["edit_at"] > 0

    eph = await driver.posts.create_post_ephemeral(mm.user("alice").id,
                                                   {"channel_id": ops, "message": "psst"})
    assert eph["type"] == "system_ephemeral"
    assert mm.ephemeral_posts("alice")[-1]["message"] == "psst"

    alice_post = await mm.post_as("alice", "ops", "mine")
    with pytest.raises(NotEnoughPermissions):
        await driver.posts.patch_post(alice_post["id"], message="hijack")
    private = mm.add_channel("secret", "P", members=["alice"])
    with pytest.raises(NotEnoughPermissions):
        await driver.posts.create_post(private.id, "not a member")


async def test_rate_limit_once_then_ok(mm: FakeMattermost, driver: AsyncTypedDriver) -> None:
    mm.rate_limit("GET /api/v4/users/me", times=1, retry_after=0)
    me = await driver.login()  # the driver retries a 429 after Retry-After seconds
    assert me["id"] == mm.bot.id
    assert [r.status for r in mm.find_requests("GET users/me")] == [429, 200]

    mm.rate_limit("posts", times=1, retry_after=2)
    async with httpx.AsyncClient() as client:
        resp = await client.post(mm.api_url + "/posts", json={},
                                 headers={"Authorization": f"Bearer {mm.bot_token}"})
    assert resp.status_code == 429 and resp.text == "limit exceeded\n"
    assert resp.headers["retry-after"] == "2"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
        resp.headers)


async def test_fail_next_and_hang(mm: FakeMattermost) -> None:
    drv = AsyncTypedDriver(mm.driver_options(request_timeout=0.2, max_retries=0))
    await drv.login()
    mm.fail_next("POST /api/v4/posts", status=500)
    with pytest.raises(UnknownMattermostError):
        await drv.posts.create_post(mm.channel("ops").id, "boom")
    mm.hang("GET /api/v4/users/me")
    with pytest.raises(httpx.ReadTimeout):
        await drv.login()
    mm.release_hangs()
    assert (await drv.login())["id"] == mm.bot.id
    await drv.close()


# ------------------------------------------------------------------------------- WebSocket


async def test_websocket_hello_ok_then_posted(mm: FakeMattermost,
                                             driver: AsyncTypedDriver) -> None:
    await driver.login()
    frames, task = await run_websocket(driver)
    try:
        conn = await mm.wait_for_connection(1)
        await mm.wait_for(lambda: len(frames) >= 2)
        hello, ok = frames[0], frames[1]
        assert hello["event"] == "hello" and hello["seq"] == 0
        assert hello["data"]["connection_id"] == conn.id
        assert hello["data"]["server_version"].startswith("10.")
        assert ok == {"status": "OK", "seq_reply": 1}

        post = await mm.post_as("alice", "ops", "@shiftbot status please")
        await mm.wait_for(lambda: events(frames, "posted"))
        posted = events(frames, "posted")[0]
        assert posted["seq"] == 1
        assert posted["broadcast"]["channel_id"] == mm.channel("ops").id
        data = posted["data"]
        assert isinstance(data["post"], str) and json.loads(data["post"])["id"] == post["id"]
        assert data["channel_type"] == "O" and data["sender_name"] == "@alice"
        assert json.loads(data["mentions"]) == [mm.bot.id]
        assert data["team_id"] == mm.team.id

        # the bot's own REST posts come back too (the adapter must ignore them)
        await driver.posts.create_post(mm.channel("ops").id, "my own")
        await mm.wait_for(lambda: len(events(frames, "posted")) == 2)
        own = json.loads(events(frames, "posted")[1]["data"]["post"])
        assert own["user_id"] == mm.bot.id and "mentions" not in events(frames, "posted")[1]["data"]
        assert events(frames, "posted")[1]["seq"] == 2

        dm = mm.dm_channel("bob")
        assert dm.type == "D" and dm.name == "__".join(sorted((mm.bot.id, mm.user("bob").id)))
        await mm.post_as("bob", dm, "hi bot")
        await mm.wait_for(lambda: len(events(frames, "posted")) == 3)
        dm_data = events(frames, "posted")[2]["data"]
        assert dm_data["channel_type"] == "D" and json.loads(dm_data["mentions"]) == [mm.bot.id]

        await mm.wait_for(lambda: conn.pongs)  # server pings, aiohttp answers
        assert conn.pings_sent >= 1
    finally:
        await stop(task)


async def test_bad_token_socket_is_closed(mm: FakeMattermost) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(mm.ws_url) as ws:
        await ws.send_json({"seq": 1, "action": "authentication_challenge",
                            "data": {"token": "wrong"}})
        msg = await ws.receive(timeout=2)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
        assert ws.close_code == 1006  # TCP closed without a close frame
    assert mm.auth_failures == 1 and mm.ws_connections[0].close_reason == "bad_token"


async def test_driver_retries_bad_token_forever(mm: FakeMattermost) -> None:
    drv = AsyncTypedDriver(mm.driver_options(token="wrong", keepalive_delay=0.02))
    _frames, task = await run_websocket(drv)
    try:
        await mm.wait_for(lambda: mm.auth_failures >= 3)
        assert not task.done()
    finally:
        await stop(task)
        await drv.close()


async def test_unauthenticated_socket_times_out(mm: FakeMattermost) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(mm.ws_url) as ws:
        msg = await ws.receive(timeout=2)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
    assert mm.ws_connections[0].close_reason == "auth_timeout"


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    # not ws.receive_json(timeout=...): every server ping restarts aiohttp's receive timeout
    return await asyncio.wait_for(ws.receive_json(), 2)


async def test_header_auth_and_resume(mm: FakeMattermost) -> None:
    headers = {"Authorization": f"Bearer {mm.bot_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(mm.ws_url, headers=headers) as ws:
            hello = await receive_json(ws)  # authenticated by the upgrade: hello, no OK
            assert hello["event"] == "hello"
            for text in ("one", "two"):
                await mm.post_as("alice", "ops", text)
            assert [(await receive_json(ws))["seq"] for _ in range(2)] == [1, 2]
        conn_id = hello["data"]["connection_id"]
        await mm.post_as("alice", "ops", "missed")  # queued for the disconnected session
        params = {"connection_id": conn_id, "sequence_number": "2"}  # seq 2 got lost
        async with session.ws_connect(mm.ws_url, headers=headers, params=params) as ws:
            replay = [await receive_json(ws) for _ in range(2)]
            assert [m["seq"] for m in replay] == [2, 3]
            assert json.loads(replay[1]["data"]["post"])["message"] == "missed"
    assert mm.ws_connections[-1].resumed == "replayed"


async def test_reconnects_after_drops_and_refusals(mm: FakeMattermost,
                                                   driver: AsyncTypedDriver) -> None:
    await driver.login()
    _frames, task = await run_websocket(driver)
    try:
        await mm.wait_for_connection(1)
        assert await mm.drop_sockets(code=1001) == 1
        await mm.wait_for_connection(2)
        await mm.drop_sockets_abnormally()
        await mm.wait_for_connection(3)
        mm.refuse_connections(1)
        await mm.drop_sockets()
        await mm.wait_for_connection(4)
        assert mm.refused_connections == 1 and mm.connection_count == 1
        assert [c.close_reason for c in mm.ws_connections[:3]] == ["server", "abort", "server"]
    finally:
        await stop(task)


async def test_half_dead_socket_needs_a_client_heartbeat(mm: FakeMattermost) -> None:
    drv = AsyncTypedDriver(mm.driver_options(websocket_kw_args={"heartbeat": 0.2}))
    await drv.login()
    frames, task = await run_websocket(drv)
    try:
        first = await mm.wait_for_connection(1)
        mm.half_dead()
        await mm.post_as("alice", "ops", "lost in the void")
        second = await mm.wait_for_connection(2, timeout=3)
        assert first.dropped and not events(frames, "posted")
        assert second.id != first.id
    finally:
        await stop(task)
        await drv.close()


# ------------------------------------------------------------------- slash commands, buttons


async def test_command_invocation_and_response_url_limits(mm: FakeMattermost,
                                                          bot_app: BotApp) -> None:
    bot_app.answer = lambda body: web.json_response({"response_type": "ephemeral",
                                                     "text": "working on it"})
    cmd = mm.add_command("shiftbot", bot_app.url + "/mattermost/command")
    result = await mm.invoke_command(None, "/shiftbot", "status @bob ~ops", "alice", "ops")
    assert result.status == 200 and result.server_status == 200
    headers, body = bot_app.requests[-1]
    assert headers["Authorization"] == f"Token {cmd['token']}"
    form = dict(re.findall(r"([^&=]+)=([^&]*)", body.decode()))
    assert {"channel_id", "channel_name", "command", "response_url", "root_id", "team_domain",
            "team_id", "text", "token", "trigger_id", "user_id", "user_name"} <= set(form)
    fields = result.request.fields
    assert fields["command"] == "/shiftbot" and fields["user_name"] == "alice"
    assert fields["user_mentions"] == "bob" and fields["channel_mentions"] == "ops"
    assert result.response_url == f"{mm.url}/hooks/commands/{result.request.hook.id}"
    assert result.ephemeral[0].post["message"] == "working on it"

    async with httpx.AsyncClient() as client:
        statuses = []
        for i in range(6):
            resp = await client.post(result.response_url,
                                     json={"response_type": "in_channel", "text": f"step {i}"})
            statuses.append(resp.status_code)
        assert statuses == [200] * 5 + [400]
        assert resp.json()["id"] == "app.command_webhook.try_use.invalid"
        posted = mm.posts("ops")
        assert [p["message"] for p in posted[-5:]] == [f"step {i}" for i in range(5)]
        assert posted[-1]["user_id"] == mm.user("alice").id
        assert posted[-1]["props"]["from_webhook"] == "true"

        later = await mm.invoke_command(None, "shiftbot", "status", "alice", "ops")
        mm.advance(31 * 60)
        expired = await client.post(later.response_url, json={"text": "too late"})
        assert expired.status_code == 404
    assert [u.status for u in mm.hook_uses] == [200] * 5 + [400, 404]


async def test_command_reply_rules(mm: FakeMattermost, bot_app: BotApp) -> None:
    url = bot_app.url + "/mattermost/command"
    bot_app.answer = lambda body: web.Response(status=200, body=b"",
                                               content_type="application/json")
    empty = await mm.invoke_command(url, "shiftbot", "x", "alice", "ops")
    assert empty.server_status == 500  # an empty JSON body is an error
    bot_app.answer = lambda body: web.json_response({"response_type": "in_channel",
                                                     "text": "done"})
    ok = await mm.invoke_command(None, "shiftbot", "x", "alice", "ops", root_id="")
    assert ok.posts[0]["message"] == "done" and ok.posts[0]["user_id"] == mm.user("alice").id
    wrong = await mm.invoke_command(None, "shiftbot", "x", "alice", "ops", token="forged")
    assert bot_app.requests[-1][0]["Authorization"] == "Token forged" and wrong.status == 200
    outsider = mm.add_user("mallory", channels=[])
    denied = await mm.invoke_command(None, "shiftbot", "x", outsider, "ops")
    assert denied.server_status == 403


async def test_commands_rest(mm: FakeMattermost, driver: AsyncTypedDriver) -> None:
    await driver.login()
    created = await driver.commands.create_command(mm.team.id, "P", "shiftbot",
                                                   "http://127.0.0.1:8080/mattermost/command")
    assert ID.match(created["token"]) and created["creator_id"] == mm.bot.id
    listed = await driver.commands.list_commands(team_id=mm.team.id, custom_only=True)
    assert [c["token"] for c in listed] == [created["token"]]
    everything = await driver.commands.list_commands(team_id=mm.team.id)
    assert [c["token"] for c in everything if c["trigger"] == "shiftbot"] == [""]
    new_token = (await driver.commands.regen_command_token(created["id"]))["token"]
    assert new_token != created["token"] and mm.command("shiftbot")["token"] == new_token
    changed = await driver.commands.update_command(
        created["id"], {**created, "url": "http://127.0.0.1:8081/mattermost/command"})
    assert changed["url"].endswith(":8081/mattermost/command") and changed["token"] == new_token


async def test_button_click(mm: FakeMattermost, bot_app: BotApp) -> None:
    integration = {"url": bot_app.url + "/mattermost/action", "context": {"sig": "abc"}}
    props = {"attachments": [{"text": "restart?", "actions": [
        {"id": "approve", "name": "Approve", "type": "button", "integration": integration},
        {"id": "bad_id", "name": "Bad", "type": "button", "integration": integration}]}]}
    card = await mm.post_as("shiftbot", "ops", "approval needed", props=props)

    bot_app.answer = lambda body: web.json_response(
        {"update": {"message": "approved by carol", "props": {}}, "ephemeral_text": "done"})
    result = await mm.click(None, card["id"], "approve", "carol")
    assert result.status == 200 and result.server_status == 200
    sent = json.loads(bot_app.requests[-1][1])
    assert {"user_id", "user_name", "channel_id", "channel_name", "team_id", "team_domain",
            "post_id", "trigger_id", "type", "context"} <= set(sent)
    assert sent["context"] == {"sig": "abc"} and sent["user_name"] == "carol"
    assert sent["post_id"] == card["id"] and sent["type"] == "button"
    assert mm.post(card["id"])["message"] == "approved by carol"
    assert mm.ephemeral_posts("carol")[-1]["message"] == "done"
    assert any(e["event"] == "post_edited" for e in mm.events)

    refused = await mm.click(None, card["id"], "bad_id", "carol")
    assert refused.server_status == 404  # action ids must be [A-Za-z0-9]+


async def test_wait_helpers(mm: FakeMattermost) -> None:
    async def later(coro: Awaitable[Any]) -> None:
        await asyncio.sleep(0.05)
        await coro

    task = asyncio.create_task(later(mm.post_as("alice", "alerts", "disk full")))
    post = await mm.wait_for_post("alerts", user="alice", timeout=2)
    assert post["message"] == "disk full"
    await task
    with pytest.raises(TimeoutError):
        await mm.wait_for(lambda: False, timeout=0.05)


async def test_every_socket_of_the_bot_gets_each_posted_event(mm: FakeMattermost,
                                                             driver: AsyncTypedDriver) -> None:
    """Two bot processes (two sockets, one account) both see every post: the replica case."""
    await driver.login()
    (first, one), (second, two) = await run_websocket(driver), await run_websocket(driver)
    try:
        await mm.wait_for_connection(2)
        post = await mm.post_as("alice", "ops", "!condor hold 1.0")
        await mm.wait_for(lambda: events(first, "posted") and events(second, "posted"))
        ids = [json.loads(events(frames, "posted")[0]["data"]["post"])["id"]
               for frames in (first, second)]
        assert ids == [post["id"], post["id"]]
        assert [events(f, "posted")[0]["seq"] for f in (first, second)] == [1, 1]
    finally:
        await stop(one)
        await stop(two)


async def test_channel_posts_and_threads_read_back_props(mm: FakeMattermost,
                                                        driver: AsyncTypedDriver) -> None:
    await driver.login()
    ops = mm.channel("ops").id
    root = (await driver.client.make_request("post", "/api/v4/posts", options={
        "channel_id": ops, "message": "notice", "props": {"shiftbot_notice": "k#post"}})).json()
    reply = await mm.post_as("alice", "ops", "a reply", root_id=root["id"])
    for _ in range(3):
        await mm.post_as("bob", "ops", "chatter")
    page = (await driver.client.make_request(
        "get", f"/api/v4/channels/{ops}/posts", params={"per_page": 1000})).json()
    assert page["order"][-2:] == [reply["id"], root["id"]]  # newest first
    assert page["posts"][root["id"]]["props"] == {"shiftbot_notice": "k#post"}
    first = (await driver.client.make_request(
        "get", f"/api/v4/channels/{ops}/posts", params={"per_page": 2})).json()
    assert len(first["order"]) == 2
    thread = (await driver.client.make_request(
        "get", f"/api/v4/posts/{reply['id']}/thread")).json()
    assert set(thread["order"]) == {root["id"], reply["id"]}
    assert thread["posts"][reply["id"]]["root_id"] == root["id"]
