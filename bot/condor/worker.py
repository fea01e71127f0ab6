"""One worker process per pool: every htcondor2/classad2 network call happens there.

Why a process: htcondor2 holds the GIL while it waits on the network, so a schedd that accepts
a connection and never answers freezes every thread of the calling process for 20 s. The bot's
event loop must never be that process.

Protocol (stdin/stdout of ``python -m bot.condor.worker``, length-prefixed pickles):

    parent -> worker   PoolSpec                                   (once, at start)
    worker -> parent   ("ready", info) | ("failed", CondorError)
    parent -> worker   (request_id, operation, params)            (one at a time)
    worker -> parent   (request_id, True, result) | (request_id, False, CondorError)

Environment (:func:`worker_environment`): the worker does NOT inherit the bot's environment,
which holds the Slack and Mattermost tokens, signing and button secrets and any other API key.
It gets only what HTCondor and Python need, taken from the bot's environment: ``PATH``,
``HOME``, ``LANG``/``LANGUAGE``/``LC_*``, ``TZ``, ``TMPDIR``, ``LD_LIBRARY_PATH`` (a Python
built against libraries outside the default path would not start without it), ``CONDOR_CONFIG``
and ``_CONDOR_*``; then the pool's ``environment:`` section (``_CONDOR_*`` knobs,
``CONDOR_CONFIG`` and the credential paths ``X509_USER_PROXY``, ``X509_CERT_DIR``,
``BEARER_TOKEN_FILE``, which are never taken from the bot's environment); then what the worker
itself needs (``PYTHONPATH`` with shiftbot first, ``PYTHONUNBUFFERED``, and a default
``_CONDOR_QUERY_TIMEOUT``). A variable taken from the bot's environment whose value holds a
configured secret (:data:`bot.secrets.masker`) is left out whatever its name; the pool's own
``environment:`` is not filtered (the operator gives it on purpose). What the worker has can
reach a job ad: ``getenv`` in a submit description is restricted separately
(:mod:`bot.condor.submitdesc`), and ``$ENV(NAME)`` in a description can only expand what is
listed here.

Parent side (:class:`WorkerClient`): spawned lazily and reused; one request in flight; every call
has a deadline covering the wait for the worker, the spawn and the answer. On overrun (or if
the caller is cancelled mid-call) the worker is killed and a new one is started in the
background, and the caller gets "schedd X did not answer within 10 s". All waits are asyncio
waits on pipes: the event loop keeps serving other commands meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import struct
import sys
import time
from pathlib import Path
from typing import IO, Any

from bot.condor.errors import (
    CondorBusy,
    CondorError,
    CondorTimeout,
    CondorWorkerError,
    translate,
)
from bot.condor.models import PoolSpec
from bot.secrets import masker

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 256 * 1024 * 1024
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPAWN_TIMEOUT = 60.0  # the demo seeds its queue at start; the call's own deadline still applies


# ------------------------------------------------------------------------- worker side


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return pickle.loads(b"".join(chunks))


def _write(stream: IO[bytes], message: Any) -> None:
    try:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # a result that does not pickle is our bug: say so, don't hang
        request_id = message[0] if isinstance(message, tuple) and message else None
        payload = pickle.dumps((request_id, False, CondorWorkerError(
            f"the HTCondor worker could not send its answer ({type(exc).__name__})")))
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def main() -> None:
    """Entry point of ``python -m bot.condor.worker``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (Python or C) go to stderr, never into the protocol
    sys.stdout = sys.stderr
    source = sys.stdin.buffer
    spec = _read(source)
    if not isinstance(spec, PoolSpec):
        return
    from bot.condor import ops
    from bot.condor.backend import open_backend

    try:
        backend = open_backend(spec)
    except Exception as exc:
        _write(channel, ("failed", translate(exc, daemon=spec.label)))
        return
    _write(channel, ("ready", {"pid": os.getpid()}))
    while True:
        message = _read(source)
        if message is None:  # the bot went away
            return
        request_id, operation, params = message
        try:
            function = ops.OPERATIONS[operation]
            reply: tuple[Any, bool, Any] = (request_id, True, function(backend, **params))
        except CondorError as exc:
            reply = (request_id, False, exc)
        except Exception as exc:
            reply = (request_id, False, translate(exc, daemon=spec.label))
        _write(channel, reply)


