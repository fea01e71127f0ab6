"""Status checks' run times in /metrics (issue #16): one histogram sample per check run, by
check and level, periodic and on demand alike."""

from __future__ import annotations

from typing import Any

from test_status_feature_rig import SCRIPT, _fresh_script, clock, scripted, status_rig

from bot.clock import ManualClock
from bot.status.model import Level

__all__ = ["_fresh_script", "clock"]  # fixtures


async def test_each_check_run_is_timed_by_check_and_level(make_bot: Any,
                                                          clock: ManualClock) -> None:
    rig = await status_rig(make_bot, [scripted("disk"), scripted("queue")])
    SCRIPT["queue"] = Level.CRITICAL
    await rig.tick()  # periodic: both checks run once
    out = await rig.run("status")  # on demand: both again
    assert "queue" in out, out
    text = rig.bot.metrics.exposition().decode()
    assert 'shiftbot_check_seconds_count{check="disk",level="OK"} 2.0' in text, text[-1500:]
    assert 'shiftbot_check_seconds_count{check="queue",level="CRITICAL"} 2.0' in text
