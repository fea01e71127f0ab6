"""The Slack rig shared by test_slack_port.py and test_slack_inbound.py: bots with the Slack
adapter against one loopback FakeSlack; every ``await rig()`` is another bot process on the
same SQLite file, like two replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sample_handlers
from fakes.slack import FakeSlack, User

from bot.adapters.slack import SlackAdapter
from bot.core import Bot
from bot.http import HttpServer
from bot.messaging.port import Platform
from bot.runtime import attach_http

ALICE, BOB, CAROL, MALLORY = "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0MALLORY"
GENERAL, SHIFTERS = "C00000001", "C00000002"  # aliases: alerts (by id), ops (by #name)
USERS = [User(ALICE, "alice"), User(BOB, "bob"), User(CAROL, "carol"), User(MALLORY, "mallory")]


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

    @property
    def url(self) -> str:
        return f"{self.http.url}/slack/events"

    @property
    def port(self) -> Platform:
        return self.bot.platforms["slack"]


Factory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(make_bot: Callable[..., Awaitable[Bot]], slack: FakeSlack) -> AsyncIterator[Factory]:
    made: list[Rig] = []

    async def factory(mode: str = "http", **overrides: Any) -> Rig:
        section = {
            "mode": mode, "bot_token": slack.bot_token, "app_token": slack.app_token,
            "signing_secret": slack.signing_secret, "api_url": slack.api_url,
            "channels": {"ops": "#shifters", "alerts": GENERAL},
            "ping_interval_seconds": 0.2, "request_timeout_seconds": 1, **overrides,
        }
        bot = await make_bot({"slack": section})
        http = attach_http(bot, "127.0.0.1", 0)
        assert bot.config.slack is not None
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        made.append(Rig(bot, http, adapter))
        if mode == "socket":
            await slack.wait_for_connection(len(made))
        return made[-1]

    yield factory
    for r in made:
        await r.adapter.stop()
        await r.http.stop()


def buttons(blocks: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks or [] if b["type"] == "actions"
            for e in b["elements"]}
