"""`restart TARGET` with command targets, end to end through the dispatcher: the gate per
target (confirmation, an expert's approval for shifters), parameters that cannot inject
anything, the child's minimal environment, timeouts, cooldown, one restart per target across
two bots on one database, the preview (--dry-run) and `restart list`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import console
from test_restart_support import (
    REPO,
    command_target,
    confirm,
    echo_program,
    follow_ups,
    restart_config,
    runs,
    text,
)

from bot import parser
from bot.clock import ManualClock, use_clock
from bot.commands import Context
from bot.core import Bot, OutcomeStatus
from bot.reply import Choice


@pytest.fixture
def program(tmp_path: Path) -> Path:
    return echo_program(tmp_path)


async def test_an_expert_confirms_and_the_command_runs(make_bot: Any, program: Path) -> None:
    bot: Bot = await make_bot(restart_config({"demo": command_target(program)}))
    done = await confirm(bot, "carol", "restart demo component=beat")
    assert done.status == OutcomeStatus.OK, text(done)
    shown = text(done)
    assert "arg:--component" in shown and "arg:beat" in shown
    [run] = await runs(bot, "demo")
    assert (run.status, run.person, run.detail.split(" in ")[0]) == ("success", "carol", "exit 0")
    [audited] = await follow_ups(bot)
    assert (audited.person, audited.outcome) == ("carol", "ok")
    assert "run 1 of demo: success" in (audited.detail or "")


async def test_a_shifter_needs_an_experts_approval(make_bot: Any, program: Path) -> None:
    bot: Bot = await make_bot(restart_config({"demo": command_target(program)}))
    waiting = await confirm(bot, "alice", "restart demo")
    assert waiting.status == OutcomeStatus.PENDING and "expert" in text(waiting)
    assert await runs(bot, "demo") == []  # nothing ran on the shifter's confirmation alone
    refused = await bot.decide(console("bob", ""), waiting.request_id, Choice.APPROVE)
    assert refused.status == OutcomeStatus.DENIED  # another shifter may not approve
    approved = await bot.decide(console("carol", ""), waiting.request_id, Choice.APPROVE)
    assert approved.status == OutcomeStatus.OK, text(approved)
    [run] = await runs(bot, "demo")
    assert run.person == "alice" and run.status == "success"


async def test_the_permission_is_per_target(make_bot: Any, program: Path) -> None:
    config = restart_config({"demo": command_target(program), "other": command_target(program)})
    config["roles"] = {**config["roles"],
                       "shifter": {"inherits": ["viewer"], "allow": ["restart.demo"]}}
    bot: Bot = await make_bot(config)
    assert (await bot.handle(console("alice", "restart demo"))).status == OutcomeStatus.PENDING
    denied = await bot.handle(console("alice", "restart other"))
    assert denied.status == OutcomeStatus.DENIED and "restart.other" in text(denied)
    viewer = await bot.handle(console("dave", "restart demo", "ops"))
    assert viewer.status == OutcomeStatus.DENIED


@pytest.mark.parametrize("line", [
    "restart demo component=-x",
    "restart demo component=--all",
    "restart demo component=A;rm",
    "restart demo 'component=worker;rm -rf /'",
    "restart demo component=$(id)",
    "restart demo component=`id`",
    "restart demo component=w\u043erker",  # Cyrillic o
    "restart demo component=\uff57orker",  # full-width w
    "restart demo 'component=worker\nid'",
    "restart demo component=worker\nid",
    "restart demo component=" + "w" * 400,
    "restart demo component=" + "w" * 5000,
    "restart demo colour=red",
    "restart demo c\u043emponent=worker",
    "restart demo component=worker component=beat",
    "restart demo ../../bin/sh",
    "restart ../demo",
    "restart demo* component=worker",
])
async def test_injection_attempts_are_refused_and_nothing_runs(make_bot: Any, program: Path,
                                                               line: str) -> None:
    bot: Bot = await make_bot(restart_config({"demo": command_target(program)}))
    outcome = await bot.handle(console("carol", line, "ops"))
    assert outcome.status in (OutcomeStatus.ERROR, OutcomeStatus.USAGE), text(outcome)
    assert outcome.request_id is None  # nobody is asked to confirm it
    message = text(outcome)
    assert "Traceback" not in message and len(message.splitlines()[0]) < 400
    assert await runs(bot, "demo") == []


async def test_the_child_gets_a_minimal_environment(make_bot: Any, program: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-children")
    monkeypatch.setenv("RESTART_API_KEY", "s3cr3t-api-key-value")
    monkeypatch.setenv("LC_SMUGGLED", "s3cr3t-api-key-value")  # a secret under a kept name
    target = command_target(program, argv=[str(program), "{component}", "--env"],
                            environment={"API_KEY": "${RESTART_API_KEY}", "MODE": "demo"},
                            output_lines=200)
    bot: Bot = await make_bot(restart_config({"demo": target}))
    done = await confirm(bot, "carol", "restart demo")
    shown = text(done)
    assert done.status == OutcomeStatus.OK, shown
    names = {line.split("=")[0][4:] for line in shown.splitlines() if line.startswith("env:")}
    assert {"PATH", "API_KEY", "MODE"} <= names
    assert not names & {"SLACK_BOT_TOKEN", "RESTART_API_KEY", "LC_SMUGGLED"}, names
    assert "env:API_KEY=***" in shown and "s3cr3t" not in shown


async def test_a_command_past_its_timeout_is_killed(make_bot: Any, program: Path) -> None:
    target = command_target(program, argv=[str(program), "{component}", "--sleep", "30"],
                            timeout_seconds=0.5)
    bot: Bot = await make_bot(restart_config({"demo": target}))
    started = time.monotonic()
    done = await confirm(bot, "carol", "restart demo")
    assert time.monotonic() - started < 8
    assert done.status == OutcomeStatus.ERROR and "timeout" in text(done)
    [run] = await runs(bot, "demo")
    assert run.status == "timeout"
    assert [e.outcome for e in await follow_ups(bot)] == ["timeout"]


async def test_a_failing_command_is_reported_as_failed(make_bot: Any, program: Path) -> None:
    target = command_target(program, argv=[str(program), "{component}", "STATUS=3"])
    bot: Bot = await make_bot(restart_config({"demo": target}))
    done = await confirm(bot, "carol", "restart demo")
    assert done.status == OutcomeStatus.ERROR and "exit 3" in text(done)
    assert (await runs(bot, "demo"))[0].status == "failed"
    assert [e.outcome for e in await follow_ups(bot)] == ["error"]


async def test_cooldown_per_target(make_bot: Any, program: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    config = restart_config({"demo": command_target(program),
                             "other": command_target(program)}, cooldown_seconds=600)
    with use_clock(clock):
        bot: Bot = await make_bot(config)
        assert (await confirm(bot, "carol", "restart demo")).status == OutcomeStatus.OK
        clock.advance(300)
        again = await bot.handle(console("carol", "restart demo", "ops"))
        assert again.status == OutcomeStatus.ERROR and again.request_id is None
        assert "cools down until" in text(again)
        other = await confirm(bot, "carol", "restart other")  # per target
        assert other.status == OutcomeStatus.OK
        clock.advance(301)
        assert (await confirm(bot, "carol", "restart demo")).status == OutcomeStatus.OK


async def test_cooldown_is_checked_again_when_the_request_is_confirmed(
        make_bot: Any, program: Path) -> None:
    config = restart_config({"demo": command_target(program)}, cooldown_seconds=600)
    bot: Bot = await make_bot(config)
    first = await bot.handle(console("carol", "restart demo", "ops"))
    second = await bot.handle(console("erin", "restart demo", "ops"))
    assert await bot.decide(console("carol", ""), first.request_id, Choice.CONFIRM)
    late = await bot.decide(console("erin", ""), second.request_id, Choice.CONFIRM)
    assert late.status == OutcomeStatus.ERROR and "cools down" in text(late)
    assert len(await runs(bot, "demo")) == 1


async def test_one_restart_per_target_across_two_bots(make_bot: Any, make_config: Any,
                                                      program: Path) -> None:
    """Two bots on one SQLite file (two processes' worth of claims): confirmed at the same
    moment, one restart runs, the other is refused, however the race goes."""
    target = command_target(program, argv=[str(program), "{component}", "--sleep", "0.5"])
    config = make_config(restart_config({"demo": target}))
    first: Bot = await make_bot(config=config)
    second: Bot = await make_bot(config=config)
    assert first.claims.owner != second.claims.owner
    for _ in range(3):
        asked = [await bot.handle(console(who, "restart demo", "ops"))
                 for bot, who in ((first, "carol"), (second, "erin"))]
        results = await asyncio.gather(
            first.decide(console("carol", ""), asked[0].request_id, Choice.CONFIRM),
            second.decide(console("erin", ""), asked[1].request_id, Choice.CONFIRM))
        statuses = sorted(r.status for r in results)
        assert statuses == [OutcomeStatus.ERROR, OutcomeStatus.OK], [text(r) for r in results]
        assert "under way" in text(next(r for r in results if r.status == OutcomeStatus.ERROR))
    assert [r.status for r in await runs(first, "demo")] == ["success"] * 3


async def test_the_preview_shows_exactly_what_would_run(make_bot: Any, program: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTART_API_KEY", "s3cr3t-api-key-value")
    target = command_target(program, environment={"API_KEY": "${RESTART_API_KEY}"})
    bot: Bot = await make_bot(restart_config({"demo": target}))
    parsed = parser.parse(bot.registry, "restart demo component=flower")
    caller = bot.directory.caller(console("carol", "", "ops"))
    plan = await parsed.spec.plan(Context(bot, caller, parsed.spec, parsed.args, "t-1"))
    assert plan.summary == "restarts demo: runs echo-args --component flower (at most 10 s)"
    lines = "\n".join(plan.details)
    assert f'argv: ["{program}", "--component", "flower"] (no shell)' in lines
    assert "(no shell)" in lines and "API_KEY=***" in lines and "s3cr3t" not in lines
    assert dict(plan.resolved)["params"] == ["component=flower"]
    asked = await bot.handle(console("carol", "restart demo component=flower", "ops"))
    assert "--component" in text(asked) and "API_KEY=***" in text(asked)
    assert await runs(bot, "demo") == []


@pytest.mark.skipif("dry-run" not in parser.GLOBAL_FLAGS,
                    reason="the core's --dry-run hook is not merged yet (see the restart report)")
async def test_dry_run_needs_no_confirmation_and_runs_nothing(make_bot: Any,
                                                              program: Path) -> None:
    bot: Bot = await make_bot(restart_config({"demo": command_target(program)}))
    for who in ("carol", "alice"):  # an expert, and a shifter whose restart needs approval
        preview = await bot.handle(console(who, "restart demo component=beat --dry-run", "ops"))
        assert preview.status == OutcomeStatus.OK and preview.request_id is None, text(preview)
        assert '"--component", "beat"]' in text(preview)
    denied = await bot.handle(console("dave", "restart demo --dry-run", "ops"))
    assert denied.status == OutcomeStatus.DENIED
    assert await runs(bot, "demo") == []


async def test_restart_list(make_bot: Any, program: Path) -> None:
    bot: Bot = await make_bot(restart_config({"demo": command_target(program)},
                                             cooldown_seconds=600))
    before = text(await bot.handle(console("dave", "restart list", "ops")))
    assert "demo (command): pretend to restart a component" in before
    assert "component=worker|beat|flower (default worker)" in before and "never" in before
    assert "group shifters [alice, bob] (role shifter) (with approval by role expert)" in before
    assert "carol (role expert)" in before
    await confirm(bot, "carol", "restart demo")
    after = text(await bot.handle(console("dave", "restart list", "ops")))
    assert "by carol: success (exit 0" in after and "cooling down until" in after


async def test_the_demo_script_as_a_target(make_bot: Any) -> None:
    target = {"type": "command", "description": "the demo's pretend restart",
              "argv": [str(REPO / "scripts/demo-restart.sh"), "{component}"],
              "params": {"component": {"choices": ["worker", "beat"], "default": "worker"}},
              "timeout_seconds": 30}
    bot: Bot = await make_bot(restart_config({"gwcelery-demo": target}))
    done = await confirm(bot, "carol", "restart gwcelery-demo component=beat")
    assert done.status == OutcomeStatus.OK, text(done)
    assert "gwcelery beat restarted" in text(done)
