"""While Slack or Mattermost is unreachable: one WARNING per retry, with the reason, and never a
traceback or an ERROR (each of which Sentry would turn into an event)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from fakes.mattermost import FakeMattermost
from mattermost_harness import FAST, running

from bot.adapters.mattermost import MattermostAdapter
from bot.adapters.slack import SlackAdapter

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def counting(target: Any, name: str) -> list[float]:
    """Wrap ``target.name`` (a coroutine method) to record when each call started."""
    calls: list[float] = []
    original = getattr(target, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return await original(*args, **kwargs)

    setattr(target, name, wrapper)
    return calls


async def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    loud = [(r.levelname, r.name, r.getMessage()[:150]) for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == []
    assert "Traceback" not in caplog.text


async def test_slack_socket_mode_unreachable_logs_one_warning_per_retry(
        make_bot, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("bot.adapters.slack.adapter.STARTUP_WAIT", 0.1)
    api = f"http://127.0.0.1:{closed_port()}/api/"
    bot = await make_bot({"slack": {"mode": "socket", "bot_token": "xoxb-1", "app_token": "xapp-1",
                                    "api_url": api, "ping_interval_seconds": 0.1}})
    assert bot.config.slack is not None
    adapter = SlackAdapter(bot, bot.config.slack)
    attempts = counting(adapter.api, "apps_connections_open")  # one per connection attempt
    await adapter.start()
    try:
        await wait_until(lambda: len(attempts) >= 3, timeout=15)
        await asyncio.sleep(0.3)  # the third attempt fails and is logged
    finally:
        await adapter.stop()
    failed = [r for r in caplog.records if "Socket Mode connection failed" in r.getMessage()]
    assert len(attempts) - 1 <= len(failed) <= len(attempts)  # the last may be cut by stop()
    assert len(failed) >= 2
    for record in failed:
        assert record.levelno == logging.WARNING
        assert "ClientConnectorError" in record.getMessage()  # the reason, on one line
        assert "retrying in 0.1 s" in record.getMessage()
    assert "forcing a reconnect" not in caplog.text  # no second retry loop beside slack_sdk's
    assert_no_tracebacks(caplog)


async def test_mattermost_unreachable_logs_one_warning_per_retry(
        make_bot, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    bot = await make_bot({"mattermost": {
        "url": f"http://127.0.0.1:{closed_port()}", "token": "t", "team": "ops", **FAST}})
    assert bot.config.mattermost is not None
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=0.1)
    attempts = counting(adapter.rest, "login")
    await adapter.start()
    try:
        await wait_until(lambda: len(attempts) >= 4, timeout=10)
    finally:
        await adapter.stop()
    retries = [r for r in caplog.records if "login failed" in r.getMessage()
               and "retrying in" in r.getMessage()]
    assert len(attempts) - 1 <= len(retries) <= len(attempts)
    for record in retries:
        assert record.levelno == logging.WARNING and "ConnectError" in record.getMessage()
    assert_no_tracebacks(caplog)


async def test_mattermost_socket_refused_logs_one_warning_per_retry(
        make_bot, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    async with running(make_bot) as st:
        st.mm.refuse_connections(10_000)
        await st.mm.drop_sockets_abnormally()
        await wait_until(lambda: st.mm.refused_connections >= 3, timeout=10)
        refused = st.mm.refused_connections
        await asyncio.sleep(0.05)
        lines = [r for r in caplog.records if "Mattermost socket" in r.getMessage()
                 and "reconnecting in" in r.getMessage()]
        assert refused <= len(lines) <= refused + 2  # the drop itself, and one in flight
        assert all(r.levelno == logging.WARNING for r in lines)
        assert sum("upgrade refused (HTTP 503)" in r.getMessage() for r in lines) >= refused - 1
    assert_no_tracebacks(caplog)


async def test_a_refused_bot_token_is_one_error_then_warnings(
        make_bot, caplog) -> None:  # type: ignore[no-untyped-def]
    """A wrong token is a configuration error worth one ERROR (one Sentry event); retrying it
    every minute must not page anyone again."""
    caplog.set_level(logging.INFO)
    async with FakeMattermost() as mm:
        bot = await make_bot({"mattermost": {"url": mm.url, "token": "wrong", "team": "x",
                                             **FAST}})
        assert bot.config.mattermost is not None
        adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=0.1)
        attempts = counting(adapter.rest, "login")
        await adapter.start()
        try:
            await wait_until(lambda: len(attempts) >= 3, timeout=10)
            await asyncio.sleep(0.05)
        finally:
            await adapter.stop()
    lines = [r for r in caplog.records if "refused the bot token (HTTP 401)" in r.getMessage()]
    assert [r.levelname for r in lines[:3]] == ["ERROR", "WARNING", "WARNING"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == lines[:1]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_refused_slack_app_token_is_one_error_then_warnings(
        make_bot, slack, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("bot.adapters.slack.adapter.STARTUP_WAIT", 0.1)
    bot = await make_bot({"slack": {"mode": "socket", "bot_token": slack.bot_token,
                                    "app_token": "xapp-wrong", "api_url": slack.api_url,
                                    "ping_interval_seconds": 0.05}})
    assert bot.config.slack is not None
    adapter = SlackAdapter(bot, bot.config.slack)
    attempts = counting(adapter.api, "apps_connections_open")
    await adapter.start()
    try:
        await wait_until(lambda: len(attempts) >= 3, timeout=10)
        await asyncio.sleep(0.1)
    finally:
        await adapter.stop()
    lines = [r for r in caplog.records if "Socket Mode connection failed" in r.getMessage()]
    assert [r.levelname for r in lines[:3]] == ["ERROR", "WARNING", "WARNING"]
    assert all("Slack answered invalid_auth" in r.getMessage() for r in lines)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == lines[:1]
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text
