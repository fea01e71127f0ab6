"""A meeting-report thread on Mattermost (the loopback FakeMattermost, real websocket and REST):
the report thread opens when the meeting ends, replies in it (``root_id``) with markers are
recorded, ``report close`` typed in the thread posts the rendered report there."""

from __future__ import annotations

from datetime import timedelta

from mattermost_harness import running
from test_meetings_rig import END, MEETINGS, START, at, clock, items_recorded

from bot.schedule.service import ScheduleService

__all__ = ["clock"]  # fixture


async def test_report_thread_on_mattermost(make_bot, clock) -> None:
    async with running(make_bot, overrides=MEETINGS) as st:
        mm, bot = st.mm, st.bot
        await bot.notices.start()
        try:
            await bot.services.require(ScheduleService).started()
            await at(bot, clock, START - timedelta(minutes=10))
            await at(bot, clock, END + timedelta(seconds=5))
            [reminder, opening] = mm.posts("ops")
            assert "WMCore weekly in 10 minutes" in str(reminder["props"]) + reminder["message"]
            assert "@alice @bob" in opening["message"]
            root = opening["id"]
            lines = [("alice", "#topic Disks"), ("bob", "#info T1 at 95%"),
                     ("alice", "#action @bob order disks"), ("carol", "#action check FTS"),
                     ("carol", "#undo"), ("bob", "ok by me")]
            for n, (person, text) in enumerate(lines, start=1):
                await mm.post_as(person, "ops", text, root_id=root)
                await items_recorded(bot, n - (1 if n > 4 else 0))
            await mm.wait_for_post("ops", user=mm.bot, timeout=5, predicate=lambda p: (
                p["root_id"] == root and "Removed action" in p["message"]))
            await mm.post_as("alice", "ops", "report close", root_id=root)
            report = await mm.wait_for_post("ops", user=mm.bot, timeout=5, predicate=lambda p: (
                p["root_id"] == root and "Action items" in p["message"]))
            text = report["message"]
            assert "**Meeting report: WMCore weekly**" in text
            assert "ACTION #3 bob: order disks (alice)" in text
            assert "check FTS" not in text  # undone
            assert "Action items\nbob\n  - #3 order disks" in text
            assert "1 discussion reply." in text
        finally:
            await bot.notices.stop(0)
