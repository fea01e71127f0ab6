"""Real peers for the ``flower`` check: redis-server, a Celery worker and Flower, on loopback.

``celery_stack`` (a module-scoped fixture; import it into the test module) starts a throwaway
redis-server (Debian's package; no persistence, its own temp dir, killed at teardown) and a
Flower on it; tests start workers with :meth:`CeleryStack.start_worker` (the app is
tests/data/celery_app.py) and may SIGKILL them. Every process runs in its own session (so a
prefork worker's children go with it) with a minimal environment: no proxies, loopback only.
Skips with the reason when redis-server or the Python packages (the ``test`` extra) are missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

DATA = Path(__file__).parent / "data"
FLOWER_USER = "shifter:flower-peer-test"  # Flower's --basic_auth (its API wants credentials)
HOST = "shiftbot-test"  # the @host part of the workers' names
START_TIMEOUT = 30.0  # generous for a loaded 2-core CI machine; normally 1-2 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing() -> str | None:
    """Why the real peers cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server not installed (Debian package redis-server)"
    absent = [name for name in ("celery", "flower", "redis") if importlib.util.find_spec(name)
              is None]
    if absent:
        return f"Python packages missing: {', '.join(absent)} (pip install -e '.[test]')"
    return None


@dataclass
class CeleryStack:
    """A running redis-server + Flower; workers started on demand."""

    workdir: Path
    redis_url: str
    flower_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def auth_header(self) -> dict[str, str]:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(FLOWER_USER.encode()).decode()}

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        try:
            process = subprocess.Popen(argv, cwd=self.workdir, env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def celery(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "celery_app", *args]

    def start_worker(self, name: str, *, queue: str, pool: str = "solo",
                     concurrency: int = 1) -> subprocess.Popen[bytes]:
        """A worker ``name@shiftbot-test`` consuming ``queue``. Mingle and gossip are off: they
        only slow the start (mingle waits a second for peers) and add broadcast traffic."""
        argv = self.celery("worker", "-n", f"{name}@{HOST}", "-Q", queue, f"--pool={pool}",
                           f"--concurrency={concurrency}", "--without-mingle", "--without-gossip",
                           "--loglevel=INFO")
        return self.spawn(f"worker-{name}", argv)

    def stop(self) -> None:
        for process in reversed(self.processes):
            kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole session (a prefork worker's children too) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot reap: leave it
        process.wait(timeout=10)


def _wait(what: str, ready: Callable[[], bool], stack: CeleryStack,
          process: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{stack.log(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {START_TIMEOUT:g} s:\n{stack.log(log)}")


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _flower_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/healthcheck", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _environment(workdir: Path, redis_url: str) -> dict[str, str]:
    """What the peers need and nothing else from ours (no proxies, no credentials)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(DATA),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "SHIFTBOT_CELERY_BROKER": redis_url,
    }


@pytest.fixture(scope="module")
def celery_stack() -> Iterator[CeleryStack]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="shiftbot-celery-"))
    redis_port, flower_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stack = CeleryStack(workdir, redis_url, f"http://127.0.0.1:{flower_port}",
                        _environment(workdir, redis_url))
    try:
        redis = stack.spawn("redis", [
            "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
            "--protected-mode", "yes"])
        _wait("redis-server", lambda: _redis_ready(redis_port), stack, redis, "redis")
        flower = stack.spawn("flower", stack.celery(
            "flower", f"--port={flower_port}", "--address=127.0.0.1",
            f"--basic_auth={FLOWER_USER}", "--inspect_timeout=1000"))
        _wait("flower", lambda: _flower_ready(stack.flower_url), stack, flower, "flower")
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
