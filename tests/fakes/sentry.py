"""A fake Sentry web API on loopback, and (``fakes/sentry_sender.py``, re-exported here) a sender
of signed webhooks made from real captured payloads.

    state = SentryState()
    issue = state.add_issue(project="gwcelery", title="TimeoutError: ...")
    async with FakeSentry(state) as sentry:       # sentry.url, sentry.api_url (…/api/0/)
        ...

Wire facts (docs.sentry.io/api): ``Authorization: Bearer <token>``, else ``401 {"detail":
"Invalid token"}``; an unknown organization, issue or project ``404 {"detail": "The requested
resource does not exist"}``. Routes: ``GET organizations/{org}/issues/{id}/`` (the issue),
``GET organizations/{org}/issues/{id}/events/latest/`` (the event, frames in ``entries``
``[{"type": "exception", "data": {"values": [...]}}]``, tags as ``[{"key", "value"}]``),
``PUT organizations/{org}/issues/{id}/`` ``{"status"}`` (answers the changed fields),
``POST sentry-app-installations/{uuid}/external-issues/`` ``{"issueId", "webUrl", "project",
"identifier"}`` (201), ``GET projects/{org}/{project}/issues/?query=is:unresolved&limit=N``
(most recently seen first). Any status, a 429 with ``Retry-After``, or a hang can be injected
for requests whose path matches a regex (:meth:`SentryState.fail`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fakes.sentry_sender import SentrySender, sample, variant

__all__ = ["FakeSentry", "SentrySender", "SentryState", "sample", "variant"]

TOKEN = "sntrys-shiftbot-test-token-0123456789"
NOT_FOUND = {"detail": "The requested resource does not exist"}


def iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    hang: bool


@dataclass
class Recorded:
    method: str
    path: str  # after /api/0/, with its query
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class StatusChange:
    issue_id: str
    status: str


@dataclass
class SentryState:
    """Everything the fake serves; tests build it, change it and read it directly."""

    org: str = "ligo"
    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> the API's issue
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> its latest event
    status_changes: list[StatusChange] = field(default_factory=list)
    external_issues: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    web_url: str = "http://sentry.invalid"  # set by FakeSentry once it listens
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(4_000_000_001))

    def add_issue(self, issue_id: str | None = None, *, project: str = "gwcelery",
                  title: str = "TimeoutError: the task took too long",
                  culprit: str = "gwcelery.tasks.orchestrator in handle", level: str = "error",
                  status: str = "unresolved", count: int = 1, user_count: int = 0,
                  first_seen: datetime | None = None, last_seen: datetime | None = None,
                  short_id: str | None = None, tags: dict[str, str] | None = None,
                  frames: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """An issue (and its latest event, with ``frames`` and ``tags``) as the API shows it."""
        issue_id = issue_id or str(next(self._ids))
        number = 1 + sum(1 for i in self.issues.values() if i["project"]["slug"] == project)
        issue = {
            "id": issue_id, "shortId": short_id or f"{project.upper()}-{number:X}",
            "title": title, "culprit": culprit, "level": level, "status": status,
            "substatus": "new" if status == "unresolved" else None, "statusDetails": {},
            "count": str(count), "userCount": user_count,
            "firstSeen": iso(first_seen), "lastSeen": iso(last_seen or first_seen),
            "permalink": f"{self.web_url}/organizations/{self.org}/issues/{issue_id}/",
            "project": {"id": "2", "slug": project, "name": project},
            "metadata": {"type": title.split(":")[0], "value": title.partition(": ")[2]},
            "type": "error", "platform": "python", "numComments": 0, "isPublic": False,
        }
        self.issues[issue_id] = issue
        self.set_event(issue_id, tags=tags, frames=frames)
        return issue

    def set_event(self, issue_id: str, *, tags: dict[str, str] | None = None,
                  frames: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        issue = self.issues[issue_id]
        frames = frames if frames is not None else [  # the API's shape (camelCase)
            {"filename": "celery/app/trace.py", "function": "trace_task", "lineNo": 451,
             "inApp": False, "context": [[451, "    R = retval = fun(*args, **kwargs)"]]},
            {"filename": "gwcelery/tasks/orchestrator.py", "function": "handle", "lineNo": 88,
             "inApp": True, "context": [[87, "    if late:"],
                                        [88, "        raise TimeoutError('too long')"]]}]
        tags = {"environment": "production", "level": issue["level"], **(tags or {})}
        event = {
            "id": f"{next(self._ids):032x}", "eventID": f"{next(self._ids):032x}",
            "groupID": issue_id, "title": issue["title"], "culprit": issue["culprit"],
            "dateCreated": issue["lastSeen"], "platform": "python",
            "release": {"version": "gwcelery@2.5.0", "shortVersion": "2.5.0"},
            "tags": [{"key": key, "value": value} for key, value in tags.items()],
            "entries": [{"type": "exception", "data": {"values": [
                {"type": issue["metadata"]["type"], "value": issue["metadata"]["value"],
                 "stacktrace": {"frames": frames}}]}}],
        }
        self.events[issue_id] = event
        return event

    def touch(self, issue_id: str, *, times: int = 1, status: str | None = None) -> None:
        """``times`` more events for the issue (count and lastSeen move); or a status."""
        issue = self.issues[issue_id]
        issue["count"] = str(int(issue["count"]) + times)
        issue["lastSeen"] = iso()
        if status is not None:
            issue["status"] = status

    def fail(self, path: str, status: int, *, method: str = "*", times: int = 1,
             retry_after: str | None = None, hang: bool = False) -> None:
        """The next ``times`` requests whose path (after /api/0/) matches ``path`` (a regex
        searched in it) get ``status`` (after hanging until ``released``, with ``hang``)."""
        self.failures.append(Failure(method, re.compile(path), status, times, retry_after,
                                     hang))


class _Answer(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


_ORG_ISSUE = r"organizations/(?P<org>[^/]+)/issues/(?P<issue>[^/]+)/"
ROUTES = [(method, re.compile(f"^{path}$"), name) for method, path, name in [
    ("GET", _ORG_ISSUE, "issue"),
    ("PUT", _ORG_ISSUE, "update"),
    ("GET", _ORG_ISSUE + "events/latest/", "latest"),
    ("POST", r"sentry-app-installations/(?P<uuid>[^/]+)/external-issues/", "external"),
    ("GET", r"projects/(?P<org>[^/]+)/(?P<project>[^/]+)/issues/", "project_issues"),
]]


class FakeSentry:
    def __init__(self, state: SentryState | None = None) -> None:
        self.state = state or SentryState()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/0/"

    async def __aenter__(self) -> FakeSentry:
        app = web.Application()
        app.router.add_route("*", "/api/0/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.state.web_url = self.url
        for issue_id, issue in self.state.issues.items():  # added before it listened
            issue["permalink"] = (f"{self.url}/organizations/{self.state.org}/issues/"
                                  f"{issue_id}/")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.state.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["rest"]
        body = await _body(request)
        record = Recorded(request.method, request.rel_url.raw_path_qs.removeprefix("/api/0/"),
                          dict(request.headers), body)
        self.state.requests.append(record)
        injected = await self._injected(request.method, path)
        if injected is not None:
            record.status = injected.status
            return injected
        try:
            status, payload = self._route(request, path, body)
        except _Answer as answer:
            status, payload = answer.status, answer.body
        record.status = status
        return web.json_response(payload, status=status)

    async def _injected(self, method: str, path: str) -> web.Response | None:
        for failure in self.state.failures:
            if failure.times <= 0 or failure.method not in ("*", method) \
                    or not failure.path.search(path):
                continue
            failure.times -= 1
            if failure.hang:
                await self.state.released.wait()
            headers = {}
            if failure.status == 429:
                headers["X-Sentry-Rate-Limit-Remaining"] = "0"
                if failure.retry_after is not None:
                    headers["Retry-After"] = failure.retry_after
            return web.json_response({"detail": f"injected {failure.status}"},
                                     status=failure.status, headers=headers)
        return None

    def _route(self, request: web.Request, path: str, body: Any) -> tuple[int, Any]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.state.tokens:
            raise _Answer(401, {"detail": "Invalid token"})
        for method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and method == request.method:
                groups = match.groupdict()
                if groups.pop("org", self.state.org) != self.state.org:
                    raise _Answer(404, NOT_FOUND)
                return getattr(self, f"_{name}")(request, body, **groups)  # type: ignore
        raise _Answer(404, NOT_FOUND)

    def _find(self, issue: str) -> dict[str, Any]:
        found = self.state.issues.get(issue)
        if found is None:
            raise _Answer(404, NOT_FOUND)
        return found

    def _issue(self, _request: web.Request, _body: Any, issue: str) -> tuple[int, Any]:
        return 200, self._find(issue)

    def _latest(self, _request: web.Request, _body: Any, issue: str) -> tuple[int, Any]:
        self._find(issue)
        event = self.state.events.get(issue)
        if event is None:
            raise _Answer(404, NOT_FOUND)
        return 200, event

    def _update(self, _request: web.Request, body: Any, issue: str) -> tuple[int, Any]:
        found = self._find(issue)
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("resolved", "ignored", "unresolved", "resolvedInNextRelease"):
            raise _Answer(400, {"status": [f'"{status}" is not a valid choice.']})
        found["status"] = status
        self.state.status_changes.append(StatusChange(issue, status))
        return 200, {"status": status, "statusDetails": {}}

    def _external(self, _request: web.Request, body: Any, uuid: str) -> tuple[int, Any]:
        if not isinstance(body, dict) or not all(
                body.get(k) for k in ("issueId", "webUrl", "project", "identifier")):
            raise _Answer(400, {"detail": "issueId, webUrl, project and identifier required"})
        if str(body["issueId"]) not in self.state.issues:
            raise _Answer(404, NOT_FOUND)
        link = {"id": str(next(self.state._ids)), "installation": uuid, **body,
                "issueId": str(body["issueId"]), "serviceType": "shiftbot"}
        self.state.external_issues.append(link)
        return 201, link

    def _project_issues(self, request: web.Request, _body: Any,
                        project: str) -> tuple[int, Any]:
        query = request.query.get("query", "is:unresolved")
        limit = int(request.query.get("limit", "100") or 100)
        found = [i for i in self.state.issues.values() if i["project"]["slug"] == project
                 and (query != "is:unresolved" or i["status"] == "unresolved")]
        found.sort(key=lambda i: i["lastSeen"], reverse=True)
        return 200, found[:limit]


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    text = await request.text()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"detail": "invalid JSON"}') from None
