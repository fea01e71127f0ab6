"""Shared by the status feature tests: a scripted check type (levels set by the test, a hang,
an exception), and a bot with the status feature, a console platform and a manual clock.

The checks are put in the validated ``status:`` section with ``model_construct``: the config's
union only knows the real check types, and these tests are about the feature, not the types."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from conftest import CORE_HANDLERS, deep_merge

from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.status.config import StatusConfig
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum
from bot.status.service import StatusService

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
HANG = "hang"
BOOM = "boom"

# name -> what its next run returns: a Level, HANG or BOOM (set by the tests)
SCRIPT: dict[str, Any] = {}
RUNS: list[tuple[str, int]] = []  # (check, id of the bot process that ran it)


class ScriptedCheck(CheckSpec):
    type: Literal["scripted"] = "scripted"
    renotify_minutes: float | None = None

    async def run(self, env: CheckEnv) -> CheckResult:
        RUNS.append((self.name, id(asyncio.get_running_loop())))
        what = SCRIPT.get(self.name, Level.OK)
        if what == HANG:
            await asyncio.Event().wait()
        if what == BOOM:
            raise RuntimeError("the plugin exploded")
        level = Level(what)
        previous = env.previous.state.get("runs", 0) if env.previous else 0
        return CheckResult(level, f"{self.name.upper()} {level.name} - scripted",
                           long_output="first detail\nsecond detail",
                           perfdata=(PerfDatum("used", 91.5, "%", "80", "90", 0, 100),),
                           state={"runs": previous + 1})


def scripted(name: str, **keys: Any) -> ScriptedCheck:
    return ScriptedCheck(name=name, **{"interval_seconds": 60, "timeout_seconds": 1, **keys})


STATUS_ROLES: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.status"]},
    "roles": {"viewer": {"allow": ["help", "whoami", "why", "who-can", "sample.echo",
                                   "sample.table", "status"]},
              "shifter": {"allow": ["sample.*", "audit", "status.ack", "status.silence"]}},
    "notices": {"poll_seconds": 0.05},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@pytest.fixture(autouse=True)
def _fresh_script() -> Iterator[None]:
    SCRIPT.clear()
    RUNS.clear()
    yield
    SCRIPT.clear()


@dataclass
class Rig:
    bot: Bot
    console: ConsoleAdapter
    out: io.StringIO

    @property
    def service(self) -> StatusService:
        return self.bot.services.require(StatusService)

    async def tick(self) -> None:
        """One tick of the scheduler's job, waiting for the batch it started."""
        task = await self.service.tick()
        if task is not None:
            await task
        assert await self.bot.notices.idle(5)

    async def run(self, line: str, person: str | None = None) -> str:
        """Run a command line on the console; returns what it printed."""
        if person is not None:
            self.console.session.person = person
        start = len(self.out.getvalue())
        await self.console.run_once(line)
        assert await self.bot.notices.idle(5)
        return self.out.getvalue()[start:]

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def take(self) -> str:
        """What was printed since the last take."""
        text = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        return text


async def status_rig(make_bot: Any, checks: list[CheckSpec], *, person: str = "alice",
                     overrides: dict[str, Any] | None = None, **settings: Any) -> Rig:
    bot = await make_bot(deep_merge(STATUS_ROLES, overrides or {}), start_handlers=False)
    bot.config.feature_sections["status"] = StatusConfig.model_construct(
        checks=checks, **{"channel": "ops", "mention": ["shifters"], "margin_seconds": 0.5,
                          **settings})
    await bot.start_handlers()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession(person), out=out)
    await console.start()
    return Rig(bot, console, out)
