"""GitLabClient's issue calls against the fake GitLab (create, find by marker, notes,
reopen/close, errors), and the fake's search behaving like GitLab's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fakes.gitlab import FakeGitLab, GitLabState

from bot.integrations.gitlab import GitLabClient, GitLabError

TOKEN = "glpat-shiftbot-test-token"
PROJECT = "emfollow/gwcelery"


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    state = GitLabState(tokens=(TOKEN,))
    state.add_project(PROJECT)
    state.add_project("emfollow/other")
    async with FakeGitLab(state) as fake:
        yield fake


@pytest.fixture
def client(gitlab: FakeGitLab) -> GitLabClient:
    return GitLabClient(gitlab.url, TOKEN, timeout=0.5)


def marker(issue_id: str) -> str:
    return f"<!-- sentry-issue:{issue_id} -->"


async def test_create_find_note_reopen(gitlab: FakeGitLab, client: GitLabClient) -> None:
    title = "KeyError:\n  'x'" + "y" * 400
    made = await client.create_issue(PROJECT, title, f"text\n{marker('42')}\n", ["a", "b"])
    [stored] = gitlab.state.issues
    assert (made.iid, made.state, stored.labels) == (1, "opened", ["a", "b"])
    assert stored.title.startswith("KeyError: 'x'yyy") and len(stored.title) == 255
    assert made.web_url == f"{gitlab.url}/{PROJECT}/-/issues/1"
    assert gitlab.state.requests[-1].raw == "/projects/emfollow%2Fgwcelery/issues"
    found = await client.find_issue_with(PROJECT, marker("42"))
    assert found is not None and found.iid == 1
    search = gitlab.state.requests[-1].body
    assert (search["in"], search["state"], search["search"]) == ("description", "all",
                                                                "sentry-issue:42")
    await client.add_note(PROJECT, 1, "seen again")
    closed = await client.set_issue_state(PROJECT, 1, "close")
    assert closed.state == "closed"
    assert await client.find_issue_with(PROJECT, marker("42")) is not None  # closed too
    assert (await client.set_issue_state(PROJECT, 1, "reopen")).state == "opened"
    assert stored.comments == ["seen again"]
    with pytest.raises(ValueError, match="expected reopen or close"):
        await client.set_issue_state(PROJECT, 1, "delete")


async def test_the_marker_must_really_be_in_the_description(gitlab: FakeGitLab,
                                                            client: GitLabClient) -> None:
    await client.create_issue(PROJECT, "long id", marker("1234"), [])
    await client.create_issue(PROJECT, f"title {marker('12')}", "no marker here", [])
    await client.create_issue("emfollow/other", "other project", marker("12"), [])
    assert await client.find_issue_with(PROJECT, marker("12")) is None  # GitLab found 1234
    await client.create_issue(PROJECT, "the one", f"x {marker('12')}", [])
    found = await client.find_issue_with(PROJECT, marker("12"))
    assert found is not None and found.title == "the one"


@pytest.mark.parametrize(("status", "transient", "says"), [
    (401, False, "refused the token (401"),
    (403, False, "may not do this (403"),
    (404, False, "knows no project emfollow/gwcelery (404"),
    (429, True, "rate-limiting"),
    (500, True, "may have opened the issue anyway"),
])
async def test_create_errors(gitlab: FakeGitLab, client: GitLabClient, status: int,
                             transient: bool, says: str) -> None:
    gitlab.state.fail(r"/issues$", status, method="POST")
    with pytest.raises(GitLabError) as caught:
        await client.create_issue(PROJECT, "t", "d", [])
    assert (caught.value.status, caught.value.transient) == (status, transient)
    assert says in str(caught.value) and TOKEN not in str(caught.value)


async def test_a_hang_after_creating_is_a_timeout(gitlab: FakeGitLab,
                                                  client: GitLabClient) -> None:
    gitlab.state.fail(r"/issues$", 0, method="POST", hang=True, after=True)
    with pytest.raises(GitLabError) as caught:
        await client.create_issue(PROJECT, "t", marker("7"), [])
    gitlab.state.released.set()
    assert caught.value.transient and "did not answer within 0.5 s" in str(caught.value)
    assert "may have opened the issue anyway" in str(caught.value)
    assert (await client.find_issue_with(PROJECT, marker("7"))) is not None


async def test_429_says_when(gitlab: FakeGitLab, client: GitLabClient) -> None:
    gitlab.state.fail(r"/issues$", 429, retry_after="9")
    gitlab.state.fail(r"/issues$", 429, reset_in=60)
    waits = []
    for _ in range(2):
        with pytest.raises(GitLabError) as caught:
            await client.find_issue_with(PROJECT, marker("1"))
        waits.append(caught.value.retry_after)
    assert waits[0] == 9.0 and waits[1] is not None and 50 <= waits[1] <= 61


async def test_unknown_project_and_bad_token(gitlab: FakeGitLab) -> None:
    with pytest.raises(GitLabError, match="404 Project Not Found"):
        await GitLabClient(gitlab.url, TOKEN).find_issue_with("emfollow/nope", marker("1"))
    with pytest.raises(GitLabError, match="401"):
        await GitLabClient(gitlab.url, "glpat-wrong").add_note(PROJECT, 1, "x")
    with pytest.raises(GitLabError, match=r"gitlab\.token is not configured"):
        await GitLabClient(gitlab.url, None).create_issue(PROJECT, "t", "d", [])


async def test_the_fakes_search_is_gitlabs(gitlab: FakeGitLab, client: GitLabClient) -> None:
    for n in range(25):
        await client.create_issue(PROJECT, f"Issue {n}", f"Body with WORD{n % 2}", [])
    gitlab.state.issues[0].state = "closed"
    async with httpx.AsyncClient(base_url=gitlab.api_url,
                                 headers={"PRIVATE-TOKEN": TOKEN}) as http:
        async def iids(**params: str) -> list[int]:
            answer = await http.get("/projects/1/issues", params=params)
            assert answer.status_code == 200, answer.text
            return [i["iid"] for i in answer.json()]

        assert len(await iids()) == 20  # the default page
        assert len(await iids(per_page="100")) == 25
        assert await iids(per_page="10", page="3") == [5, 4, 3, 2, 1]  # newest first
        assert await iids(search="word0 body", per_page="100") == list(range(25, 0, -2))
        assert await iids(search="word0 issue", **{"in": "description"}) == []
        assert await iids(search="is word1", per_page="100") == list(range(24, 0, -2))  # "is":
        # shorter than 3 characters, dropped
        assert await iids(search='"issue 2"', per_page="100") == [25, 24, 23, 22, 21, 3]
        assert await iids(state="closed") == [1]
        assert 1 not in await iids(state="opened", per_page="100")
        bad = await http.get("/projects/1/issues", params={"in": "notes"})
        assert bad.status_code == 400
