"""The handover through the real adapters against the loopback fakes: on Slack and on
Mattermost the handover is posted mentioning the incoming shifter, with an Acknowledge button;
a click by someone else is refused and changes nothing, a click by the incoming shifter
acknowledges (the post is updated, the button gone) and the escalation never comes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import deep_merge
from fakes.mattermost import FakeMattermost
from fakes.slack import FakeSlack
from mattermost_harness import CHANNELS, FAST, PEOPLE, command_token, people_by_username
from slack_rig import ALICE, BOB, GENERAL, SHIFTERS, buttons, slack
from test_shifts_rig import HANDOVER, SHIFTS, clock
from test_status_feature_mattermost import actions, text

from bot.adapters.mattermost import MattermostAdapter
from bot.adapters.slack import SlackAdapter
from bot.clock import ManualClock
from bot.core import Bot
from bot.runtime import attach_http
from bot.schedule.service import ScheduleService

__all__ = ["clock", "slack"]  # fixtures

# alice takes over from dave at HANDOVER (the rig's rota); dave has no chat account here
SECOND = timedelta(seconds=1)


async def fire_at(bot: Bot, clock: ManualClock, when: datetime) -> None:
    clock.now = when
    await bot.services.require(ScheduleService).plan()
    assert await bot.notices.idle(5)


@pytest.fixture
async def slack_bot(make_bot: Any, slack: FakeSlack, clock: ManualClock
                    ) -> AsyncIterator[tuple[Bot, str]]:
    section = {"mode": "http", "bot_token": slack.bot_token, "app_token": slack.app_token,
               "signing_secret": slack.signing_secret, "api_url": slack.api_url,
               "channels": {"ops": "#shifters", "alerts": GENERAL},
               "ping_interval_seconds": 0.2, "request_timeout_seconds": 1}
    bot = await make_bot(deep_merge(SHIFTS, {"slack": section}))
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.slack is not None
    adapter = SlackAdapter(bot, bot.config.slack)
    await http.start()
    await adapter.start()
    await bot.notices.start()
    await bot.services.require(ScheduleService).started()
    try:
        yield bot, f"{http.url}/slack/events"
    finally:
        await adapter.stop()
        await http.stop()


async def test_handover_acknowledged_on_slack(slack_bot: tuple[Bot, str], slack: FakeSlack,
                                              clock: ManualClock) -> None:
    bot, url = slack_bot
    await fire_at(bot, clock, HANDOVER + SECOND)
    (handover,) = [m for m in slack.messages("shifters") if "dave → alice" in (m.text or "")]
    assert f"<@{ALICE}>" in (handover.text or "")
    labels = {b["text"]["text"]: b for b in buttons(handover.blocks).values()}
    assert set(labels) == {"Acknowledge"}
    assert "shift" not in str(labels["Acknowledge"]["value"])  # the command stays server-side
    action_id = labels["Acknowledge"]["action_id"]

    await slack.deliver(url, slack.signed_block_actions(
        action_id, user_id=BOB, channel_id=SHIFTERS, message_ts=handover.ts))
    (refusal,) = await slack.wait_for("response_url")
    assert "only alice (the incoming shifter)" in refusal.params["text"]
    assert await bot.notices.idle(5)
    assert slack.message("shifters", handover.ts).edits == []  # type: ignore[union-attr]

    await slack.deliver(url, slack.signed_block_actions(
        action_id, user_id=ALICE, channel_id=SHIFTERS, message_ts=handover.ts))
    answers = await slack.wait_for("response_url", count=2)
    assert "alice acknowledged shift from Mon 2026-03-30 09:00 CEST" in answers[1].params["text"]
    assert await bot.notices.idle(5)
    acked = slack.message("shifters", handover.ts)
    assert acked is not None and "Acknowledged by alice at 09:00 CEST" in (acked.text or "")
    assert buttons(acked.blocks) == {}

    await fire_at(bot, clock, HANDOVER + timedelta(minutes=31))
    assert slack.messages("shifters", thread_ts=handover.ts) == []  # no escalation


@pytest.fixture
async def mm_bot(make_bot: Any, clock: ManualClock
                 ) -> AsyncIterator[tuple[Bot, FakeMattermost, str]]:
    mm = FakeMattermost(users=PEOPLE, channels=CHANNELS, ping_interval=0.5, auth_timeout=1.0)
    await mm.start()
    section: dict[str, Any] = {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                               "channels": {"ops": "shifters", "alerts": "~alerts"},
                               "command_tokens": [command_token("shiftbot")], **FAST}
    bot = await make_bot(deep_merge(SHIFTS, {"people": people_by_username(*PEOPLE),
                                             "mattermost": section}), start_handlers=False)
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.mattermost is not None
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=5.0)
    await http.start()
    bot.config.bot.http.public_url = http.url
    await bot.start_handlers()
    await adapter.start()
    await bot.notices.start()
    await bot.services.require(ScheduleService).started()
    try:
        yield bot, mm, http.url + "/mattermost/action"
    finally:
        await adapter.stop()
        await http.stop()
        await mm.close()


async def test_handover_acknowledged_on_mattermost(mm_bot: tuple[Bot, FakeMattermost, str],
                                                   clock: ManualClock) -> None:
    bot, mm, url = mm_bot
    await fire_at(bot, clock, HANDOVER + SECOND)
    (handover,) = [p for p in mm.posts("shifters") if "dave → alice" in text(p)]
    assert handover["root_id"] == "" and "@alice" in text(handover)
    labels = actions(handover)
    assert set(labels) == {"Acknowledge"}
    assert labels["Acknowledge"]["integration"]["url"] == url
    assert "shift" not in str(labels["Acknowledge"]["integration"]["context"])

    refused = await mm.click(None, handover["id"], labels["Acknowledge"]["id"], "bob")
    assert refused.status == 200, refused.error
    (refusal,) = await mm.wait_for(lambda: [p for p in mm.ephemeral_posts("bob")
                                             if "only alice" in text(p)], 5)
    assert refusal["root_id"] == handover["id"]  # shown to bob alone, in the thread
    assert "Acknowledged" not in text(mm.post(handover["id"]))

    clicked = await mm.click(None, handover["id"], labels["Acknowledge"]["id"], "alice")
    assert clicked.status == 200, clicked.error
    await mm.wait_for_post(predicate=lambda p: "alice acknowledged shift" in p["message"],
                           timeout=5)
    assert await bot.notices.idle(5)
    acked = await mm.wait_for(lambda: [p for p in [mm.post(handover["id"])]
                                       if "Acknowledged by alice" in text(p)], 5)
    assert actions(acked[0]) == {}

    await fire_at(bot, clock, HANDOVER + timedelta(minutes=31))
    assert [p["id"] for p in mm.thread(handover["id"])
            if "Not acknowledged" in text(p)] == []
