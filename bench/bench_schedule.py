"""Schedule planner: one planning pass over 200 weekly series (each with a day-before and a
10-minute reminder, as meetings will have), 20 meeting series backed by iCal feeds (the real
meetings source: RRULE, EXDATE, a moved and a cancelled occurrence, ~30 Indico one-offs each;
bench/_schedule_seed.py) plus the announcements, for 14 days ahead.

The feeds are served on 127.0.0.1 and fetched once, at the bot's first pass (as the feed job
would); every measured pass expands the kept copies, as the planner always does.

Measured on a SQLite file that already holds 90 days of recorded occurrences: the first pass
(every wake-up added to APScheduler), steady passes (nothing changed), and passes after the
clock moved on an hour (the window slides: wake-ups added and removed). Time per pass
(target < 200 ms, p95 and max), and memory: tracemalloc's peak during a pass and the size of
what the service keeps between passes (its expansions, APScheduler's jobs).

    .venv/bin/python bench/bench_schedule.py [--series 200] [--feeds 20] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _schedule_seed import FeedServer, check_feed_expansion, meetings_section
from _util import percentile, print_table, verdict

import bot.schedule.service as service_module
from bot.clock import ManualClock, use_clock
from bot.config import parse_config
from bot.core import Bot
from bot.meetings.config import MeetingsConfig
from bot.meetings.ical import Feeds
from bot.schedule import store
from bot.schedule.local import expand_weekly
from bot.schedule.model import FIRED, Occurrence, occurrence_key
from bot.schedule.service import ScheduleService

PASS_TARGET_MS = 200.0
START = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)  # a week with the Zurich change in it
ZONES = ("Europe/Zurich", "America/Chicago", "UTC", "Asia/Tokyo")
OFFSETS = (None, timedelta(days=-1), timedelta(minutes=-10))


class MeetingsLike:
    """200 weekly series in four zones, each instant with two reminders before it."""

    name = "bench-meetings"
    max_grace = timedelta(minutes=30)

    def __init__(self, count: int) -> None:
        self.fired = 0
        self.rules = [(f"series-{i}", [i % 5], datetime(2026, 1, 1, 8 + i % 10, 15 * (i % 4))
                       .time(), ZONES[i % len(ZONES)]) for i in range(count)]

    def series(self) -> list[str]:
        return [name for name, *_ in self.rules]

    async def occurrences(self, bot: Any, start: datetime, end: datetime) -> list[Occurrence]:
        found = []
        # Reminders fire up to a day before their meeting: expand the meetings a day further.
        for name, days, at, zone in self.rules:
            for base in expand_weekly(days, at, zone, window_start=start,
                                      window_end=end + timedelta(days=1)):
                for offset in OFFSETS:
                    when = base + (offset or timedelta(0))
                    if start <= when < end:
                        found.append(Occurrence(occurrence_key("reminder", name, base, offset),
                                                name, "reminder", when, self.max_grace,
                                                {"title": name}))
        return found

    async def fire(self, bot: Any, occurrence: Occurrence) -> None:
        self.fired += 1  # a real source stores a notice here (bench_notices measures that)


def config(directory: Path, feeds: int, feeds_url: str) -> Any:
    announcements = [{"name": f"a{i}", "channel": "ops", "text": f"announcement {i}",
                      "weekly": {"days": ["mon", "thu"], "time": "15:00"}} for i in range(10)]
    announcements.append({"name": "nightly", "channel": "ops", "text": "digest",
                          "daily": {"time": "02:30"}, "grace_minutes": 180})
    return parse_config({
        "bot": {"name": "bench", "database": f"sqlite:///{directory / 'bench.db'}",
                "handlers": ["handlers.builtin", "handlers.schedule", "handlers.meetings"],
                "timezone": "Europe/Zurich"},
        "channels": {"ops": {}},
        "schedule": {"horizon_days": 14, "announcements": announcements},
        "meetings": meetings_section(feeds, feeds_url),
    }, directory)


class NullPlatform:
    """Notices of due announcements are stored for it (never sent: no deliverer runs)."""

    name = "null"

    async def channel_for(self, alias: str) -> str | None:
        return "C0NULL"


async def planned_bot(directory: Path, clock: ManualClock, args: argparse.Namespace,
                      server: FeedServer) -> tuple[Bot, ScheduleService, int]:
    """A bot with the announcements, the feed series and the meetings-like source, 90 days of
    history, its first pass done before START (the feeds fetched) and the planner's mark just
    before START."""
    clock.now = START - timedelta(days=1)
    fetched_before = server.requests
    bot = await Bot.create(config(directory, args.feeds, server.url))
    bot.platforms["null"] = NullPlatform()  # type: ignore[assignment]
    service = bot.services.require(ScheduleService)
    source = MeetingsLike(args.series)
    history = await source.occurrences(bot, START - timedelta(days=90), START)
    await bot.database.run(store.record_many, history, FIRED, "bench", START)
    service.register(source)
    await service.started(timeout=300)
    assert server.requests - fetched_before == args.feeds, "each feed fetched once"
    assert not service.last or not service.last.failed_sources, service.last
    clock.now = START
    return bot, service, len(history)


async def timed(service: ScheduleService) -> float:
    started = time.perf_counter()
    result = await service.plan()
    elapsed = (time.perf_counter() - started) * 1000
    # A failed source would stand in with its last plan: a cheaper pass than the real one.
    assert not result.failed_sources, result.failed_sources
    return elapsed


def feed_occurrences(service: ScheduleService) -> int:
    return sum(occ.series.startswith("feed-") for occ in service.expanded.get("meetings", []))


async def timing(args: argparse.Namespace, server: FeedServer
                 ) -> tuple[list[list[str]], bool, dict[str, int]]:
    clock = ManualClock(START)
    with use_clock(clock):
        bot, service, history = await planned_bot(Path(tempfile.mkdtemp()), clock, args, server)
        first = []
        for _ in range(max(1, args.rounds // 4)):
            service.jobs.clear()  # the pass below adds every wake-up again, as a first one
            service.scheduler.remove_all_jobs()  # type: ignore[union-attr]
            first.append(await timed(service))
        counts = {"jobs": len(service.jobs), "history": history,
                  "feed_occurrences": feed_occurrences(service)}
        steady = [await timed(service) for _ in range(args.rounds)]
        sliding = []
        for _ in range(args.rounds):
            clock.advance(3600)
            sliding.append(await timed(service))
        await bot.close()
    rows, ok = [], True
    for label, times in (("first pass (all wake-ups added)", first),
                         ("steady pass (nothing changed)", steady),
                         ("pass an hour later (window slid, due ones fired)", sliding)):
        passed = max(times) < PASS_TARGET_MS
        ok &= passed
        rows.append([label, str(len(times)), f"{statistics.median(times):.1f}",
                     f"{percentile(times, 95):.1f}", f"{max(times):.1f}", verdict(passed)])
    return rows, ok, counts


async def memory(args: argparse.Namespace, server: FeedServer) -> dict[str, float]:
    """MB: peak during a first pass, kept by the service after it, peak during a steady pass,
    and the feeds' copies held in memory (loaded before the measured passes)."""
    clock = ManualClock(START)
    with use_clock(clock):
        tracemalloc.start()
        bot, service, _ = await planned_bot(Path(tempfile.mkdtemp()), clock, args, server)
        service.jobs.clear()
        service.scheduler.remove_all_jobs()  # type: ignore[union-attr]
        service.expanded.clear()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        await service.plan()
        current, first_peak = tracemalloc.get_traced_memory()
        kept = (current - before) / 1e6
        tracemalloc.reset_peak()
        current = tracemalloc.get_traced_memory()[0]
        await service.plan()
        peak = (tracemalloc.get_traced_memory()[1] - current) / 1e6
        tracemalloc.stop()
        kept_feeds = bot.services.get(Feeds)  # made by the first feed series' expansion
        feeds = sum(map(len, kept_feeds.bodies.values())) / 1e6 if kept_feeds else 0.0
        await bot.close()
    return {"first_peak": (first_peak - before) / 1e6, "kept": kept, "peak": peak,
            "feeds": feeds}