# ------------------------------------------------------------------------- parent side


# What the worker takes from the bot's environment; see the module docstring.
INHERITED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
                       "CONDOR_CONFIG"})
INHERITED_PREFIXES = ("LC_", "_CONDOR_")


def _inherited(name: str) -> bool:
    # HTCondor reads its knobs from _CONDOR_X and _condor_X alike.
    return name in INHERITED or name.upper().startswith(INHERITED_PREFIXES)


def worker_environment(spec: PoolSpec) -> dict[str, str]:
    """A minimal environment: HTCondor's and Python's needs, the pool's own settings.

    Never ``dict(os.environ)``: the bot's environment holds the chat tokens and signing
    secrets, and whatever the worker has can be copied into a job ad (``getenv``,
    ``$ENV(...)`` in a submit description) that every user of the pool can read.
    """
    env = {}
    for name, value in os.environ.items():
        if not _inherited(name):
            continue
        # A name says nothing about what a variable holds: ssh's `SendEnv LC_*` carries
        # tokens to hosts, and a secret may be configured as ${LC_X} or ${_CONDOR_X}. A value
        # holding a configured secret stays behind whatever its name.
        if masker.contains(value):
            log.warning("the HTCondor worker of pool %s does not get $%s: it holds a "
                        "configured secret", spec.name, name)
            continue
        env[name] = value
    # The pool's own `environment:` is what the operator deliberately gives the worker: kept
    # as configured, secrets included (docs/condor.md).
    env.update(spec.environment)
    # A silent collector would otherwise hold `analyze` for QUERY_TIMEOUT (60 s): give up
    # early enough to still answer with the job's own attributes within the deadline.
    env.setdefault("_CONDOR_QUERY_TIMEOUT", str(max(1, int(spec.timeout * 0.6))))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerClient:
    """The event loop's handle on one pool's worker process."""

    def __init__(self, spec: PoolSpec, *, python: str | None = None) -> None:
        self.spec = spec
        self.python = python or sys.executable
        self.restarts = 0  # workers killed after an overrun or found dead
        self._proc: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Future[asyncio.subprocess.Process] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def alive(self) -> bool:
        return self.pid is not None

    async def call(self, operation: str, params: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        """Run ``operation`` in the worker; raise a CondorError subclass on any failure."""
        if self._closed:
            raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} is shut down")
        deadline = float(timeout if timeout is not None else self.spec.timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(deadline):
                await self._lock.acquire()
        except TimeoutError:
            raise CondorBusy(f"pool {self.spec.name} is still busy with an earlier request to "
                             f"{self.spec.label}; try again in a moment") from None
        try:
            remaining = max(0.05, deadline - (loop.time() - started))
            return await self._exchange(operation, params or {}, deadline, remaining)
        finally:
            self._lock.release()

    async def _exchange(self, operation: str, params: dict[str, Any], deadline: float,
                        remaining: float) -> Any:
        sent = False
        request_id = next(self._ids)
        try:
            async with asyncio.timeout(remaining):
                proc = await self._ensure_started()
                assert proc.stdin is not None and proc.stdout is not None
                payload = pickle.dumps((request_id, operation, params),
                                       protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.write(_HEADER.pack(len(payload)) + payload)
                await proc.stdin.drain()
                sent = True
                (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
                if size > MAX_MESSAGE:
                    raise CondorWorkerError(f"the HTCondor worker sent {size} bytes")
                answer = await proc.stdout.readexactly(size)
        except TimeoutError:
            await self._replace(f"no answer to {operation} within {deadline:g} s")
            if sent:
                raise CondorTimeout(f"{self.spec.label} did not answer within {deadline:g} s "
                                    f"(pool {self.spec.name}); the request was abandoned and "
                                    "the HTCondor worker restarted") from None
            raise CondorTimeout(f"the HTCondor worker for pool {self.spec.name} did not start "
                                f"within {deadline:g} s") from None
        except asyncio.CancelledError:
            # The caller gave up mid-call: the worker's state is unknown, replace it.
            self._kill_now(f"{operation} cancelled")
            raise
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError, OSError) as exc:
            await self._replace(f"worker died during {operation} ({type(exc).__name__})")
            raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} died while "
                                    f"running {operation}; it has been restarted") from None
        try:
            reply_id, ok, value = pickle.loads(answer)
        except Exception:
            await self._replace("garbled answer")
            raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} sent a "
                                    "garbled answer; it has been restarted") from None
        if reply_id != request_id:
            await self._replace(f"answer {reply_id} to request {request_id}")
            raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} answered "
                                    "out of turn; it has been restarted")
        if not ok:
            raise value if isinstance(value, CondorError) else CondorWorkerError(str(value))
        return value

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Spawn now (instead of at the first call) and wait for the worker to be ready."""
        await asyncio.wait_for(self._ensure_started(), SPAWN_TIMEOUT)

    async def _ensure_started(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        if self._starting is None or self._starting.done():
            # Never started, failed to start, or started and died since: start one.
            self._starting = asyncio.ensure_future(self._spawn())
        # shield: a call that times out while the worker boots must not abort the boot.
        return await asyncio.shield(self._starting)

    async def _spawn(self) -> asyncio.subprocess.Process:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "bot.condor.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=worker_environment(self.spec),
            cwd=str(PROJECT_ROOT), start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self._drain_stderr(proc.stderr, proc.pid))
        try:
            payload = pickle.dumps(self.spec, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            await proc.stdin.drain()
            async with asyncio.timeout(SPAWN_TIMEOUT):
                (size,) = _HEADER.unpack(await proc.stdout.readexactly(_HEADER.size))
                status, info = pickle.loads(await proc.stdout.readexactly(size))
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError, OSError)):
                raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} could "
                                        "not start (see the bot's log)") from None
            if isinstance(exc, TimeoutError):
                raise CondorWorkerError(f"the HTCondor worker for pool {self.spec.name} did "
                                        f"not start within {SPAWN_TIMEOUT:g} s") from None
            raise
        if status != "ready":
            await proc.wait()
            raise info if isinstance(info, CondorError) else CondorWorkerError(str(info))
        self._proc = proc
        log.info("condor worker for pool %s started (pid %s, %.2f s)", self.spec.name, proc.pid,
                 time.perf_counter() - started)
        return proc

    async def _drain_stderr(self, stream: asyncio.StreamReader, pid: int) -> None:
        with contextlib.suppress(Exception):
            while line := await stream.readline():
                log.info("condor worker %s[%s]: %s", self.spec.name, pid,
                         line.decode(errors="replace").rstrip())

    def _kill_now(self, why: str) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            log.warning("killing condor worker for pool %s (pid %s): %s", self.spec.name,
                        proc.pid, why)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            self.restarts += 1
        if self._starting is not None and not self._starting.done():
            return  # a worker is already booting: it will serve the next call
        self._starting = None
        if not self._closed:
            # Respawn in the background so the next command finds a worker ready.
            self._starting = asyncio.ensure_future(self._spawn())
            self._starting.add_done_callback(_ignore_result)

    async def _replace(self, why: str) -> None:
        proc = self._proc
        self._kill_now(why)
        if proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)

    async def kill(self) -> None:
        """Kill the worker now (tests, and what an overrun does); a new one starts at once."""
        await self._replace("killed on request")

    async def close(self) -> None:
        """Stop the worker: close its stdin (it exits), kill it if it does not within 2 s."""
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        proc, self._proc = self._proc, None
        if proc is None and starting is not None and starting.done() and not starting.cancelled() \
                and starting.exception() is None:
            proc = starting.result()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(BaseException):
                await self._stderr_task


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("respawning a condor worker failed: %s", future.exception())


if __name__ == "__main__":
    main()
