"""`condor q` over a 100,000-job queue: time to the rendered reply, and peak RSS of both processes.

The queue lives in a demo pool (the fake schedd of real ClassAds) inside the worker process,
exactly where a real pool's answers arrive. Measured in the same run:

* reply -- ``Bot.handle("condor q")`` through the core (parse, permission gate, audit write,
  worker round trip, template) plus the console/Slack text rendering;
* floor -- the time the worker spent inside ``schedd.query()`` for that very reply (the
  projected ads alone), reported by the worker with the reply;
* naive fetch -- for context: one query of all 100,000 jobs with every attribute the table
  shows, which is what a straightforward implementation would fetch;
* peak RSS (VmHWM) of the bot's process and of the worker, and the worker's RSS right after
  the fake queue was built (the fake's own storage; a real schedd keeps that elsewhere).

Targets (issue): reply < 1.5 s, reply/floor < 1.5, peak RSS < 300 MB (each process).
Run: .venv/bin/python bench/bench_condor.py [--jobs 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _util import peak_rss_mb, print_table, rss_mb, verdict

from bot.condor.ops import ROW_ATTRS
from bot.condor.service import CondorService
from bot.config import parse_config
from bot.core import Bot, OutcomeStatus
from bot.identity import Inbound
from bot.render import render_text

REPLY_LIMIT_S = 1.5
RATIO_LIMIT = 1.5
RSS_LIMIT_MB = 300.0


def config(tmp: Path, jobs: int) -> dict[str, object]:
    return {
        "bot": {"database": f"sqlite:///{tmp / 'bench.db'}",
                "handlers": ["handlers.builtin", "handlers.condor", "handlers.condor_actions"]},
        "people": {"alice": {"name": "Alice"}},
        "roles": {"shifter": {"allow": ["help", "condor.*"]}},
        "grants": [{"role": "shifter", "people": ["alice"]}],
        "condor": {"pools": {"big": {"backend": "demo", "demo_jobs": jobs,
                                     "timeout_seconds": 60}}},
    }


async def main(jobs: int, runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        bot = await Bot.create(parse_config(config(Path(tmp), jobs), Path(tmp)))
        try:
            service = bot.services.require(CondorService)
            worker = service.worker("big")
            started = time.perf_counter()
            await worker.start()  # the fake builds its queue here
            seeding = time.perf_counter() - started
            assert worker.pid is not None
            store_mb = rss_mb(worker.pid)
            line = Inbound(platform="console", user_id="alice", text="condor q")
            await bot.handle(line)  # warm-up: imports, first template compile
            replies, floors, naive, worker_side = [], [], [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                outcome = await bot.handle(line)
                render_text(outcome.reply, "slack")
                replies.append(time.perf_counter() - t0)
                assert outcome.status == OutcomeStatus.OK, outcome.reply.text
                floors.append(outcome.reply.data["fetch_seconds"])
                worker_side.append(outcome.reply.data["worker_seconds"])
            main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            worker_peak = peak_rss_mb(worker.pid)
            # Context only, after the peaks were read (100k full rows cost memory).
            for _ in range(runs):
                fetched = await worker.call("fetch", {"constraint": "true",
                                                      "projection": ROW_ATTRS}, timeout=120)
                assert fetched["count"] == jobs
                naive.append(fetched["seconds"])
            summary_line = outcome.reply.text.splitlines()[1]
            shown = len(outcome.reply.table.rows) if outcome.reply.table else 0
        finally:
            await bot.close()

    reply = statistics.median(replies)
    floor = statistics.median(floors)
    ratio = statistics.median(r / f for r, f in zip(replies, floors, strict=True))
    print(f"condor q over {jobs:,} jobs, {runs} runs (medians); fake queue built in "
          f"{seeding:.1f} s; {summary_line}; {shown} rows shown")
    rows = [
        ["reply (Bot.handle + render)", f"{reply:.3f} s", f"< {REPLY_LIMIT_S} s",
         verdict(reply < REPLY_LIMIT_S)],
        ["floor: schedd.query() in that reply", f"{floor:.3f} s", "", ""],
        ["reply / floor", f"{ratio:.2f}", f"< {RATIO_LIMIT}", verdict(ratio < RATIO_LIMIT)],
        ["worker total for that reply", f"{statistics.median(worker_side):.3f} s", "", ""],
        ["naive fetch (1 query, all 100k rows)", f"{statistics.median(naive):.3f} s", "", ""],
        ["peak RSS, bot process", f"{main_peak:.0f} MB", f"< {RSS_LIMIT_MB:.0f} MB",
         verdict(main_peak < RSS_LIMIT_MB)],
        ["peak RSS, worker process", f"{worker_peak:.0f} MB", f"< {RSS_LIMIT_MB:.0f} MB",
         verdict(worker_peak < RSS_LIMIT_MB)],
        ["  of which the fake's 100k-ad store", f"{store_mb:.0f} MB", "", ""],
    ]
    print_table("bench_condor", ["measure", "value", "limit", "verdict"], rows)
    print(f"\nreply runs: {', '.join(f'{r:.3f}' for r in replies)} s; "
          f"floor runs: {', '.join(f'{f:.3f}' for f in floors)} s")
    failed = [r[0] for r in rows if r[3] == "FAIL"]
    if failed:
        print("FAILED: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.jobs, options.runs)))
