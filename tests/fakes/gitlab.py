"""A fake GitLab (REST v4) on loopback: pipelines (trigger, create, get, cancel) and issues
(create, search, notes, close/reopen), with GitLab's paths, payloads and errors.

    state = GitLabState()
    state.add_project("emfollow/gwcelery", trigger_tokens=["glptt-abc"])
    async with FakeGitLab(state) as gitlab:      # gitlab.url, gitlab.api_url (…/api/v4)

Wire facts (GitLab's lib/api/ci/triggers.rb, doc/api/pipelines.md, doc/api/issues.md):
``:id`` is a numeric id or the URL-encoded path (routed on the raw path, so ``%2F`` stays in
its segment). ``PRIVATE-TOKEN``, ``Authorization: Bearer`` or ``JOB-TOKEN`` authenticate; a
bad one is ``401 {"message": "401 Unauthorized"}``; an unknown project ``404 {"message": "404
Project Not Found"}``. ``POST /projects/:id/trigger/pipeline`` authenticates by its ``token``
field (form, JSON or query; a trigger token of the project or a job token): an unknown token is
``404 {"message": "404 Not Found"}`` as in GitLab, which does not tell whether the project
exists. Variables: ``variables[KEY]=v`` (form) or an object; ``POST /projects/:id/pipeline``
takes ``[{"key", "value"}]``. Missing fields: ``400 {"error": "ref is missing"}``; an unknown
ref ``400 {"message": {"base": ["Reference not found"]}}``. Both answer ``201`` with the
pipeline (``id``, ``iid``, ``project_id``, ``status``, ``source``, ``ref``, ``sha``,
``web_url``, times). A pipeline's status moves along its script, one step per ``GET``
(default created -> pending -> running -> success), or as a test sets it. ``429`` carries
``RateLimit-*`` and (optionally) ``Retry-After`` with the body ``Retry later``; any status or a
hang can be injected (:meth:`GitLabState.fail`), before the request is carried out or, with
``after=True``, after it (GitLab created the issue, then the answer was lost). The issue routes
live in tests/fakes/gitlab_issues.py.
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
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from fakes.gitlab_issues import Issue, IssueRoutes, _Answer, issue_json
from fakes.gitlab_issues import error as _error

TERMINAL = frozenset({"success", "failed", "canceled", "skipped"})
DEFAULT_SCRIPT = ("created", "pending", "running", "success")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Project:
    id: int
    path: str  # group/name
    branches: set[str] = field(default_factory=lambda: {"main"})
    trigger_tokens: set[str] = field(default_factory=set)
    # Statuses the next pipelines go through (one script per pipeline, then DEFAULT_SCRIPT).
    scripts: list[list[str]] = field(default_factory=list)


@dataclass
class Pipeline:
    id: int
    iid: int
    project: Project
    ref: str
    source: str
    variables: dict[str, str]
    status: str
    script: list[str]  # statuses still to come, one per GET
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    sha: str = "a91957a858320c0e17f3a0eca7cfacbff50ea29a"


@dataclass
class Failure:
    """Answer matching requests with ``status`` (or hang) for the next ``times`` of them;
    ``after``: GitLab does the work first and then fails (a 5xx or a hang after creating)."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    hang: bool
    after: bool = False
    reset_in: int | None = None  # 429: RateLimit-Reset this many seconds from now


@dataclass
class Recorded:
    method: str
    path: str  # decoded, without /api/v4
    raw: str  # as sent (group%2Fproject)
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0


