"""Sentry deliveries survive a crash after the ack (#14): a real bot process
(tests/alerts_proc.py: the ``shiftbot run`` lifecycle, its HTTP server, the Mattermost adapter,
the alerts feature) acknowledges signed webhooks and is killed with SIGKILL before or while it
processes them, then started again on the same database (a SQLite file; a PostgreSQL database
too when the server package is installed). Afterwards every delivery is processed exactly once:
one top-level post and one GitLab issue per Sentry issue, every inbox row done.

Three crashes:

- ``held``: processing paused (another owner holds the processor's lease, as a replica that
  died would): the deliveries are acked and stored, nothing is posted or opened; the restart
  comes after that lease ran out;
- ``in-flight``: GitLab has created the first issue but its answer never comes back, and the
  first chat post is made but unanswered, when the process dies; the restart must find both
  (the marker search, the notice lookup) instead of making them again;
- ``mid-drain``: killed the moment the first post or GitLab issue shows, the inbox and the
  task queue partly worked through.

Restarts run with the clock moved past the dead process's leases (``--clock-offset``), so
nothing waits for them in real time. A Sentry retry of an old delivery after the restart
changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alerts_proc import AlertsProc
from alerts_stack import (
    CLIENT_SECRET,
    alerts_config,
    chat_fake,
    chat_section,
    gitlab_state,
    issues_by_marker,
    read_tables_at,
    replies,
    top_posts,
    until,
)
from fakes.gitlab import FakeGitLab
from fakes.mattermost import FakeMattermost
from fakes.sentry import SentrySender
from notice_stack import free_port
from postgres import temporary_postgres
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

HOLD = 300  # seconds the processor's lease is held by "another replica" (held crash)
LATER = 600  # the restart's clock offset: past the held lease and the dead process's (60 s)
ISSUES = ("9101", "9102", "9103")
EVENTS_PER_ISSUE = 2
CRASHES = ("held", "in-flight", "mid-drain")


# ------------------------------------------------------------------------ databases


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str | None]:
    with temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    server = request.getfixturevalue("postgres_server")
    if server is None:
        print("PostgreSQL is not installed here (no initdb): skipping")
        pytest.skip("no PostgreSQL server can be started here (Debian package postgresql)")
    name = f"alerts_{uuid.uuid4().hex[:10]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return f"{server.rsplit('/', 1)[0]}/{name}"


# ------------------------------------------------------------------------ deliveries


def deliveries(sender: SentrySender) -> list[tuple[str, dict[str, Any]]]:
    """Per Sentry issue: issue.created, then event alerts (distinct events), round-robin."""
    out = [("issue", sender.variant(sender.sample("issue_created"), issue_id=i,
                                    project="gwcelery", short_id=f"GWCELERY-{i}",
                                    title=f"TimeoutError: task {i}")) for i in ISSUES]
    for n in range(EVENTS_PER_ISSUE):
        out += [("event_alert", sender.variant(
            sender.sample("event_alert_triggered_python"), issue_id=i, project="gwcelery",
            event_id=f"{int(i):016x}{n:016x}", level="error", environment="production"))
            for i in ISSUES]
    return out


async def send_all(sender: SentrySender, items: list[tuple[str, dict[str, Any]]]) -> None:
    statuses = await asyncio.gather(*(sender.send(r, p) for r, p in items))
    assert [status for status, _body in statuses] == [200] * len(items)


# ------------------------------------------------------------------------ the test


@pytest.mark.parametrize("crash", CRASHES)
async def test_killed_after_the_ack_everything_is_processed_once_after_restart(
        tmp_path: Path, database: str, crash: str) -> None:
    mm = chat_fake("mattermost")
    assert isinstance(mm, FakeMattermost)
    async with mm, FakeGitLab(gitlab_state()) as gitlab:
        port = free_port()
        path = tmp_path / "bot.yaml"
        path.write_text(yaml.safe_dump(alerts_config(
            database, http_port=port, gitlab_url=gitlab.url, chat=chat_section(mm))))
        log = tmp_path / "bot.log"
        if crash == "in-flight":
            gitlab.state.fail(r"/issues$", 502, method="POST", times=1, after=True, hang=True)
            mm.stall("POST /api/v4/posts", stored=True)
        args = ["--hold-lease", str(HOLD)] if crash == "held" else []
        first = await AlertsProc(path, log, *args).start()
        items = deliveries(SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET))
        try:
            async with SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET) as sender:
                await send_all(sender, items)
                if crash == "held":
                    await check_stored_not_processed(database, mm, gitlab, len(items))
                elif crash == "in-flight":
                    await until(lambda: gitlab.state.issues and mm.stalled, 20,
                                "GitLab made an issue and a post is unanswered")
                else:
                    await until(lambda: gitlab.state.issues or top_posts(mm), 20,
                                "the first post or GitLab issue", step=0.002)
        finally:
            await first.kill()
        assert first.proc is not None and first.proc.returncode == -9

        second = await AlertsProc(path, log, "--clock-offset", str(LATER)).start()
        try:
            assert await second.settle(30) == 0
            async with SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET) as sender:
                await send_all(sender, items[:2])  # Sentry retrying what it sent before
            assert await second.settle(30) == 0
        finally:
            assert await second.stop() == 0, second.tail()
        await check_each_once(database, mm, gitlab, len(items), exact_thread=crash == "held")


async def check_stored_not_processed(database: str, mm: FakeMattermost, gitlab: FakeGitLab,
                                     count: int) -> None:
    """The crash window: every delivery durable and pending, nothing done with it yet."""
    await asyncio.sleep(0.3)  # a processor that wrongly ran would have started by now
    tables = await asyncio.to_thread(read_tables_at, database)
    assert [r.state for r in tables.inbox] == ["pending"] * count
    assert tables.issues == [] and tables.tasks == []
    assert top_posts(mm) == [] and gitlab.state.issues == []


async def check_each_once(database: str, mm: FakeMattermost, gitlab: FakeGitLab, count: int,
                          *, exact_thread: bool) -> None:
    tables = await asyncio.to_thread(read_tables_at, database)
    assert len(tables.inbox) == count and {r.state for r in tables.inbox} == {"done"}
    assert sorted(r.subject for r in tables.issues) == [f"sentry:{i}" for i in ISSUES]
    assert {r.deliveries for r in tables.issues} == {1 + EVENTS_PER_ISSUE}
    assert {t.state for t in tables.tasks} <= {"done"}, [
        (t.kind, t.state, t.last_error) for t in tables.tasks]
    # one create per Sentry issue, ever: a lost answer was found by its marker, not re-sent
    assert sum(1 for r in gitlab.state.requests
               if r.method == "POST" and r.path.endswith("/issues")) == len(ISSUES)
    markers = issues_by_marker(gitlab.state)
    assert {i: markers[i] for i in ISSUES} == dict.fromkeys(ISSUES, 1)
    assert len(gitlab.state.issues) == len(ISSUES)
    assert sorted((t.subject, t.iid) for t in tables.tickets) == sorted(
        (f"sentry:{i}", issue.iid) for issue in gitlab.state.issues for i in ISSUES
        if f"<!-- sentry-issue:{i} -->" in issue.description)
    posts = top_posts(mm)
    assert sorted(p.key or "" for p in posts) == [f"alert:sentry:{i}" for i in ISSUES]
    for post in posts:  # the GitLab link in each thread (said again after a crash mid-task)
        links = [t for t in replies(mm, post) if "GitLab issue" in t]
        assert len(links) == 1 if exact_thread else len(links) >= 1, links
