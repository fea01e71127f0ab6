"""Two replicas on one PostgreSQL under faults (#16, "Replicas"): real bot processes
(tests/alerts_proc.py: the ``shiftbot run`` lifecycle, its HTTP server, the Mattermost adapter,
the alerts feature) against a fake Mattermost (every replica receives each websocket post) and a
fake GitLab, on a throwaway PostgreSQL server (tests/replica_stack.py). Each test counts what
people and GitLab see afterwards, not what the code believes it did:

- the alerts processor's lease holder is SIGKILLed in the middle of draining 200 webhooks sent
  to both replicas (a GitLab create made but unanswered): the other replica takes the lease once
  it ran out and finishes; every inbox row processed once, one GitLab issue and one top-level
  post per Sentry issue;
- chat commands, seen by both replicas, are answered once; one replica SIGKILLed between two
  bursts: the other answers every later command, once; SIGKILLed in the middle of a command
  (its answer on the way): the other, which kept the post, takes the delivery over once the
  lease ran out and answers it, once (without running it again when the audit shows it ran);
- PostgreSQL restarted (``pg_ctl -m fast``) while webhooks keep arriving: deliveries during the
  outage get 503, the replicas reconnect (pool pre-ping) and every acknowledged delivery is
  processed exactly once.

Lease and retry timeouts are not waited for in real time: the surviving replicas' clocks are
moved past them (``advance``). The tests skip, with a printed reason, only where no PostgreSQL
server can start.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alerts_proc import AlertsProc
from alerts_stack import (
    CLIENT_SECRET,
    chat_fake,
    chat_section,
    gitlab_state,
    issues_by_marker,
    read_tables_at,
    replies,
    top_posts,
    until,
)
from fakes.gitlab import FakeGitLab, GitLabState
from fakes.mattermost import FakeMattermost
from fakes.sentry import SentrySender
from replica_stack import (
    PgCluster,
    by_pid,
    claim_owner_pid,
    postgres_cluster,
    replica_logs,
    start_replicas,
    write_configs,
)

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

ISSUES = 40
EVENTS_PER_ISSUE = 4  # 40 x (1 + 4) = 200 webhooks
LATER = 600  # seconds the survivors' clocks move: past every lease and retry of the dead one
NO_STORM = {"storm": {"threshold": 1000}}  # one post per issue, however many arrive


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with postgres_cluster() as found:
        if found is None:
            print("PostgreSQL is not installed here (no initdb): skipping")
            pytest.skip("no PostgreSQL server can be started here (Debian package postgresql)")
        yield found


def deliveries(sender: SentrySender, issues: range,
               events: int) -> list[tuple[str, dict[str, Any]]]:
    """Per Sentry issue: issue.created, then ``events`` distinct event alerts."""
    out = []
    for i in map(str, issues):
        out.append(("issue", sender.variant(sender.sample("issue_created"), issue_id=i,
                                            project="gwcelery", short_id=f"GWCELERY-{i}",
                                            title=f"TimeoutError: task {i}")))
        out += [("event_alert", sender.variant(
            sender.sample("event_alert_triggered_python"), issue_id=i, project="gwcelery",
            event_id=f"{int(i):016x}{n:016x}", level="error", environment="production"))
            for n in range(events)]
    return out


async def spread(senders: list[SentrySender], items: list[tuple[str, dict[str, Any]]],
                 at_once: int = 16) -> list[int]:
    """Send ``items`` round-robin over the replicas' ports, ``at_once`` in flight; statuses."""
    gate = asyncio.Semaphore(at_once)

    async def one(n: int, resource: str, payload: dict[str, Any]) -> int:
        async with gate:
            status, _body = await senders[n % len(senders)].send(resource, payload)
            return status

    return list(await asyncio.gather(*(one(n, r, p) for n, (r, p) in enumerate(items))))


class HangAfter:
    """A fake GitLab failure's ``times`` that arms once ``creates`` issues exist: the next
    create is made and its answer then withheld (a request in flight when its sender dies)."""

    def __init__(self, state: GitLabState, creates: int) -> None:
        self.state, self.creates, self.fired = state, creates, False

    def __gt__(self, _other: int) -> bool:
        return not self.fired and len(self.state.issues) >= self.creates

    def __isub__(self, _one: int) -> HangAfter:
        self.fired = True
        return self