def check_feeds(args: argparse.Namespace, server: FeedServer) -> int:
    """Every feed, expanded as the planner does, honours its EXDATEs, moved and cancelled
    events (bench/_schedule_seed.py); their meetings in the window."""
    settings = MeetingsConfig.model_validate(meetings_section(args.feeds, server.url))
    end = START + timedelta(days=15)
    return sum(check_feed_expansion(i, settings, START, end) for i in range(args.feeds))


async def run(args: argparse.Namespace) -> int:
    # The bench has no platform: the first pass need not wait for the notice deliverer; its
    # catch-up of the day before START logs every missed occurrence (expected here).
    service_module.STARTUP_WAIT = 0.0
    logging.getLogger("bot.schedule").setLevel(logging.ERROR)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    async with FeedServer(args.feeds) as server:
        meetings = check_feeds(args, server)
        rows, ok, counts = await timing(args, server)
        mem = await memory(args, server)
    print_table(f"planning pass: {args.series} weekly series x 3 (meeting, -1d, -10m) + "
                f"{args.feeds} iCal feed series ({meetings} meetings in 15 days: "
                f"{counts['feed_occurrences']} occurrences) + 11 announcements, 14 days ahead, "
                f"{counts['jobs']} wake-ups; SQLite with {counts['history']} rows of history "
                "(ms)", ["pass", "n", "median", "p95", "max", f"< {PASS_TARGET_MS:g} ms"], rows)
    print_table("memory (tracemalloc, MB)", ["measure", "MB"],
                [["peak during a first pass", f"{mem['first_peak']:.2f}"],
                 ["kept between passes (expansions, APScheduler jobs)", f"{mem['kept']:.2f}"],
                 ["peak during a steady pass", f"{mem['peak']:.2f}"],
                 ["the feeds' copies in memory (text)", f"{mem['feeds']:.2f}"]])
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
