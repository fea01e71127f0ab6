"""Sentry webhooks (issue #14): 1,000 signed deliveries for 50 distinct Sentry issues, 50
concurrent clients over loopback, the real bot and the floor side by side in each round.

* floor: a bare aiohttp handler that verifies the HMAC (``bot.alerts.signature.verify``) and
  answers 200, storing nothing;
* shiftbot: a real bot process (tests/alerts_proc.py: the ``shiftbot run`` lifecycle, the
  alerts feature, SQLite in WAL mode) whose route stores each delivery in the durable inbox
  before its 200, while its drain loop posts to a fake Slack and opens issues on a fake GitLab
  (auto-ticket for level >= error; storm threshold 5). ``--paused`` holds the processor's
  lease: the acks alone.

Servers run pinned to core 0; this load generator and the fakes' process share core 1. Per
issue: one ``issue.created``, then ``event_alert.triggered`` deliveries with distinct event ids
(each is stored: no dedupe short-cut), round-robin, so the 50 new issues come first (a storm).
Reported: ack p50/p99, accepted webhooks/s, server CPU per request; for shiftbot the seconds
from the first request until the inbox is drained and until every task is done, GitLab issues
(exactly 50, each once), top-level posts against the storm rule's bound.

Targets: p99 < 50 ms, webhooks/s >= 0.5x the floor's (medians of the rounds). Exit 1 on a hard
failure (issue count, duplicates, lost deliveries, non-200), 2 when only a timing target fails.
Run: .venv/bin/python bench/bench_alerts.py [--rounds 2] [--webhooks 1000] [--issues 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import aiohttp  # noqa: E402
import yaml  # noqa: E402
from _util import ChildProcess, free_port, percentile, pin, print_table, verdict  # noqa: E402

CLIENTS = 50
P99_LIMIT_MS = 50.0
RATE_LIMIT = 0.5  # accepted webhooks/s, shiftbot / floor
DRAIN_TIMEOUT = 300.0


# ------------------------------------------------------------------------ the deliveries


def issue_created(issue_id: int, project: str) -> dict[str, Any]:
    from fakes.sentry_sender import sample, variant

    return variant(sample("issue_created"), issue_id=str(issue_id), project=project,
                   short_id=f"{project.upper()}-{issue_id}", level="error",
                   title=f"RuntimeError: bench failure {issue_id}")


def event_alert(issue_id: int, project: str, n: int) -> dict[str, Any]:
    from fakes.sentry_sender import sample, variant

    return variant(sample("event_alert_triggered_python"), event_id=uuid.uuid4().hex,
                   issue_id=str(issue_id), project=project, level="error",
                   title=f"RuntimeError: bench failure {issue_id}",
                   tags={"environment": "production", "n": str(n)})


def deliveries(issues: list[int], total: int, project: str) -> list[tuple[str, bytes]]:
    """(resource, body): each issue created once, then event alerts, round-robin."""
    out: list[tuple[str, bytes]] = []
    for i in range(total):
        issue = issues[i % len(issues)]
        if i < len(issues):
            out.append(("issue", json.dumps(issue_created(issue, project)).encode()))
        else:
            out.append(("event_alert",
                        json.dumps(event_alert(issue, project, i // len(issues))).encode()))
    return out


def signed(items: list[tuple[str, bytes]], secret: str) -> list[tuple[bytes, dict[str, str]]]:
    from bot.alerts.signature import sign

    return [(body, {"Content-Type": "application/json", "Sentry-Hook-Resource": resource,
                    "Sentry-Hook-Timestamp": str(int(time.time())),
                    "Request-ID": str(uuid.uuid4()),
                    "Sentry-Hook-Signature": sign(secret, body)}) for resource, body in items]


# ------------------------------------------------------------------------ the servers


async def serve_floor(port: int, secret: str) -> None:
    """The floor: verify the HMAC of the raw body, answer 200; nothing stored."""
    from aiohttp import web

    from bot.alerts.signature import verify

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(secret, body, request.headers.get("Sentry-Hook-Signature")):
            return web.json_response({"ok": False}, status=401)
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhooks/sentry", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def serve_fakes() -> None:
    """Child side: fake Slack and GitLab; obey ``count PROJECT FIRST LAST`` and ``quit``."""
    from alerts_stack import gitlab_state, issues_by_marker, top_posts
    from fakes.gitlab import FakeGitLab
    from fakes.slack import FakeSlack
    from notice_stack import SLACK_USERS

    state = gitlab_state()
    async with FakeSlack(users=SLACK_USERS) as slack, FakeGitLab(state) as gitlab:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("READY", slack.api_url, slack.bot_token, slack.signing_secret, gitlab.url,
              flush=True)
        while words := (await reader.readline()).decode().split():
            if words[0] == "quit":
                break
            project, first, last = words[1], int(words[2]), int(words[3])
            ids = {str(i) for i in range(first, last + 1)}
            markers = issues_by_marker(state)
            posts = [p for p in top_posts(slack) if p.key and (
                p.key.removeprefix("alert:sentry:") in ids
                or p.key.startswith(f"storm:{project}:"))]
            print("OK", sum(1 for i in ids if markers[i]), sum(markers[i] for i in ids),
                  len(posts), sum(1 for p in posts if p.key.startswith("storm:")), flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def spawn_floor(port: int, secret: str) -> ChildProcess:
    """The floor's process (it pins itself to core 0)."""
    child = ChildProcess([sys.executable, os.path.abspath(__file__), "--serve-floor",
                          str(port), secret])
    await child.start()
    return child


