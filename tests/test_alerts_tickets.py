"""One GitLab issue per Sentry issue, against the fake GitLab on loopback: opened once and
linked in the alert's thread (once: a chat-lane task queued with the mapping); GitLab failing
after creating it, a lost database and two workers racing never make a second one; transient
failures are retried (said once in the thread), the others given up with a clear message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fakes.gitlab import FakeGitLab, GitLabState
from sqlalchemy import delete
from test_alerts_tickets_support import (
    PROJECT,
    START,
    TOKEN,
    add_issue,
    alert,
    all_tasks,
    drain,
    enqueue_ticket,
    manual_clock,
    mapping,
    of_kind,
    runner,
    the_ticket_task,
    thread_texts,
    ticket_bot,
    until,
    with_notice,
)

from bot.alerts import tables, tickets
from bot.alerts.description import marker_for
from bot.clock import ManualClock
from bot.integrations.gitlab import GitLabClient

__all__ = ["manual_clock"]  # the fixture, imported for pytest


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(tokens=(TOKEN,))
    state.add_project(PROJECT)
    state.add_project("emfollow/other")
    async with FakeGitLab(state) as fake:
        yield fake


def created(gitlab: FakeGitLab) -> int:
    return sum(1 for r in gitlab.state.requests if r.method == "POST"
               and r.path.endswith("/issues"))


async def test_opened_once_and_linked_in_the_thread(make_bot: Any, gitlab: FakeGitLab,
                                                    manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("4711")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    assert await enqueue_ticket(bot, item.subject)
    assert not await enqueue_ticket(bot, item.subject)  # already queued
    assert await runner(bot).run_due() == 1
    [issue] = gitlab.state.issues_of(PROJECT)
    assert issue.title == "GWCELERY-1Z: TimeoutError: the task took too long"
    assert issue.labels == ["sentry", "shiftbot"]
    assert issue.description.rstrip().endswith(marker_for(item.subject))
    row = await mapping(bot, item.subject)
    assert row is not None and (row.project, row.iid, row.state) == (PROJECT, 1, "opened")
    assert row.web_url == f"{gitlab.url}/{PROJECT}/-/issues/1"
    assert not await enqueue_ticket(bot, item.subject)  # mapped
    assert thread_texts(platform) == []  # queued with the mapping: said by the chat lane
    assert await runner(bot).run_due() == 2  # the link in the thread, the notice updated
    await until(lambda: thread_texts(platform) and platform.updates)
    assert await drain(runner(bot)) == 0
    await asyncio.sleep(0.2)
    assert thread_texts(platform) == [f"GitLab issue {PROJECT}#1 opened: {row.web_url}"]
    [(_, shown)] = platform.updates  # the alert's post now shows the link
    assert row.web_url in shown
    assert [(t.kind, t.state) for t in await all_tasks(bot)] == [
        ("ticket", "done"), ("notice.thread", "done"), ("notice.update", "done")]


async def test_gitlab_failing_after_creating_then_recovering_makes_one_issue(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("4712")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    gitlab.state.fail(r"/issues$", 500, method="POST", after=True)  # created, then 500
    await enqueue_ticket(bot, item.subject)
    work = runner(bot)
    assert await work.run_due() == 0
    gitlab.state.fail(r"/issues$", 429, method="GET", retry_after="7")  # the next search
    assert len(gitlab.state.issues) == 1 and await mapping(bot, item.subject) is None
    task = await the_ticket_task(bot)
    assert task.said_in_thread and "may have opened the issue anyway" in (task.last_error or "")
    assert task.next_at == START + timedelta(seconds=15)  # backoff: 5xx says no time
    manual_clock.advance(15)
    assert await work.run_due() == 1  # "not yet" said; the search is rate-limited: 7 s
    task = await the_ticket_task(bot)
    assert task.next_at == START + timedelta(seconds=22) and "429" in (task.last_error or "")
    manual_clock.advance(7)
    assert await work.run_due() == 1
    assert created(gitlab) == 1 and len(gitlab.state.issues) == 1
    row = await mapping(bot, item.subject)
    assert row is not None and row.iid == gitlab.state.issues[0].iid
    assert await drain(work) == 2  # the link and the notice's update
    await until(lambda: len(thread_texts(platform)) == 2)
    await asyncio.sleep(0.2)
    said = thread_texts(platform)
    assert len(said) == 2
    assert said[0].startswith("GitLab issue not opened yet: GitLab failed \\(500")
    assert said[0].endswith("; retrying")
    assert said[1] == f"GitLab issue {PROJECT}#1 found: {row.web_url}"


@pytest.mark.parametrize(("fault", "wait"), [
    ({"status": 429, "retry_after": "42"}, 42.0),
    ({"status": 429, "reset_in": 120}, (110.0, 121.0)),  # RateLimit-Reset, a Unix time
    ({"status": 429}, 15.0),  # neither: the queue's backoff
    ({"status": 502}, 15.0),
    ({"status": 503, "after": True}, 15.0),
    ({"status": 0, "hang": True, "after": True}, 15.0),  # a timeout after creating it
    ({"status": 0, "hang": True}, 15.0),
])
async def test_transient_failures_are_retried_without_a_second_issue(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock, fault: dict[str, Any],
        wait: float | tuple[float, float]) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("4713")
    await add_issue(bot, item)
    status = fault.pop("status")
    gitlab.state.fail(r"/issues$", status, method="POST", **fault)
    await enqueue_ticket(bot, item.subject)
    work = runner(bot)
    assert await work.run_due() == 0
    gitlab.state.released.set()  # a hanging request may finish now
    [task] = await all_tasks(bot)
    waited = (task.next_at - START).total_seconds()
    low, high = wait if isinstance(wait, tuple) else (wait, wait)
    assert low <= waited <= high, (waited, task.last_error)
    assert task.state == "pending" and not task.said_in_thread  # no notice: nothing said
    await until(lambda: len(gitlab.state.issues) == (1 if fault.get("after") else 0))
    manual_clock.advance(waited)
    assert await work.run_due() == 1
    assert len(gitlab.state.issues) == 1
    assert (await mapping(bot, item.subject)) is not None


@pytest.mark.parametrize(("setup", "says"), [
    ({"token": "glpat-wrong"}, "refused the token (401"),
    ({"project": "emfollow/nope"}, "404 Project Not Found"),
    ({"fail": 403}, "may not do this (403"),
    ({"token": None}, "gitlab.token missing"),
    ({"project": None}, "gitlab.project missing"),
    ({"no_section": True}, "gitlab.url, gitlab.token, gitlab.project missing"),
])
async def test_refusals_and_missing_config_give_up_clearly(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock, setup: dict[str, Any],
        says: str) -> None:
    setup = dict(setup)
    fail = setup.pop("fail", None)
    bot = await ticket_bot(make_bot, None if setup.pop("no_section", False) else gitlab,
                           **setup)
    if fail:
        gitlab.state.fail(r"/issues", fail)
    item = alert("4714")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    await enqueue_ticket(bot, item.subject)
    assert await runner(bot).run_due() == 1
    task = await the_ticket_task(bot)
    assert task.state == "failed" and says in (task.last_error or ""), task.last_error
    assert "glpat" not in (task.last_error or "")
    assert gitlab.state.issues == [] and await mapping(bot, item.subject) is None
    problem = tickets.gitlab_ready(bot.config)
    assert (problem is not None) == ("missing" in says)
    told = of_kind(await all_tasks(bot), "notice.thread")
    assert len(told) == (0 if problem is not None else 1)
    assert await drain(runner(bot)) == len(told)
    if problem is None:  # GitLab refused: the thread is told, once
        await until(lambda: thread_texts(platform))
        await asyncio.sleep(0.2)
        [said] = thread_texts(platform)
        assert said.startswith("GitLab issue could not be opened: ")


async def test_a_lost_database_finds_the_issue_by_its_marker(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    items = [alert("12"), alert("123"), alert("1234")]  # markers that search alike
    for item in items:
        await add_issue(bot, item)
        await enqueue_ticket(bot, item.subject)
    assert await runner(bot).run_due() == 3
    before = {i.subject: (await mapping(bot, i.subject)) for i in items}
    gitlab.state.issues[0].state = "closed"  # found whatever its state
    await bot.database.run(lambda conn: conn.execute(delete(tables.tickets)))
    for item in reversed(items):
        assert await enqueue_ticket(bot, item.subject)
    manual_clock.advance(1)
    assert await runner(bot).run_due() == 3
    assert created(gitlab) == 3 and len(gitlab.state.issues) == 3
    for item in items:
        row = await mapping(bot, item.subject)
        old = before[item.subject]
        assert row is not None and old is not None and row.iid == old.iid
    first = await mapping(bot, "sentry:12")
    assert first is not None and first.state == "closed"


async def test_two_workers_racing_keep_one_mapping_and_close_the_duplicate(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("4715")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    await enqueue_ticket(bot, item.subject)
    [task] = await all_tasks(bot)
    both_searched = asyncio.Barrier(2)
    search = GitLabClient.find_issue_with

    async def search_then_wait(self: GitLabClient, project: str, marker: str) -> Any:
        found = await search(self, project, marker)
        await both_searched.wait()  # neither has created yet: both will
        return found

    monkeypatch.setattr(GitLabClient, "find_issue_with", search_then_wait)
    await asyncio.gather(tickets.open_ticket(bot, task), tickets.open_ticket(bot, task))
    monkeypatch.setattr(GitLabClient, "find_issue_with", search)
    assert created(gitlab) == 2
    row = await mapping(bot, item.subject)
    assert row is not None
    kept = [i for i in gitlab.state.issues if i.iid == row.iid]
    duplicate = [i for i in gitlab.state.issues if i.iid != row.iid]
    assert kept[0].state == "opened" and duplicate[0].state == "closed"
    assert duplicate[0].comments == [f"Duplicate of #{row.iid}, opened at the same time by "
                                     "another shiftbot worker."]
    # Only the winner queued the link; the ticket task itself then finds the mapping.
    assert [t.kind for t in await all_tasks(bot)] == ["ticket", "notice.thread",
                                                      "notice.update"]
    assert await drain(runner(bot)) == 3
    await until(lambda: thread_texts(platform))
    await asyncio.sleep(0.2)
    assert thread_texts(platform) == [f"GitLab issue {row.ref} opened: {row.web_url}"]
    assert created(gitlab) == 2


async def test_the_mapping_insert_conflicts_on_the_subject(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    await add_issue(bot, alert("9"), notice_key="alert:sentry:9")
    client = GitLabClient(gitlab.url, TOKEN, timeout=2)
    first = await client.create_issue(PROJECT, "a", "x", [])
    second = await client.create_issue(PROJECT, "b", "y", [])
    one = await bot.database.run(tickets._record, "sentry:9", PROJECT, first, "u1", START, True,
                                 "opened")
    two = await bot.database.run(tickets._record, "sentry:9", PROJECT, second, "u2", START,
                                 True, "found")
    assert one[1] and not two[1] and one[0] == two[0] and two[0].iid == first.iid
    found = await all_tasks(bot)  # all queued once, by the insert that won
    assert [t.kind for t in found] == ["link_back", "notice.thread", "notice.update"]
    assert found[1].payload == {"key": "alert:sentry:9", "view": "text",
                                "text": f"GitLab issue {PROJECT}#1 opened: u1",
                                "subject": "sentry:9"}


async def test_without_a_notice_the_ticket_is_opened_quietly(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    quiet, unknown = alert("4716"), alert("4717")
    await add_issue(bot, quiet)  # no notice_key (unrouted, or first seen resolved)
    await add_issue(bot, unknown, notice_key="alert:never-posted")  # its post failed for good
    gitlab.state.fail(r"/issues$", 500, method="POST", times=2)
    for item in (quiet, unknown):
        await enqueue_ticket(bot, item.subject)
    work = runner(bot)
    assert await work.run_due() == 0
    tickets_said = {t.subject: t.said_in_thread for t in of_kind(await all_tasks(bot),
                                                                   "ticket")}
    assert tickets_said == {quiet.subject: False, unknown.subject: True}
    manual_clock.advance(15)
    assert await drain(work) == 2 + 3  # the tickets; "not yet", the link, the update: failed
    assert len(gitlab.state.issues) == 2
    chat = of_kind(await all_tasks(bot), "notice.thread", "notice.update")
    assert {t.subject for t in chat} == {"never-posted"}  # the notice's lane
    assert all(t.state == "failed" and "alert:never-posted" in (t.last_error or "")
               for t in chat)


async def test_no_alert_row_gives_up(make_bot: Any, gitlab: FakeGitLab,
                                     manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    await enqueue_ticket(bot, "sentry:999")
    assert await runner(bot).run_due() == 1
    [task] = await all_tasks(bot)
    assert task.state == "failed" and "no alert is known for sentry:999" in (
        task.last_error or "")