class GitLabState:
    """Everything the fake serves; tests build it, change it and read it directly."""

    def __init__(self, *, tokens: tuple[str, ...] = ("glpat-shiftbot-test-token",),
                 job_tokens: tuple[str, ...] = ()) -> None:
        self.tokens = set(tokens)
        self.job_tokens = set(job_tokens)
        self.projects: dict[int, Project] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.issues: list[Issue] = []
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.web_url = "http://gitlab.invalid"  # set by FakeGitLab once it listens
        self.released = asyncio.Event()  # set to let hanging requests go (stop() sets it)
        self._ids = itertools.count(1000)

    def add_project(self, path: str, *, trigger_tokens: list[str] | tuple[str, ...] = (),
                    branches: tuple[str, ...] = ("main",)) -> Project:
        project = Project(len(self.projects) + 1, path, set(branches), set(trigger_tokens))
        self.projects[project.id] = project
        return project

    def project(self, ref: str) -> Project | None:
        if ref.isdigit():
            return self.projects.get(int(ref))
        return next((p for p in self.projects.values() if p.path == ref), None)

    def fail(self, path: str, status: int, *, method: str = "*", times: int = 1,
             retry_after: str | None = None, hang: bool = False, after: bool = False,
             reset_in: int | None = None) -> None:
        """Inject a failure for requests whose decoded path (after /api/v4) matches ``path``
        (a regex searched in it); ``after``: the request is carried out, then failed."""
        self.failures.append(Failure(method, re.compile(path), status, times, retry_after,
                                     hang, after, reset_in))

    def set_status(self, pipeline_id: int, status: str) -> None:
        pipeline = self.pipelines[pipeline_id]
        pipeline.script.clear()
        _set(pipeline, status)

    def create_pipeline(self, project: Project, ref: str, source: str,
                        variables: dict[str, str]) -> Pipeline:
        script = project.scripts.pop(0) if project.scripts else list(DEFAULT_SCRIPT)
        iid = 1 + sum(1 for p in self.pipelines.values() if p.project is project)
        pipeline = Pipeline(next(self._ids), iid, project, ref, source, dict(variables),
                            script[0], list(script[1:]))
        self.pipelines[pipeline.id] = pipeline
        return pipeline

    def pipeline_json(self, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id, "iid": pipeline.iid, "project_id": pipeline.project.id,
            "status": pipeline.status, "source": pipeline.source, "ref": pipeline.ref,
            "sha": pipeline.sha, "before_sha": pipeline.sha, "tag": False, "name": None,
            "web_url": f"{self.web_url}/{pipeline.project.path}/-/pipelines/{pipeline.id}",
            "created_at": pipeline.created_at, "updated_at": pipeline.updated_at,
            "started_at": pipeline.started_at, "finished_at": pipeline.finished_at,
            "committed_at": None, "duration": None, "queued_duration": None, "coverage": None,
            "user": {"id": 1, "username": "shiftbot", "name": "shiftbot", "state": "active"},
            "detailed_status": {"text": pipeline.status, "label": pipeline.status,
                                "group": pipeline.status},
        }

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        return issue_json(self.web_url, issue)

    def issues_of(self, path: str) -> list[Issue]:
        """The issues of project ``path`` (group/name), oldest first."""
        return [i for i in self.issues if i.project.path == path]


def _set(pipeline: Pipeline, status: str) -> None:
    pipeline.status = status
    pipeline.updated_at = _now()
    if status == "running" and pipeline.started_at is None:
        pipeline.started_at = pipeline.updated_at
    if status in TERMINAL:
        pipeline.finished_at = pipeline.updated_at


_PROJECT = r"/projects/(?P<project>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"{_PROJECT}{path}$"), name) for method, path, name in [
        ("POST", "/trigger/pipeline", "trigger"),
        ("POST", "/pipeline", "create"),
        ("GET", "/pipelines/(?P<pid>[0-9]+)", "get_pipeline"),
        ("POST", "/pipelines/(?P<pid>[0-9]+)/cancel", "cancel"),
        ("POST", "/issues", "create_issue"),
        ("GET", "/issues", "list_issues"),
        ("GET", "/issues/(?P<iid>[0-9]+)", "get_issue"),
        ("PUT", "/issues/(?P<iid>[0-9]+)", "edit_issue"),
        ("POST", "/issues/(?P<iid>[0-9]+)/notes", "add_note"),
        ("GET", "/issues/(?P<iid>[0-9]+)/notes", "list_notes"),
    ]
]


