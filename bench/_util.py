"""Small helpers shared by the benchmarks (percentiles, tables, verdicts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    """Resident set size of a process now, from /proc (Linux)."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    """The largest resident set size the process has had."""
    return _status_mb(pid, "VmHWM")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pin(core: int) -> None:
    """Run this process on one core (when there are two or more): a fake server in a child
    process then does not take the measured process's CPU."""
    count = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and count >= 2:
        os.sched_setaffinity(0, {core % count})


class ChildProcess:
    """A helper process driven one line at a time over stdin/stdout: it prints ``READY ...``
    once started, then answers every command line with one line (first word: a status)."""

    def __init__(self, argv: list[str], timeout: float = 180.0) -> None:
        self.argv = argv
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: list[str] = []  # the words after READY

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self.ready = (await self._line()).split()[1:]

    async def ask(self, command: str) -> list[str]:
        """Send one command; the words of its answer after the status word."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return (await self._line()).split()[1:]

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), self.timeout)
        if not line:
            raise SystemExit(f"the helper process {self.argv[1:]} died")
        return line.decode().strip()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(b"quit\n")
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
