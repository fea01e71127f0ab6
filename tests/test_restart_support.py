"""Shared pieces of the restart tests (no tests here): the config, a bot with a notice platform,
asking and deciding a restart, reading the runs and the audit."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from conftest import CORE_HANDLERS, console
from notice_platform import FakePlatform

from bot.core import Bot, Outcome, OutcomeStatus
from bot.markup import plain
from bot.render import render_text
from bot.reply import Choice
from bot.restart import store

REPO = Path(__file__).resolve().parent.parent
HANDLERS = [*CORE_HANDLERS, "handlers.restart", "handlers.restart_gitlab"]
TRIGGER_TOKEN = "glptt-0123456789abcdef0123"
# Shifters may restart, but only with an expert's approval (the GWCelery runbook); experts
# confirm their own; viewers list.
ROLES: dict[str, Any] = {
    "viewer": {"allow": ["help", "restart"]},
    "shifter": {"inherits": ["viewer"], "allow": ["restart.*", "audit"],
                "approval": {"restart.*": "expert"}},
    "expert": {"inherits": ["shifter"], "allow": ["restart.*", "audit"]},
}

# A tiny program: prints its arguments one per line and, if asked, its environment; exits
# with the code given as STATUS=N.
ECHO_ARGS = """\
import os, sys, time
args = sys.argv[1:]
for a in args:
    print("arg:" + a)
if "--env" in args:
    for k in sorted(os.environ):
        print("env:" + k + "=" + os.environ[k])
if "--sleep" in args:
    time.sleep(float(args[args.index("--sleep") + 1]))
code = next((int(a[7:]) for a in args if a.startswith("STATUS=")), 0)
sys.exit(code)
"""


def echo_program(tmp_path: Path) -> Path:
    script = tmp_path / "echo-args.py"
    script.write_text(ECHO_ARGS)
    wrapper = tmp_path / "echo-args"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def command_target(program: Path, **overrides: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "type": "command", "description": "pretend to restart a component",
        "argv": [str(program), "--component", "{component}"],
        "params": {"component": {"choices": ["worker", "beat", "flower"],
                                 "default": "worker"}},
        "timeout_seconds": 10,
    }
    target.update(overrides)
    return target


def restart_config(targets: dict[str, Any], *, gitlab: dict[str, Any] | None = None,
                   **section: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "bot": {"handlers": HANDLERS},
        "roles": ROLES,
        "restart": {"cooldown_seconds": 0, "channel": "ops", "poll_seconds": 0.02,
                    "poll_max_seconds": 0.1, "targets": targets, **section},
        "notices": {"poll_seconds": 0.05},
    }
    if gitlab is not None:
        raw["gitlab"] = gitlab
    return raw


async def with_platform(bot: Bot) -> FakePlatform:
    platform = FakePlatform("fake", {"ops": "C-OPS", "alerts": "C-ALERTS"})
    bot.platforms["fake"] = platform
    await bot.notices.start()
    return platform


def text(outcome: Outcome) -> str:
    return plain(render_text(outcome.reply, "console"))


async def confirm(bot: Bot, who: str, line: str) -> Outcome:
    """Ask as ``who`` and confirm; an approval, if needed, is left pending."""
    asked = await bot.handle(console(who, line, "ops"))
    if asked.status != OutcomeStatus.PENDING:
        return asked
    return await bot.decide(console(who, "", "ops"), asked.request_id or "", Choice.CONFIRM)


async def runs(bot: Bot, target: str) -> list[store.Run]:
    def query(conn: Any) -> list[store.Run]:
        rows = conn.execute(store.runs.select().where(store.runs.c.target == target)
                            .order_by(store.runs.c.id))
        return [store._run(row) for row in rows]

    return await bot.database.run(query)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (briefly, in small real steps) until ``predicate()`` (sync or async) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def finished_run(bot: Bot, target: str, timeout: float = 10.0) -> store.Run:
    async def done() -> bool:
        found = await runs(bot, target)
        return bool(found) and found[-1].finished

    await until(done, timeout)
    return (await runs(bot, target))[-1]


async def follow_ups(bot: Bot) -> list[Any]:
    entries = await bot.audit.query(command_glob="restart", limit=100)
    return [e for e in entries if e.decision == "follow-up"]
