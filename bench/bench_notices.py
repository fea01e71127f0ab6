"""Durable notices (issue #12): 1,000 notices to 10 channels, each channel mapped on two fake
platforms ("slack" and "mattermost"), so 2,000 messages.

Measures ``post()`` latency (the durable write included, with the deliverer running on the
same database meanwhile), the time until every message is delivered compared with the floor
(the same 2,000 posts sent straight through per-channel senders, ``bot.sender.ChannelSender``,
with no outbox), duplicates and order violations per channel. The fakes answer each call after
``--latency`` seconds (a chat API call's round trip); run with ``--latency 0.005`` etc.

    .venv/bin/python bench/bench_notices.py [--latency 0.005] [--notices 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _util import percentile, print_table, verdict
from notice_platform import FakePlatform

from bot.config import parse_config
from bot.core import Bot
from bot.reply import Reply
from bot.sender import ChannelSender

CHANNELS = [f"c{i}" for i in range(10)]


def platforms(latency: float) -> list[FakePlatform]:
    return [FakePlatform(name, {alias: f"{name}-{alias}" for alias in CHANNELS},
                         latency=latency) for name in ("slack", "mattermost")]


async def floor(count: int, latency: float) -> float:
    """The same messages straight through per-channel senders: no database at all."""
    fakes = platforms(latency)
    senders = {fake.name: ChannelSender(post=lambda channel, reply, fake=fake:
                                        fake.post(channel, reply)) for fake in fakes}
    started = time.perf_counter()
    futures = [senders[fake.name].send_nowait(fake.channels[CHANNELS[i % 10]],
                                              Reply(text=f"notice {i}"))
               for i in range(count) for fake in fakes]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def outbox(count: int, latency: float, db_dir: Path) -> dict[str, float]:
    config = parse_config({"bot": {"database": f"sqlite:///{db_dir / 'bench.db'}",
                                   "handlers": ["handlers.builtin"]},
                           "channels": {alias: {} for alias in CHANNELS},
                           "notices": {"poll_seconds": 1}}, db_dir)
    bot = await Bot.create(config)
    fakes = platforms(latency)
    for fake in fakes:
        bot.platforms[fake.name] = fake
    await bot.notices.start()
    for i in range(20):  # warm-up: connections, statement caches
        await bot.notices.post(CHANNELS[i % 10], Reply(text="warm-up"), key=f"warm:{i}")
    assert await bot.notices.idle(30)
    for fake in fakes:
        fake.messages.clear()
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        before = time.perf_counter()
        await bot.notices.post(CHANNELS[i % 10], Reply(text=f"notice {i}"), key=f"bench:{i}")
        latencies.append(time.perf_counter() - before)
    while sum(len(f.messages) for f in fakes) < 2 * count:
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - started
    result = {"p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
              "elapsed": elapsed, **check(fakes, count)}
    await asyncio.sleep(0.2)  # a duplicate would show up now
    result["duplicates"] = check(fakes, count)["duplicates"]
    await bot.close()
    return result


def check(fakes: list[FakePlatform], count: int) -> dict[str, float]:
    duplicates = order = 0
    for fake in fakes:
        tags = [m.tag for m in fake.messages]
        duplicates += len(tags) - len(set(tags))
        by_channel: dict[str, list[int]] = defaultdict(list)
        for message in fake.messages:
            by_channel[message.ref.channel_id].append(int(message.text.split()[-1]))
        order += sum(1 for seq in by_channel.values() for a, b in itertools.pairwise(seq) if b < a)
    return {"duplicates": duplicates, "order": order}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.005)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measured = await outbox(args.notices, args.latency, Path(tmp))
    base = await floor(args.notices, args.latency)
    ratio = measured["elapsed"] / base
    rows = [
        ["post() p50 (durable write)", f"{measured['p50']:.2f} ms", "(report)", ""],
        ["post() p99 (durable write)", f"{measured['p99']:.2f} ms", "< 10 ms",
         verdict(measured["p99"] < 10)],
        ["all delivered, outbox", f"{measured['elapsed']:.2f} s", "", ""],
        ["all delivered, senders only (floor)", f"{base:.2f} s", "", ""],
        ["ratio outbox / floor", f"{ratio:.2f}", "<= 1.3", verdict(ratio <= 1.3)],
        ["duplicates", str(int(measured["duplicates"])), "0",
         verdict(measured["duplicates"] == 0)],
        ["order violations per channel", str(int(measured["order"])), "0",
         verdict(measured["order"] == 0)],
    ]
    print_table(f"{args.notices} notices x 10 channels x 2 fake platforms, "
                f"{args.latency * 1000:g} ms per call", ["measure", "value", "limit", "verdict"],
                rows)
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
