"""Durable notices (issue #12): 1,000 notices to 10 channels through the real Slack and
Mattermost platform code, against the loopback fakes (tests/fakes/slack.py, mattermost.py).

Both fakes run in one child process (pinned to its own core when there are two), so the bot's
process does only the bot's work; every ``chat.postMessage`` / ``POST /posts`` answer is held
for ``--latency`` seconds there (a chat API's round trip). Three cases per latency: aliases
mapped on Slack only, on Mattermost only, and on both (combined: 2,000 messages).

For each case, in the same run: the outbox (``bot.notices.post`` one after another, the
deliverer running meanwhile: p50/p99 of ``post()``, its durable write included, and the time
until the fakes hold every message) and the floor (the same messages handed straight to the
platforms' ``post()``: the adapters' per-channel senders, no outbox, no database). Checked on
the fakes' side: every message there once (duplicates) and in posting order per channel.
Each round runs the floor and the outbox of every case side by side; the ratio shown is the
median of the rounds' ratios (a shared VM's noise moves both halves of a round together).

Limits (issue #12): post() p99 < 10 ms, delivery time / floor <= 1.3, 0 duplicates, 0 order
violations. About 100 s. Run: .venv/bin/python bench/bench_notices.py [--latency 0.005,0.03]
[--notices 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)  # slack_sdk honours the proxy variables but not NO_PROXY
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from _util import ChildProcess, percentile, pin, print_table, verdict  # noqa: E402

CHANNELS = 10
CASES = {"slack": ("s", ("slack",)), "mattermost": ("m", ("mattermost",)),
         "combined": ("b", ("slack", "mattermost"))}  # case -> (alias prefix, platforms)
P99_LIMIT_MS = 10.0
RATIO_LIMIT = 1.3
SETTLE = 0.3  # seconds to wait after the last message: a duplicate would show up meanwhile


def slack_id(alias: str) -> str:
    return f"C{alias.upper():0>8}"


def aliases(prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(CHANNELS)]


# ------------------------------------------------------------------------ the fakes' process


async def serve_fakes() -> None:
    """Child side: both fakes; obey ``latency S``, ``mark``, ``wait N``, ``check RUN``,
    ``quit`` (one line each, answered with one line)."""
    from fakes.mattermost import FakeMattermost
    from fakes.slack import Channel, FakeSlack

    pin(1)
    slack_names = aliases("s") + aliases("b")
    slack = FakeSlack(channels=[Channel(slack_id(a), a) for a in slack_names])
    await slack.start()
    mm = await FakeMattermost(users=(), channels=[(a, "O") for a in aliases("m") + aliases("b")]
                              ).start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", slack.api_url, slack.bot_token, slack.signing_secret, mm.url, mm.bot_token,
          mm.team.name, flush=True)
    mark = (0, 0)

    def count() -> int:
        # O(1) reads of the fakes' stores: the public accessors copy every message, which
        # polled every millisecond would load this process's core.
        return len(slack._messages) - mark[0] + len(mm._post_order) - mark[1]

    while line := (await reader.readline()).decode().split():
        if line[0] == "latency":
            slack.clear_faults()
            mm.clear_faults()
            if float(line[1]) > 0:
                slack.hang("chat.postMessage", float(line[1]), times=None)
                mm.hang("POST /api/v4/posts", times=None, seconds=float(line[1]))
        elif line[0] == "mark":
            mark = (len(slack._messages), len(mm._post_order))
        elif line[0] == "wait":
            deadline = loop.time() + float(line[2])
            while count() < int(line[1]) and loop.time() < deadline:
                await asyncio.sleep(0.001)
        elif line[0] == "check":
            sent = [(f"slack:{m.channel}", m.text or "") for m in slack.messages()[mark[0]:]]
            sent += [(f"mattermost:{p['channel_id']}", p["message"])
                     for p in mm.posts()[mark[1]:]]
            print("CHECKED", *check(sent, line[1]), flush=True)
            continue
        elif line[0] == "quit":
            break
        print("OK", count(), f"{time.process_time():.4f}", flush=True)
    await slack.stop()
    await mm.close()


def check(sent: Iterable[tuple[str, str]], run: str) -> tuple[int, int, int]:
    """(messages of ``run``, duplicates, order violations per channel) among ``sent``, the
    (channel, text) of every message in arrival order; texts are ``<run> <sequence number>``."""
    by_channel: dict[str, list[int]] = defaultdict(list)
    for channel, text in sent:
        words = text.split()
        if len(words) == 2 and words[0] == run:
            by_channel[channel].append(int(words[1]))
    total = sum(len(seq) for seq in by_channel.values())
    duplicates = sum(len(seq) - len(set(seq)) for seq in by_channel.values())
    order = sum(1 for seq in by_channel.values() for a, b in itertools.pairwise(seq) if b < a)
    return total, duplicates, order


# ------------------------------------------------------------------------ the bot's side


@dataclass
class Measured:
    """One case at one latency over several rounds (floor and outbox side by side in each)."""

    case: str
    latency: float
    latencies: list[float] = field(default_factory=list)  # post(), s, every round's
    elapsed: list[float] = field(default_factory=list)  # s per round, outbox
    floor: list[float] = field(default_factory=list)  # s per round, without the outbox
    cpu: list[float] = field(default_factory=list)  # bot CPU ms per message, outbox
    floor_cpu: list[float] = field(default_factory=list)
    delivered: int = 0
    expected: int = 0
    duplicates: int = 0
    order: int = 0

    @property
    def ratios(self) -> list[float]:
        return sorted(e / f for e, f in zip(self.elapsed, self.floor, strict=True))

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios: each round's pair shares the machine's mood."""
        return statistics.median(self.ratios)


