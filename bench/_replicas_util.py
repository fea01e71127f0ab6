"""Pieces of bench/bench_replicas.py: the fakes' child process (Mattermost + GitLab, driven
one line at a time), the webhook load spread over the replicas' ports, PostgreSQL pinned to a
core, and readers of what the database holds afterwards (who claimed what, what the inbox did).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _util import percentile

COMMAND = "!help"
CHANNEL = "ops"  # where the commands are posted (alias ``ops``)


# ------------------------------------------------------------------------ the fakes (child)


class Answers:
    """The bot's answers to a set of command posts, read incrementally (the fake's lists only
    grow; a full copy every poll would cost the fake's core more than the bot's answers):
    ephemeral posts and ordinary posts by the bot whose ``root_id`` is one of the commands."""

    def __init__(self, mm: Any, roots: set[str]) -> None:
        self.mm, self.roots = mm, roots
        self.count: Counter[str] = Counter()
        self.first: dict[str, int] = {}  # root -> create_at of its first answer (ms)
        self.last = 0  # create_at of the latest answer (ms)
        self._ephemeral = self._posts = 0  # how far each list was read

    def read(self) -> int:
        """Take in what is new; how many commands have an answer."""
        ephemeral = self.mm.ephemeral
        for entry in ephemeral[self._ephemeral:]:
            self._take(entry.post)
        self._ephemeral = len(ephemeral)
        order = self.mm._post_order  # read only: the fake's own list, no copies
        for post_id in order[self._posts:]:
            post = self.mm._posts[post_id]
            if post["user_id"] == self.mm.bot.id:
                self._take(post)
        self._posts = len(order)
        return len(self.count)

    def _take(self, post: dict[str, Any]) -> None:
        root = post["root_id"]
        if root in self.roots:
            self.count[root] += 1
            self.first.setdefault(root, post["create_at"])
            self.last = max(self.last, post["create_at"])


def command_channels(count: int) -> list[str]:
    """The channels the commands are posted in, round robin (``ops`` first)."""
    return [CHANNEL, *(f"{CHANNEL}-{n}" for n in range(1, count))]


async def push(mm: Any, count: int, rate: float, channels: list[str]) -> list[dict[str, Any]]:
    """Post ``count`` commands as alice at ``rate`` posts/s, round robin over ``channels``
    (paced against the loop's clock: a slow moment is caught up, the average rate holds)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    posts = []
    for n in range(count):
        ahead = started + n / rate - loop.time()
        if ahead > 0.002:
            await asyncio.sleep(ahead)
        posts.append(await mm.post_as("alice", channels[n % len(channels)], COMMAND))
    return posts


async def wait_answers(mm: Any, posts: list[dict[str, Any]], timeout: float,
                       grace: float) -> str:
    """Until every post has an answer (or ``timeout``), then ``grace`` more seconds for late
    duplicates. ``DONE answered lost duplicates span_s p50_ms p99_ms``."""
    answers = Answers(mm, {p["id"] for p in posts})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while answers.read() < len(posts) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(grace)
    answers.read()
    created = {p["id"]: p["create_at"] for p in posts}
    latency = [answers.first[r] - created[r] for r in answers.first]
    span = (answers.last - min(created.values())) / 1000 if answers.first else float("nan")
    return (f"DONE {len(answers.count)} {len(posts) - len(answers.count)} "
            f"{sum(n - 1 for n in answers.count.values())} {span:.3f} "
            f"{percentile(latency, 50):.0f} {percentile(latency, 99):.0f}")


def count_alerts(mm: Any, state: Any, project: str, first: int, last: int) -> str:
    """``OK <Sentry issues with a GitLab issue> <GitLab issues with their markers>
    <top-level posts> <storm summaries>`` for the issues ``first..last`` of ``project``."""
    from alerts_stack import issues_by_marker, top_posts

    ids = {str(i) for i in range(first, last + 1)}
    markers = issues_by_marker(state)
    posts = [p for p in top_posts(mm) if p.key and (
        p.key.removeprefix("alert:sentry:") in ids or p.key.startswith(f"storm:{project}:"))]
    return (f"OK {sum(1 for i in ids if markers[i])} {sum(markers[i] for i in ids)} "
            f"{len(posts)} {sum(1 for p in posts if p.key and p.key.startswith('storm:'))}")


async def serve_fakes(channels: int) -> None:
    """Child side: a fake Mattermost (its websocket sends every post to every connected
    replica) and a fake GitLab. Obeys ``conns N``, ``push N RATE``, ``wait TIMEOUT GRACE``
    (the last push's answers), ``count PROJECT FIRST LAST`` and ``quit``."""
    from alerts_stack import gitlab_state
    from fakes.gitlab import FakeGitLab
    from fakes.mattermost import FakeMattermost
    from notice_stack import MM_CHANNELS, MM_USERS

    state = gitlab_state()
    names = command_channels(channels)
    extra = tuple((name, "O") for name in names[1:])
    async with FakeMattermost(users=MM_USERS, channels=MM_CHANNELS + extra) as mm, \
            FakeGitLab(state) as gitlab:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("READY", mm.url, mm.bot_token, mm.team.name, gitlab.url, flush=True)
        posts: list[dict[str, Any]] = []
        while words := (await reader.readline()).decode().split():
            if words[0] == "quit":
                break
            if words[0] == "conns":
                await mm.wait_for(lambda: mm.connection_count >= int(words[1]), timeout=60)
                answer = f"OK {mm.connection_count}"
            elif words[0] == "push":
                posts = await push(mm, int(words[1]), float(words[2]), names)
                answer = f"OK {len(posts)}"
            elif words[0] == "wait":
                answer = await wait_answers(mm, posts, float(words[1]), float(words[2]))
            elif words[0] == "count":
                answer = count_alerts(mm, state, words[1], int(words[2]), int(words[3]))
            else:
                answer = f"ERROR unknown {words[0]!r}"
            print(answer, flush=True)


# ------------------------------------------------------------------------ webhook load


@dataclass
class Load:
    """The acks of one batch of webhooks."""

    latencies: list[float] = field(default_factory=list)  # ms
    by_port: Counter[int] = field(default_factory=Counter)  # 200s per replica port
    non_200: int = 0
    elapsed: float = 0.0  # s

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


async def send_round_robin(session: aiohttp.ClientSession, ports: list[int],
                           requests: list[tuple[bytes, dict[str, str]]],
                           clients: int) -> Load:
    """Closed loop, ``clients`` at once; request i goes to replica ``i % len(ports)`` (a load
    balancer's round robin)."""
    result = Load()
    queue: Iterator[tuple[int, tuple[bytes, dict[str, str]]]] = iter(enumerate(requests))

    async def client() -> None:
        for n, (body, headers) in queue:
            port = ports[n % len(ports)]
            before = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/webhooks/sentry", data=body,
                                    headers=headers) as resp:
                await resp.read()
            if resp.status == 200:
                result.latencies.append((time.perf_counter() - before) * 1000)
                result.by_port[port] += 1
            else:
                result.non_200 += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.elapsed = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------ PostgreSQL


