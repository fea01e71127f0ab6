"""The console adapter through the real CLI: one-shot exit codes, persons, the REPL."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import BASE, deep_merge

from bot.adapters.console import ConsoleAdapter, ConsoleSession

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    raw = deep_merge(BASE, {"bot": {"database": f"sqlite:///{tmp_path / 'c.db'}",
                                    "console_person": "alice"}})
    path = tmp_path / "shiftbot.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def shiftbot(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run([sys.executable, "-m", "bot.cli", "console", "--config", str(config),
                           *args], capture_output=True, text=True, cwd=REPO, env=env,
                          input=stdin, timeout=60)


def test_one_shot_exit_codes(config_file: Path) -> None:
    ok = shiftbot(config_file, "-c", "sample echo hello")
    assert (ok.returncode, ok.stdout.strip()) == (0, "hello")
    assert shiftbot(config_file, "-c", "sample fail expected").returncode == 1
    assert shiftbot(config_file, "-c", "sample echo --times x y").returncode == 1
    denied = shiftbot(config_file, "--as", "dave", "-c", "sample wipe x")
    assert denied.returncode == 2 and "Not allowed" in denied.stdout
    anonymous = shiftbot(config_file, "--anonymous", "-c", "sample echo x")
    assert anonymous.returncode == 2
    assert shiftbot(config_file, "--anonymous", "-c", "help").returncode == 0


def test_approval_across_invocations(config_file: Path) -> None:
    asked = shiftbot(config_file, "--as", "alice", "-c", "sample restart gwcelery")
    assert asked.returncode == 3
    request_id = asked.stdout.strip().splitlines()[-1].removeprefix("request id: ")
    mine = shiftbot(config_file, "--as", "alice", "-c", f"approve {request_id}")
    assert mine.returncode == 2
    approved = shiftbot(config_file, "--as", "carol", "-c", f"approve {request_id}")
    assert approved.returncode == 0 and "restarted gwcelery" in approved.stdout


def test_unknown_person_is_an_error(config_file: Path) -> None:
    result = shiftbot(config_file, "--as", "zoe", "-c", "help")
    assert result.returncode == 1 and "no person 'zoe'" in result.stderr


def test_repl_confirms_and_switches_person(config_file: Path) -> None:
    lines = "sample wipe disk\nyes\n/as bob\nwhoami\n/anonymous\nsample echo x\n/quit\n"
    result = shiftbot(config_file, stdin=lines)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Confirm?" in out and "wiped disk" in out
    assert "Now acting as bob." in out and "You are bob" in out
    assert "Not allowed" in out


async def test_repl_cancel_in_process(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    answers = iter(["sample wipe disk", "no", "/channel ops", "/as nobody"])

    def read(_prompt: str) -> str:
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out, read_line=read)
    assert await console.repl() == 0
    text = out.getvalue()
    assert "Cancelled by alice" in text and "Now in channel ops." in text
    assert "No person 'nobody'" in text


def test_version_and_help() -> None:
    version = subprocess.run([sys.executable, "-m", "bot.cli", "--version"], capture_output=True,
                             text=True, cwd=REPO, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("shiftbot ")
    helptext = subprocess.run([sys.executable, "-m", "bot.cli", "--help"], capture_output=True,
                              text=True, cwd=REPO, timeout=30)
    assert "check-config" in helptext.stdout and "console" in helptext.stdout
