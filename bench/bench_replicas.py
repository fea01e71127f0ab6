"""Replicas (issue #16): one and two `shiftbot run` processes on one PostgreSQL, side by side in
one run: 1,000 Mattermost `!help` posts and 1,000 signed Sentry webhooks, nothing doubled or
lost, throughput of two replicas against one.

Each configuration gets a fresh database on one throwaway PostgreSQL server and fresh fakes
(a fake Mattermost whose websocket sends every post to every connected replica, and a fake
GitLab, in one child process). The replicas are tests/alerts_proc.py processes: the `shiftbot
run` lifecycle with the core handlers and the alerts feature (the Sentry webhook route, the
inbox processor, auto-tickets for level >= error, storm threshold 5).

1. commands: the fake posts 1,000 `!help` by alice in one channel at a fixed rate (``--rate``,
   default 1,000/s: above what the replicas answer, so the answer rate is their capacity);
   every replica receives every post, the inbound claim lets one run it. Counted in the fake:
   answers per post (lost: none; duplicates: more than one).
2. webhooks: 1,000 signed deliveries for 50 Sentry issues (bench/bench_alerts.py's mix), 50
   clients in a closed loop, request i to replica i mod N (round robin). Counted: 200s,
   inbox rows done, the issues' ``deliveries`` sum (one per processing: > 1,000 means a row
   was processed twice), GitLab issues (exactly 50, none twice), top-level posts (storm bound).

Cores (2 on this machine): the replicas on core 0 ("1 replica", "2 replicas, shared core") or
one on each core ("2 replicas, two cores"); this driver, the fakes' process and PostgreSQL
(the postmaster and the backends it forks) on core 1. Exit 1 on a duplicate, a loss or a wrong
count; the throughput ratio has no target (reported).
Run: .venv/bin/python bench/bench_replicas.py [--commands 1000] [--webhooks 1000] [--rate 1000]
     [--channels 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)
import aiohttp  # noqa: E402
import yaml  # noqa: E402
from _replicas_util import (  # noqa: E402
    Cpu,
    DbOutcome,
    Load,
    children,
    pending_inbox,
    pin_tree,
    postmaster_pid,
    read_outcome,
    send_round_robin,
    serve_fakes,
)
from _util import ChildProcess, free_port, percentile, pin, print_table, verdict  # noqa: E402
from bench_alerts import CLIENTS, deliveries, signed  # noqa: E402

CONFIGURATIONS = [("1 replica", [0]), ("2 replicas, shared core", [0, 0]),
                  ("2 replicas, two cores", [0, 1])]
DRIVER_CORE = 1  # this process, the fakes and PostgreSQL
WARMUP = 20
ISSUES = 50
TIMEOUT = 120.0


@dataclass
class Result:
    name: str
    cores: list[int]
    pids: list[int]
    answered: int = 0
    lost: int = 0
    duplicates: int = 0
    command_span: float = float("nan")  # first post -> last answer (fake's clock), s
    command_p50: float = float("nan")
    command_p99: float = float("nan")
    load: Load | None = None
    ports: list[int] | None = None
    drained_s: float = float("nan")  # first webhook -> inbox drained
    done_s: float = float("nan")  # first webhook -> every replica settled
    gitlab_issues: int = 0
    gitlab_total: int = 0
    top_posts: int = 0
    db: DbOutcome | None = None
    cpu_commands: Cpu | None = None  # push -> every post answered
    cpu_webhooks: Cpu | None = None  # first webhook -> all done

    @property
    def command_rate(self) -> float:
        return self.answered / self.command_span if self.command_span > 0 else 0.0


# ------------------------------------------------------------------------ one configuration


def replica_config(tmp: Path, n: int, database: str, fakes: ChildProcess) -> tuple[Path, int]:
    from alerts_stack import ALIAS, alerts_config

    mm_url, token, team, gitlab_url = fakes.ready
    port = free_port()
    # Mattermost's own timings (not the tests' fast ones): a busy replica is not declared dead.
    chat = {"mattermost": {"url": mm_url, "token": token, "team": team,
                           "channels": {"ops": "ops", ALIAS: ALIAS}}}
    raw = alerts_config(database, http_port=port, gitlab_url=gitlab_url, chat=chat)
    raw["bot"]["handlers"] = [h for h in raw["bot"]["handlers"] if h != "sample_handlers"]
    path = tmp / f"replica{n}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, port


async def settle_all(replicas: list[Any]) -> None:
    await asyncio.gather(*(r.settle(TIMEOUT) for r in replicas))


async def until_drained(database: str, started: float) -> float:
    """Seconds from ``started`` until no inbox row is pending (polled every 20 ms)."""
    from sqlalchemy import create_engine

    engine = create_engine(database)
    try:
        deadline = time.perf_counter() + TIMEOUT
        while time.perf_counter() < deadline:
            if await asyncio.to_thread(pending_inbox, engine) == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.02)
        return float("nan")
    finally:
        engine.dispose()


async def commands(fakes: ChildProcess, result: Result, count: int, rate: float,
                   groups: dict[str, list[int]]) -> None:
    cpu = Cpu(groups).start()
    await fakes.ask(f"push {count} {rate}")
    await fakes.ask(f"wait {TIMEOUT} 0")  # every post answered (or the timeout)
    result.cpu_commands = cpu.stop()
    answered, lost, duplicates, span, p50, p99 = await fakes.ask(f"wait {TIMEOUT} 1.0")
    result.answered, result.lost, result.duplicates = int(answered), int(lost), int(duplicates)
    result.command_span, result.command_p50, result.command_p99 = (float(span), float(p50),
                                                                   float(p99))


def webhook_batch(project: str, issues: list[int], total: int) -> list[Any]:
    from alerts_stack import CLIENT_SECRET

    return signed(deliveries(issues, total, project), CLIENT_SECRET)


async def webhooks(session: aiohttp.ClientSession, replicas: list[Any], ports: list[int],
                   database: str, result: Result, total: int, project: str,
                   issues: list[int], groups: dict[str, list[int]]) -> None:
    requests = webhook_batch(project, issues, total)
    cpu = Cpu(groups).start()
    started = time.perf_counter()
    result.load = await send_round_robin(session, ports, requests, CLIENTS)
    result.drained_s = await until_drained(database, started)
    await settle_all(replicas)
    result.done_s = time.perf_counter() - started
    result.cpu_webhooks = cpu.stop()


async def warm_up(session: aiohttp.ClientSession, fakes: ChildProcess, replicas: list[Any],
                  ports: list[int], name: str) -> None:
    """Connections, statement caches, the first posts and tickets: not measured."""
    await fakes.ask(f"push {WARMUP} 200")
    await fakes.ask(f"wait {TIMEOUT} 0")
    await send_round_robin(session, ports, webhook_batch(
        f"warmup-{name}", list(range(9_000_000, 9_000_010)), 100), CLIENTS)
    await settle_all(replicas)


def process_groups(replicas: list[Any], fakes: ChildProcess, pg: Any) -> dict[str, list[int]]:
    """Whose CPU is counted, by group (PostgreSQL: the postmaster and every backend now,
    after the warm-up opened the replicas' pools)."""
    assert fakes.proc is not None
    return {"replicas": [r.pid for r in replicas], "PostgreSQL": children(
        postmaster_pid(pg.data)), "fakes": [fakes.proc.pid], "driver": [os.getpid()]}


async def run_configuration(pg: Any, tmp: Path, name: str, cores: list[int], count: int,
                            total: int, rate: float, channels: int) -> Result:
    from alerts_proc import AlertsProc

    slug = name.split(",")[0].replace(" ", "") + str(len(set(cores)))
    database = pg.new_database(f"bench_{slug}")
    fakes = ChildProcess([sys.executable, os.path.abspath(__file__), "--serve-fakes",
                          "--channels", str(channels)])
    await fakes.start()
    configs = [replica_config(tmp, n, database, fakes) for n in range(len(cores))]
    ports = [port for _path, port in configs]
    procs = [AlertsProc(path, tmp / f"{slug}-replica{n}.log", "--log-level", "WARNING")
             for n, (path, _port) in enumerate(configs)]
    replicas: list[Any] = []
    try:
        replicas = list(await asyncio.gather(*(p.start(60, core=c)
                                               for p, c in zip(procs, cores, strict=True))))
        await fakes.ask(f"conns {len(replicas)}")
        result = Result(name, cores, [r.pid for r in replicas], ports=ports)
        issues = list(range(7_000_000, 7_000_000 + ISSUES))
        project = f"gwcelery-{slug}"
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CLIENTS * 2)) as session:
            await warm_up(session, fakes, replicas, ports, slug)
            groups = process_groups(replicas, fakes, pg)
            await commands(fakes, result, count, rate, groups)
            await webhooks(session, replicas, ports, database, result, total, project, issues,
                           groups)
        have, markers, posts, _summaries = map(int, await fakes.ask(
            f"count {project} {issues[0]} {issues[-1]}"))
        result.gitlab_issues, result.gitlab_total, result.top_posts = have, markers, posts
        result.db = await asyncio.to_thread(read_outcome, database,
                                            [f"sentry:{i}" for i in issues])
        return result
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await fakes.stop()
        for proc in procs:
            if "Traceback" in proc.tail(100_000):
                print(f"{proc.log.name} logged a traceback:\n{proc.tail(3000)}")


