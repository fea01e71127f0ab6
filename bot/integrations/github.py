"""GitHub (REST v3): an async client for the few issue endpoints shiftbot needs (meeting action
items become issues; WMCore files its action items on GitHub).

- ``POST /repos/:owner/:repo/issues`` (``{"title", "body", "labels"}`` -> ``201``, the issue);
- ``GET /repos/:owner/:repo/issues/:number`` (its ``state``: ``open`` | ``closed``);
- ``GET /repos/:owner/:repo/issues?state=all&since=...`` (newest first; pull requests are in
  this list too, with a ``pull_request`` key, and are skipped);
- ``GET /search/issues?q=...`` (``{"total_count", "items"}``; search is indexed with a delay,
  so the marker lookup before a create reads the repository's list instead).

Authentication is ``Authorization: Bearer <token>`` (a fine-grained token with Issues: write,
or a classic one with ``repo``); GitHub also wants ``User-Agent`` and the API version header.
Errors are :class:`GitHubError` with the status and whether a later try may work: 401 (bad
credentials), 403 (not allowed, or the primary rate limit: ``x-ratelimit-remaining: 0``), 404
(no such repository, or the token cannot see it), 410 (issues disabled), 422 (validation), 429
and 5xx and timeouts (transient; a 403/429 rate limit says when: ``Retry-After`` in seconds,
else ``x-ratelimit-reset``, a Unix time). A create is never retried here: after a 5xx or a
timeout GitHub may have opened the issue, so the caller looks for its body marker first.
Messages never hold the token (the masker runs over them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from bot.configbase import Strict
from bot.httpclient import shared_client
from bot.integrations.httpreply import reason
from bot.secrets import masker

if TYPE_CHECKING:  # imported by the first call: start-up needs no HTTP client
    import httpx

API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_TITLE = 256  # GitHub refuses longer titles (422)
PAGE = 100  # GitHub's largest page
MAX_PAGES = 5  # a marker lookup reads at most this many pages of recent issues
ISSUE_MAYBE = " (GitHub may have opened the issue anyway: the next try looks for it first)"


class GitHubConfig(Strict):
    """``meetings.github`` (docs/meetings.md)."""

    url: str = API_URL  # GitHub Enterprise: https://github.example.com/api/v3
    token: SecretStr | None = None
    timeout_seconds: float = Field(10, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = value.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("expected the API's address, e.g. https://api.github.com")
        return url


class GitHubError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(masker.mask(message))
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class GitHubIssue:
    number: int
    html_url: str
    state: str  # open | closed
    title: str
    body: str

    @classmethod
    def from_json(cls, data: Any) -> GitHubIssue:
        if not isinstance(data, dict) or not isinstance(data.get("number"), int):
            raise GitHubError("GitHub answered with something that is not an issue")
        return cls(data["number"], str(data.get("html_url") or ""),
                   str(data.get("state") or "open"), str(data.get("title") or ""),
                   str(data.get("body") or ""))


class GitHubClient:
    """Calls go through the bot's shared HTTP client; this object holds the address and the
    token only."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: GitHubConfig) -> GitHubClient:
        token = config.token.get_secret_value() if config.token else None
        return cls(config.url, token, timeout=config.timeout_seconds)

    async def create_issue(self, repo: str, title: str, body: str,
                           labels: list[str]) -> GitHubIssue:
        """One POST, never retried here (see the module's docstring)."""
        payload: dict[str, Any] = {"title": " ".join(title.split())[:MAX_TITLE] or "(no title)",
                                   "body": body}
        if labels:
            payload["labels"] = list(labels)
        data = await self._call("POST", f"/repos/{repo}/issues", json=payload,
                                what=f"repository {repo}", maybe=ISSUE_MAYBE)
        return GitHubIssue.from_json(data)

    async def issue(self, repo: str, number: int) -> GitHubIssue:
        data = await self._call("GET", f"/repos/{repo}/issues/{int(number)}",
                                what=f"issue {number} of {repo}")
        return GitHubIssue.from_json(data)

    async def find_issue_with(self, repo: str, marker: str,
                              since: datetime | None = None) -> GitHubIssue | None:
        """The newest issue (open or closed) of ``repo`` whose body holds ``marker``, among
        those updated since ``since`` (an issue we opened was updated after we opened it)."""
        params: dict[str, Any] = {"state": "all", "sort": "created", "direction": "desc",
                                  "per_page": PAGE}
        if since is not None:
            params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in range(1, MAX_PAGES + 1):
            data = await self._call("GET", f"/repos/{repo}/issues",
                                    params={**params, "page": page}, what=f"repository {repo}")
            if not isinstance(data, list):
                raise GitHubError("GitHub answered a list with something that is not a list")
            for item in data:
                if isinstance(item, dict) and "pull_request" not in item \
                        and marker in str(item.get("body") or ""):
                    return GitHubIssue.from_json(item)
            if len(data) < PAGE:
                return None
        return None

    async def search_issues(self, query: str) -> list[GitHubIssue]:
        """``GET /search/issues?q=query`` (issues only; pull requests are skipped)."""
        data = await self._call("GET", "/search/issues", params={"q": query, "per_page": PAGE},
                                what="the search")
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise GitHubError("GitHub answered a search without 'items'")
        return [GitHubIssue.from_json(i) for i in items
                if isinstance(i, dict) and "pull_request" not in i]

    async def _call(self, method: str, path: str, *, what: str, maybe: str = "",
                    **kwargs: Any) -> Any:
        if not self._token:
            raise GitHubError("meetings.github.token is not configured")
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "shiftbot",
                   "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": f"Bearer {self._token}"}
        import httpx

        client = await shared_client()
        try:
            response = await client.request(method, f"{self.url}{path}", headers=headers,
                                            timeout=self.timeout, follow_redirects=False,
                                            **kwargs)
        except httpx.TimeoutException:
            raise GitHubError(f"GitHub did not answer within {self.timeout:g} s{maybe}",
                              transient=True) from None
        except httpx.HTTPError as exc:
            raise GitHubError(f"cannot reach GitHub at {self.url}: {type(exc).__name__}{maybe}",
                              transient=True) from None
        if response.status_code < 300:
            try:
                return response.json()
            except ValueError:
                raise GitHubError(f"GitHub answered {response.status_code} without JSON"
                                  ) from None
        raise failure(response, what, maybe)


