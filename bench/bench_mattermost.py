"""Mattermost benchmark: a burst of commands over the websocket, answered through the REST API.

The fake Mattermost (tests/fakes/mattermost.py) runs on loopback in a child process, so the bot's
process does only the bot's work (its loop lag and GC pauses are its own). The fake pushes N
``posted`` events (``!help`` by alice, one channel: the per-channel sender posts the replies one
after another, the worst case)
as fast as it can; the bot parses, checks, renders, audits and answers each with an ephemeral
post. Measured: time from the first event to the last reply, replies/s, reply latency (fake
clock), and the bot loop's largest lag (a 5 ms ticker).

Limits (issue: Mattermost adapter): >= 300 commands/s, none unanswered, loop lag < 100 ms.
Run: .venv/bin/python bench/bench_mattermost.py [--events 1000] [--channels 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from _util import percentile, print_table, verdict  # noqa: E402
from fakes.mattermost import FakeMattermost  # noqa: E402

from bot.adapters.mattermost import MattermostAdapter  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.runtime import attach_http, settle_gc  # noqa: E402

RATE_LIMIT = 300.0  # commands/s
LAG_LIMIT_MS = 100.0
WARMUP = 20


class FakeProcess:
    """The fake Mattermost in a child process (``--serve-fake``), driven over stdin/stdout.

    A separate process, not a thread: the bot's loop lag and GC pauses must not include the
    fake's work and heap, and the two must not share a GIL.
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.proc: asyncio.subprocess.Process | None = None
        self.url = self.token = self.team = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "--serve-fake",
            "--channels", str(self.channels),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self.url, self.token, self.team = (await self._line()).split()[1:4]

    async def ask(self, command: str) -> list[str]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return (await self._line()).split()[1:]

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 180)
        if not line:
            raise SystemExit("the fake Mattermost process died")
        return line.decode().strip()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask("quit")
            await asyncio.wait_for(self.proc.wait(), 10)


async def serve_fake(channels: int) -> None:
    """Child side: start the fake, then obey ``push N``, ``wait N`` and ``quit``."""
    names = [f"ops-{i}" for i in range(channels)]
    mm = await FakeMattermost(users=("alice",), channels=[(n, "O") for n in names]).start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", mm.url, mm.bot_token, mm.team.name, flush=True)
    pushed = 0
    while line := (await reader.readline()).decode().split():
        if line[0] == "push":
            count = int(line[1])
            for i in range(count):
                await mm.post_as("alice", names[(pushed + i) % len(names)], "!help")
            pushed += count
            print("PUSHED", pushed, flush=True)
        elif line[0] == "wait":  # until N replies, then report on the last N commands
            total, last = int(line[1]), int(line[2])
            deadline = loop.time() + 120
            while len(mm.ephemeral) < total and loop.time() < deadline:
                await asyncio.sleep(0.002)
            commands = [p for p in mm.posts() if p["message"] == "!help"][-last:]
            replies = [e.post for e in mm.ephemeral][-last:] if len(mm.ephemeral) >= total \
                else [e.post for e in mm.ephemeral][total - last:]
            answered = {r["root_id"] for r in replies}
            created = {c["id"]: c["create_at"] for c in commands}
            latency = [r["create_at"] - created[r["root_id"]] for r in replies
                       if r["root_id"] in created]
            span = (max(r["create_at"] for r in replies) - min(created.values())) / 1000 \
                if replies else float("nan")
            print("DONE", len(replies), sum(1 for c in commands if c["id"] not in answered),
                  len(replies) - len(answered), f"{span:.3f}",
                  f"{percentile(latency, 50):.0f}", f"{percentile(latency, 99):.0f}",
                  flush=True)
        elif line[0] == "quit":
            print("BYE", flush=True)
            break
    await mm.close()


class GcPauses:
    """The bot process's garbage-collector pauses (ms) while installed."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)


async def lag_monitor(samples: list[float], stop: asyncio.Event, tick: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(tick)
        samples.append((loop.time() - start - tick) * 1000)


async def run(events: int, channels: int, tmp: Path) -> list[list[str]]:
    fake = FakeProcess(channels)
    await fake.start()
    config = parse_config({
        "bot": {"database": f"sqlite:///{tmp / 'bench.db'}",
                "handlers": ["handlers.builtin", "handlers.approvals", "handlers.audit"]},
        "people": {"alice": {"mattermost_username": "alice"}},
        "roles": {"viewer": {"allow": ["help", "whoami"]}},
        "grants": [{"role": "viewer", "people": ["alice"]}],
        "mattermost": {"url": fake.url, "token": fake.token, "team": fake.team,
                       "command_tokens": ["unused"]},
    }, tmp)
    bot = await Bot.create(config)
    http = attach_http(bot, "127.0.0.1", 0)
    adapter = MattermostAdapter(bot, config.mattermost)  # type: ignore[arg-type]
    await http.start()
    bot.config.bot.http.public_url = http.url
    await adapter.start()
    settle_gc()  # as `shiftbot run` does once started
    try:
        await fake.ask(f"push {WARMUP}")
        await fake.ask(f"wait {WARMUP} {WARMUP}")
        samples: list[float] = []
        stop = asyncio.Event()
        monitor = asyncio.create_task(lag_monitor(samples, stop))
        gc_pauses = GcPauses()
        gc.callbacks.append(gc_pauses)
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        cpu = time.process_time()
        await fake.ask(f"push {events}")
        done = await fake.ask(f"wait {WARMUP + events} {events}")
        elapsed = time.perf_counter() - started
        bot_cpu = time.process_time() - cpu
        gc.callbacks.remove(gc_pauses)
        stop.set()
        await monitor
    finally:
        await adapter.stop()
        await http.stop()
        await bot.close()
        await fake.stop()
    replies, unanswered, duplicates = int(done[0]), int(done[1]), int(done[2])
    span, p50, p99 = float(done[3]), done[4], done[5]
    rate = replies / elapsed if elapsed > 0 else 0.0
    lag = max(samples) if samples else 0.0
    return [
        ["commands pushed", str(events), "", ""],
        ["replies posted", str(replies), f"= {events}", verdict(replies == events)],
        ["unanswered", str(unanswered), "0", verdict(unanswered == 0)],
        ["answered twice", str(duplicates), "0", verdict(duplicates == 0)],
        ["first event -> last reply (s)", f"{elapsed:.2f}", "", f"(server clock {span:.2f})"],
        ["replies/s", f"{rate:.0f}", f">= {RATE_LIMIT:.0f}", verdict(rate >= RATE_LIMIT)],
        ["bot CPU per command (ms)", f"{bot_cpu / events * 1000:.2f}", "", ""],
        ["reply latency p50 (ms)", p50, "", ""],
        ["reply latency p99 (ms)", p99, "", ""],
        ["bot loop lag max (ms)", f"{lag:.1f}", f"< {LAG_LIMIT_MS:.0f}",
         verdict(lag < LAG_LIMIT_MS)],
        ["bot loop lag p99 (ms)", f"{percentile(samples, 99):.1f}", "", ""],
        ["largest GC pause (ms)", f"{max(gc_pauses.pauses, default=0.0):.1f}", "", ""],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=1,
                        help="spread the commands over this many channels (default 1)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(args.channels))
        return 0
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(run(args.events, args.channels, Path(tmp)))
    print_table(f"Mattermost: {args.events} `!help` posted events over the websocket, "
                f"{args.channels} channel(s), replies via POST /posts/ephemeral",
                ["measure", "value", "limit", "verdict"], rows)
    return 1 if any(r[-1] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
