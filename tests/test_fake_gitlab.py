"""The fake GitLab answers like GitLab (paths, payloads, errors), for the real clients: httpx
directly and bot.integrations.gitlab.GitLabClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fakes.gitlab import FakeGitLab, GitLabState

from bot.integrations.gitlab import GitLabClient, GitLabConfig, GitLabError

TOKEN = "glpat-shiftbot-test-token"
TRIGGER = "glptt-trigger-for-tests-0001"


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(job_tokens=("job-token-1234",))
    state.add_project("emfollow/gwcelery", trigger_tokens=[TRIGGER], branches=("main", "v2"))
    async with FakeGitLab(state) as fake:
        yield fake


@pytest.fixture
async def client(gitlab: FakeGitLab) -> AsyncIterator[GitLabClient]:
    built = GitLabClient(gitlab.url, TOKEN, timeout=2)
    yield built
    await built.close()


async def test_trigger_with_form_variables_and_follow(gitlab: FakeGitLab,
                                                      client: GitLabClient) -> None:
    started = await client.trigger_pipeline("emfollow/gwcelery", TRIGGER, "main",
                                            {"COMPONENT": "worker", "X": "a b&c"})
    assert started.status == "created" and started.iid == 1 and started.source == "trigger"
    assert started.web_url == f"{gitlab.url}/emfollow/gwcelery/-/pipelines/{started.id}"
    stored = gitlab.state.pipelines[started.id]
    assert stored.variables == {"COMPONENT": "worker", "X": "a b&c"}
    seen = [(await client.pipeline("emfollow/gwcelery", started.id)).status for _ in range(4)]
    assert seen == ["pending", "running", "success", "success"]
    # The project was addressed by its URL-encoded path, in one segment.
    assert gitlab.state.requests[0].raw == "/projects/emfollow%2Fgwcelery/trigger/pipeline"
    assert gitlab.state.requests[0].path == "/projects/emfollow/gwcelery/trigger/pipeline"


async def test_create_with_token_and_json_variables(gitlab: FakeGitLab,
                                                    client: GitLabClient) -> None:
    gitlab.state.projects[1].scripts.append(["pending", "failed"])
    started = await client.create_pipeline("1", "v2", {"A": "1"})
    assert (started.source, started.ref, started.status) == ("api", "v2", "pending")
    assert gitlab.state.pipelines[started.id].variables == {"A": "1"}
    assert (await client.pipeline("1", started.id)).status == "failed"


@pytest.mark.parametrize(("call", "status", "says"), [
    ("trigger-bad-token", 404, "404 Not Found"),
    ("trigger-unknown-project", 404, "404 Project Not Found"),
    ("trigger-bad-ref", 400, "Reference not found"),
    ("create-bad-token", 401, "refused the token (401 401 Unauthorized)"),
    ("get-unknown-pipeline", 404, "404 Not found"),
])
async def test_errors_are_gitlabs(gitlab: FakeGitLab, call: str, status: int,
                                  says: str) -> None:
    good = GitLabClient(gitlab.url, TOKEN, timeout=2)
    bad = GitLabClient(gitlab.url, "glpat-wrong", timeout=2)
    try:
        with pytest.raises(GitLabError) as caught:
            if call == "trigger-bad-token":
                await good.trigger_pipeline("emfollow/gwcelery", "glptt-wrong", "main", {})
            elif call == "trigger-unknown-project":
                await good.trigger_pipeline("emfollow/nope", TRIGGER, "main", {})
            elif call == "trigger-bad-ref":
                await good.trigger_pipeline("emfollow/gwcelery", TRIGGER, "nope", {})
            elif call == "create-bad-token":
                await bad.create_pipeline("emfollow/gwcelery", "main", {})
            else:
                await good.pipeline("emfollow/gwcelery", 999999)
    finally:
        await good.close()
        await bad.close()
    assert caught.value.status == status and not caught.value.transient
    assert says in str(caught.value)
    assert "glpat" not in str(caught.value) and "glptt" not in str(caught.value)


async def test_a_job_token_triggers_too(gitlab: FakeGitLab, client: GitLabClient) -> None:
    started = await client.trigger_pipeline("emfollow/gwcelery", "job-token-1234", "main", {})
    assert started.id in gitlab.state.pipelines


async def test_rate_limits_and_failures_are_transient(gitlab: FakeGitLab,
                                                      client: GitLabClient) -> None:
    gitlab.state.fail(r"/pipelines/", 429, retry_after="7")
    gitlab.state.fail(r"/pipelines/", 429)  # no Retry-After: GitLab does not always send it
    gitlab.state.fail(r"/pipelines/", 500)
    started = await client.trigger_pipeline("emfollow/gwcelery", TRIGGER, "main", {})
    errors = []
    for _ in range(3):
        with pytest.raises(GitLabError) as caught:
            await client.pipeline("emfollow/gwcelery", started.id)
        errors.append(caught.value)
    assert [(e.status, e.transient, e.retry_after) for e in errors] == \
        [(429, True, 7.0), (429, True, None), (500, True, None)]
    assert (await client.pipeline("emfollow/gwcelery", started.id)).status == "pending"


async def test_a_hang_is_a_transient_timeout(gitlab: FakeGitLab) -> None:
    gitlab.state.fail(r"/pipeline$", 0, hang=True)
    slow = GitLabClient(gitlab.url, TOKEN, timeout=0.3)
    try:
        with pytest.raises(GitLabError) as caught:
            await slow.create_pipeline("emfollow/gwcelery", "main", {})
    finally:
        await slow.close()
        gitlab.state.released.set()
    assert caught.value.transient and "did not answer within 0.3 s" in str(caught.value)
    assert "may have started anyway" in str(caught.value)


async def test_cancel_and_set_status(gitlab: FakeGitLab, client: GitLabClient) -> None:
    started = await client.trigger_pipeline("emfollow/gwcelery", TRIGGER, "main", {})
    async with httpx.AsyncClient(base_url=gitlab.api_url) as http:
        response = await http.post(f"/projects/1/pipelines/{started.id}/cancel",
                                   headers={"PRIVATE-TOKEN": TOKEN})
    assert response.status_code == 201 and response.json()["status"] == "canceled"
    assert (await client.pipeline("emfollow/gwcelery", started.id)).status == "canceled"
    second = await client.trigger_pipeline("emfollow/gwcelery", TRIGGER, "main", {})
    gitlab.state.set_status(second.id, "running")
    assert (await client.pipeline("emfollow/gwcelery", second.id)).status == "running"


async def test_issues_for_the_alerts_feature(gitlab: FakeGitLab) -> None:
    headers = {"PRIVATE-TOKEN": TOKEN}
    async with httpx.AsyncClient(base_url=gitlab.api_url, headers=headers) as http:
        created = await http.post("/projects/emfollow%2Fgwcelery/issues", json={
            "title": "KeyError in gwcelery", "labels": "sentry,shiftbot",
            "description": "<!-- sentry-issue:42 -->"})
        assert created.status_code == 201
        issue = created.json()
        assert (issue["iid"], issue["labels"], issue["state"]) == \
            (1, ["sentry", "shiftbot"], "opened")
        found = await http.get("/projects/1/issues",
                               params={"search": "sentry-issue:42", "in": "description"})
        assert [i["iid"] for i in found.json()] == [1]
        note = await http.post("/projects/1/issues/1/notes", json={"body": "seen again"})
        assert note.status_code == 201
        closed = await http.put("/projects/1/issues/1", json={"state_event": "close"})
        assert closed.json()["state"] == "closed"
        anonymous = await http.get("/projects/1/issues", headers={"PRIVATE-TOKEN": ""})
        assert anonymous.status_code == 401
    assert gitlab.state.issues[0].notes[0]["body"] == "seen again"


def test_config_normalises_the_url() -> None:
    assert GitLabConfig(url="https://git.example.org/api/v4/").url == "https://git.example.org"
    with pytest.raises(ValueError):
        GitLabConfig(url="git.example.org")


async def test_requests_run_concurrently(gitlab: FakeGitLab, client: GitLabClient) -> None:
    started = await asyncio.gather(*(client.trigger_pipeline("emfollow/gwcelery", TRIGGER,
                                                             "main", {"N": str(n)})
                                     for n in range(5)))
    assert sorted(p.iid for p in started) == [1, 2, 3, 4, 5]
