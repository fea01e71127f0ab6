"""GitLab (REST v4): the ``gitlab:`` config section and an async client for the few endpoints
shiftbot needs (pipelines for restarts; issues for the alerts feature).

Pipelines are started either with a project's *trigger token* (``POST /projects/:id/trigger/
pipeline``, form fields ``token``, ``ref``, ``variables[KEY]``: a credential that can start
pipelines and nothing else) or with ``gitlab.token`` (``POST /projects/:id/pipeline``, JSON
``{"ref", "variables": [{"key", "value"}]}``). Following one (``GET /projects/:id/pipelines/
:pipeline_id``) needs ``gitlab.token`` (``PRIVATE-TOKEN``, read_api is enough).

Errors are :class:`GitLabError` with the HTTP status and whether trying again later may help
(429 and 5xx, timeouts): a 429 says when (``Retry-After``, else ``RateLimit-Reset``). A start
request is never retried after a 5xx or a timeout: GitLab may have created the pipeline, and a
second one would restart twice. Likewise an issue is never created blindly twice: the alerts
feature looks in its mapping table, then searches the description marker
(:meth:`GitLabClient.find_issue_with`), before every :meth:`GitLabClient.create_issue`.
Messages never hold a token (the masker also runs over them).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator

from bot.configbase import Strict
from bot.features import ConfigSection
from bot.httpclient import shared_client
from bot.integrations.httpreply import reason
from bot.secrets import masker

if TYPE_CHECKING:  # imported by the first call: start-up needs no HTTP client
    import httpx

TERMINAL = frozenset({"success", "failed", "canceled", "skipped"})
MAX_TITLE = 255  # GitLab refuses longer issue titles
SEARCH_PAGE = 100  # issues read per marker search (GitLab's largest page)
PIPELINE_MAYBE = " (the pipeline may have started anyway: look in GitLab)"
ISSUE_MAYBE = " (GitLab may have opened the issue anyway: the next try looks for it first)"


class GitLabConfig(Strict):
    """The ``gitlab:`` section (docs/restart.md; the alerts feature reads it too)."""

    url: str | None = None  # https://git.ligo.org (the instance, without /api/v4)
    token: SecretStr | None = None  # a project access token: PRIVATE-TOKEN
    project: str | None = None  # default project: group/name or its numeric id
    labels: list[str] = []  # labels of the issues the alerts feature opens
    timeout_seconds: float = Field(10, gt=0, le=120)  # one HTTP request

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.rstrip("/").removesuffix("/api/v4")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("expected the instance's address, e.g. https://gitlab.example.com")
        return url


GITLAB = ConfigSection("gitlab", GitLabConfig)


class GitLabError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(masker.mask(message))
        self.status = status
        self.transient = transient  # trying again later may work
        self.retry_after = retry_after  # seconds GitLab asked us to wait (429)


@dataclass(frozen=True, slots=True)
class Pipeline:
    id: int
    iid: int | None
    project_id: int | None
    status: str
    ref: str
    sha: str
    web_url: str
    source: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: Any) -> Pipeline:
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise GitLabError("GitLab answered with something that is not a pipeline")
        return cls(data["id"], data.get("iid"), data.get("project_id"),
                   str(data.get("status") or "unknown"), str(data.get("ref") or ""),
                   str(data.get("sha") or ""), str(data.get("web_url") or ""),
                   data.get("source"))


@dataclass(frozen=True, slots=True)
class GitLabIssue:
    iid: int
    project_id: int | None
    web_url: str
    state: str  # opened | closed
    title: str
    description: str

    @classmethod
    def from_json(cls, data: Any) -> GitLabIssue:
        if not isinstance(data, dict) or not isinstance(data.get("iid"), int):
            raise GitLabError("GitLab answered with something that is not an issue")
        return cls(data["iid"], data.get("project_id"), str(data.get("web_url") or ""),
                   str(data.get("state") or "opened"), str(data.get("title") or ""),
                   str(data.get("description") or ""))


def project_path(project: str) -> str:
    """``group/name`` -> ``group%2Fname`` (an id stays as it is)."""
    return quote(project, safe="")


class GitLabClient:
    """Calls go through the bot's shared HTTP client (``bot.httpclient``: its SSL context is
    built once, off the event loop); this object only holds the address and the token."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: GitLabConfig) -> GitLabClient:
        if not config.url:
            raise GitLabError("gitlab.url is not configured")
        token = config.token.get_secret_value() if config.token else None
        return cls(config.url, token, timeout=config.timeout_seconds)

    async def close(self) -> None:
        """Nothing to close: the shared client outlives us (``bot.httpclient.close_all``)."""

    def pipelines_url(self, project: str) -> str:
        """Where people look when we cannot tell them which pipeline it was."""
        return f"{self.url}/{project}/-/pipelines" if not project.isdigit() else self.url

    async def trigger_pipeline(self, project: str, trigger_token: str, ref: str,
                               variables: dict[str, str]) -> Pipeline:
        form = {"token": trigger_token, "ref": ref,
                **{f"variables[{key}]": value for key, value in variables.items()}}
        data = await self._call("POST", f"/projects/{project_path(project)}/trigger/pipeline",
                                data=form, authenticated=False, what=f"project {project}",
                                starting=True)
        return Pipeline.from_json(data)

    async def create_pipeline(self, project: str, ref: str,
                              variables: dict[str, str]) -> Pipeline:
        body = {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]}
        data = await self._call("POST", f"/projects/{project_path(project)}/pipeline",
                                json=body, what=f"project {project}", starting=True)
        return Pipeline.from_json(data)

    async def pipeline(self, project: str, pipeline_id: int) -> Pipeline:
        data = await self._call("GET", f"/projects/{project_path(project)}/pipelines/"
                                       f"{int(pipeline_id)}",
                                what=f"pipeline {pipeline_id} of project {project}")
        return Pipeline.from_json(data)

    # ------------------------------------------------------------------ issues

    async def create_issue(self, project: str, title: str, description: str,
                           labels: list[str]) -> GitLabIssue:
        """One POST, never retried here: after a 5xx or a timeout the issue may exist, so the
        caller searches its marker before trying again."""
        body: dict[str, Any] = {"title": _one_line(title)[:MAX_TITLE] or "(no title)",
                                "description": description}
        if labels:
            body["labels"] = ",".join(labels)
        data = await self._call("POST", f"/projects/{project_path(project)}/issues", json=body,
                                what=f"project {project}", maybe=ISSUE_MAYBE)
        return GitLabIssue.from_json(data)

    async def find_issue_with(self, project: str, marker: str) -> GitLabIssue | None:
        """The newest issue (open or closed) whose description holds ``marker`` exactly.
        GitLab's search matches words loosely (``sentry-issue:12`` also finds ``...:123``),
        so every hit is checked here; the marker's spaces are left out of the query because
        GitLab drops search words shorter than three characters."""
        query = max(marker.replace("<!--", " ").replace("-->", " ").split(), key=len)
        params = {"search": query, "in": "description", "state": "all",
                  "order_by": "created_at", "sort": "desc", "per_page": SEARCH_PAGE}
        data = await self._call("GET", f"/projects/{project_path(project)}/issues",
                                params=params, what=f"project {project}")
        if not isinstance(data, list):
            raise GitLabError("GitLab answered a search with something that is not a list")
        hits = [GitLabIssue.from_json(item) for item in data]
        return next((issue for issue in hits if marker in issue.description), None)

    async def add_note(self, project: str, iid: int, body: str) -> None:
        await self._call("POST", f"/projects/{project_path(project)}/issues/{int(iid)}/notes",
                         json={"body": body}, what=f"issue {iid} of project {project}")

    async def set_issue_state(self, project: str, iid: int, event: str) -> GitLabIssue:
        """``event``: ``reopen`` or ``close`` (GitLab answers 200 when it already is)."""
        if event not in ("reopen", "close"):
            raise ValueError(f"state event {event!r}: expected reopen or close")
        data = await self._call("PUT", f"/projects/{project_path(project)}/issues/{int(iid)}",
                                json={"state_event": event},
                                what=f"issue {iid} of project {project}")
        return GitLabIssue.from_json(data)

    async def _call(self, method: str, path: str, *, what: str, authenticated: bool = True,
                    starting: bool = False, maybe: str = "", **kwargs: Any) -> Any:
        headers = {"Accept": "application/json"}
        if authenticated:
            if not self._token:
                raise GitLabError("gitlab.token is not configured: GitLab's API needs it here")
            headers["PRIVATE-TOKEN"] = self._token
        maybe = PIPELINE_MAYBE if starting else maybe
        import httpx

        client = await shared_client()
        try:
            response = await client.request(method, f"{self.url}/api/v4{path}",
                                            headers=headers, timeout=self.timeout,
                                            follow_redirects=False, **kwargs)
        except httpx.TimeoutException:
            raise GitLabError(f"GitLab did not answer within {self.timeout:g} s{maybe}",
                              transient=True) from None
        except httpx.HTTPError as exc:
            raise GitLabError(f"cannot reach GitLab at {self.url}: {type(exc).__name__}"
                              f"{maybe}", transient=True) from None
        if response.status_code < 300:
            try:
                return response.json()
            except ValueError:
                raise GitLabError(f"GitLab answered {response.status_code} without JSON"
                                  ) from None
        raise _failure(response, what, maybe)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failure(response: httpx.Response, what: str, maybe: str) -> GitLabError:
    status = response.status_code
    said = _message(response)
    if status == 401:
        return GitLabError(f"GitLab refused the token (401 {said}): check gitlab.token",
                           status=status)
    if status == 403:
        return GitLabError(f"GitLab says the token may not do this (403 {said})",
                           status=status)
    if status == 404:
        return GitLabError(f"GitLab knows no {what} (404 {said}); with a trigger token this "
                           "also means the token is not one of the project's", status=status)
    if status == 429:
        # Refused before anything was done (GitLab's rate limiter answers first): no "maybe".
        return GitLabError("GitLab is rate-limiting us (429)", status=status, transient=True,
                           retry_after=retry_after(response))
    if status >= 500:
        return GitLabError(f"GitLab failed ({status} {said}){maybe}", status=status,
                           transient=True)
    return GitLabError(f"GitLab refused it ({status} {said})", status=status)


def _message(response: httpx.Response) -> str:
    """GitLab's reason: ``{"message": ...}`` or ``{"error": ...}`` (any JSON), else text."""
    return reason(response, lambda data: str(data.get("message") or data.get("error") or data))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429: ``Retry-After`` (seconds or an HTTP date), else
    ``RateLimit-Reset`` (a Unix time); None when GitLab said neither."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            return max(0.0, moment.timestamp() - time.time())
    reset = response.headers.get("RateLimit-Reset", "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None
