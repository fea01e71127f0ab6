"""``help`` answered before the database opens (bot/quickhelp.py) is the full path's answer.

Every case compares the quick answer with what the started bot (database, handlers' startup,
the rota's role provider) answers to the same line from the same person in the same channel;
the quick path may decline (None), never differ. The console one-shot is then run for real:
it prints the answer, audits it once the bot has started, and keeps its exit codes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot import clock
from bot.adapters.console import ConsoleSession, format_reply
from bot.config import load_config
from bot.lifecycle import Lifecycle
from bot.quickhelp import check_answer, console_help

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = ["alice", "bob", "carol", "dave", None]
CHANNELS = [None, "ops", "alerts"]
LINES = ["help", "HELP", "help condor", "help condor q", "help shift", "help shift ack",
         "help restart", "help nosuch", "help condor nosuch", "help status", "help help"]
# A Monday of the demo rota: someone is on shift (the on-shift role is handed out).
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _demo(tmp_path: Path, change: dict | None = None) -> Path:
    raw = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    raw["bot"]["database"] = f"sqlite:///{tmp_path / 'quick.db'}"
    for target in raw.get("restart", {}).get("targets", {}).values():
        if target.get("argv"):
            target["argv"][0] = str((ROOT / "config" / target["argv"][0]).resolve())
    raw.update(change or {})
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def _compare(path: Path, people: list[str | None], lines: list[str]) -> dict:
    """Per (person, channel, line): (quick answer or None, the started bot's answer)."""
    found = {}
    with clock.use_clock(lambda: NOW):
        quick_config = load_config(path)
        for person in people:
            for channel in CHANNELS:
                for line in lines:
                    inbound = ConsoleSession(person, channel).inbound(line)
                    answer = await console_help(quick_config, inbound)
                    found[person, channel, line] = [
                        None if answer is None else format_reply(answer.reply), None]
        life = Lifecycle(load_config(path), http=False, jobs=False)
        bot = await life.start()
        try:
            for (person, channel, line), pair in found.items():
                outcome = await bot.handle(ConsoleSession(person, channel).inbound(line))
                pair[1] = format_reply(outcome.reply)
        finally:
            await life.stop()
    return found


async def test_the_quick_answer_is_the_started_bots_answer(tmp_path: Path) -> None:
    found = await _compare(_demo(tmp_path), PEOPLE, LINES)
    for key, (quick, full) in found.items():
        if quick is not None:
            assert quick == full, key
    # It does answer: help for the console's person, and the errors and families too.
    assert found["alice", None, "help"][0] is not None
    assert found["dave", "ops", "help condor"][0] is not None
    assert found["alice", None, "help nosuch"][0] is not None
    # An unknown person may run help (baseline) and gets the same table as the bot gives.
    assert found[None, None, "help"][0] is not None


async def test_an_answer_a_dynamic_role_would_change_is_left_to_the_started_bot(
        tmp_path: Path) -> None:
    # on-shift now also allows restarts; bob is not a shifter here, so whether he sees
    # `restart` depends on the rota (the database's overrides): no quick answer for him.
    demo = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    roles = demo["roles"]
    roles["on-shift"]["allow"] = ["shift.ack", "restart.*"]
    change = {"roles": roles, "groups": {"shifters": ["alice"]}}
    found = await _compare(_demo(tmp_path, change), ["alice", "bob", "dave"], ["help"])
    assert found["bob", None, "help"][0] is None
    assert found["dave", None, "help"][0] is None  # rota or not: only the database knows
    for key, (quick, full) in found.items():
        assert quick is None or quick == full, key


@pytest.mark.parametrize("line", ["condor q", "whoami", "help --public", "help 'unclosed",
                                  "", "nosuch"])
async def test_other_lines_are_not_answered_early(tmp_path: Path, line: str) -> None:
    config = load_config(_demo(tmp_path))
    assert await console_help(config, ConsoleSession("alice").inbound(line)) is None


async def test_a_config_with_problems_is_not_answered_early(tmp_path: Path) -> None:
    path = _demo(tmp_path, {"shifts": {"channel": "nowhere"}})
    config = load_config(path)
    assert await console_help(config, ConsoleSession("alice").inbound("help")) is None


def _shiftbot(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_one_shot_console_answers_audits_and_keeps_its_exit_codes(tmp_path: Path) -> None:
    path = str(_demo(tmp_path))
    done = _shiftbot("console", "--config", path, "-c", "help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("Commands you may run here") == 1
    failed = _shiftbot("console", "--config", path, "-c", "help nosuch")
    assert failed.returncode == 1 and "No command 'nosuch'" in failed.stdout
    audit = _shiftbot("console", "--config", path, "--as", "carol", "-c", "audit --limit 5")
    rows = [line for line in audit.stdout.splitlines() if " alice " in line]
    assert any("help topic=nosuch" in row and "allowed: error" in row for row in rows), rows
    assert any(row.split()[4] == "help" and "allowed: ok" in row for row in rows), rows


def test_a_broken_config_prints_its_problems_and_no_help(tmp_path: Path) -> None:
    done = _shiftbot("console", "--config", str(_demo(tmp_path, {"shifts": {"channel": "x"}})),
                     "-c", "help")
    assert done.returncode == 1
    assert "Commands you may run here" not in done.stdout
    assert "shifts.channel" in done.stderr


async def test_an_undeclared_role_provider_is_reported_once_the_bot_has_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _demo(tmp_path)
    inbound = ConsoleSession("alice").inbound("help")
    answered = await console_help(load_config(path), inbound)
    assert answered is not None
    life = Lifecycle(load_config(path), http=False, jobs=False)
    bot = await life.start()
    try:
        assert await check_answer(bot, inbound, answered)  # as declared: the same answer
        # A module that hands out roles without declaring them in PROVIDES_ROLES:
        bot.gate.add_role_provider("undeclared", lambda caller: ["expert"])
        with caplog.at_level(logging.WARNING, logger="bot.quickhelp"):
            assert not await check_answer(bot, inbound, answered)
        assert "PROVIDES_ROLES" in caplog.text and "undeclared" in caplog.text
    finally:
        await life.stop()
