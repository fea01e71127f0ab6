"""A fake GitHub REST v3 on loopback: the issue endpoints shiftbot uses, with GitHub's paths,
payloads and errors.

    state = GitHubState()
    state.add_repo("dmwm/WMCore")
    async with FakeGitHub(state) as github:      # github.url: the API root

Wire facts (docs.github.com/rest/issues/issues, /rest/search/search, /rest/overview):
``POST /repos/{owner}/{repo}/issues`` takes ``{"title", "body", "labels", "assignees"}`` and
answers ``201`` with the issue (``id``, ``number``, ``html_url``, ``url``, ``state`` open|closed,
``title``, ``body``, ``labels`` as objects, ``created_at``, ``updated_at``); without a title
``422 {"message": "Validation Failed", "errors": [{"resource": "Issue", "code":
"missing_field", "field": "title"}]}``. ``GET /repos/{owner}/{repo}/issues`` lists issues *and
pull requests* (those carry ``pull_request``), ``state`` open (default)|closed|all, ``since``
(updated at or after, ISO 8601), ``sort`` created|updated, ``direction`` desc (default)|asc,
``labels`` (all of them), ``per_page`` (default 30, at most 100), ``page``. ``GET .../issues/
{number}``; ``PATCH .../issues/{number}`` (``state``). ``GET /search/issues?q=`` with
qualifiers ``repo:``, ``is:issue``/``is:pr``, ``state:``, ``in:title``/``in:body`` and words or
"quoted phrases", answering ``{"total_count", "incomplete_results", "items"}``; a new issue is
searchable only after ``search_lag`` seconds (GitHub indexes with a delay). Authentication:
``Authorization: Bearer <token>`` or ``token <token>``; none: ``401 Requires authentication``;
a wrong one ``401 Bad credentials``; a read-only token's write ``403 Resource not
accessible by personal access token``; no ``User-Agent``: ``403``. An unknown repository (or one
the token cannot see) is ``404 Not Found``. Failures can be injected (:meth:`GitHubState.fail`):
any status, ``429``/``403`` rate limits with ``x-ratelimit-*`` and ``Retry-After``, a hang, and
``after=True`` (the request is carried out, then the answer fails: GitHub created the issue).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

DOCS = "https://docs.github.com/rest"


def _now() -> datetime:
    return datetime.now(UTC)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Issue:
    number: int
    repo: str
    title: str
    body: str
    labels: list[str]
    state: str = "open"
    pull_request: bool = False
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    id: int = 0


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    hang: bool
    after: bool
    reset_in: int | None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str, **extra: Any) -> _Answer:
    return _Answer(status, {"message": message, "documentation_url": DOCS,
                            "status": str(status), **extra})


class GitHubState:
    """Everything the fake serves; tests build, change and read it directly."""

    def __init__(self, *, tokens: tuple[str, ...] = ("ghp_shiftbotTestToken0001",),
                 read_only: tuple[str, ...] = (), search_lag: float = 0.0) -> None:
        self.tokens = set(tokens)
        self.read_only = set(read_only)  # may read; a write is 403
        self.repos: dict[str, list[Issue]] = {}
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.search_lag = search_lag
        self.web_url = "https://github.invalid"
        self.api_url = "http://127.0.0.1"  # set by FakeGitHub once it listens
        self.released = asyncio.Event()
        self._ids = itertools.count(5000)

    def add_repo(self, full_name: str) -> None:
        self.repos.setdefault(full_name, [])

    def add_issue(self, repo: str, title: str, body: str = "", *, pull_request: bool = False,
                  state: str = "open", labels: list[str] | None = None) -> Issue:
        issues = self.repos[repo]
        issue = Issue(len(issues) + 1, repo, title, body, list(labels or []), state,
                      pull_request, id=next(self._ids))
        issues.append(issue)
        return issue

    def issues_of(self, repo: str) -> list[Issue]:
        """The repository's issues (not pull requests), oldest first."""
        return [i for i in self.repos.get(repo, []) if not i.pull_request]

    def set_state(self, repo: str, number: int, state: str) -> None:
        issue = self.repos[repo][number - 1]
        issue.state, issue.updated_at = state, _now()

    def fail(self, path: str, status: int, *, method: str = "*", times: int = 1,
             retry_after: str | None = None, hang: bool = False, after: bool = False,
             reset_in: int | None = None) -> None:
        """Fail requests whose path matches ``path`` (a regex searched in it)."""
        self.failures.append(Failure(method, re.compile(path), status, times, retry_after,
                                     hang, after, reset_in))

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        kind = "pull" if issue.pull_request else "issues"
        data: dict[str, Any] = {
            "id": issue.id, "number": issue.number, "node_id": f"I_{issue.id}",
            "url": f"{self.api_url}/repos/{issue.repo}/issues/{issue.number}",
            "html_url": f"{self.web_url}/{issue.repo}/{kind}/{issue.number}",
            "title": issue.title, "body": issue.body, "state": issue.state,
            "state_reason": "completed" if issue.state == "closed" else None,
            "labels": [{"name": name} for name in issue.labels], "locked": False,
            "user": {"login": "shiftbot", "type": "Bot"}, "comments": 0,
            "created_at": _text(issue.created_at), "updated_at": _text(issue.updated_at),
            "closed_at": _text(issue.updated_at) if issue.state == "closed" else None,
        }
        if issue.pull_request:
            data["pull_request"] = {"url": f"{self.api_url}/repos/{issue.repo}/pulls/"
                                           f"{issue.number}"}
        return data


