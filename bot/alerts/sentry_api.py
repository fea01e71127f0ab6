"""Sentry's web API (``sentry.api_url``, Bearer ``sentry.token``): the few calls alerts need.

- issue details ``GET organizations/{org}/issues/{id}/`` (counts, first/last seen, links:
  ``event_alert`` payloads lack them);
- the latest event ``GET organizations/{org}/issues/{id}/events/latest/`` (stack frames, tags);
- resolve/ignore ``PUT organizations/{org}/issues/{id}/`` ``{"status": ...}`` (buttons);
- link the GitLab issue ``POST sentry-app-installations/{uuid}/external-issues/``;
- polling ``GET projects/{org}/{project}/issues/?query=is:unresolved&limit=N``.

Errors are :class:`SentryError` with the HTTP status and whether trying again later may help
(429 with ``Retry-After`` in seconds or as an HTTP date, 5xx, timeouts, connection errors); a
401, 403 or 404 will not get better by waiting. Messages never hold the token (the masker also
runs over them). Calls go through the bot's shared HTTP client (``bot.httpclient``).
"""

from __future__ import annotations

import email.utils
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot import clock
from bot.alerts.config import SentryConfig
from bot.httpclient import shared_client
from bot.integrations.httpreply import reason
from bot.secrets import masker

if TYPE_CHECKING:  # imported by the first call: `console -c help` needs no HTTP client
    import httpx

STATUSES = frozenset({"resolved", "ignored", "unresolved"})
MAX_RETRY_AFTER = 3600.0  # a longer ask is capped: the task queue's backoff takes over


class SentryError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(masker.mask(message))
        self.status = status
        self.transient = transient  # trying again later may work
        self.retry_after = retry_after  # seconds Sentry asked us to wait (429)


class SentryApi:
    """Holds the address, organization and token; the HTTP client is the shared one."""

    def __init__(self, api_url: str, token: str, org: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self._token = token
        self.org = org
        self.timeout = timeout
        masker.add(token)  # whatever path a message takes, the token never shows

    @classmethod
    def from_config(cls, config: SentryConfig | None) -> SentryApi | None:
        """None without ``sentry.token`` or ``sentry.org`` (the API is then not used)."""
        if config is None or config.token is None or not config.org:
            return None
        token = config.token.get_secret_value()
        if not token:
            return None
        return cls(config.api_url, token, config.org, config.timeout_seconds)

    def _issue_path(self, issue_id: str) -> str:
        return f"organizations/{_segment(self.org)}/issues/{_issue_id(issue_id)}/"

    async def issue(self, issue_id: str) -> dict[str, Any]:
        data = await self._call("GET", self._issue_path(issue_id), what=f"issue {issue_id}")
        return _object(data, "an issue")

    async def latest_event(self, issue_id: str) -> dict[str, Any]:
        data = await self._call("GET", self._issue_path(issue_id) + "events/latest/",
                                what=f"latest event of issue {issue_id}")
        return _object(data, "an event")

    async def set_status(self, issue_id: str, status: str) -> dict[str, Any]:
        """Resolve, ignore or unresolve an issue; Sentry answers with the changed fields."""
        if status not in STATUSES:
            raise SentryError(f"unknown issue status {status!r}: expected "
                              f"{', '.join(sorted(STATUSES))}")
        data = await self._call("PUT", self._issue_path(issue_id), json={"status": status},
                                what=f"issue {issue_id}")
        return _object(data, "an issue update")

    async def link_external(self, installation_uuid: str, issue_id: str, web_url: str,
                            project: str, identifier: str) -> None:
        """Show the GitLab issue on the Sentry issue (the integration's external-issues API)."""
        number = _issue_id(issue_id)
        await self._call(
            "POST", f"sentry-app-installations/{_segment(installation_uuid)}/external-issues/",
            json={"issueId": int(number), "webUrl": web_url, "project": project,
                  "identifier": identifier},
            what=f"installation {installation_uuid}")

    async def unresolved_issues(self, project: str, limit: int = 100) -> list[dict[str, Any]]:
        """The project's unresolved issues, most recently seen first (polling)."""
        data = await self._call(
            "GET", f"projects/{_segment(self.org)}/{_segment(project)}/issues/",
            params={"query": "is:unresolved", "limit": str(max(1, min(int(limit), 100)))},
            what=f"project {project}")
        if not isinstance(data, list):
            raise SentryError("Sentry answered with something that is not a list of issues")
        return [item for item in data if isinstance(item, dict)]

    async def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        import httpx

        headers = {"Accept": "application/json", "Authorization": f"Bearer {self._token}"}
        client = await shared_client()
        try:
            response = await client.request(method, self.api_url + path, headers=headers,
                                            timeout=self.timeout, follow_redirects=False,
                                            **kwargs)
        except httpx.TimeoutException:
            raise SentryError(f"Sentry did not answer within {self.timeout:g} s",
                              transient=True) from None
        except httpx.HTTPError as exc:
            raise SentryError(f"cannot reach Sentry at {self.api_url}: {type(exc).__name__}",
                              transient=True) from None
        if response.status_code < 300:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise SentryError(f"Sentry answered {response.status_code} without JSON",
                                  status=response.status_code) from None
        raise _failure(response, what)


def _failure(response: httpx.Response, what: str) -> SentryError:
    status = response.status_code
    said = _message(response)
    if status == 401:
        return SentryError(f"Sentry refused the token (401 {said}): check sentry.token",
                           status=status)
    if status == 403:
        return SentryError(f"Sentry says the token may not do this (403 {said}): check the "
                           "integration's permissions", status=status)
    if status == 404:
        return SentryError(f"Sentry knows no {what} (404 {said}); check sentry.org",
                           status=status)
    if status == 429:
        return SentryError("Sentry is rate-limiting us (429)", status=status, transient=True,
                           retry_after=retry_after(response))
    if status >= 500:
        return SentryError(f"Sentry failed ({status} {said})", status=status, transient=True)
    return SentryError(f"Sentry refused it ({status} {said})", status=status)


def _message(response: httpx.Response) -> str:
    """Sentry's reason: ``{"detail": ...}`` (any JSON), else the text; one short line."""
    return reason(response, lambda data: str(data.get("detail") or data))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429: ``Retry-After`` (seconds or an HTTP date), else Sentry's
    ``X-Sentry-Rate-Limit-Reset`` (a Unix time); None when it said neither."""
    now = clock.utcnow().timestamp()
    value = response.headers.get("Retry-After", "").strip()
    seconds: float | None = None
    if value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
                if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
                    moment = moment.replace(tzinfo=UTC)
                seconds = moment.timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = None
    if seconds is None:
        reset = response.headers.get("X-Sentry-Rate-Limit-Reset", "").strip()
        try:
            seconds = float(reset) - now if reset else None
        except ValueError:
            seconds = None
    if seconds is None or seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _issue_id(value: str) -> str:
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise SentryError(f"not a Sentry issue id: {text[:40]!r}")
    return text


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SentryError(f"Sentry answered with something that is not {what}")
    return data