# ------------------------------------------------------------------------ load


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # ms
    non_200: int = 0
    elapsed: float = 0.0  # s
    cpu_ms: float = 0.0  # server CPU per request

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


async def send_all(session: aiohttp.ClientSession, url: str,
                   requests: list[tuple[bytes, dict[str, str]]], pid: int) -> Load:
    """Closed loop: CLIENTS clients, each sends its next request when answered."""
    result = Load()
    queue: Iterator[tuple[bytes, dict[str, str]]] = iter(requests)

    async def client() -> None:
        for body, headers in queue:
            before = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
            result.latencies.append((time.perf_counter() - before) * 1000)
            result.non_200 += resp.status != 200

    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    result.elapsed = time.perf_counter() - started
    result.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / len(requests)
    return result


# ------------------------------------------------------------------------ shiftbot's side


@dataclass
class Outcome:
    """One shiftbot round: what the fakes and the tables hold once everything is done."""

    drained_s: float = float("nan")  # first request -> inbox drained
    done_s: float = float("nan")  # first request -> every task done (settle answered)
    gitlab_issues: int = 0  # Sentry issues of the round with a GitLab issue
    gitlab_total: int = 0  # GitLab issues carrying the round's markers (duplicates count)
    top_posts: int = 0
    summaries: int = 0
    stored: int = 0  # inbox rows of the round (every delivery is distinct)
    failed: int = 0  # inbox rows or tasks failed for good


def table_counts(url: str, issues: list[int]) -> tuple[int, int, int]:
    """(pending inbox rows, rows of ``issues``' deliveries, rows failed) from outside."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            pending = conn.execute(text(
                "SELECT count(*) FROM alerts_inbox WHERE state = 'pending'")).scalar_one()
            stored = conn.execute(text(
                "SELECT count(*) FROM alerts_inbox WHERE subject IN :subjects").bindparams(
                bindparam("subjects", expanding=True)),
                {"subjects": [f"sentry:{i}" for i in issues]}).scalar_one()
            failed = conn.execute(text(
                "SELECT (SELECT count(*) FROM alerts_inbox WHERE state = 'failed') + "
                "(SELECT count(*) FROM alerts_tasks WHERE state = 'failed')")).scalar_one()
    finally:
        engine.dispose()
    return int(pending), int(stored), int(failed)


async def drained(url: str, started: float) -> float:
    """Seconds from ``started`` until no inbox row is pending (polled every 20 ms)."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline:
        pending, _stored, _failed = await asyncio.to_thread(table_counts, url, [])
        if pending == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    return float("nan")