class FakeGitHub:
    def __init__(self, state: GitHubState | None = None) -> None:
        self.state = state or GitHubState()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeGitHub:
        app = web.Application()
        app.router.add_route("*", "/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.state.api_url = self.url
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.state.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(parse_qsl(request.rel_url.raw_query_string))
        body: Any = None
        if request.can_read_body:
            try:
                body = json.loads(await request.text() or "null")
            except json.JSONDecodeError:
                return web.json_response({"message": "Problems parsing JSON"}, status=400)
        record = Recorded(request.method, request.path, query, dict(request.headers), body)
        self.state.requests.append(record)
        failure = self._failure_for(request.method, request.path)
        if failure is None or failure.after:
            try:
                status, payload = self._route(request, query, body)
            except _Answer as answer:
                record.status = answer.status
                if failure is None:
                    return web.json_response(answer.body, status=answer.status,
                                             headers=answer.headers)
            else:
                record.status = status
                if failure is None:
                    return web.json_response(payload, status=status, headers=_limits(4999))
        assert failure is not None
        response = await self._injected(failure)
        record.status = response.status
        return response

    def _failure_for(self, method: str, path: str) -> Failure | None:
        for failure in self.state.failures:
            if failure.times > 0 and failure.method in ("*", method) and \
                    failure.path.search(path):
                failure.times -= 1
                return failure
        return None

    async def _injected(self, failure: Failure) -> web.Response:
        if failure.hang:
            await self.state.released.wait()
        headers: dict[str, str] = {}
        message = "Server Error" if failure.status >= 500 else f"{failure.status}"
        if failure.status in (403, 429):
            reset = int(time.time()) + (failure.reset_in or 60)
            headers = _limits(0, reset)
            if failure.retry_after is not None:
                headers["Retry-After"] = failure.retry_after
            message = "API rate limit exceeded for installation." if failure.status == 403 \
                else "You have exceeded a secondary rate limit."
        return web.json_response({"message": message, "documentation_url": DOCS},
                                 status=failure.status, headers=headers)

    # ----------------------------------------------------------------- routing

    def _route(self, request: web.Request, query: dict[str, str],
               body: Any) -> tuple[int, Any]:
        self._authenticate(request)
        path, method = request.path, request.method
        if path == "/search/issues" and method == "GET":
            return 200, self._search(query)
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues(?:/(\d+))?", path)
        if match is None:
            raise _error(404, "Not Found")
        repo, number = match.group(1), match.group(2)
        if repo not in self.state.repos:
            raise _error(404, "Not Found")
        if number is None:
            if method == "POST":
                return 201, self._create(repo, body)
            if method == "GET":
                return 200, self._list(repo, query)
        else:
            issue = self._issue(repo, int(number))
            if method == "GET":
                return 200, self.state.issue_json(issue)
            if method == "PATCH":
                return 200, self._edit(issue, body)
        raise _error(404, "Not Found")

    def _authenticate(self, request: web.Request) -> None:
        if not request.headers.get("User-Agent"):
            raise _error(403, "Request forbidden by administrative rules. Please make sure "
                              "your request has a User-Agent header")
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise _error(401, "Requires authentication")
        scheme, _, token = auth.partition(" ")
        known = self.state.tokens | self.state.read_only
        if scheme.lower() not in ("bearer", "token") or token not in known:
            raise _error(401, "Bad credentials")
        if token in self.state.read_only and request.method in ("POST", "PATCH"):
            raise _error(403, "Resource not accessible by personal access token")

    def _issue(self, repo: str, number: int) -> Issue:
        issues = self.state.repos[repo]
        if not 1 <= number <= len(issues):
            raise _error(404, "Not Found")
        return issues[number - 1]

    def _create(self, repo: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            raise _error(422, "Validation Failed", errors=[
                {"resource": "Issue", "code": "missing_field", "field": "title"}])
        if len(str(body["title"])) > 256:
            raise _error(422, "Validation Failed", errors=[
                {"resource": "Issue", "code": "custom", "field": "title",
                 "message": "title is too long (maximum is 256 characters)"}])
        labels = [str(x.get("name") if isinstance(x, dict) else x)
                  for x in body.get("labels") or []]
        issue = self.state.add_issue(repo, str(body["title"]), str(body.get("body") or ""),
                                     labels=labels)
        return self.state.issue_json(issue)

    def _edit(self, issue: Issue, body: Any) -> dict[str, Any]:
        if isinstance(body, dict) and body.get("state") in ("open", "closed"):
            issue.state, issue.updated_at = body["state"], _now()
        return self.state.issue_json(issue)

    def _list(self, repo: str, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        issues = [i for i in self.state.repos[repo] if state == "all" or i.state == state]
        if "since" in query:
            since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
            issues = [i for i in issues if i.updated_at >= since]
        for label in filter(None, query.get("labels", "").split(",")):
            issues = [i for i in issues if label in i.labels]
        key = "updated_at" if query.get("sort") == "updated" else "created_at"
        issues.sort(key=lambda i: (getattr(i, key), i.number),
                    reverse=query.get("direction", "desc") == "desc")
        return [self.state.issue_json(i) for i in _page(issues, query)]

    def _search(self, query: dict[str, str]) -> dict[str, Any]:
        q = query.get("q", "")
        if not q.strip():
            raise _error(422, "Validation Failed", errors=[
                {"resource": "Search", "field": "q", "code": "missing"}])
        terms = [t.strip('"') for t in re.findall(r'\w+:"[^"]*"|"[^"]+"|\S+', q)]
        quals = dict(t.split(":", 1) for t in terms if re.match(r"^(repo|is|state|in):", t))
        words = [t.lower().replace('"', "") for t in terms
                 if not re.match(r"^(repo|is|state|in):", t)]
        fields = [quals["in"]] if "in" in quals else ["title", "body"]
        lag = time.time() - self.state.search_lag
        found = []
        for repo, issues in self.state.repos.items():
            if "repo" in quals and quals["repo"].strip('"') != repo:
                continue
            for issue in issues:
                if (quals.get("is") == "issue" and issue.pull_request) or \
                        (quals.get("is") == "pr" and not issue.pull_request):
                    continue
                if "state" in quals and issue.state != quals["state"]:
                    continue
                if issue.created_at.timestamp() > lag:
                    continue
                texts = [str(getattr(issue, f)).lower() for f in fields]
                if all(any(w in t for t in texts) for w in words):
                    found.append(issue)
        items = [self.state.issue_json(i) for i in _page(found, query)]
        return {"total_count": len(found), "incomplete_results": False, "items": items}


def _page(items: list[Issue], query: dict[str, str]) -> list[Issue]:
    size = max(1, min(100, int(query.get("per_page", "30"))))
    page = max(1, int(query.get("page", "1")))
    return items[(page - 1) * size: page * size]


def _limits(remaining: int, reset: int | None = None) -> dict[str, str]:
    return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(5000 - remaining), "x-ratelimit-resource": "core",
            "x-ratelimit-reset": str(reset or int(time.time()) + 3600)}
