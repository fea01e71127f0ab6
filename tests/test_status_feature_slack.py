"""Status notices on Slack (the loopback FakeSlack, real HTTP): the alert mentions the shifters
and carries Details and Ack buttons; a click on Ack runs `status ack` as the clicker and the alert
is updated; the recovery goes into the alert's thread and the alert says it recovered."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import deep_merge
from fakes.slack import FakeSlack
from slack_rig import ALICE, BOB, GENERAL, SHIFTERS, buttons, slack
from test_status_feature_rig import SCRIPT, STATUS_ROLES, _fresh_script, scripted

from bot import clock
from bot.adapters.slack import SlackAdapter
from bot.core import Bot
from bot.runtime import attach_http
from bot.status.config import StatusConfig
from bot.status.model import Level
from bot.status.service import StatusService

__all__ = ["_fresh_script", "slack"]  # fixtures


@pytest.fixture
async def slack_bot(make_bot: Any, slack: FakeSlack) -> AsyncIterator[tuple[Bot, str]]:
    section = {"mode": "http", "bot_token": slack.bot_token, "app_token": slack.app_token,
               "signing_secret": slack.signing_secret, "api_url": slack.api_url,
               "channels": {"ops": "#shifters", "alerts": GENERAL},
               "ping_interval_seconds": 0.2, "request_timeout_seconds": 1}
    bot = await make_bot(deep_merge(STATUS_ROLES, {"slack": section}), start_handlers=False)
    bot.config.feature_sections["status"] = StatusConfig.model_construct(
        checks=[scripted("disk", runbook="https://wiki.example/disk")], channel="ops",
        mention=["shifters"], notify_after=1, margin_seconds=0.5)
    await bot.start_handlers()
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.slack is not None
    adapter = SlackAdapter(bot, bot.config.slack)
    await http.start()
    await adapter.start()
    await bot.notices.start()
    try:
        yield bot, f"{http.url}/slack/events"
    finally:
        await adapter.stop()
        await http.stop()


async def result(bot: Bot, level: Level, minutes: int) -> None:
    """The check answers ``level`` at its instant ``minutes`` from now; notices delivered."""
    SCRIPT["disk"] = level
    service = bot.services.require(StatusService)
    task = await service.tick(clock.utcnow() + timedelta(minutes=minutes))
    assert task is not None
    await task
    assert await bot.notices.idle(5)


async def test_alert_ack_and_recovery_on_slack(slack_bot: tuple[Bot, str],
                                               slack: FakeSlack) -> None:
    bot, url = slack_bot
    await result(bot, Level.OK, 0)
    assert slack.messages("shifters") == []
    await result(bot, Level.CRITICAL, 1)
    (alert,) = slack.messages("shifters")
    assert f"<@{ALICE}> <@{BOB}>" in (alert.text or "")
    assert "DISK CRITICAL - scripted" in (alert.text or "")
    labels = {b["text"]["text"]: b for b in buttons(alert.blocks).values()}
    assert set(labels) == {"Details", "Ack", "Runbook"}
    assert "disk" not in str(labels["Ack"]["value"])  # the command stays server-side

    await slack.deliver(url, slack.signed_block_actions(
        labels["Ack"]["action_id"], user_id=BOB, channel_id=SHIFTERS, message_ts=alert.ts))
    (answer,) = await slack.wait_for("response_url")
    assert "bob acknowledged disk (CRITICAL)" in answer.params["text"]
    assert await bot.notices.idle(5)
    acked = slack.message("shifters", alert.ts)
    assert acked is not None and "Acknowledged by bob" in (acked.text or "")
    assert {b["text"]["text"] for b in buttons(acked.blocks).values()} == {"Details", "Runbook"}

    await result(bot, Level.OK, 2)
    (recovery,) = slack.messages("shifters", thread_ts=alert.ts)
    assert re.search(r"OK again after \d+s of CRITICAL \(since", recovery.text or "")
    recovered = slack.message("shifters", alert.ts)
    assert recovered is not None and "Recovered: CRITICAL from" in (recovered.text or "")
    assert len(recovered.edits) == 2  # acknowledged, then recovered
