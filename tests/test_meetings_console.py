"""The demo's meeting on the console (a simulated thread): a series that meets a minute after
start gives a reminder, then a report thread where `/reply N #topic ...` and `#action` lines
become the rendered report, printed in that thread."""

from __future__ import annotations

import io
from datetime import timedelta

from test_meetings_rig import MEETINGS, T0, at, clock

from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.schedule.service import ScheduleService

__all__ = ["clock"]  # fixture

DEMO = {"name": "demo-meeting", "title": "Demo meeting", "channel": "ops",
        "once_after_start": {"minutes": 1, "duration_minutes": 1}, "reminders": ["30s"],
        "mention": ["on-shift"], "report": {"auto_close_hours": 1, "mention": ["on-shift"]}}


async def test_demo_meeting_on_the_console(make_bot, clock) -> None:
    out = io.StringIO()
    bot = await make_bot({**MEETINGS, "meetings": {"series": [DEMO]}})
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out)
    await console.start()
    await bot.services.require(ScheduleService).started()
    await at(bot, clock, T0 + timedelta(seconds=31))
    await at(bot, clock, T0 + timedelta(minutes=2, seconds=1))
    assert out.getvalue().splitlines()[:3] == [
        "[#ops 1] Demo meeting in 30 seconds",  # on-shift: nobody holds it now, left out
        "2026-03-30 15:41 CEST, 1 minute.", "[#ops 2] Meeting report: Demo meeting"]
    for text in ("#topic Disks", "#action @bob order disks", "looks fine", "report close"):
        assert await console.thread_line(f"/reply 2 {text}")
        assert await bot.notices.idle(5)
    printed = out.getvalue()
    assert "[#ops > 2] Action item #2 for bob: order disks" in printed
    report = printed[printed.index("[#ops > 2] Meeting report: Demo meeting"):].splitlines()
    assert report[1:12] == [
        "Demo meeting, 2026-03-30 15:41 CEST, closed by alice.", "", "Topics", "* Disks",
        "  - ACTION #2 bob: order disks (alice)", "", "Action items", "bob",
        "  - #2 order disks", "", "1 discussion reply."]
    assert report[12].startswith("[#ops 2 updated] Meeting report: Demo meeting")
