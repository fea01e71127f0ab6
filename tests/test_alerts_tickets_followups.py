"""What happens to a GitLab issue after it is opened: repeats summed up in rate-limited
comments, a regression reopening it with a comment, Sentry's resolution noted (when
configured), and the link back in Sentry (external-issues API, against the fake Sentry), with
the latest event's frames in the description."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fakes.gitlab import FakeGitLab, GitLabState
from fakes.sentry import TOKEN as SENTRY_TOKEN
from fakes.sentry import FakeSentry, SentryState
from test_alerts_tickets_support import (
    PROJECT,
    START,
    TOKEN,
    add_issue,
    alert,
    all_tasks,
    enqueue_ticket,
    manual_clock,
    mapping,
    of_kind,
    runner,
    thread_texts,
    ticket_bot,
    until,
    with_notice,
)

from bot.alerts import tickets
from bot.clock import ManualClock
from bot.core import Bot
from bot.integrations.gitlab import GitLabClient

__all__ = ["manual_clock"]


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(tokens=(TOKEN,))
    state.add_project(PROJECT)
    async with FakeGitLab(state) as fake:
        yield fake


async def ticketed(make_bot: Any, gitlab: FakeGitLab, issue_id: str = "5001",
                   **settings: Any) -> Bot:
    bot = await ticket_bot(make_bot, gitlab, **settings)
    item = alert(issue_id)
    await add_issue(bot, item)
    await enqueue_ticket(bot, item.subject)
    assert await runner(bot).run_due() == 1
    return bot


async def repeat(bot: Bot, subject: str, times: int, every: float) -> None:
    from bot import clock

    for _ in range(times):
        await bot.database.run(tickets.note_repeat, subject, clock.utcnow(), every)


async def test_repeats_become_one_comment_per_period(make_bot: Any, gitlab: FakeGitLab,
                                                     manual_clock: ManualClock) -> None:
    bot = await ticketed(make_bot, gitlab, alerts={"comment_every": "10m"})
    subject, work = "sentry:5001", runner(bot)
    await repeat(bot, subject, 3, 600)
    assert [t.kind for t in await all_tasks(bot)] == ["ticket", "comment"]  # one comment task
    assert await work.run_due() == 0  # not before 10 minutes after the issue was opened
    [issue] = gitlab.state.issues
    assert issue.comments == []
    manual_clock.advance(600)
    assert await work.run_due() == 1
    assert issue.comments == ["3 more events since 2025-03-01 12:00:00 UTC (last seen "
                              "2025-03-01 12:00:00 UTC, total count 3)."]
    row = await mapping(bot, subject)
    assert row is not None and row.repeats_uncommented == 0
    manual_clock.advance(100)
    await repeat(bot, subject, 2, 600)
    assert await work.run_due() == 0
    manual_clock.advance(499)
    assert await work.run_due() == 0  # 10 minutes after the last comment, not before
    manual_clock.advance(1)
    assert await work.run_due() == 1
    assert issue.comments[-1].startswith("2 more events since 2025-03-01 12:10:00 UTC")


async def test_repeats_during_the_comment_get_their_own(
        make_bot: Any, gitlab: FakeGitLab, manual_clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bot = await ticketed(make_bot, gitlab, alerts={"comment_every": 60})
    subject, work = "sentry:5001", runner(bot)
    await repeat(bot, subject, 1, 60)
    manual_clock.advance(60)
    add_note = GitLabClient.add_note

    async def note_while_repeating(self: GitLabClient, project: str, iid: int,
                                   body: str) -> None:
        await add_note(self, project, iid, body)
        await repeat(bot, subject, 4, 60)  # arrive while the comment is being written

    monkeypatch.setattr(GitLabClient, "add_note", note_while_repeating)
    assert await work.run_due() == 1
    monkeypatch.setattr(GitLabClient, "add_note", add_note)
    row = await mapping(bot, subject)
    assert row is not None and row.repeats_uncommented == 4
    manual_clock.advance(60)
    assert await work.run_due() == 1
    [issue] = gitlab.state.issues
    assert [c.split(" since")[0] for c in issue.comments] == ["1 more event", "4 more events"]


async def test_a_comment_is_retried_on_429(make_bot: Any, gitlab: FakeGitLab,
                                           manual_clock: ManualClock) -> None:
    bot = await ticketed(make_bot, gitlab, alerts={"comment_every": 0})
    await repeat(bot, "sentry:5001", 2, 0)
    gitlab.state.fail(r"/notes$", 429, retry_after="30")
    assert await runner(bot).run_due() == 0
    manual_clock.advance(30)
    assert await runner(bot).run_due() == 1
    assert len(gitlab.state.issues[0].comments) == 1


async def test_a_regression_reopens_with_a_comment(make_bot: Any, gitlab: FakeGitLab,
                                                   manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    item = alert("5002")
    await add_issue(bot, item)
    platform, _ = await with_notice(bot, item)
    await enqueue_ticket(bot, item.subject)
    assert await runner(bot).run_due() == 1
    assert await runner(bot).run_due() == 2  # the link in the thread, the notice's update
    [issue] = gitlab.state.issues
    issue.state = "closed"  # someone closed it: fixed
    manual_clock.advance(3600)
    await bot.database.run(tickets.note_regression, item.subject, START + timedelta(hours=1))
    await bot.database.run(tickets.note_regression, item.subject, START + timedelta(hours=1))
    gitlab.state.fail(r"/issues/1$", 502, method="PUT")
    assert await runner(bot).run_due() == 0
    manual_clock.advance(15)
    assert await runner(bot).run_due() == 1
    assert issue.state == "opened"
    assert issue.comments == ["Regressed in Sentry at 2025-03-01 13:00:00 UTC: reopened."]
    found = await all_tasks(bot)
    assert [t.kind for t in of_kind(found, "ticket", "reopen")] == ["ticket", "reopen"]  # once
    assert await runner(bot).run_due() == 1  # "reopened" in the thread
    assert await runner(bot).run_due() == 0
    row = await mapping(bot, item.subject)
    assert row is not None and row.state == "opened"
    await until(lambda: len(thread_texts(platform)) == 2)
    assert thread_texts(platform) == [f"GitLab issue {PROJECT}#1 opened: {row.web_url}",
                                      f"GitLab issue {PROJECT}#1 reopened: {row.web_url}"]


async def test_nothing_to_reopen_or_note_without_a_ticket(make_bot: Any, gitlab: FakeGitLab,
                                                          manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab)
    for note in (tickets.note_regression, tickets.note_resolved):
        await bot.database.run(note, "sentry:5003", START)
    await bot.database.run(tickets.note_repeat, "sentry:5003", START, 0)
    assert await all_tasks(bot) == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_resolution_noted_when_configured(make_bot: Any, gitlab: FakeGitLab,
                                                manual_clock: ManualClock,
                                                enabled: bool) -> None:
    bot = await ticketed(make_bot, gitlab, alerts={"comment_on_resolve": enabled})
    manual_clock.advance(300)
    await bot.database.run(tickets.note_resolved, "sentry:5001", START + timedelta(minutes=5))
    assert await runner(bot).run_due() == 1
    expected = ["Resolved in Sentry at 2025-03-01 12:05:00 UTC."] if enabled else []
    assert gitlab.state.issues[0].comments == expected


@pytest.fixture
async def sentry() -> AsyncIterator[FakeSentry]:
    async with FakeSentry(SentryState()) as fake:
        yield fake


def sentry_section(sentry: FakeSentry) -> dict[str, Any]:
    return {"api_url": sentry.api_url, "token": SENTRY_TOKEN, "org": sentry.state.org,
            "timeout_seconds": 1}


async def test_linked_back_in_sentry_with_the_latest_events_frames(
        make_bot: Any, gitlab: FakeGitLab, sentry: FakeSentry,
        manual_clock: ManualClock) -> None:
    sentry.state.add_issue("5004", frames=[
        {"filename": "gwcelery/tasks/skymaps.py", "function": "plot_allsky", "lineNo": 12,
         "inApp": True, "context": [[12, "    fig = plot(sky)"]]}])
    bot = await ticket_bot(make_bot, gitlab, sentry=sentry_section(sentry))
    item = alert("5004")
    await add_issue(bot, item)
    await enqueue_ticket(bot, item.subject)
    sentry.state.fail(r"external-issues", 503)
    assert await runner(bot).run_due() == 1  # the ticket; it queues link_back
    assert await runner(bot).run_due() == 0  # Sentry answers 503: retried
    [issue] = gitlab.state.issues
    assert 'File "gwcelery/tasks/skymaps.py", line 12, in plot_allsky' in issue.description
    assert "fig = plot(sky)" in issue.description and "orchestrator.py" not in issue.description
    manual_clock.advance(15)
    assert await runner(bot).run_due() == 1
    [link] = sentry.state.external_issues
    assert (link["issueId"], link["identifier"], link["project"]) == ("5004", f"{PROJECT}#1",
                                                                      PROJECT)
    assert link["webUrl"] == issue_web_url(gitlab) and link["installation"] == \
        item.installation_uuid
    row = await mapping(bot, item.subject)
    assert row is not None and row.linked_back


async def test_link_back_needs_the_installation(make_bot: Any, gitlab: FakeGitLab,
                                                sentry: FakeSentry,
                                                manual_clock: ManualClock) -> None:
    bot = await ticket_bot(make_bot, gitlab, sentry=sentry_section(sentry))
    item = alert("5005", installation_uuid=None)  # the legacy plugin or polling found it
    await add_issue(bot, item)
    await enqueue_ticket(bot, item.subject)
    assert await runner(bot).run_due() == 1  # the ticket; it queues link_back
    assert await runner(bot).run_due() == 1
    tasks = {t.kind: t for t in await all_tasks(bot)}
    assert tasks["ticket"].state == "done" and tasks["link_back"].state == "failed"
    assert "no integration installation is known" in (tasks["link_back"].last_error or "")
    assert sentry.state.external_issues == []


@pytest.mark.parametrize("sentry_settings", [{"link_back": False}, {"no_api": True}])
async def test_no_link_back_when_off_or_without_the_api(
        make_bot: Any, gitlab: FakeGitLab, sentry: FakeSentry, manual_clock: ManualClock,
        sentry_settings: dict[str, Any]) -> None:
    section = {} if sentry_settings.get("no_api") else sentry_section(sentry)
    alerts = {"link_back": sentry_settings.get("link_back", True)}
    bot = await ticketed(make_bot, gitlab, "5006", sentry=section, alerts=alerts)
    assert [t.kind for t in await all_tasks(bot)] == ["ticket"]
    assert sentry.state.external_issues == []


def issue_web_url(gitlab: FakeGitLab) -> str:
    return f"{gitlab.url}/{PROJECT}/-/issues/1"

