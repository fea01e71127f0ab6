"""Status notices on Mattermost (the loopback FakeMattermost, real HTTP and websocket): the alert
mentions the shifters and carries Details and Ack buttons; a click on Ack (the server's POST of
the button's signed integration context) runs `status ack` as the clicker and the alert post is
updated; the recovery goes into the alert's thread and the alert says it recovered."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import deep_merge
from fakes.mattermost import FakeMattermost
from mattermost_harness import CHANNELS, FAST, PEOPLE, command_token, people_by_username
from test_status_feature_rig import SCRIPT, STATUS_ROLES, _fresh_script, scripted

from bot import clock
from bot.adapters.mattermost import MattermostAdapter
from bot.core import Bot
from bot.runtime import attach_http
from bot.status.config import StatusConfig
from bot.status.model import Level
from bot.status.service import StatusService

__all__ = ["_fresh_script"]  # fixture


@pytest.fixture
async def mm_bot(make_bot: Any) -> AsyncIterator[tuple[Bot, FakeMattermost, str]]:
    mm = FakeMattermost(users=PEOPLE, channels=CHANNELS, ping_interval=0.5, auth_timeout=1.0)
    await mm.start()
    section: dict[str, Any] = {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                               "channels": {"ops": "shifters", "alerts": "~alerts"},
                               "command_tokens": [command_token("shiftbot")], **FAST}
    config = deep_merge(STATUS_ROLES, {"people": people_by_username(*PEOPLE),
                                       "mattermost": section})
    bot = await make_bot(config, start_handlers=False)
    bot.config.feature_sections["status"] = StatusConfig.model_construct(
        checks=[scripted("disk", runbook="https://wiki.example/disk")], channel="ops",
        mention=["shifters"], notify_after=1, margin_seconds=0.5)
    await bot.start_handlers()
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.mattermost is not None
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=5.0)
    await http.start()
    bot.config.bot.http.public_url = http.url
    await adapter.start()
    await bot.notices.start()
    try:
        yield bot, mm, http.url + "/mattermost/action"
    finally:
        await adapter.stop()
        await http.stop()
        await mm.close()


async def result(bot: Bot, level: Level, minutes: int) -> None:
    """The check answers ``level`` at its instant ``minutes`` from now; notices delivered."""
    SCRIPT["disk"] = level
    service = bot.services.require(StatusService)
    task = await service.tick(clock.utcnow() + timedelta(minutes=minutes))
    assert task is not None
    await task
    assert await bot.notices.idle(5)


def text(post: dict[str, Any]) -> str:
    """The message and its attachments' text, as a person would read it."""
    parts = [post.get("message") or ""]
    for attachment in post.get("props", {}).get("attachments") or []:
        parts += [str(attachment.get(k) or "") for k in ("pretext", "title", "text", "fallback")]
    return "\n".join(parts)


def actions(post: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The post's buttons by label."""
    return {a["name"]: a for att in post.get("props", {}).get("attachments") or []
            for a in att.get("actions") or []}


async def test_alert_ack_and_recovery_on_mattermost(
        mm_bot: tuple[Bot, FakeMattermost, str]) -> None:
    bot, mm, url = mm_bot
    await result(bot, Level.OK, 0)
    assert mm.posts("shifters") == []
    await result(bot, Level.CRITICAL, 1)
    (alert,) = mm.posts("shifters")
    assert alert["user_id"] == mm.bot.id and alert["root_id"] == ""
    assert "@alice @bob" in text(alert)
    assert r"DISK CRITICAL \- scripted" in text(alert)  # markdown-escaped
    labels = actions(alert)
    assert set(labels) == {"Details", "Ack"}
    ack = labels["Ack"]
    assert ack["integration"]["url"] == url
    assert "disk" not in str(ack["integration"]["context"])  # the command stays server-side

    clicked = await mm.click(None, alert["id"], ack["id"], "bob")
    assert clicked.status == 200, clicked.error
    answer = await mm.wait_for_post(predicate=lambda p: p["root_id"] == alert["id"]
                                    and "acknowledged disk" in p["message"], timeout=5)
    assert "bob acknowledged disk (CRITICAL)" in answer["message"]  # answered in the thread
    assert await bot.notices.idle(5)
    acked = await mm.wait_for(lambda: [p for p in [mm.post(alert["id"])]
                                       if "Acknowledged by bob" in text(p)], 5)
    assert set(actions(acked[0])) == {"Details"}

    await result(bot, Level.OK, 2)
    replies = [p for p in mm.thread(alert["id"]) if p["id"] not in (alert["id"], answer["id"])]
    (recovery,) = replies
    assert recovery["root_id"] == alert["id"]
    assert re.search(r"OK again after \d+s of CRITICAL \(since", text(recovery))
    recovered = mm.post(alert["id"])
    assert "Recovered: CRITICAL from" in text(recovered)
    assert [p["id"] for p in mm.posts("shifters")] == [alert["id"], answer["id"], recovery["id"]]
