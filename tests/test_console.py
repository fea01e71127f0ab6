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


def _scripted(lines: list[str]):  # type: ignore[no-untyped-def]
    """A read_line that answers the confirmation prompt with ``confirm ID`` when it sees
    ``{id}`` in the script, filled from the prompt itself."""
    answers = iter(lines)

    def read(prompt: str) -> str:
        try:
            line = next(answers)
        except StopIteration:
            raise EOFError from None
        if "{id}" in line:
            request = prompt.split("Confirm request ", 1)[1].split("?", 1)[0]
            line = line.replace("{id}", request)
        return line

    return read


@pytest.mark.parametrize("answer", ["confirm {id}", "CONFIRM {id}", "yes", "y", "confirm"])
async def test_confirm_id_at_the_prompt_confirms(make_bot, answer: str) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out,
                             read_line=_scripted(["sample wipe disk", answer]))
    assert await console.repl() == 0
    assert "wiped disk" in out.getvalue() and "Cancelled" not in out.getvalue()


async def test_another_command_at_the_prompt_is_run_not_swallowed(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out,
                             read_line=_scripted(["sample wipe disk", "sample echo still here"]))
    assert await console.repl() == 0
    text = out.getvalue()
    assert "still here" in text and "is still waiting" in text and "wiped" not in text
    [request] = await bot.requests.list_pending()
    assert request.text == "sample wipe disk"


@pytest.mark.parametrize("answer", ["/quit", "/exit", "/q"])
async def test_quit_at_the_prompt_quits(make_bot, answer: str) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out, read_line=_scripted(
        ["sample wipe disk", answer, "sample echo after quit"]))
    assert await console.repl() == 0
    assert "after quit" not in out.getvalue() and "wiped" not in out.getvalue()


async def test_console_commands_at_the_prompt_are_not_lost(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out, read_line=_scripted(
        ["sample wipe disk", "/as bob", "whoami"]))
    assert await console.repl() == 0
    assert console.session.person == "bob"


def test_confirm_choice_words() -> None:
    from bot.adapters.console import confirm_choice
    from bot.reply import Choice

    assert confirm_choice("confirm abc123", "abc123") == Choice.CONFIRM
    assert confirm_choice("cancel abc123", "abc123") == Choice.CANCEL
    assert confirm_choice("", "abc123") == Choice.CANCEL
    assert confirm_choice(None, "abc123") == Choice.CANCEL
    assert confirm_choice("confirm zzz999", "abc123") is None  # another request: a command
    assert confirm_choice("condor q", "abc123") is None


def test_ctrl_c_at_the_prompt_exits_at_once(config_file: Path) -> None:
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "console", "--config",
                             str(config_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("sample wipe disk\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        seen = ""
        while "Confirm?" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        time.sleep(0.3)  # at the prompt now, with stdin still open
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(timeout=10)
        assert time.monotonic() - started < 5
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr and proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