async def start_bot(fakes: ChildProcess, tmp: Path) -> tuple[Any, list[Any]]:
    from bot.adapters.mattermost import MattermostAdapter
    from bot.adapters.slack import SlackAdapter
    from bot.config import parse_config
    from bot.core import Bot
    from bot.runtime import attach_http

    slack_url, slack_token, secret, mm_url, mm_token, team = fakes.ready
    every = aliases("s") + aliases("m") + aliases("b")
    config = parse_config({
        "bot": {"database": f"sqlite:///{tmp / 'bench.db'}", "handlers": ["handlers.builtin"]},
        "channels": {alias: {} for alias in every},
        "slack": {"mode": "http", "bot_token": slack_token, "signing_secret": secret,
                  "api_url": slack_url,
                  "channels": {a: slack_id(a) for a in aliases("s") + aliases("b")}},
        "mattermost": {"url": mm_url, "token": mm_token, "team": team,
                       "command_tokens": ["unused"],
                       "channels": {a: a for a in aliases("m") + aliases("b")}},
    }, tmp)
    bot = await Bot.create(config)
    http = attach_http(bot, "127.0.0.1", 0)
    adapters = [SlackAdapter(bot, config.slack), MattermostAdapter(bot, config.mattermost)]
    await http.start()
    bot.config.bot.http.public_url = http.url
    for adapter in adapters:
        await adapter.start()
    await bot.notices.start()
    return bot, [*adapters, http]


async def outbox_run(bot: Any, fakes: ChildProcess, run: str, prefix: str, count: int,
                     expected: int) -> tuple[list[float], float, float]:
    """post() latencies (s), time until every message arrived (s), bot CPU s."""
    from bot.reply import Reply

    names = aliases(prefix)
    await fakes.ask("mark")
    latencies = []
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(count):
        before = time.perf_counter()
        await bot.notices.post(names[i % CHANNELS], Reply(text=f"{run} {i}"), key=f"{run}:{i}")
        latencies.append(time.perf_counter() - before)
    await fakes.ask(f"wait {expected} 120")
    return latencies, time.perf_counter() - started, time.process_time() - cpu


async def floor_run(bot: Any, fakes: ChildProcess, run: str, prefix: str,
                    platforms: tuple[str, ...], count: int, expected: int) -> tuple[float, float]:
    """The same messages straight through each platform's post() (its per-channel sender),
    all handed over at once, in order: time until every message arrived, bot CPU s."""
    from bot.reply import Reply

    targets = [[(bot.platforms[name], await bot.platforms[name].channel_for(alias))
                for name in platforms] for alias in aliases(prefix)]
    await fakes.ask("mark")
    cpu = time.process_time()
    started = time.perf_counter()
    tasks = [asyncio.create_task(platform.post(channel, Reply(text=f"{run} {i}"),
                                               tag=f"{run}:{i}#0"))
             for i in range(count) for platform, channel in targets[i % CHANNELS]]
    await fakes.ask(f"wait {expected} 120")
    elapsed = time.perf_counter() - started
    await asyncio.gather(*tasks)
    return elapsed, time.process_time() - cpu