def check_each_once(url: str, mm: FakeMattermost, gitlab: GitLabState, subjects: list[str],
                    deliveries_each: int | None) -> None:
    """Every inbox row done; per Sentry issue one decision record, one GitLab issue (one
    create request, ever) and one top-level post with the issue's link in its thread."""
    tables = read_tables_at(url)
    assert {r.state for r in tables.inbox} == {"done"}
    assert sorted(r.subject for r in tables.issues) == sorted(f"sentry:{s}" for s in subjects)
    if deliveries_each is not None:  # a row processed twice would count twice
        assert {r.deliveries for r in tables.issues} == {deliveries_each}
    assert {t.state for t in tables.tasks} <= {"done"}, [
        (t.kind, t.state, t.last_error) for t in tables.tasks if t.state != "done"]
    creates = sum(1 for r in gitlab.requests if r.method == "POST" and r.path.endswith("/issues"))
    assert creates == len(subjects)
    assert issues_by_marker(gitlab) == collections.Counter(dict.fromkeys(subjects, 1))
    assert sorted(t.subject for t in tables.tickets) == sorted(f"sentry:{s}" for s in subjects)
    posts = top_posts(mm)
    assert sorted(p.key or "" for p in posts) == sorted(f"alert:sentry:{s}" for s in subjects)
    for post in posts:
        assert [t for t in replies(mm, post) if "GitLab issue" in t], post


async def stop_all(procs: list[AlertsProc], tmp_path: Path) -> None:
    codes = await asyncio.gather(*(p.stop() for p in procs))
    assert all(code in (0, -9) for code in codes), replica_logs(tmp_path)


# ------------------------------------------------------------------------ the tests


async def test_lease_holder_killed_mid_drain_the_other_replica_finishes_once(
        tmp_path: Path, cluster: PgCluster) -> None:
    url = cluster.new_database()
    mm = chat_fake("mattermost")
    assert isinstance(mm, FakeMattermost)
    async with mm, FakeGitLab(gitlab_state()) as gitlab:
        configs = write_configs(tmp_path, 2, database=url, gitlab_url=gitlab.url,
                                chat=chat_section(mm), alerts=NO_STORM)
        procs = await start_replicas(tmp_path, configs)
        # The 11th create of 40 is made by GitLab, its answer never reaches the holder.
        hang = HangAfter(gitlab.state, 10)
        gitlab.state.fail(r"/issues$", 502, method="POST", hang=True, after=True)
        gitlab.state.failures[-1].times = hang  # type: ignore[assignment]
        try:
            senders = [SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET)
                       for _path, port in configs]
            items = deliveries(senders[0], range(7001, 7001 + ISSUES), EVENTS_PER_ISSUE)
            for sender in senders:
                await sender.__aenter__()
            try:
                assert await spread(senders, items) == [200] * len(items)
            finally:
                for sender in senders:
                    await sender.__aexit__(None, None, None)
            await until(lambda: hang.fired, 60, "the 11th GitLab create")
            victim = by_pid(procs, await asyncio.to_thread(claim_owner_pid, url))
            await victim.kill()
            left = await asyncio.to_thread(read_tables_at, url)
            assert left.pending_inbox + len(left.pending_tasks) > 0  # killed mid-work
            gitlab.state.released.set()
            survivor = next(p for p in procs if p is not victim)
            assert await survivor.ask(f"advance {LATER}") == "ok"
            assert await survivor.settle(60) == 0, replica_logs(tmp_path)
            assert await asyncio.to_thread(claim_owner_pid, url) == survivor.pid
        finally:
            await stop_all(procs, tmp_path)
        check_each_once(url, mm, gitlab.state, [str(i) for i in range(7001, 7001 + ISSUES)],
                        1 + EVENTS_PER_ISSUE)


# ------------------------------------------------------------------------ chat commands


def answers_to(mm: FakeMattermost, roots: set[str]) -> collections.Counter[str]:
    """The bot's answers in the threads of ``roots``, counted per root."""
    return collections.Counter(p["root_id"] for p in mm.posts("ops")
                               if p["user_id"] == mm.bot.id and p["root_id"] in roots)


def audited(url: str) -> collections.Counter[str]:
    """The audit's ``sample.echo`` rows, counted per echoed words."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return collections.Counter(" ".join(json.loads(r.arguments)["words"])
                                       for r in conn.execute(text(
                "SELECT arguments FROM audit WHERE command = 'sample.echo'")))
    finally:
        engine.dispose()


async def burst(mm: FakeMattermost, tag: str, count: int) -> set[str]:
    """``count`` commands posted once each (every connected replica receives each); the
    posts' ids once every one is answered."""
    roots = {(await mm.post_as("alice", "ops", f"!sample echo {tag}{i} --public"))["id"]
             for i in range(count)}
    await until(lambda: len(answers_to(mm, roots)) == count, 60, f"{count} answers to {tag}")
    await asyncio.sleep(0.5)  # a late second answer would show by now
    return roots


async def test_commands_seen_by_both_replicas_are_answered_once_also_after_a_kill(
        tmp_path: Path, cluster: PgCluster) -> None:
    url = cluster.new_database()
    mm = chat_fake("mattermost")
    assert isinstance(mm, FakeMattermost)
    async with mm, FakeGitLab(gitlab_state()) as gitlab:
        configs = write_configs(tmp_path, 2, database=url, gitlab_url=gitlab.url,
                                chat=chat_section(mm))
        procs = await start_replicas(tmp_path, configs)
        try:
            await mm.wait_for(lambda: mm.connection_count >= 2, timeout=30)
            both = await burst(mm, "a", 40)
            # Each post reached both replicas and one stood back: the claim decided.
            stood_back = replica_logs(tmp_path, 10**7).count("already taken")
            assert stood_back == 40, replica_logs(tmp_path)
            await procs[0].kill()
            alone = await burst(mm, "b", 40)
        finally:
            await stop_all(procs, tmp_path)
    assert set(answers_to(mm, both | alone).values()) == {1}
    ran = audited(url)
    assert sorted(ran) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)])
    assert set(ran.values()) == {1}