def failure(response: httpx.Response, what: str, maybe: str = "") -> GitHubError:
    status = response.status_code
    said = _message(response)
    limited = response.headers.get("x-ratelimit-remaining") == "0" \
        or "rate limit" in said.lower()
    if status == 429 or (status == 403 and limited):
        # Refused before anything was done: no "maybe".
        return GitHubError(f"GitHub is rate-limiting us ({status})", status=status,
                           transient=True, retry_after=retry_after(response))
    if status == 401:
        return GitHubError(f"GitHub refused the token (401 {said}): check "
                           "meetings.github.token", status=status)
    if status == 403:
        return GitHubError(f"GitHub says the token may not do this (403 {said})", status=status)
    if status == 404:
        return GitHubError(f"GitHub knows no {what} (404 {said}), or the token cannot see it",
                           status=status)
    if status == 410:
        return GitHubError(f"issues are disabled in {what} (410)", status=status)
    if status == 422:
        return GitHubError(f"GitHub refused it as invalid (422 {said})", status=status)
    if status >= 500:
        return GitHubError(f"GitHub failed ({status} {said}){maybe}", status=status,
                           transient=True)
    return GitHubError(f"GitHub refused it ({status} {said})", status=status)


def _message(response: httpx.Response) -> str:
    """GitHub's ``{"message", "errors": [...]}``, else the text."""
    return reason(response, _github_reason)


def _github_reason(data: dict[str, Any]) -> str:
    text = str(data.get("message") or data)
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text += ": " + "; ".join(_error_text(e) for e in errors[:3])
    return text


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or
                   f"{error.get('field', '?')} {error.get('code', 'invalid')}")
    return str(error)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds), else ``x-ratelimit-reset`` (a Unix time)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None
