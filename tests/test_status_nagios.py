"""The nagios check: real monitoring-plugins, and scripts breaking the plugin API every way."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sentry_sdk
from aiohttp import web
from sentry_sdk.transport import Transport
from status_env import DATA, PLUGINS, StubEnv

from bot.observability import init_sentry
from bot.secrets import masker
from bot.status.checks.nagios import NagiosCheck
from bot.status.model import Level
from bot.status.procs import OUTPUT_LIMIT, child_environment
from bot.status.runner import run_check

needs_plugins = pytest.mark.skipif(
    not PLUGINS.is_dir(),
    reason=f"{PLUGINS} is missing: apt-get install -y monitoring-plugins-basic")


def nagios(*command: str, timeout: float = 10, **keys: object) -> NagiosCheck:
    return NagiosCheck.model_validate({"type": "nagios", "name": "n", "command": list(command),
                                       "timeout_seconds": timeout, **keys})


def sh(script: str, *args: str, **keys: object) -> NagiosCheck:
    return nagios("/bin/sh", str(DATA / script), *args, **keys)


def py(script: str, *args: str, **keys: object) -> NagiosCheck:
    return nagios(sys.executable, str(DATA / script), *args, **keys)


async def run(check: NagiosCheck):
    return await run_check(check, StubEnv())


def gone(pid: int) -> bool:
    """Dead or a zombie (PID 1 in a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def wait_gone(pid: int, seconds: float = 3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        await asyncio.sleep(0.05)
    return gone(pid)


# ------------------------------------------------------------------ real plugins


@needs_plugins
@pytest.mark.parametrize("code", [0, 1, 2, 3])
async def test_check_dummy_levels(code: int) -> None:
    result = await run(nagios("check_dummy", str(code), "all said and done"))
    assert result.level is Level(code)
    assert result.summary.endswith(": all said and done")


@needs_plugins
async def test_check_disk_perfdata_in_bytes() -> None:
    result = await run(nagios("check_disk", "-w", "1%", "-c", "1%", "-p", "/"))
    assert result.level in (Level.OK, Level.WARNING, Level.CRITICAL)
    assert result.summary.startswith("DISK ")
    (datum,) = [d for d in result.perfdata if d.label == "/"]
    stat = os.statvfs("/")
    total = stat.f_blocks * stat.f_frsize
    assert datum.max is not None and abs(datum.max - _bytes(total, datum.uom)) < 0.02 * (
        datum.max)
    assert result.values["/"] == datum.value


def _bytes(value: float, uom: str) -> float:
    return value / {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}[uom]


@needs_plugins
async def test_check_tcp_open_and_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        up = await run(nagios("check_tcp", "-H", "127.0.0.1", "-p", str(port)))
    finally:
        server.close()
        await server.wait_closed()
    assert up.level is Level.OK and "time" in up.values
    down = await run(nagios("check_tcp", "-H", "127.0.0.1", "-p", str(port)))
    assert down.level is Level.CRITICAL and "refused" in down.summary.lower()


@pytest.fixture
async def web_server() -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello world")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


@needs_plugins
async def test_check_http_against_a_real_server(web_server: int) -> None:
    base = ["check_http", "-H", "127.0.0.1", "-p", str(web_server)]
    good = await run(nagios(*base, "-u", "/ok", "-s", "hello"))
    assert good.level is Level.OK and good.summary.startswith("HTTP OK")
    assert {"time", "size"} <= set(good.values)
    bad = await run(nagios(*base, "-u", "/broken"))
    assert bad.level is Level.CRITICAL and "500" in bad.summary


@needs_plugins
async def test_check_procs_and_plugin_dir_lookup(tmp_path: Path) -> None:
    result = await run(nagios("check_procs", environment={"PATH": str(tmp_path)}))
    assert result.level is Level.OK and result.values["procs"] >= 1
    missing = await run(nagios("check_procs", plugin_dirs=[str(tmp_path)],
                               environment={"PATH": str(tmp_path)}))
    assert missing.level is Level.UNKNOWN
    assert missing.summary.startswith("cannot run check_procs: no such executable")


# ------------------------------------------------------------------ outside the API


async def test_missing_and_unexecutable_programs(tmp_path: Path) -> None:
    result = await run(nagios("no-such-plugin-xyz"))
    assert (result.level, result.summary.split(":")[0]) == (Level.UNKNOWN,
                                                           "cannot run no-such-plugin-xyz")
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\necho hi\n")
    result = await run(nagios(str(plain)))
    assert result.level is Level.UNKNOWN and "no such executable" in result.summary


@pytest.mark.parametrize("code", [4, 5, 127, 255])
async def test_exit_codes_outside_the_api(code: int) -> None:
    result = await run(sh("exit_code.sh", str(code), "SOMETHING OK - fine | x=1"))
    assert result.level is Level.UNKNOWN
    assert result.summary == f"exited with {code}, not 0-3: SOMETHING OK - fine"
    assert result.values["x"] == 1


@pytest.mark.parametrize("sig", ["TERM", "KILL", "SEGV", "ABRT"])
async def test_killed_by_a_signal(sig: str) -> None:
    result = await run(sh("killed.sh", sig))
    assert result.level is Level.UNKNOWN
    number = signal.Signals[f"SIG{sig}"].value
    assert result.summary == f"killed by signal SIG{sig} ({number})"
    assert "about to die" in result.long_output


@pytest.mark.parametrize(("text", "summary"), [("", "no output (exit 0)"),
                                               ("   ", "no output (exit 0)"),
                                               (" | x=1", "empty first line (exit 0)")])
async def test_no_output(text: str, summary: str) -> None:
    result = await run(sh("exit_code.sh", "0", text))
    assert (result.level, result.summary) == (Level.UNKNOWN, summary)


async def test_binary_garbage() -> None:
    result = await run(py("garbage.py"))
    assert (result.level, result.summary) == (Level.UNKNOWN, "output is not text (exit 0)")


async def test_stderr_shown_with_the_result() -> None:
    check = nagios("/bin/sh", "-c", "echo 'bad option' >&2; exit 3")
    result = await run(check)
    assert (result.level, result.summary) == (Level.UNKNOWN, "no output (exit 3)")
    assert "stderr: bad option" in result.long_output


async def test_multiline_long_output_and_perfdata() -> None:
    text = "APP WARNING - 2 queues long | q1=5;3;10\nqueue q1: 5\nqueue q2: 7 | q2=7;3;10\nq3=1"
    result = await run(sh("exit_code.sh", "1", text))
    assert result.level is Level.WARNING
    assert result.summary == "APP WARNING - 2 queues long"
    assert result.long_output == "queue q1: 5\nqueue q2: 7"
    assert dict(result.values) == {"q1": 5, "q2": 7, "q3": 1}


async def test_huge_output_is_capped_and_the_verdict_kept() -> None:
    result = await run(py("huge.py", "20"))  # 20 MiB
    assert result.level is Level.CRITICAL
    assert result.summary == "HUGE CRITICAL - lots of output"
    assert len(result.long_output.encode()) < OUTPUT_LIMIT + 1024
    assert "more bytes dropped" in result.long_output


async def test_endless_output_is_stopped_at_the_timeout() -> None:
    started = time.monotonic()
    result = await run(py("huge.py", "forever", timeout=1))
    assert time.monotonic() - started < 1.5
    assert result.summary == "timed out after 1 s"


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    result = await run(sh("children.sh", str(pidfile), timeout=0.5))
    assert time.monotonic() - started < 1.0
    assert result.summary == "timed out after 0.5 s"
    assert await wait_gone(int(pidfile.read_text()))


async def test_child_holding_the_pipe_does_not_hold_the_check() -> None:
    started = time.monotonic()
    result = await run(sh("hold_pipe.sh", timeout=10))
    assert time.monotonic() - started < 2
    assert (result.level, result.summary) == (Level.WARNING, "HOLD WARNING - parent done")
    assert "kept the output open" in result.long_output


async def test_grandchild_escaping_the_group_does_not_hold_the_check(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    try:
        result = await run(py("hold_pipe_setsid.py", str(pidfile), timeout=10))
        assert time.monotonic() - started < 3
        assert (result.level, result.summary) == (Level.OK, "ESCAPED OK - parent done")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


async def test_minimal_environment_without_the_bots_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-plugins")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.setenv("LANG", "tok-1234567-secret")  # holds a configured secret: kept back
    masker.add("tok-1234567-secret")
    try:
        result = await run(py("env.py", "MY_SETTING", environment={"MY_SETTING": "v1"}))
    finally:
        masker.clear()
    # SUBPROCESS_*: sentry's Popen patch, once any test initialised it (see the next test)
    names = {name for name in result.summary.removeprefix("ENV OK - ").split()
             if not name.startswith("SUBPROCESS_")}
    assert "SLACK_BOT_TOKEN" not in names and "LANG" not in names
    # LC_CTYPE: Python's own C-locale coercion in the child (PEP 538), not inherited
    assert {"PATH", "TZ", "MY_SETTING"} <= names <= {"PATH", "TZ", "HOME", "MY_SETTING",
                                                    "LC_CTYPE"}
    assert result.long_output == "v1"


class _NoTransport(Transport):
    def capture_envelope(self, envelope: object) -> None:  # type: ignore[override]
        pass


async def test_sentry_adds_nothing_to_a_plugins_environment(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"sentry_dsn": "https://public@sentry.invalid/1"}})
    try:
        assert init_sentry(bot.config, transport=_NoTransport())
        result = await run(py("env.py"))
    finally:
        sentry_sdk.init(dsn=None)
    names = set(result.summary.removeprefix("ENV OK - ").split())
    assert not any(name.startswith("SUBPROCESS_") for name in names), names


def test_child_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PATH", "LANG", "TZ", "HOME"):
        monkeypatch.delenv(name, raising=False)
    assert child_environment() == {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    assert child_environment({"PATH": "/x"}) == {"PATH": "/x"}


@pytest.mark.parametrize(("command", "argv"), [
    ("check_disk -w '10%' -p /", ["check_disk", "-w", "10%", "-p", "/"]),
    (["check_dummy", "0", "a b"], ["check_dummy", "0", "a b"]),
])
def test_command_as_words_or_string(command: object, argv: list[str]) -> None:
    check = NagiosCheck.model_validate({"type": "nagios", "name": "n", "command": command})
    assert check.command == argv


@pytest.mark.parametrize("command", ["", [], "a 'unclosed", ["x\x00y"], [""]])
def test_bad_commands(command: object) -> None:
    with pytest.raises(ValueError):
        NagiosCheck.model_validate({"type": "nagios", "name": "n", "command": command})
