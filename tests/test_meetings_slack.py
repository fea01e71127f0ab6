"""A meeting-report thread on Slack (the loopback FakeSlack, real signed Events API requests):
the report thread opens when the meeting ends, replies in it (``thread_ts``) with markers are
recorded, ``report close`` typed in the thread posts the rendered report there."""

from __future__ import annotations

from datetime import timedelta

from fakes.slack import FakeSlack
from slack_rig import ALICE, BOB, SHIFTERS, USERS
from test_meetings_rig import END, MEETINGS, START, at, clock, items_recorded

from bot.adapters.slack import SlackAdapter
from bot.core import Bot
from bot.runtime import attach_http
from bot.schedule.service import ScheduleService

__all__ = ["clock"]  # fixture


async def reply(slack: FakeSlack, url: str, user: str, text: str, thread: str) -> None:
    event = slack.message_event(text, user_id=user, channel_id=SHIFTERS, thread_ts=thread)
    assert (await slack.deliver(url, slack.signed_event(event))).status == 200


async def test_report_thread_on_slack(make_bot, clock) -> None:
    async with FakeSlack(users=USERS) as slack:
        section = {"mode": "http", "bot_token": slack.bot_token,
                   "signing_secret": slack.signing_secret, "api_url": slack.api_url,
                   "channels": {"ops": "#shifters"}, "request_timeout_seconds": 1}
        bot: Bot = await make_bot({**MEETINGS, "slack": section})
        http = attach_http(bot, "127.0.0.1", 0)
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        url = f"{http.url}/slack/events"
        try:
            await bot.notices.start()
            await bot.services.require(ScheduleService).started()
            await at(bot, clock, START - timedelta(minutes=10))
            await at(bot, clock, END + timedelta(seconds=5))
            [reminder, opening] = slack.messages(SHIFTERS)
            assert "WMCore weekly in 10 minutes" in (reminder.text or "")
            assert f"<@{ALICE}> <@{BOB}>" in (opening.text or "")
            for n, (user, text) in enumerate(((ALICE, "#topic Disks"),
                                              (BOB, "#info T1 at 95%"),
                                              (ALICE, f"#action <@{BOB}> order disks"),
                                              (BOB, "ok by me")), start=1):
                await reply(slack, url, user, text, opening.ts)
                await items_recorded(bot, n)
            await reply(slack, url, ALICE, "report close", opening.ts)
            await slack.wait_until(lambda: any("Action items" in (m.text or "") for m in
                                               slack.messages(SHIFTERS, thread_ts=opening.ts)),
                                   5, "the report in the thread")
            thread = [m.text or "" for m in slack.messages(SHIFTERS, thread_ts=opening.ts)]
            assert thread[0] == "Action item #3 for bob: order disks"
            report = thread[-1]
            assert "*Meeting report: WMCore weekly*" in report
            assert "* Disks\n  - INFO: T1 at 95% (bob)\n  - ACTION #3 bob: order disks " \
                   "(alice)" in report
            assert "Action items\nbob\n  - #3 order disks\n\n1 discussion reply." in report
        finally:
            await bot.notices.stop(0)
            await adapter.stop()
            await http.stop()
