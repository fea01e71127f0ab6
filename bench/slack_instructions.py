"""Instructions per signed `/shiftbot help`: shiftbot vs the bare slack-bolt floor (callgrind).

A noise-free companion to bench_slack.py: on a shared VM the timed p99 ratio moves by a
quarter between runs, the number of machine instructions a request costs does not. Each server
(the same two as bench_slack.py) runs under ``valgrind --tool=callgrind`` twice, answering
SHORT and then LONG requests from 10 concurrent clients; (instructions(LONG) -
instructions(SHORT)) / (LONG - SHORT) is the cost of one request with start-up and shutdown
cancelled out. It counts every thread (shiftbot's audit writer included) but not cache misses,
and under valgrind each audit batch holds only a few rows, so shiftbot's share of batch overhead
is larger than at full speed. Needs valgrind; about five minutes.
Run: .venv/bin/python bench/slack_instructions.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_slack
from _util import free_port, print_table, verdict

SHORT, LONG = 200, 1000
CLIENTS = 10


async def total_instructions(kind: str, requests: int, api_url: str, response_url: str,
                             session: aiohttp.ClientSession, tmp: Path) -> int:
    port = free_port()
    out = tmp / f"callgrind-{kind}-{requests}.out"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         bench_slack.__file__, "--serve", kind, "--port", str(port), "--api", api_url,
         "--core", "0", "--tmp", str(tmp)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"})
    try:
        line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
        if line.strip() != "READY":
            raise SystemExit(f"{kind} server did not start under valgrind")
        await asyncio.sleep(3)  # bolt's auth.test and shiftbot's start-up settle
        url = f"http://127.0.0.1:{port}/slack/events"
        _lat, bad, _elapsed, _sample = await bench_slack.load(
            url, bench_slack.signed_requests(requests, response_url), CLIENTS, session)
        if bad:
            raise SystemExit(f"{kind}: {bad} non-200 answers under valgrind")
        await asyncio.sleep(2)  # the last audit batch is written
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    totals = [int(line.split()[1]) for line in out.read_text().splitlines()
              if line.startswith(("summary:", "totals:"))]
    return max(totals)


async def measure(tmp: Path) -> dict[str, float]:
    from fakes.slack import FakeSlack

    per_request: dict[str, float] = {}
    async with FakeSlack(bot_token=bench_slack.TOKEN, signing_secret=bench_slack.SECRET) as fake:
        response_url = fake.new_response_url("general", "U00000001")
        async with aiohttp.ClientSession() as session:
            for kind in ("floor", "shiftbot"):
                short = await total_instructions(kind, SHORT, fake.api_url, response_url,
                                                 session, tmp)
                long = await total_instructions(kind, LONG, fake.api_url, response_url,
                                                session, tmp)
                per_request[kind] = (long - short) / (LONG - SHORT)
    return per_request


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing measured")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        per_request = asyncio.run(measure(Path(tmp)))
    ratio = per_request["shiftbot"] / per_request["floor"]
    print_table("Instructions per signed `/shiftbot help` (callgrind, all threads)",
                ["server", "instructions/request"],
                [[kind, f"{count:,.0f}"] for kind, count in per_request.items()])
    print_table("Verdict", ["check", "value", "limit", "verdict"],
                [["instruction ratio shiftbot/floor", f"{ratio:.2f}",
                  f"<= {bench_slack.RATIO_LIMIT}", verdict(ratio <= bench_slack.RATIO_LIMIT)]])
    return 0 if ratio <= bench_slack.RATIO_LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