def bot_config(fakes: ChildProcess, tmp: Path, port: int) -> tuple[Path, str]:
    from alerts_stack import alerts_config, slack_section

    api_url, token, signing, gitlab_url = fakes.ready
    database = f"sqlite:///{tmp / 'bench-alerts.db'}"
    raw = alerts_config(database, http_port=port, gitlab_url=gitlab_url,
                        chat=slack_section(api_url, token, signing))
    raw["bot"]["handlers"] = [h for h in raw["bot"]["handlers"] if h != "sample_handlers"]
    path = tmp / "bench-alerts.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, database


async def shiftbot_round(session: aiohttp.ClientSession, bot: Any, fakes: ChildProcess,
                         database: str, url: str, issues: list[int], total: int,
                         project: str, paused: bool) -> tuple[Load, Outcome]:
    from alerts_stack import CLIENT_SECRET

    requests = signed(deliveries(issues, total, project), CLIENT_SECRET)
    started = time.perf_counter()
    load = await send_all(session, url, requests, bot.pid)
    outcome = Outcome()
    if paused:  # nothing is processed: only the acks are measured
        return load, outcome
    outcome.drained_s = await drained(database, started)
    await bot.settle(DRAIN_TIMEOUT)
    outcome.done_s = time.perf_counter() - started
    have, total_markers, posts, summaries = map(int, await fakes.ask(
        f"count {project} {issues[0]} {issues[-1]}"))
    outcome.gitlab_issues, outcome.gitlab_total = have, total_markers
    outcome.top_posts, outcome.summaries = posts, summaries
    _pending, outcome.stored, outcome.failed = await asyncio.to_thread(
        table_counts, database, issues)
    return load, outcome


async def floor_round(session: aiohttp.ClientSession, floor: ChildProcess, url: str,
                      issues: list[int], total: int, project: str) -> Load:
    from alerts_stack import CLIENT_SECRET

    requests = signed(deliveries(issues, total, project), CLIENT_SECRET)
    assert floor.proc is not None
    return await send_all(session, url, requests, floor.proc.pid)


