"""Action items -> tracker issues (bot/meetings/tickets.py), exactly once: GitHub through the
fake GitHub (tests/fakes/github.py), GitLab through the fake GitLab (tests/fakes/gitlab.py);
a failure after the tracker created the issue, and a crash between its answer and our mapping,
are retried without a second issue; a closed ticket leaves the next reminder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fakes.github import FakeGitHub, GitHubState
from fakes.gitlab import FakeGitLab, GitLabState
from test_meetings_rig import (
    START,
    WMCORE,
    at,
    clock,
    meetings_bot,
    root_of,
    run,
    run_meeting,
    say,
    thread_texts,
    workspace,
)

from bot.meetings import store

__all__ = ["clock", "workspace"]  # fixtures

GH_TOKEN, GL_TOKEN = "ghp_shiftbotTestToken0001", "glpat-shiftbot-test-token"
REPO, PROJECT = "dmwm/WMCore", "cmsweb/wmcore"
ACTIONS = [("alice", "#topic Disks"), ("alice", "#action @bob order disks"),
           ("bob", "#action alice chase the vendor"), ("carol", "#action check FTS")]


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    state = GitHubState()
    state.add_repo(REPO)
    async with FakeGitHub(state) as fake:
        yield fake


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState()
    state.add_project(PROJECT)
    async with FakeGitLab(state) as fake:
        yield fake


def github_config(github: FakeGitHub) -> dict[str, Any]:
    series = {**WMCORE, "report": {**WMCORE["report"],
                                   "tracker": {"type": "github", "repo": REPO,
                                               "labels": ["meeting"]}}}
    return {"meetings": {"series": [series],
                         "github": {"url": github.url, "token": GH_TOKEN,
                                    "timeout_seconds": 2}}}


def gitlab_config(gitlab: FakeGitLab) -> dict[str, Any]:
    series = {**WMCORE, "report": {**WMCORE["report"],
                                   "tracker": {"type": "gitlab", "project": PROJECT}}}
    from test_meetings_rig import MEETINGS
    return {"bot": {"handlers": [*MEETINGS["bot"]["handlers"], "handlers.restart_gitlab"]},
            "gitlab": {"url": gitlab.url, "token": GL_TOKEN, "timeout_seconds": 2},
            "meetings": {"series": [series]}}


async def meeting_with_actions(make_bot: Any, clock: Any, workspace: Any,
                               overrides: dict[str, Any]) -> tuple[Any, str]:
    bot = await meetings_bot(make_bot, workspace, overrides)
    root = await run_meeting(bot, clock, workspace)
    for person, line in ACTIONS:
        await say(bot, person, line, root)
    await say(bot, "alice", "#done 3", root)  # alice's item: no ticket for it
    await say(bot, "alice", "report close", root)
    return bot, root


async def test_github_one_issue_per_open_action_once(make_bot, clock, workspace,
                                                     github) -> None:
    bot, root = await meeting_with_actions(make_bot, clock, workspace, github_config(github))
    report = thread_texts(workspace, root)[-1]
    [button] = [m for m in workspace.messages if m.ref.thread_id == root][-1].reply.actions
    assert (button.label, button.command) == ("Open tickets", "report ticket wmcore 2026-03-30")
    assert "Action items" in report
    answer = await run(bot, "alice", "report ticket wmcore")
    issues = github.state.issues_of(REPO)
    assert [i.title for i in issues] == ["WMCore weekly: order disks (bob)",
                                         "WMCore weekly: check FTS"]
    assert all(i.labels == ["meeting"] for i in issues)
    assert "<!-- shiftbot-action:2 -->" in issues[0].body and "for **bob**" in issues[0].body
    assert f"#2: {github.state.web_url}/{REPO}/issues/1 (opened)" in answer
    assert "#3" not in answer  # done: no ticket
    again = await run(bot, "bob", "report ticket wmcore 2026-03-30")
    assert "(opened before)" in again and len(github.state.issues_of(REPO)) == 2
    shown = await run(bot, "alice", "report show wmcore")
    assert f"#2 order disks: {github.state.web_url}/{REPO}/issues/1" in shown


async def test_github_created_then_failed_is_found_not_doubled(make_bot, clock, workspace,
                                                               github) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, github_config(github))
    github.state.fail(r"/issues$", 502, method="POST", after=True)  # created, answer lost
    first = await run(bot, "alice", "report ticket wmcore")
    assert "#2: not opened: GitHub failed (502" in first and "#4" not in first  # stopped
    assert len(github.state.issues_of(REPO)) == 1
    second = await run(bot, "alice", "report ticket wmcore")
    assert "(found)" in second and "(opened)" in second
    assert [i.title for i in github.state.issues_of(REPO)] == [
        "WMCore weekly: order disks (bob)", "WMCore weekly: check FTS"]


async def test_a_crash_between_answer_and_mapping_is_retried_once(make_bot, clock, workspace,
                                                                  github, monkeypatch) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, github_config(github))
    real = store.record_ticket
    crashes = [RuntimeError("the process died here")]

    def crashing(conn, ticket, now):  # type: ignore[no-untyped-def]
        if crashes:
            raise crashes.pop()
        return real(conn, ticket, now)

    monkeypatch.setattr(store, "record_ticket", crashing)
    assert "(opened)" not in await run(bot, "alice", "report ticket wmcore")
    assert len(github.state.issues_of(REPO)) == 1  # created, not recorded
    await run(bot, "alice", "report ticket wmcore")
    assert len(github.state.issues_of(REPO)) == 2
    mapped = await bot.database.run(lambda c: store.tickets_of(c, 1))
    assert sorted((t.item_id, t.number) for t in mapped.values()) == [(2, 1), (4, 2)]


async def test_github_rate_limit_stops_and_says_so(make_bot, clock, workspace, github) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, github_config(github))
    github.state.fail(r"/issues$", 429, method="POST", retry_after="30")
    answer = await run(bot, "alice", "report ticket wmcore")
    assert "#2: not opened: GitHub is rate-limiting us (429)" in answer and "#4" not in answer
    assert github.state.issues_of(REPO) == []


async def test_gitlab_issues_once_across_a_lost_answer(make_bot, clock, workspace,
                                                       gitlab) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, gitlab_config(gitlab))
    gitlab.state.fail(r"/issues$", 500, method="POST", after=True)
    first = await run(bot, "alice", "report ticket wmcore")
    assert "#2: not opened: GitLab failed (500" in first
    second = await run(bot, "alice", "report ticket wmcore")
    issues = gitlab.state.issues_of(PROJECT)
    assert [i.title for i in issues] == ["WMCore weekly: order disks (bob)",
                                         "WMCore weekly: check FTS"]
    assert "(found)" in second and "(opened)" in second
    assert "<!-- shiftbot-action:4 -->" in issues[1].description
    assert "(opened before)" in await run(bot, "alice", "report ticket wmcore")
    assert len(gitlab.state.issues_of(PROJECT)) == 2


async def test_a_closed_ticket_leaves_the_next_reminder(make_bot, clock, workspace,
                                                        github) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, github_config(github))
    await run(bot, "alice", "report ticket wmcore")
    github.state.set_state(REPO, 1, "closed")  # bob's "order disks"
    await at(bot, clock, START + timedelta(weeks=1, minutes=-10))
    reminder = root_of(workspace, "WMCore weekly in 10 minutes")
    text = next(m.text for m in workspace.messages if m.ref.message_id == reminder)
    assert "#4 unassigned: check FTS" in text and "order disks" not in text
    assert "chase the vendor" not in text  # done in the meeting


async def test_ticket_without_tracker_or_token_says_what_to_set(make_bot, clock,
                                                                workspace) -> None:
    bot, _root = await meeting_with_actions(make_bot, clock, workspace, {})
    assert "has no report.tracker" in await run(bot, "alice", "report ticket wmcore")