class FakeGitLab(IssueRoutes):
    def __init__(self, state: GitLabState | None = None) -> None:
        self.state = state or GitLabState()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    async def __aenter__(self) -> FakeGitLab:
        app = web.Application()
        app.router.add_route("*", "/api/v4/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.state.web_url = self.url
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.state.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path.removeprefix("/api/v4")
        body = await _body(request)
        record = Recorded(request.method, unquote(raw), raw, dict(request.headers), body)
        self.state.requests.append(record)
        failure = self._failure_for(request.method, record.path)
        if failure is None or failure.after:
            try:
                status, payload = self._route(request, raw, body)
            except _Answer as answer:
                status, payload = answer.status, answer.body
            record.status = status
            if failure is None:
                return web.json_response(payload, status=status)
        assert failure is not None
        injected = await self._injected(failure)
        record.status = injected.status
        return injected

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
        if failure.status == 429:
            headers = {"RateLimit-Limit": "600", "RateLimit-Remaining": "0"}
            if failure.retry_after is not None:
                headers["Retry-After"] = failure.retry_after
            if failure.reset_in is not None:
                headers["RateLimit-Reset"] = str(int(time.time()) + failure.reset_in)
            return web.Response(status=429, text="Retry later\n", headers=headers)
        return web.json_response({"message": f"{failure.status} Internal Server Error"
                                  if failure.status >= 500 else f"{failure.status}"},
                                 status=failure.status)

    def _route(self, request: web.Request, raw: str,
               body: dict[str, Any]) -> tuple[int, Any]:
        for method, pattern, name in ROUTES:
            match = pattern.match(raw)
            if match and method == request.method:
                groups = {k: unquote(v) for k, v in match.groupdict().items()}
                project = self.state.project(groups.pop("project"))
                if name != "trigger":
                    self._authenticate(request)
                if project is None:
                    raise _error(404, "404 Project Not Found")
                handler = getattr(self, f"_{name}")
                return handler(project, body, **groups)  # type: ignore[no-any-return]
        raise _error(404, "404 Not Found", "error")

    def _authenticate(self, request: web.Request) -> None:
        headers = request.headers
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if headers.get("PRIVATE-TOKEN") in self.state.tokens or bearer in self.state.tokens:
            return
        if headers.get("JOB-TOKEN") in self.state.job_tokens:
            return
        raise _error(401, "401 Unauthorized")

    # ----------------------------------------------------------------- pipelines

    def _trigger(self, project: Project, body: dict[str, Any]) -> tuple[int, Any]:
        for name in ("ref", "token"):
            if not body.get(name):
                raise _error(400, f"{name} is missing", "error")
        variables = _variables(body)
        token = body["token"]
        if token not in project.trigger_tokens and token not in self.state.job_tokens:
            raise _error(404, "404 Not Found")
        return self._new_pipeline(project, body["ref"], "trigger", variables)

    def _create(self, project: Project, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("ref"):
            raise _error(400, "ref is missing", "error")
        listed = body.get("variables") or []
        if not isinstance(listed, list) or not all(isinstance(v, dict) for v in listed):
            raise _error(400, "variables is invalid", "error")
        variables = {str(v.get("key")): str(v.get("value")) for v in listed}
        return self._new_pipeline(project, body["ref"], "api", variables)

    def _new_pipeline(self, project: Project, ref: str, source: str,
                      variables: dict[str, str]) -> tuple[int, Any]:
        if ref not in project.branches:
            raise _error(400, {"base": ["Reference not found"]})
        pipeline = self.state.create_pipeline(project, ref, source, variables)
        return 201, self.state.pipeline_json(pipeline)

    def _pipeline(self, project: Project, pid: str) -> Pipeline:
        pipeline = self.state.pipelines.get(int(pid))
        if pipeline is None or pipeline.project is not project:
            raise _error(404, "404 Not found")
        return pipeline

    def _get_pipeline(self, project: Project, body: dict[str, Any],
                      pid: str) -> tuple[int, Any]:
        pipeline = self._pipeline(project, pid)
        if pipeline.script and pipeline.status not in TERMINAL:
            _set(pipeline, pipeline.script.pop(0))
        return 200, self.state.pipeline_json(pipeline)

    def _cancel(self, project: Project, body: dict[str, Any], pid: str) -> tuple[int, Any]:
        pipeline = self._pipeline(project, pid)
        if pipeline.status not in TERMINAL:
            self.state.set_status(pipeline.id, "canceled")
        return 201, self.state.pipeline_json(pipeline)


async def _body(request: web.Request) -> dict[str, Any]:
    """Query parameters, then the form or JSON body over them (GitLab reads all three)."""
    values: dict[str, Any] = dict(parse_qsl(request.rel_url.raw_query_string))
    if not request.can_read_body:
        return values
    if request.content_type == "application/json":
        try:
            parsed = json.loads(await request.text() or "{}")
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(text='{"error":"invalid JSON"}') from None
        if isinstance(parsed, dict):
            values.update(parsed)
    else:
        values.update((await request.post()).items())
    return values


def _variables(body: dict[str, Any]) -> dict[str, str]:
    """``variables[KEY]=value`` form fields, or a JSON object; GitLab refuses non-strings."""
    found = {key[10:-1]: value for key, value in body.items()
             if key.startswith("variables[") and key.endswith("]")}
    given = body.get("variables")
    if isinstance(given, dict):
        found.update(given)
    if not all(isinstance(v, str) for v in found.values()):
        raise _error(400, "variables needs to be a map of key-valued strings")
    return found
