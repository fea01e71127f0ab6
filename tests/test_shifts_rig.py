"""Shared by the shift tests: a bot with handlers.schedule and handlers.shifts on the console
platform and a manual clock, a weekly rota (alice, bob, dave; Monday 09:00 Europe/Zurich) and
roles where ``on-shift`` alone grants ``sample.slow``.

At T0 (Friday 27 March 2026) dave is on shift; Monday 30 March 09:00 CEST (07:00 UTC, the first
Monday of summer time) he hands over to alice; bob follows on 6 April."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CORE_HANDLERS, deep_merge

from bot import clock as bot_clock
from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.identity import Caller
from bot.schedule.service import ScheduleService

T0 = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
HEADS_UP = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET
HANDOVER = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST
NEXT_HANDOVER = datetime(2026, 4, 6, 7, 0, tzinfo=UTC)

ROTA: dict[str, Any] = {"people": ["alice", "bob", "dave"], "period": "1w",
                        "start_date": "2026-01-05", "handover_day": "monday",
                        "handover_time": "09:00", "zone": "Europe/Zurich"}

SHIFTS: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.schedule", "handlers.shifts"],
            "timezone": "Europe/Zurich"},
    "roles": {
        "viewer": {"allow": ["help", "whoami", "why", "who-can", "sample.echo", "sample.table",
                             "shift", "schedule"]},
        "shifter": {"inherits": ["viewer"],
                    "allow": ["sample.echo", "sample.restart", "audit", "shift.swap",
                              "shift.ack"],
                    "approval": {"sample.restart": "expert"}},
        "expert": {"inherits": ["shifter"], "allow": ["audit", "shift.override"]},
        "on-shift": {"description": "granted by the rota", "allow": ["shift.ack", "sample.slow"]},
    },
    "grants": [{"role": "shifter", "groups": ["shifters"]},
               {"role": "expert", "people": ["carol", "erin"]},
               {"role": "viewer", "people": ["dave"]}],
    "notices": {"poll_seconds": 0.05, "flush_timeout_seconds": 1},
    "schedule": {"lease_minutes": 2},
    "shifts": {"channel": "ops", "rota": ROTA, "heads_up_days": 2, "ack_minutes": 30,
               "fallback": ["shifters"], "grace_minutes": 60},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@dataclass
class Rig:
    bot: Bot
    console: ConsoleAdapter
    out: io.StringIO

    async def run(self, line: str, person: str | None = None) -> str:
        """Run a command line (or ``click ID``) on the console as ``person``."""
        if person is not None:
            self.console.session.person = person
        start = len(self.out.getvalue())
        await self.console.run_once(line)
        assert await self.bot.notices.idle(5)
        return self.out.getvalue()[start:]

    async def at(self, when: datetime) -> str:
        """Move the clock to ``when``, run a planning pass (due occurrences fire), and return
        what was printed meanwhile."""
        manual = _manual()
        assert when >= manual.now, "the clock only moves forward"
        manual.now = when
        start = len(self.out.getvalue())
        await self.bot.services.require(ScheduleService).plan()
        assert await self.bot.notices.idle(5)
        return self.out.getvalue()[start:]

    def caller(self, person: str) -> Caller:
        return Caller("console", person, self.bot.directory.people[person])

    def allowed(self, person: str, permission: str) -> bool:
        return self.bot.gate.check(self.caller(person), permission).allowed

    def button(self, label: str, text: str | None = None) -> str:
        """The id of the last button ``label`` printed (``[Label: click a...]``)."""
        found = re.findall(rf"\[{label}: click (a[0-9a-f]{{20}})\]", text or self.out.getvalue())
        assert found, f"no {label} button in the output"
        return found[-1]


def _manual() -> ManualClock:
    now = bot_clock._now  # the ManualClock the fixture installed
    assert isinstance(now, ManualClock)
    return now


async def shift_rig(make_bot: Any, overrides: dict[str, Any] | None = None,
                    person: str = "alice") -> Rig:
    """The bot after its first planning pass (nothing is due at T0)."""
    bot = await make_bot(deep_merge(SHIFTS, overrides or {}))
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession(person), out=out)
    await console.start()
    await bot.services.require(ScheduleService).started()
    assert await bot.notices.idle(5)
    return Rig(bot, console, out)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