async def test_a_command_whose_replica_dies_mid_command_is_answered_by_the_other(
        tmp_path: Path, cluster: PgCluster) -> None:
    url = cluster.new_database()
    mm = chat_fake("mattermost")
    assert isinstance(mm, FakeMattermost)
    async with mm, FakeGitLab(gitlab_state()) as gitlab:
        configs = write_configs(tmp_path, 2, database=url, gitlab_url=gitlab.url,
                                chat=chat_section(mm))
        procs = await start_replicas(tmp_path, configs)
        try:
            await mm.wait_for(lambda: mm.connection_count >= 2, timeout=30)
            mm.stall("POST /api/v4/posts", times=1, stored=False)  # the answer, lost
            root = (await mm.post_as("alice", "ops", "!sample echo lost --public"))["id"]
            await until(lambda: mm.stalled, 30, "the answer on its way")
            owner = await asyncio.to_thread(claim_owner_pid, url, f"inbound:mattermost:{root}")
            victim = by_pid(procs, owner)
            await victim.kill()
            mm.release_stalls()
            survivor = next(p for p in procs if p is not victim)
            assert await survivor.ask(f"advance {LATER + 600}") == "ok"  # past every claim
            for _ in range(60):  # 3 s
                if answers_to(mm, {root}):
                    break
                await asyncio.sleep(0.05)
        finally:
            await stop_all(procs, tmp_path)
    assert answers_to(mm, {root}) == {root: 1}


# ------------------------------------------------------------------------ PostgreSQL restart

RESTART_ISSUES = 120  # one issue.created each: an acknowledged delivery is one Sentry issue


async def send_steadily(senders: list[SentrySender], items: list[tuple[str, dict[str, Any]]],
                        statuses: list[int]) -> None:
    """Two at a time (one per replica), every 20 ms: webhooks keep arriving throughout; while
    they are refused (the database is down) every 250 ms, so that a slow restart on a busy
    machine still leaves deliveries to prove the replicas came back."""
    for n in range(0, len(items), 2):
        pair = items[n:n + 2]
        statuses += [status for status, _body in await asyncio.gather(
            *(sender.send(r, p) for sender, (r, p) in zip(senders, pair, strict=False)))]
        await asyncio.sleep(0.25 if 503 in statuses[-2:] else 0.02)


async def test_postgresql_restarted_under_load_loses_nothing_acknowledged(
        tmp_path: Path, cluster: PgCluster) -> None:
    url = cluster.new_database()
    mm = chat_fake("mattermost")
    assert isinstance(mm, FakeMattermost)
    async with mm, FakeGitLab(gitlab_state()) as gitlab:
        configs = write_configs(tmp_path, 2, database=url, gitlab_url=gitlab.url,
                                chat=chat_section(mm), alerts=NO_STORM)
        procs = await start_replicas(tmp_path, configs)
        statuses: list[int] = []
        try:
            senders = [SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET)
                       for _path, port in configs]
            ids = [str(i) for i in range(8001, 8001 + RESTART_ISSUES)]
            items = deliveries(senders[0], range(8001, 8001 + RESTART_ISSUES), 0)
            for sender in senders:
                await sender.__aenter__()
            try:
                sending = asyncio.create_task(send_steadily(senders, items, statuses))
                await until(lambda: len(statuses) >= 30, 30, "30 deliveries before the stop")
                await asyncio.to_thread(cluster.stop, "fast")
                await until(lambda: 503 in statuses, 30, "a delivery refused meanwhile")
                await asyncio.to_thread(cluster.start)
                await sending
            finally:
                for sender in senders:
                    await sender.__aexit__(None, None, None)
            # No clock moved: retries of what failed meanwhile come due in real time (moving
            # one replica's clock far ahead of the other's lets it take a live lease).
            for proc in procs:
                assert await proc.settle(60) == 0, replica_logs(tmp_path)
        finally:
            await stop_all(procs, tmp_path)
        assert set(statuses) == {200, 503}, collections.Counter(statuses)
        assert statuses[-10:] == [200] * 10  # the replicas reconnected
        acked = {i for i, status in zip(ids, statuses, strict=True) if status == 200}
        stored = sorted(r.subject.split(":", 1)[1] for r in read_tables_at(url).issues)
        assert acked <= set(stored), sorted(acked - set(stored))
        check_each_once(url, mm, gitlab.state, stored, 1)
