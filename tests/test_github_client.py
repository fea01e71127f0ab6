"""The GitHub client (bot/integrations/github.py) against the fake GitHub: issues created,
read, found by their body marker (pull requests and look-alike markers skipped, pages
followed); 401/403/404/410/422/429/5xx and a hang turned into errors that say whether a later
try may work, and when; the token never in a message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes.github import FakeGitHub, GitHubState

from bot.integrations.github import GitHubClient, GitHubError

TOKEN = "ghp_shiftbotTestToken0001"
REPO = "dmwm/WMCore"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    state = GitHubState()
    state.add_repo(REPO)
    async with FakeGitHub(state) as fake:
        yield fake


def client(github: FakeGitHub, token: str = TOKEN, timeout: float = 2.0) -> GitHubClient:
    return GitHubClient(github.url, token, timeout=timeout)


async def test_create_and_read_an_issue(github: FakeGitHub) -> None:
    made = await client(github).create_issue(REPO, "order   disks\n(bob)", "body <!-- m -->",
                                             ["meeting"])
    assert (made.number, made.state, made.title) == (1, "open", "order disks (bob)")
    sent = github.state.requests[-1]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/vnd.github+json"
    assert sent.body == {"title": "order disks (bob)", "body": "body <!-- m -->",
                         "labels": ["meeting"]}
    github.state.set_state(REPO, 1, "closed")
    assert (await client(github).issue(REPO, 1)).state == "closed"


async def test_find_by_marker_skips_pull_requests_and_look_alikes(github: FakeGitHub) -> None:
    state = github.state
    state.add_issue(REPO, "pr", "<!-- shiftbot-action:7 -->", pull_request=True)
    state.add_issue(REPO, "other", "<!-- shiftbot-action:77 -->")
    assert await client(github).find_issue_with(REPO, "<!-- shiftbot-action:7 -->") is None
    state.add_issue(REPO, "ours", "text\n<!-- shiftbot-action:7 -->")
    found = await client(github).find_issue_with(REPO, "<!-- shiftbot-action:7 -->")
    assert found is not None and found.title == "ours"


async def test_find_follows_pages(github: FakeGitHub) -> None:
    github.state.add_issue(REPO, "the old one", "<!-- shiftbot-action:1 -->")
    for n in range(150):
        github.state.add_issue(REPO, f"filler {n}", "")
    found = await client(github).find_issue_with(REPO, "<!-- shiftbot-action:1 -->")
    assert found is not None and found.number == 1
    pages = [r.query.get("page") for r in github.state.requests if r.path.endswith("/issues")]
    assert pages == ["1", "2"]


async def test_search_sees_only_indexed_issues(github: FakeGitHub) -> None:
    github.state.search_lag = 3600
    github.state.add_issue(REPO, "fresh", "shiftbot-action:3")
    assert await client(github).search_issues(f'repo:{REPO} "shiftbot-action:3" in:body') == []
    github.state.search_lag = 0
    [hit] = await client(github).search_issues(f'repo:{REPO} "shiftbot-action:3" in:body')
    assert hit.title == "fresh"


@pytest.mark.parametrize(("status", "transient", "words"), [
    (410, False, "issues are disabled"), (422, False, "refused it as invalid"),
    (500, True, "may have opened the issue anyway"), (502, True, "GitHub failed (502"),
    (418, False, "GitHub refused it (418"),
])
async def test_errors_say_what_and_whether_to_retry(github: FakeGitHub, status: int,
                                                    transient: bool, words: str) -> None:
    github.state.fail("/issues", status)
    with pytest.raises(GitHubError) as caught:
        await client(github).create_issue(REPO, "t", "b", [])
    assert caught.value.transient is transient and words in str(caught.value)
    assert caught.value.status == status and TOKEN not in str(caught.value)


async def test_a_read_only_token_may_read_not_write(github: FakeGitHub) -> None:
    github.state.read_only.add("ghp_readOnlyToken00000001")
    github.state.add_issue(REPO, "t", "b")
    api = client(github, token="ghp_readOnlyToken00000001")
    assert (await api.issue(REPO, 1)).title == "t"
    with pytest.raises(GitHubError, match=r"may not do this .403 Resource not accessible") as no:
        await api.create_issue(REPO, "t", "b", [])
    assert not no.value.transient


async def test_unknown_repository_and_bad_token_from_the_fake_itself(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match=r"knows no repository dmwm/Nope .404") as missing:
        await client(github).create_issue("dmwm/Nope", "t", "b", [])
    assert not missing.value.transient
    with pytest.raises(GitHubError, match=r"refused the token .401 Bad credentials") as bad:
        await client(github, token="ghp_wrongToken0000000001").issue(REPO, 1)
    assert "ghp_wrongToken0000000001" not in str(bad.value)


@pytest.mark.parametrize(("status", "retry_after", "reset_in", "wait"), [
    (429, "30", None, (30, 30)), (403, None, 120, (100, 121)), (429, None, 5, (0, 6)),
])
async def test_rate_limits_say_when(github: FakeGitHub, status: int, retry_after: str | None,
                                    reset_in: int | None, wait: tuple[float, float]) -> None:
    github.state.fail("/issues", status, retry_after=retry_after, reset_in=reset_in)
    with pytest.raises(GitHubError, match="rate-limiting") as caught:
        await client(github).create_issue(REPO, "t", "b", [])
    assert caught.value.transient and caught.value.retry_after is not None
    assert wait[0] <= caught.value.retry_after <= wait[1]
    assert github.state.issues_of(REPO) == []  # refused before anything was done


async def test_a_hang_is_a_transient_timeout(github: FakeGitHub) -> None:
    github.state.fail("/issues", 200, hang=True)
    with pytest.raises(GitHubError, match=r"did not answer within 0.3 s") as caught:
        await client(github, timeout=0.3).create_issue(REPO, "t", "b", [])
    assert caught.value.transient


async def test_no_token_configured() -> None:
    with pytest.raises(GitHubError, match=r"meetings.github.token"):
        await GitHubClient("http://127.0.0.1:9", None).issue(REPO, 1)
