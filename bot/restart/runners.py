"""Running a ``command`` or an ``http`` restart: a child process without a shell and without
the bot's secrets, or one HTTP request; both bounded in time and in what they bring back.

The child's environment is minimal (:func:`minimal_environment`): ``PATH``, ``HOME``,
``LANG``/``LANGUAGE``/``LC_*``, ``TZ``, ``TMPDIR`` from the bot's own environment -- never
``dict(os.environ)``, which holds the chat tokens and signing secrets -- minus any variable whose
value holds a configured secret, plus the target's own ``environment:`` (given on purpose).
The child runs in its own session; on timeout (or if the bot gives up on it) the whole process
group is terminated, then killed. Only the tail of its output is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.httpclient import shared_client
from bot.secrets import masker

if TYPE_CHECKING:  # httpx is imported by the first HTTP action, not at start-up
    import httpx

    from bot.restart.actions import CommandAction, HttpAction

log = logging.getLogger(__name__)

INHERITED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
KEEP_BYTES = 64 * 1024  # the output kept (its end): enough for the tail people see
BODY_SHOWN = 500  # characters of an HTTP answer shown
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL


def minimal_environment(extra: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in os.environ.items():
        if name not in INHERITED and not name.startswith("LC_"):
            continue
        if masker.contains(value):
            log.warning("restart commands do not get $%s: it holds a configured secret", name)
            continue
        env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int | None  # None: it did not end by itself (timeout) or could not start
    output: list[str]  # the last lines, secrets masked
    seconds: float
    timed_out: bool = False
    error: str | None = None  # it could not start (nothing ran)


async def run_command(action: CommandAction) -> CommandResult:
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *action.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=minimal_environment(action.environment),
            cwd=action.cwd, start_new_session=True)
    except OSError as exc:
        return CommandResult(None, [], 0.0, error=f"cannot start {action.argv[0]}: "
                                                  f"{exc.strerror or exc}")
    kept = bytearray()
    timed_out = False
    try:
        async with asyncio.timeout(action.timeout):
            await _collect(process, kept)
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:  # timeout, or the bot gave up (cancelled)
            await _stop(process)
    lines = _tail(bytes(kept), action.output_lines)
    return CommandResult(None if timed_out else process.returncode, lines,
                         time.monotonic() - started, timed_out)


async def _collect(process: asyncio.subprocess.Process, kept: bytearray) -> None:
    assert process.stdout is not None
    while chunk := await process.stdout.read(65536):
        kept += chunk
        if len(kept) > KEEP_BYTES:
            del kept[:len(kept) - KEEP_BYTES]


async def _stop(process: asyncio.subprocess.Process) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), wait)
            return
        except TimeoutError:
            continue


def _tail(data: bytes, count: int) -> list[str]:
    if count <= 0:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    return [masker.mask(line)[:300] for line in lines[-count:]]


@contextlib.asynccontextmanager
async def _client(verify: bool | str) -> AsyncIterator[httpx.AsyncClient]:
    """The bot's shared client; with a CA bundle, a client of its own whose SSL context is
    built off the event loop (loading certificates takes tens of milliseconds)."""
    if isinstance(verify, bool):
        yield await shared_client(verify=verify)
        return
    import httpx

    context = await asyncio.to_thread(ssl.create_default_context, cafile=verify)
    async with httpx.AsyncClient(verify=context, trust_env=False) as client:
        yield client


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int | None
    body: str  # the start of the answer, secrets masked
    seconds: float
    error: str | None = None
    reached: bool = True  # False: the request surely did not arrive (connection refused)


async def run_http(action: HttpAction) -> HttpResult:
    import httpx

    started = time.monotonic()
    kwargs: dict[str, Any] = {"headers": action.headers, "timeout": action.timeout,
                              "follow_redirects": False}
    if action.body is not None:
        kwargs["json"] = action.body
    try:
        # httpx's timeout bounds each phase (connect, each read); this bounds the whole.
        async with asyncio.timeout(action.timeout), _client(action.verify) as client:
            response = await client.request(action.method, action.url, **kwargs)
    except TimeoutError:
        return HttpResult(None, "", time.monotonic() - started,
                          f"no answer within {action.timeout:g} s")
    except httpx.ConnectError as exc:
        return HttpResult(None, "", time.monotonic() - started,
                          f"cannot connect: {type(exc).__name__}", reached=False)
    except httpx.TimeoutException:
        return HttpResult(None, "", time.monotonic() - started,
                          f"no answer within {action.timeout:g} s")
    except httpx.HTTPError as exc:
        return HttpResult(None, "", time.monotonic() - started,
                          f"request failed: {type(exc).__name__}")
    body = " ".join(response.text.split())[:BODY_SHOWN]
    return HttpResult(response.status_code, masker.mask(body), time.monotonic() - started)