def children(pid: int) -> list[int]:
    """``pid`` and its direct children (the postmaster and its backends)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def pin_tree(pid: int, core: int) -> int:
    """Pin ``pid`` and its children to ``core`` (the postmaster: the backends it forks later
    inherit it). How many processes were pinned."""
    count = os.cpu_count() or 1
    if not hasattr(os, "sched_setaffinity") or count < 2:
        return 0
    pinned = 0
    for child in children(pid):
        try:
            os.sched_setaffinity(child, {core % count})
            pinned += 1
        except OSError:
            continue
    return pinned


def postmaster_pid(data_dir: str) -> int:
    with open(os.path.join(data_dir, "postmaster.pid")) as pidfile:
        return int(pidfile.readline())


# ------------------------------------------------------------------------ CPU accounting


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies so far, from /proc/stat (idle + iowait are idle)."""
    out = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values[:8]]
                out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


@dataclass
class Cpu:
    """CPU used between :meth:`start` and :meth:`stop`: per group of processes (seconds) and
    per core (busy fraction, every process on the machine counted)."""

    groups: dict[str, list[int]]
    used: dict[str, float] = field(default_factory=dict)
    busy: dict[int, float] = field(default_factory=dict)
    _cores: dict[int, tuple[int, int]] = field(default_factory=dict)

    def start(self) -> Cpu:
        self.used = {name: -sum(map(cpu_seconds, pids)) for name, pids in self.groups.items()}
        self._cores = core_times()
        return self

    def stop(self) -> Cpu:
        for name, pids in self.groups.items():
            self.used[name] += sum(map(cpu_seconds, pids))
        for core, (busy, total) in core_times().items():
            busy0, total0 = self._cores.get(core, (0, 0))
            self.busy[core] = (busy - busy0) / max(1, total - total0)
        return self


# ------------------------------------------------------------------------ the database


@dataclass
class DbOutcome:
    """What the database says after a configuration's run."""

    commands_by_pid: dict[int, int]  # inbound claims won, per replica pid
    inbox_rows: int  # deliveries of the measured issues stored
    inbox_done: int  # ... processed (state done)
    processed_count: int  # sum of the measured issues' ``deliveries`` (one per processing)
    failed: int  # inbox rows or tasks failed for good (all issues)
    processor_pid: int | None  # who holds the alerts processor lease


def read_outcome(url: str, subjects: list[str]) -> DbOutcome:
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    in_subjects = bindparam("subjects", expanding=True)
    try:
        with engine.connect() as conn:
            owners = conn.execute(text(
                "SELECT owner, count(*) FROM claims WHERE key LIKE 'inbound:mattermost:%' "
                "GROUP BY owner")).all()
            rows, done = conn.execute(text(
                "SELECT count(*), coalesce(sum(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0)"
                " FROM alerts_inbox WHERE subject IN :subjects").bindparams(in_subjects),
                {"subjects": subjects}).one()
            processed = conn.execute(text(
                "SELECT coalesce(sum(deliveries), 0) FROM alerts_issues "
                "WHERE subject IN :subjects").bindparams(in_subjects),
                {"subjects": subjects}).scalar_one()
            failed = conn.execute(text(
                "SELECT (SELECT count(*) FROM alerts_inbox WHERE state = 'failed') + "
                "(SELECT count(*) FROM alerts_tasks WHERE state = 'failed')")).scalar_one()
            lease = conn.execute(text("SELECT owner FROM claims WHERE key = 'alerts:processor'")
                                 ).scalar()
    finally:
        engine.dispose()
    by_pid: Counter[int] = Counter()
    for owner, count in owners:
        by_pid[int(owner.split(":")[-2])] += int(count)
    return DbOutcome(dict(by_pid), int(rows), int(done), int(processed), int(failed),
                     int(lease.split(":")[-2]) if lease else None)


def pending_inbox(engine: Any) -> int:
    """Inbox rows still pending (``engine``: one kept open while polling)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM alerts_inbox WHERE state = 'pending'")).scalar_one())
