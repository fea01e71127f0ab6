"""The Mattermost test stack: fake server + bot + HTTP server + adapter, over real sockets.

No tests here; ``test_mattermost_*.py`` import :func:`running`. People are configured by
Mattermost *username* (the fake's users have random ids), so every stack also exercises the
startup resolution of usernames to ids.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import sample_handlers
from conftest import deep_merge
from fakes.mattermost import FakeMattermost, User

from bot.adapters.mattermost import MattermostAdapter
from bot.core import Bot
from bot.http import HttpServer
from bot.runtime import attach_http

# Every time constant small, so reconnects, liveness and health take fractions of a second.
FAST: dict[str, Any] = {
    "ping_interval_seconds": 0.2,
    "reconnect_min_seconds": 0.05,
    "reconnect_max_seconds": 0.4,
    "unhealthy_after_seconds": 1.0,
    "ack_budget_seconds": 1.0,
    "request_timeout_seconds": 1.0,
}
PEOPLE = ("alice", "bob", "carol", "dave")
CHANNELS = (("town-square", "O"), ("ops", "O"), ("alerts", "O"), ("shifters", "P"))


def command_token(trigger: str) -> str:
    return f"cmdtoken{trigger}"


@dataclass
class Stack:
    mm: FakeMattermost
    bot: Bot
    http: HttpServer
    adapter: MattermostAdapter

    @property
    def action_url(self) -> str:
        return self.http.url + "/mattermost/action"

    async def command_reply(self, post: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """The bot's stored post answering ``post`` (in its thread)."""
        root = post["root_id"] or post["id"]
        return await self.mm.wait_for_post(
            predicate=lambda p: p["root_id"] == root and p["user_id"] == self.mm.bot.id,
            timeout=timeout)

    async def ephemeral(self, user: str, predicate: Callable[[dict[str, Any]], bool],
                        timeout: float = 5.0) -> dict[str, Any]:
        """The first ephemeral post shown to ``user`` that matches."""
        found = await self.mm.wait_for(
            lambda: [p for p in self.mm.ephemeral_posts(user) if predicate(p)], timeout)
        return found[0]

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await client.get(self.http.url + path)

    async def post_action(self, payload: dict[str, Any]) -> httpx.Response:
        """A button request as the server sends it (or as a forger would)."""
        async with httpx.AsyncClient(trust_env=False) as client:
            return await client.post(self.action_url, content=json.dumps(payload),
                                     headers={"Content-Type": "application/json"})

    def click_payload(self, post: dict[str, Any], action_id: str, user: str) -> dict[str, Any]:
        """What the server would POST for a click on ``action_id`` of ``post``."""
        stored = self.mm.post(post["id"])
        action = next(a for a in stored["props"]["attachments"][0]["actions"]
                      if a["id"] == action_id)
        u: User = self.mm.user(user)
        channel = self.mm.channel(stored["channel_id"])
        return {"user_id": u.id, "user_name": u.username, "channel_id": channel.id,
                "channel_name": channel.name, "team_id": channel.team_id,
                "team_domain": self.mm.team.name, "post_id": stored["id"],
                "trigger_id": secrets.token_hex(8),
                "type": "button", "context": action["integration"]["context"]}

    async def metric(self, line_start: str) -> float:
        text = (await self.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def people_by_username(*names: str) -> dict[str, Any]:
    return {name: {"mattermost": None, "mattermost_username": name} for name in names}


@contextlib.asynccontextmanager
async def running(make_bot: Callable[..., Awaitable[Bot]], *,
                  mattermost: dict[str, Any] | None = None,
                  overrides: dict[str, Any] | None = None, fake: dict[str, Any] | None = None,
                  users: tuple[str, ...] = PEOPLE, startup_wait: float = 5.0,
                  start: bool = True) -> AsyncIterator[Stack]:
    """Start the whole stack; ``mattermost`` overrides the adapter's config section."""
    sample_handlers.RUNS.clear()
    fake_args = {"ping_interval": 0.5, "auth_timeout": 1.0, **(fake or {})}
    mm = FakeMattermost(users=users, channels=CHANNELS, **fake_args)
    await mm.start()
    section: dict[str, Any] = {
        "url": mm.url, "token": mm.bot_token, "team": mm.team.name,
        "channels": {"ops": "ops", "alerts": "~alerts"},
        **FAST, **(mattermost or {}),
    }
    section.setdefault("command_tokens", [command_token(t) for t in
                                          section.get("commands", {"shiftbot": None})])
    config = deep_merge({"people": people_by_username(*PEOPLE), "mattermost": section},
                        overrides or {})
    bot = await make_bot(config)
    http = attach_http(bot, "127.0.0.1", 0)
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=startup_wait)
    await http.start()
    bot.config.bot.http.public_url = http.url
    for trigger in bot.config.mattermost.commands:
        mm.add_command(trigger, http.url + "/mattermost/command", token=command_token(trigger))
    try:
        if start:
            await adapter.start()
        yield Stack(mm, bot, http, adapter)
    finally:
        await adapter.stop()
        await http.stop()
        await mm.close()
