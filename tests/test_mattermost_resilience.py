"""Resilience over real sockets: reconnects, dead sockets, resume, dedupe, 429/5xx/timeouts, health.

Every interval is shrunk (ping 0.2 s, backoff 0.05..0.4 s, unhealthy after 1 s): the behaviour is
the production one, only faster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest
import sample_handlers
from fakes.mattermost import FakeMattermost
from mattermost_harness import FAST, Stack, running

from bot.adapters.mattermost.outbound import Outgoing, Where
from bot.adapters.mattermost.websocket import Backoff, EventSocket

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")


async def post(st: Stack, channel: str, text: str) -> str:
    """A post through the adapter's outbox (the path command answers take: retried there)."""
    where = Where(st.mm.channel(channel).id, st.mm.bot.id)
    created = await st.adapter.outbox.send(Outgoing("post", where, text))
    assert created is not None
    return str(created["id"])


DELAYS = re.compile(r"Mattermost socket (.*?); reconnecting in ([0-9.]+) s")


def delays(caplog: pytest.LogCaptureFixture) -> list[tuple[str, float]]:
    return [(m.group(1), float(m.group(2))) for m in DELAYS.finditer(caplog.text)]


async def answered(st: Stack, user: str, text: str, timeout: float = 5.0) -> dict:
    """Post ``!sample echo <text> --public`` and wait for the bot's answer in its thread."""
    post = await st.mm.post_as(user, "ops", f"!sample echo {text} --public")
    return await st.command_reply(post, timeout=timeout)


# ------------------------------------------------------------------------- reconnects


@pytest.mark.parametrize("code", [1000, 1001])
async def test_clean_close_reconnects_within_the_backoff(make_bot, caplog, code: int) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    async with running(make_bot) as st:
        await asyncio.sleep(FAST["ping_interval_seconds"] * 1.5)  # a healthy connection
        started = time.monotonic()
        assert await st.mm.drop_sockets(code=code) == 1
        await st.mm.wait_for_connection(2, timeout=3)
        # backoff reset by the healthy connection: the first delay is at most reconnect_min
        assert time.monotonic() - started < 1.0
        reason, delay = delays(caplog)[0]
        assert reason == f"lost ({code})" and 0.02 <= delay <= FAST["reconnect_min_seconds"]
        assert (await answered(st, "alice", "after"))["message"] == "after"
        assert await st.metric("shiftbot_mattermost_reconnects_total") == 1.0


