"""Running a check's program: an argv (never a shell), a minimal environment, capped output,
and nothing left behind.

* The child starts in a session of its own (``start_new_session``), so its whole process group
  (a plugin's own children included) is killed with ``os.killpg`` when the check is cancelled
  (the runner's timeout) or when it exits but something it started still holds the pipe open.
* Output is kept up to a cap per stream; the rest is read and dropped, so a plugin printing
  gigabytes costs no memory and still gets to exit with its verdict.
* The environment is built from scratch (:func:`child_environment`): the bot's environment
  holds chat tokens and signing secrets, and a check is someone else's program.

The low-level ``loop.subprocess_exec`` is used rather than ``asyncio.create_subprocess_exec``:
``Process.wait()`` only returns once every pipe is closed, which a grandchild can hold forever;
the protocol's ``process_exited`` tells when the program itself is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from bot.secrets import masker

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout kept
STDERR_LIMIT = 8 * 1024
PIPE_GRACE_SECONDS = 0.5  # after the program exits: how long its pipes may stay open
INHERITED = ("PATH", "LANG", "TZ", "HOME")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class ProcOutput:
    returncode: int  # negative: killed by that signal (as subprocess reports it)
    stdout: bytes
    stderr: bytes
    dropped: int = 0  # bytes of stdout beyond the cap, read and dropped
    pipe_held: bool = False  # exited, but a leftover child held the output open (killed)

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None


class ProgramError(Exception):
    """The program could not be started (not found, not executable)."""


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH, LANG, TZ and HOME from the bot's environment (unless one holds a configured
    secret), then the check's own ``environment:``."""
    env: dict[str, str] = {}
    for name in INHERITED:
        value = os.environ.get(name)
        if value is None or masker.contains(value):
            continue
        env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra or {})
    return env


def resolve(argv: Sequence[str], env: Mapping[str, str], dirs: Sequence[str] = ()) -> list[str]:
    """``argv`` with its program found on the child's PATH, then in ``dirs`` (the plugin
    directories), or ProgramError. Touches the filesystem: call it in a thread."""
    program = argv[0]
    if "/" in program:
        found = program if os.access(program, os.X_OK) and os.path.isfile(program) else None
    else:
        found = shutil.which(program, path=env.get("PATH", DEFAULT_PATH))
        for directory in dirs if found is None else ():
            found = shutil.which(program, path=directory)
            if found:
                break
    if found is None:
        where = "" if "/" in program else " on PATH" + (" or in " + ", ".join(dirs) if dirs
                                                         else "")
        raise ProgramError(f"{program}: no such executable{where}")
    return [found, *argv[1:]]


class _Capture(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Mapping[int, int]) -> None:
        self.limits = limits
        self.buffers = {fd: bytearray() for fd in limits}
        self.dropped = dict.fromkeys(limits, 0)
        self.exited = loop.create_future()
        self.closed = {fd: loop.create_future() for fd in limits}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self.buffers[fd]
        room = self.limits[fd] - len(buffer)
        if room > 0:
            buffer += data[:room]
        self.dropped[fd] += max(0, len(data) - max(room, 0))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self.closed and not self.closed[fd].done():
            self.closed[fd].set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def run_program(argv: Sequence[str], *, env: Mapping[str, str],
                      limit: int = OUTPUT_LIMIT, cwd: str | None = None) -> ProcOutput:
    """Run ``argv`` to its end; cancel the awaiting task to stop it (its process group is
    killed). Raises ProgramError when it cannot start."""
    loop = asyncio.get_running_loop()
    try:
        transport, capture = await loop.subprocess_exec(
            lambda: _Capture(loop, {1: limit, 2: STDERR_LIMIT}), *argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env), cwd=cwd, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise ProgramError(f"{argv[0]}: {exc.strerror or exc}") from None
    pid = transport.get_pid()
    held = False
    try:
        await asyncio.shield(capture.exited)
        pipes = asyncio.gather(*capture.closed.values())
        try:
            await asyncio.wait_for(asyncio.shield(pipes), PIPE_GRACE_SECONDS)
        except TimeoutError:
            # The program is done but something it started keeps the output open.
            held = True
            _kill_group(pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pipes), PIPE_GRACE_SECONDS)
    except asyncio.CancelledError:  # the check's timeout: the whole group goes
        _kill_group(pid)
        # Reap it (nobody waits for a cancelled check, so this costs no round any time);
        # a second cancel (the loop closing) only cuts this short.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(capture.exited), 1.0)
        raise
    finally:
        transport.close()  # closes the pipes (an escaped holder cannot keep them)
    returncode = transport.get_returncode()
    return ProcOutput(returncode=returncode if returncode is not None else -signal.SIGKILL,
                      stdout=bytes(capture.buffers[1]), stderr=bytes(capture.buffers[2]),
                      dropped=capture.dropped[1], pipe_held=held)


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    # The group id is the child's pid (a session of its own); it stays reserved while any
    # member lives, so this cannot hit an unrelated process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def decode(data: bytes) -> tuple[str, bool]:
    """Output as text and whether it looks like text at all (valid UTF-8 mostly, no NUL)."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    garbage = "\x00" in text or (bad > 0 and bad * 10 > max(len(text), 1))
    text = "".join(char if char in "\n\t" or char >= " " else "?" for char in
                   text.replace("\r\n", "\n"))
    return text, not garbage


def _argv(value: object) -> object:
    # A string is split into words like a shell would, but never run by one.
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command into words: {exc}") from None
    return value


def _no_nul(value: list[str]) -> list[str]:
    if not value or not value[0]:
        raise ValueError("give the program and its arguments, e.g. [check_disk, -w, '10%']")
    if any("\x00" in word for word in value):
        raise ValueError("a word holds a NUL character")
    return value


def _names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return value


# `command: [check_disk, -w, "10%"]` or `command: "check_disk -w 10%"` (split, no shell).
Argv = Annotated[list[str], BeforeValidator(_argv), AfterValidator(_no_nul)]
Environment = Annotated[dict[str, str], AfterValidator(_names)]