async def run(count: int, total: int, rate: float, channels: int,
              tmp: Path) -> list[Result]:
    from replica_stack import postgres_cluster

    pin(DRIVER_CORE)
    with postgres_cluster() as pg:
        if pg is None:
            return []
        pinned = pin_tree(postmaster_pid(pg.data), DRIVER_CORE)
        print(f"PostgreSQL on 127.0.0.1:{pg.port}, {pinned} processes pinned to core "
              f"{DRIVER_CORE}; the driver and the fakes on core {DRIVER_CORE}")
        results = []
        for name, cores in CONFIGURATIONS:
            started = time.perf_counter()
            results.append(await run_configuration(pg, tmp, name, cores, count, total, rate,
                                                   channels))
            print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
        return results


# ------------------------------------------------------------------------ the tables


def correctness(results: list[Result], count: int, total: int, bound: int) -> bool:
    rows, ok = [], True
    for r in results:
        assert r.load is not None and r.db is not None and r.ports is not None
        checks = [
            ("commands answered", r.answered, f"== {count}", r.answered == count),
            ("commands lost", r.lost, "0", r.lost == 0),
            ("commands answered twice", r.duplicates, "0", r.duplicates == 0),
            ("commands run, per replica", " / ".join(
                str(r.db.commands_by_pid.get(pid, 0)) for pid in r.pids),
             f"sum {count + WARMUP}", sum(r.db.commands_by_pid.values()) == count + WARMUP),
            ("webhooks acked 200, per replica", " / ".join(
                str(r.load.by_port[p]) for p in r.ports), f"sum {total}",
             len(r.load.latencies) == total and r.load.non_200 == 0),
            ("inbox rows stored / done", f"{r.db.inbox_rows} / {r.db.inbox_done}",
             f"{total} / {total}", r.db.inbox_rows == r.db.inbox_done == total),
            ("deliveries processed (issues' sum)", r.db.processed_count, f"== {total}",
             r.db.processed_count == total),
            ("GitLab issues / with markers", f"{r.gitlab_issues} / {r.gitlab_total}",
             f"{ISSUES} / {ISSUES}", r.gitlab_issues == r.gitlab_total == ISSUES),
            ("top-level alert posts", r.top_posts, f"<= {bound}", r.top_posts <= bound),
            ("inbox rows or tasks failed", r.db.failed, "0", r.db.failed == 0),
        ]
        for what, value, target, passed in checks:
            rows.append([r.name, what, str(value), target, verdict(passed)])
            ok = ok and passed
    print_table("Nothing doubled, nothing lost (hard: exit 1 on a FAIL)",
                ["configuration", "check", "value", "target", "verdict"], rows)
    return ok


