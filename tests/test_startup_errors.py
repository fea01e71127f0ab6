"""What the operator must fix at startup is one clear line on stderr, never a traceback.

Each case runs the real CLI in a subprocess (``python -m bot.cli``) and checks the exit code,
that the error is said exactly once, with its key path, and that no traceback is printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BASE, CORE_HANDLERS, deep_merge

REPO = Path(__file__).resolve().parent.parent


def shiftbot(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60, stdin=subprocess.DEVNULL)


def write_config(tmp_path: Path, overrides: dict[str, Any]) -> Path:
    raw = deep_merge(BASE, {"bot": {"handlers": CORE_HANDLERS, "console_person": "alice",
                                    "database": f"sqlite:///{tmp_path / 'bot.db'}"}})
    path = tmp_path / "shiftbot.yaml"
    path.write_text(yaml.safe_dump(deep_merge(raw, overrides)))
    return path


def one_error(result: subprocess.CompletedProcess[str], expected: str) -> str:
    """The run failed with exactly one ``shiftbot: ...`` line, starting ``expected``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("shiftbot: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"shiftbot: {expected}"), errors[0]
    assert " ERROR " not in result.stderr and " CRITICAL " not in result.stderr, result.stderr
    return errors[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_run_on_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    path = write_config(tmp_path, {"bot": {"http": {"host": "127.0.0.1", "port": busy_port}}})
    line = one_error(shiftbot("run", "--config", str(path)),
                     f"bot.http.port: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "address already in use" in line.lower()


def test_unsupported_database_url(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"bot": {"database": "mysql://bot:pw@db/shiftbot"}})
    checked = shiftbot("check-config", "--config", str(path))
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0].startswith(
        "bot.database: Value error, unsupported database 'mysql://': only sqlite and "
        "postgresql are supported")
    for command in (["console", "-c", "help"], ["run"]):
        one_error(shiftbot(*command, "--config", str(path)),
                  "bot.database: Value error, unsupported database 'mysql://'")


def test_a_database_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    path = write_config(tmp_path, {"bot": {
        "database": f"sqlite:///{tmp_path / 'not-a-directory' / 'bot.db'}"}})
    for command in (["console", "-c", "help"], ["run"]):
        one_error(shiftbot(*command, "--config", str(path)), "bot.database: cannot use it: ")


def test_an_empty_config_file(tmp_path: Path) -> None:
    path = tmp_path / "shiftbot.yaml"
    path.write_text("# to be written\n")
    checked = shiftbot("check-config", "--config", str(path))
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == (
        f"the configuration file {path} is empty (start from config/shiftbot.example.yaml)")
    for command in (["console", "-c", "help"], ["run"]):
        one_error(shiftbot(*command, "--config", str(path)),
                  f"the configuration file {path} is empty")


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("bot:\n  name: caf\xe9bot\n".encode("latin-1"))
    expected = f"config file {path} is not UTF-8 text (byte 0xe9 at line 2) (save it as UTF-8)"
    checked = shiftbot("check-config", "--config", str(path))
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == expected
    for command in (["console", "-c", "help"], ["run"]):
        one_error(shiftbot(*command, "--config", str(path)), expected)


def test_an_unknown_handler_module(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"bot": {"handlers": [*CORE_HANDLERS, "handlers.nosuch"]}})
    expected = (f"bot.handlers[{len(CORE_HANDLERS)}]: no handler module 'handlers.nosuch' "
                "(check the module name and that its package is installed)")
    checked = shiftbot("check-config", "--config", str(path))
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == expected
    console = shiftbot("console", "--config", str(path), "-c", "help")
    assert console.returncode == 1 and "Traceback" not in console.stdout + console.stderr
    assert f"  {expected}" in console.stderr.splitlines(), console.stderr
    one_error(shiftbot("run", "--config", str(path)), expected)


def test_a_bad_sentry_dsn(tmp_path: Path) -> None:
    """sentry_sdk.init raised BadDsn at console/run start after check-config had passed; the
    SDK's own parser now checks it in the config, and the value (a secret) is not quoted."""
    dsn = "https://key-4711@sentry.example.org/secret-project-path"
    path = write_config(tmp_path, {"bot": {"sentry_dsn": dsn}})
    expected = ("bot.sentry_dsn: Value error, not a Sentry DSN: invalid project in DSN "
                "(expected https://KEY@HOST/PROJECT")
    checked = shiftbot("check-config", "--config", str(path))
    assert checked.returncode == 1 and checked.stdout.startswith(expected), checked.stdout
    for command in (["console", "-c", "help"], ["run"]):
        line = one_error(shiftbot(*command, "--config", str(path)), expected)
        assert "key-4711" not in line and "secret-project" not in line
