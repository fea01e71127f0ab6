"""A bot process with the alerts feature, for the crash tests (tests/test_alerts_crash.py) and
the benchmark (bench/bench_alerts.py): run as a real process so it can be killed with SIGKILL
between acknowledging a webhook and processing it.

    python tests/alerts_proc.py CONFIG [--hold-lease SECONDS] [--clock-offset SECONDS]

It starts the bot the way ``shiftbot run`` does (``Lifecycle`` with every adapter the config
enables and the HTTP server on ``bot.http.port``: the real ``/webhooks/sentry`` route), prints
``ready`` and then obeys one command per line on stdin, answering each with one line:

- ``advance SECONDS``: move this process's clock forward (retry backoffs, leases and the
  comment rate limit come due without waiting for them in real time); ``ok``;
- ``settle TIMEOUT``: wake the alerts service until the inbox is drained, no task is due and
  the notices are delivered; ``settled <tasks pending later>`` or ``busy <rows left>``;
- ``quit``: stop cleanly (``bye``); end of input does the same.

``--hold-lease`` pauses processing without touching the feature's code: before starting, the
lease the drain loop runs under (``alerts:processor``) is taken by another owner for that long,
as by a replica that then died. Webhooks are acknowledged and stored; nothing is processed.
``--clock-offset`` starts the clock that far ahead: a restart after the dead process's (or the
held) lease ran out, without waiting for it. Tests drive it with :class:`AlertsProc`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import clock
from bot.alerts.service import LEASE  # the drain loop's lease
from bot.config import Config, load_config
from bot.core import Bot
from bot.lifecycle import Lifecycle
from bot.messaging.claims import Claims
from bot.observability import setup_logging
from bot.runtime import build_adapters, settle_gc

HELD_BY = "held-by-test:0:000000"


class OffsetClock:
    """Real time plus an offset that only grows (``advance``)."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def hold_lease(config: Config, seconds: float) -> None:
    """Take the processor's lease as another owner (migrations run first, as on start)."""
    bot = await Bot.create(config, start_handlers=False)
    try:
        taken = await Claims(bot.database, HELD_BY).claim(LEASE, timedelta(seconds=seconds))
        if not taken:
            raise SystemExit(f"{LEASE} is held already")
    finally:
        await bot.close()


async def settle_answer(bot: Bot, timeout: float) -> str:
    from alerts_stack import busy, settle

    later = await settle(bot, timeout)
    if later is None:
        return f"busy {await bot.database.run(busy, clock.utcnow())}"
    return f"settled {later}"


async def obey(bot: Bot, now: OffsetClock) -> None:
    from alerts_stack import kick

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while words := (await reader.readline()).decode().split():
        if words[0] == "advance":
            now.advance(float(words[1]))
            kick(bot)
            answer = "ok"
        elif words[0] == "settle":
            answer = await settle_answer(bot, float(words[1]))
        elif words[0] == "quit":
            break
        else:
            answer = f"error unknown command {words[0]!r}"
        print(answer, flush=True)


async def run(config_path: str, hold: float | None, now: OffsetClock) -> int:
    config = load_config(config_path)
    if hold:
        await hold_lease(config, hold)
    lifecycle = Lifecycle(config, adapters=build_adapters)
    bot = await lifecycle.start()
    try:
        settle_gc()  # as `shiftbot run` does once started
        print("ready", flush=True)
        await obey(bot, now)
        return 0
    finally:
        await lifecycle.stop()
        print("bye", flush=True)


# ------------------------------------------------------------------------ the driver (tests)

REPO = Path(__file__).resolve().parent.parent


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


class AlertsProc:
    """tests/alerts_proc.py as a child process: started, asked one line at a time, killed."""

    def __init__(self, config_path: Path, log: Path, *args: str) -> None:
        self.argv = [sys.executable, str(Path(__file__).resolve()), str(config_path), *args]
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30, *, core: int | None = None) -> AlertsProc:
        """Start it and wait for ``ready``; ``core``: run it (every thread) on that CPU."""
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}:{REPO}",
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                     "all_proxy"):
            env.pop(name, None)
        with self.log.open("a") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=REPO, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err,
                preexec_fn=None if core is None else lambda: _pin(core))
        line = await self._line(timeout)
        if line != "ready":
            raise RuntimeError(f"the bot process did not start ({line!r}):\n{self.tail()}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def ask(self, command: str, timeout: float = 60) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line(timeout)

    async def settle(self, timeout: float = 30) -> int:
        """Until the process has nothing left to do now; the tasks left for later."""
        words = (await self.ask(f"settle {timeout}", timeout + 10)).split()
        if words[0] != "settled":
            raise AssertionError(f"not settled: {words}\n{self.tail()}")
        return int(words[1])

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self, timeout: float = 20) -> int:
        """Quit cleanly (killed if it does not); the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            try:
                await self.ask("quit", timeout)
                await asyncio.wait_for(self.proc.wait(), timeout)
            except (TimeoutError, ConnectionError, RuntimeError):
                await self.kill()
        return self.proc.returncode or 0

    async def _line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the bot process ended:\n{self.tail()}")
        return line.decode().strip()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text()[-chars:] if self.log.exists() else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--hold-lease", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the event loop's thread into FILE (the benchmark's why)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    now = OffsetClock(args.clock_offset)
    with clock.use_clock(now):
        if not args.profile:
            return asyncio.run(run(args.config, args.hold_lease, now))
        import cProfile

        with cProfile.Profile() as profile:
            code = asyncio.run(run(args.config, args.hold_lease, now))
        profile.dump_stats(args.profile)
        return code


if __name__ == "__main__":
    sys.exit(main())