def throughput(results: list[Result], rate: float, channels: int) -> None:
    base = results[0]
    assert base.load is not None
    rows = []
    for r in results:
        assert r.load is not None
        rows.append([r.name, "+".join(map(str, r.cores)), f"{r.command_rate:.0f}",
                     f"{r.command_rate / base.command_rate:.2f}",
                     f"{r.command_p50:.0f} / {r.command_p99:.0f}", f"{r.load.rate:.0f}",
                     f"{r.load.rate / base.load.rate:.2f}",
                     f"{percentile(r.load.latencies, 50):.1f} / "
                     f"{percentile(r.load.latencies, 99):.1f}",
                     f"{r.drained_s:.2f}", f"{r.done_s:.2f}"])
    print_table(f"Throughput (commands pushed at {rate:g}/s in {channels} channel(s); "
                f"webhooks {CLIENTS} clients, "
                "closed loop, round robin)",
                ["configuration", "replica cores", "answers/s", "x 1 replica",
                 "answer p50 / p99 ms", "webhooks/s", "x 1 replica", "ack p50 / p99 ms",
                 "inbox drained s", "all done s"], rows)


def cpu_table(results: list[Result], count: int, total: int) -> None:
    rows = []
    for r in results:
        for phase, cpu, n in (("commands", r.cpu_commands, count),
                              ("webhooks", r.cpu_webhooks, total)):
            assert cpu is not None
            rows.append([r.name, phase, *(f"{cpu.used[g] * 1000 / n:.2f}" for g in cpu.groups),
                         " / ".join(f"{cpu.busy[c] * 100:.0f}" for c in sorted(cpu.busy))])
    groups = list(results[0].cpu_commands.groups) if results[0].cpu_commands else []
    print_table("Where the CPU went (ms per command or webhook; commands: push -> last answer, "
                "webhooks: first request -> all done)",
                ["configuration", "phase", *groups, "core busy % (0 / 1)"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="commands posted per s")
    parser.add_argument("--channels", type=int, default=1,
                        help="post the commands round robin in this many channels (default 1)")
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.serve_fakes:
        pin(DRIVER_CORE)
        asyncio.run(serve_fakes(args.channels))
        return 0
    from alerts_stack import storm_bound

    started, load = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        os.chmod(tmp, 0o755)
        results = asyncio.run(run(args.commands, args.webhooks, args.rate, args.channels,
                                  Path(tmp)))
    if not results:
        print("SKIPPED: no PostgreSQL server could start here (install Debian's postgresql)")
        return 0
    ok = correctness(results, args.commands, args.webhooks, storm_bound(ISSUES))
    throughput(results, args.rate, args.channels)
    cpu_table(results, args.commands, args.webhooks)
    print(f"\nload average at the start {load[0]:.2f}, at the end {os.getloadavg()[0]:.2f} "
          "(other processes on the machine share its two cores)")
    print(f"whole run {time.perf_counter() - started:.0f} s; "
          f"{'PASS' if ok else 'FAIL'}: zero duplicates, zero losses")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