async def test_abnormal_close_reconnects_and_resumes_missed_events(make_bot, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    async with running(make_bot) as st:
        await answered(st, "alice", "before")
        await st.mm.drop_sockets_abnormally()
        missed = await st.mm.post_as("bob", "ops", "!sample echo while-away --public")
        await st.mm.wait_for_connection(2, timeout=3)
        reply = await st.command_reply(missed)  # replayed by the server on resume
        assert reply["message"] == "while-away"
        assert st.mm.ws_connections[-1].resumed in ("replayed", "lossless")
        assert st.mm.ws_connections[-1].id == st.mm.ws_connections[0].id  # same session
        assert "Mattermost socket lost (1006); reconnecting in" in caplog.text
        assert (await answered(st, "alice", "after"))["message"] == "after"
        await asyncio.sleep(0.2)
        assert [r[2]["words"] for r in sample_handlers.RUNS] == [["before"], ["while-away"],
                                                                   ["after"]]


async def test_refused_upgrades_back_off_exponentially(make_bot, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    # a cap the five delays stay under: each bound doubles, so the jittered delays grow
    async with running(make_bot, mattermost={"reconnect_max_seconds": 1.0}) as st:
        st.mm.refuse_connections(4)
        await st.mm.drop_sockets()
        await st.mm.wait_for_connection(2, timeout=5)
        seen = delays(caplog)
        assert [r for r, _ in seen] == ["lost (1000)"] + ["upgrade refused (HTTP 503)"] * 4
        values = [d for _, d in seen]
        assert values == sorted(values) and values[-1] <= 1.0
        assert values[-1] > values[0] * 4  # doubled (jittered) each time
        assert (await answered(st, "alice", "back"))["message"] == "back"
        # a connection that stayed up for a ping interval resets the backoff
        await asyncio.sleep(FAST["ping_interval_seconds"] * 1.5)
        await st.mm.drop_sockets()
        await st.mm.wait_for_connection(3, timeout=3)
        assert delays(caplog)[-1][1] <= FAST["reconnect_min_seconds"]


async def test_half_dead_socket_is_recycled(make_bot, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    async with running(make_bot) as st:
        first = st.mm.ws_connections[-1]
        st.mm.half_dead()  # no events, no pings, no pongs: open but deaf
        started = time.monotonic()
        lost = await st.mm.post_as("alice", "ops", "!sample echo in-the-void --public")
        second = await st.mm.wait_for_connection(2, timeout=3)
        took = time.monotonic() - started
        assert second is not first and first.dropped
        assert took < 3 * FAST["ping_interval_seconds"] + 0.5
        assert st.adapter.socket.stats.recycled == 1
        assert "no event, no pong" in caplog.text
        # What the server dropped while deaf may be lost (it resumes only sessions it has
        # noticed are gone); it is never answered twice.
        assert [r[2]["words"] for r in sample_handlers.RUNS].count(["in-the-void"]) <= 1
        assert lost["id"]
        assert (await answered(st, "bob", "alive"))["message"] == "alive"


async def test_replayed_and_doubled_posted_events_run_once(make_bot) -> None:
    async with running(make_bot) as st:
        post = await st.mm.post_as("alice", "ops", "!sample echo once --public")
        await st.command_reply(post)
        event = next(e for e in st.mm.events if e["event"] == "posted"
                     and json.loads(e["data"]["post"])["id"] == post["id"])
        for _ in range(2):
            st.mm.publish("posted", event["data"], channel_id=post["channel_id"])
        marker = await answered(st, "bob", "marker")
        assert marker["message"] == "marker"
        assert [r[2]["words"] for r in sample_handlers.RUNS] == [["once"], ["marker"]]


async def test_a_bad_socket_token_backs_off_and_never_crashes(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.mattermost")
    async with FakeMattermost(auth_timeout=0.5) as mm:
        socket = EventSocket(url=mm.ws_url, token="wrong", on_event=lambda e: None,
                             ping_interval=0.2, backoff=Backoff(0.02, 0.2))
        task = asyncio.create_task(socket.run())
        try:
            await mm.wait_for(lambda: mm.auth_failures >= 4, timeout=5)
            assert not task.done() and not socket.working()
        finally:
            socket.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        seen = delays(caplog)
        assert all("before authentication" in r for r, _ in seen)
        values = [d for _, d in seen]
        assert values[:4] == sorted(values[:4])


async def test_handler_events_failing_do_not_recycle(make_bot) -> None:
    async with running(make_bot) as st:
        st.mm.publish("posted", {"post": "{not json", "channel_type": "O"},
                      channel_id=st.mm.channel("ops").id)
        st.mm.publish("posted", {"post": json.dumps(["odd"])}, channel_id=st.mm.channel("ops").id)
        assert (await answered(st, "alice", "still"))["message"] == "still"
        assert st.mm.total_connections == 1


# ------------------------------------------------------------------------- REST failures


async def test_rate_limited_posts_are_delivered_later_in_order(make_bot) -> None:
    async with running(make_bot) as st:
        st.mm.rate_limit("POST /api/v4/posts", times=1, retry_after=1)
        started = time.monotonic()
        ids = await asyncio.gather(*(post(st, "ops", f"line {i}") for i in range(4)))
        assert time.monotonic() - started >= 0.9
        messages = [p["message"] for p in st.mm.posts("ops") if p["user_id"] == st.mm.bot.id]
        assert messages == ["line 0", "line 1", "line 2", "line 3"]
        assert all(ids)
        statuses = [r.status for r in st.mm.find_requests("POST /api/v4/posts")]
        assert statuses == [429, 201, 201, 201, 201]  # the driver did not retry on its own
        assert st.adapter.outbox.sender.stats.rate_limited == 1


async def test_rate_limited_command_reply_arrives_later(make_bot) -> None:
    async with running(make_bot) as st:
        st.mm.rate_limit("POST /api/v4/posts/ephemeral", times=2, retry_after=0)
        post = await st.mm.post_as("alice", "ops", "!sample echo patient")
        note = await st.ephemeral("alice", lambda p: p["root_id"] == post["id"])
        assert note["message"] == "patient"
        assert [r.status for r in st.mm.find_requests("POST posts/ephemeral")] == [429, 429, 201]


async def test_server_errors_are_retried_and_client_errors_are_not(make_bot, caplog) -> None:
    caplog.set_level(logging.WARNING)
    async with running(make_bot) as st:
        st.mm.fail_next("POST /api/v4/posts", status=503, times=2)
        assert await post(st, "ops", "after two 503s")
        assert [r.status for r in st.mm.find_requests("POST /api/v4/posts")] == [503, 503, 201]
        st.mm.fail_next("POST /api/v4/posts", status=502, body="<html>bad gateway</html>")
        assert await post(st, "ops", "after a proxy page")
        st.mm.fail_next("POST /api/v4/posts", status=400)
        with pytest.raises(Exception, match="Injected failure"):
            await post(st, "ops", "rejected")
        assert [p["message"] for p in st.mm.posts("ops")] == ["after two 503s",
                                                              "after a proxy page"]
        assert "giving up on a post" in caplog.text


async def test_hanging_request_times_out_and_the_retry_does_not_duplicate(make_bot) -> None:
    async with running(make_bot) as st:
        st.mm.hang("POST /api/v4/posts", seconds=1.6)  # longer than the 1 s request timeout
        started = time.monotonic()
        post_id = await post(st, "ops", "exactly once")
        assert 1.0 <= time.monotonic() - started < 1.6
        await st.mm.wait_for(lambda: all(r.status for r in st.mm.find_requests(
            "POST /api/v4/posts")), timeout=4)  # the hung request went through, later
        mine = [p for p in st.mm.posts("ops") if p["message"] == "exactly once"]
        assert [p["id"] for p in mine] == [post_id]  # pending_post_id made the retry idempotent
        bodies = [r.json for r in st.mm.find_requests("POST /api/v4/posts")]
        assert len({b["pending_post_id"] for b in bodies}) == 1 and len(bodies) == 2


# ------------------------------------------------------------------------- health, lifecycle


async def test_healthz_turns_unhealthy_without_a_working_socket(make_bot) -> None:
    async with running(make_bot) as st:
        healthy = await st.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["components"]["mattermost"]["ok"] is True
        st.mm.refuse_connections(10_000)
        await st.mm.drop_sockets_abnormally()
        await asyncio.sleep(0.3)
        grace = (await st.get("/healthz")).json()["components"]["mattermost"]
        assert grace["ok"] is True and "reconnecting" in grace["detail"]
        await asyncio.sleep(FAST["unhealthy_after_seconds"])
        down = await st.get("/healthz")
        assert down.status_code == 503
        detail = down.json()["components"]["mattermost"]
        assert detail["ok"] is False and "no working socket" in detail["detail"]
        assert "upgrade refused (HTTP 503)" in detail["detail"]
        st.mm.refuse_connections(0)
        await st.mm.wait_for_connection(2, timeout=3)
        await st.mm.wait_for(lambda: st.adapter.socket.working(), timeout=2)
        assert (await st.get("/healthz")).status_code == 200


async def test_bad_bot_token_is_reported_not_fatal(make_bot, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bot.adapters.mattermost")
    async with running(make_bot, mattermost={"token": "not-the-token"},
                       startup_wait=0.2) as st:
        await asyncio.sleep(FAST["unhealthy_after_seconds"] + 0.1)
        down = await st.get("/healthz")
        assert down.status_code == 503
        assert "refused the bot token" in down.json()["components"]["mattermost"]["detail"]
        assert "refused the bot token (HTTP 401)" in caplog.text
        assert st.mm.connection_count == 0


async def test_stop_closes_the_socket_and_delivers_queued_messages(make_bot) -> None:
    async with running(make_bot) as st:
        st.mm.rate_limit("POST /api/v4/posts", times=1, retry_after=0)
        where = Where(st.mm.channel("ops").id, st.mm.user("alice").id)
        st.adapter.outbox.send_soon(Outgoing("post", where, "last words"))
        await st.adapter.stop()
        assert st.mm.posts("ops")[-1]["message"] == "last words"
        await st.mm.wait_for(lambda: st.mm.connection_count == 0, timeout=2)
        assert not st.adapter._tasks
        assert (await st.get("/healthz")).json()["components"]["mattermost"]["ok"] is False