async def run(rounds: int, total: int, distinct: int, tmp: Path,
              paused: bool) -> list[tuple[Load, Load, Outcome]]:
    from alerts_proc import AlertsProc
    from alerts_stack import CLIENT_SECRET

    pin(1)
    fakes = ChildProcess([sys.executable, os.path.abspath(__file__), "--serve-fakes"])
    await fakes.start()
    floor_port, bot_port = free_port(), free_port()
    floor = await spawn_floor(floor_port, CLIENT_SECRET)
    config, database = bot_config(fakes, tmp, bot_port)
    hold = ["--hold-lease", "86400"] if paused else []
    bot = await AlertsProc(config, tmp / "bot.log", "--log-level", "WARNING",
                           *hold).start(core=0)
    floor_url = f"http://127.0.0.1:{floor_port}/webhooks/sentry"
    bot_url = f"http://127.0.0.1:{bot_port}/webhooks/sentry"
    results = []
    try:
        connector = aiohttp.TCPConnector(limit=CLIENTS * 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            # Warm-up: connections, statement caches, the first posts and tickets.
            warm = list(range(9_000_000, 9_000_010))
            await floor_round(session, floor, floor_url, warm, 200, "warmup")
            await shiftbot_round(session, bot, fakes, database, bot_url, warm, 200, "warmup",
                                 paused)
            for n in range(rounds):
                issues = list(range(7_000_000 + n * 1000, 7_000_000 + n * 1000 + distinct))
                project = f"gwcelery-r{n}"
                floor_load = await floor_round(session, floor, floor_url, issues, total,
                                               f"floor-r{n}")
                load, outcome = await shiftbot_round(session, bot, fakes, database, bot_url,
                                                     issues, total, project, paused)
                results.append((floor_load, load, outcome))
    finally:
        await bot.stop()
        await floor.stop()
        await fakes.stop()
        if bot.log.exists() and "Traceback" in bot.log.read_text():
            print(f"the bot logged a traceback; see its log:\n{bot.tail(3000)}")
    return results


# ------------------------------------------------------------------------ the table


def report(results: list[tuple[Load, Load, Outcome]], total: int, distinct: int,
           bound: int, paused: bool) -> int:
    rows = []
    for n, (floor, ours, _outcome) in enumerate(results):
        for name, load in (("floor", floor), ("shiftbot", ours)):
            rows.append([str(n), name, f"{percentile(load.latencies, 50):.2f}",
                         f"{percentile(load.latencies, 99):.2f}", f"{load.rate:.0f}",
                         f"{load.cpu_ms:.3f}", str(load.non_200)])
    print_table(f"{total} signed webhooks for {distinct} Sentry issues, {CLIENTS} concurrent "
                "clients, loopback (ack latency in ms)",
                ["round", "server", "p50", "p99", "webhooks/s", "server CPU ms/req",
                 "non-200"], rows)
    if not paused:
        print_table("shiftbot's work after the acks",
                    ["round", "inbox drained s", "all done s", "stored", "GitLab issues",
                     "GitLab issues w/ markers", "top-level posts", "storm summaries",
                     "failed"],
                    [[str(n), f"{o.drained_s:.2f}", f"{o.done_s:.2f}", str(o.stored),
                      str(o.gitlab_issues), str(o.gitlab_total), str(o.top_posts),
                      str(o.summaries), str(o.failed)] for n, (_f, _l, o) in enumerate(results)])
    p99 = statistics.median(percentile(o.latencies, 99) for _f, o, _x in results)
    ratio = statistics.median(o.rate / f.rate for f, o, _x in results)
    outs = [o for *_, o in results]
    counts = [  # (check, value per round, target, passes)
        ("GitLab issues (each round)", [o.gitlab_issues for o in outs], f"== {distinct}",
         lambda v: v == distinct),
        ("GitLab issues per Sentry issue", [o.gitlab_total for o in outs],
         f"== {distinct} (none twice)", lambda v: v == distinct),
        ("deliveries stored (each round)", [o.stored for o in outs], f"== {total}",
         lambda v: v == total),
        ("non-200 answers", [f.non_200 + o.non_200 for f, o, _x in results], "0",
         lambda v: v == 0),
        ("top-level posts (each round)", [o.top_posts for o in outs],
         f"<= {bound} (storm rule)", lambda v: v <= bound)]
    hard = [(what, " / ".join(map(str, values)), limit, all(map(ok, values)))
            for what, values, limit, ok in counts
            if not paused or what == "non-200 answers"]  # paused: nothing else happens
    timed = [("ack p99, median of rounds (ms)", f"{p99:.2f}", f"< {P99_LIMIT_MS:g}",
              p99 < P99_LIMIT_MS),
             ("webhooks/s shiftbot / floor, median", f"{ratio:.2f}", f">= {RATE_LIMIT:g}",
              ratio >= RATE_LIMIT)]
    print_table("Verdict", ["check", "value", "target", "verdict"],
                [[what, value, limit, verdict(ok)] for what, value, limit, ok in hard + timed])
    if not all(ok for *_, ok in hard):
        return 1
    return 0 if all(ok for *_, ok in timed) else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--issues", type=int, default=50)
    parser.add_argument("--paused", action="store_true",
                        help="hold the processor's lease: measure the acks alone")
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "SECRET"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(serve_fakes())
        return 0
    if args.serve_floor:
        pin(0)
        asyncio.run(serve_floor(int(args.serve_floor[0]), args.serve_floor[1]))
        return 0
    from alerts_stack import STORM_THRESHOLD, storm_bound

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        results = asyncio.run(run(args.rounds, args.webhooks, args.issues, Path(tmp),
                                  args.paused))
    bound = storm_bound(args.issues, STORM_THRESHOLD)
    return report(results, args.webhooks, args.issues, bound, args.paused)


if __name__ == "__main__":
    raise SystemExit(main())