async def measure(bot: Any, fakes: ChildProcess, m: Measured, count: int, tag: str) -> None:
    """One round of ``m``'s case: the floor, then the outbox, added to ``m``."""
    prefix, platforms = CASES[m.case]
    expected = count * len(platforms)
    elapsed, cpu = await floor_run(bot, fakes, f"floor-{tag}", prefix, platforms, count,
                                   expected)
    m.floor.append(elapsed)
    m.floor_cpu.append(cpu / expected * 1000)
    await asyncio.sleep(SETTLE)
    latencies, elapsed, cpu = await outbox_run(bot, fakes, f"outbox-{tag}", prefix, count,
                                               expected)
    m.latencies += latencies
    m.elapsed.append(elapsed)
    m.cpu.append(cpu / expected * 1000)
    await asyncio.sleep(SETTLE)
    delivered, duplicates, order = map(int, await fakes.ask(f"check outbox-{tag}"))
    m.delivered += delivered
    m.expected += expected
    m.duplicates += duplicates
    m.order += order


async def post_alone(bot: Any, count: int) -> tuple[float, float]:
    """post() p50/p99 (ms) with the deliverer stopped: the durable write by itself."""
    from bot.reply import Reply

    await bot.notices.stop(flush_timeout=5)
    latencies = []
    for i in range(count):
        before = time.perf_counter()
        await bot.notices.post(aliases("b")[i % CHANNELS], Reply(text=f"alone {i}"),
                               key=f"alone:{i}")
        latencies.append(time.perf_counter() - before)
    return percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000


async def run(latencies: list[float], count: int, rounds: int,
              tmp: Path) -> tuple[list[Measured], tuple[float, float]]:
    from bot.runtime import settle_gc

    pin(0)
    fakes = ChildProcess([sys.executable, os.path.abspath(__file__), "--serve-fakes"])
    await fakes.start()
    bot, stoppable = await start_bot(fakes, tmp)
    settle_gc()  # as `shiftbot run` does once started
    results = [Measured(case, latency) for latency in latencies for case in CASES]
    try:
        await fakes.ask("latency 0")
        for case in CASES:  # warm-up: connections, statement caches, the fakes' first posts
            await measure(bot, fakes, Measured(case, 0.0), 50, f"warm-{case}")
        for latency in latencies:
            await fakes.ask(f"latency {latency}")
            for n in range(rounds):  # round after round: each case meets the same noise
                for m in results:
                    if m.latency == latency:
                        await measure(bot, fakes, m, count, f"{m.case}-{latency:g}-{n}")
        alone = await post_alone(bot, count)
    finally:
        for item in reversed(stoppable):
            await item.stop()
        await bot.close()
        await fakes.stop()
    return results, alone


# ------------------------------------------------------------------------ the table


def rows(results: list[Measured]) -> list[list[str]]:
    table = []
    for m in results:
        p50, p99 = percentile(m.latencies, 50) * 1000, percentile(m.latencies, 99) * 1000
        ok = (p99 < P99_LIMIT_MS and m.ratio <= RATIO_LIMIT and m.duplicates == 0
              and m.order == 0 and m.delivered == m.expected)
        spread = f"{m.ratios[0]:.2f}-{m.ratios[-1]:.2f}" if len(m.ratios) > 1 else ""
        table.append([f"{m.latency * 1000:g} ms", m.case, str(m.expected), f"{p50:.2f}",
                      f"{p99:.2f}", f"{statistics.median(m.elapsed):.2f}",
                      f"{statistics.median(m.floor):.2f}", f"{m.ratio:.2f}", spread,
                      f"{statistics.median(m.cpu):.2f} / {statistics.median(m.floor_cpu):.2f}",
                      str(m.duplicates), str(m.order), str(m.expected - m.delivered),
                      verdict(ok)])
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--latency", default="0.005,0.03",
                        help="seconds each post takes at the fakes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3,
                        help="floor and outbox side by side this many times (medians shown)")
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        asyncio.run(serve_fakes())
        return 0
    logging.basicConfig(level=logging.ERROR)
    latencies = [float(v) for v in args.latency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results, alone = asyncio.run(run(latencies, args.notices, args.rounds, Path(tmp)))
    table = rows(results)
    print_table(f"{args.notices} notices to {CHANNELS} channels, fake Slack and Mattermost on "
                f"loopback, {args.rounds} round(s) (limits: post() p99 < {P99_LIMIT_MS:g} ms, "
                f"ratio <= {RATIO_LIMIT:g}, 0 duplicates, 0 order violations, none missing)",
                ["latency", "case", "messages/round", "post p50 ms", "post p99 ms",
                 "delivered s", "floor s", "ratio", "ratio range", "CPU ms/msg outbox / floor",
                 "dups", "order", "missing", "verdict"], table)
    print(f"\npost() with the deliverer stopped: p50 {alone[0]:.2f} ms, p99 {alone[1]:.2f} ms")
    return 1 if any(r[-1] == "FAIL" for r in table) else 0


if __name__ == "__main__":
    raise SystemExit(main())
