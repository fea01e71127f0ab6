"""REST v4 through mattermostautodriver's ``AsyncTypedDriver``, with deadlines and one retry policy.

The driver retries 429 for every method and 5xx only for GET/PUT/DELETE, each call on its own.
Here its retries are off (``max_retries=0``): outbound posts are retried by the adapter's
per-channel sender (so a later post never overtakes an earlier one) and other calls by
:meth:`MattermostRest.retrying`. Every call has a total deadline (httpx's timeout is per phase).
Failures are mapped onto the sender's vocabulary: :class:`~bot.sender.RateLimited` (429, with
``Retry-After``), :class:`~bot.sender.TransientError` (5xx, timeouts, connection errors);
anything else is permanent and raised as it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from mattermostautodriver import AsyncTypedDriver
from mattermostautodriver.exceptions import (
    InvalidMattermostError,
    MattermostError,
    TooManyRequests,
)

from bot.adapters.mattermost.transport import AiohttpTransport
from bot.config import MattermostConfig, secret_value
from bot.sender import RateLimited, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")


def server_parts(url: str) -> tuple[str, str, int]:
    """``https://mm.example.org`` -> (``https``, ``mm.example.org``, 443)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname or "", port


def websocket_url(url: str) -> str:
    """The server's websocket endpoint."""
    scheme, host, port = server_parts(url)
    return f"{'wss' if scheme == 'https' else 'ws'}://{host}:{port}/api/v4/websocket"


def driver_options(config: MattermostConfig) -> dict[str, Any]:
    """Options for ``AsyncTypedDriver``: host only in ``url``, int ``port``, no retries,
    and an aiohttp transport under httpx (see :mod:`bot.adapters.mattermost.transport`)."""
    scheme, host, port = server_parts(config.url)
    return {
        "url": host, "port": port, "scheme": scheme, "token": secret_value(config.token),
        "verify": config.verify_tls, "request_timeout": config.request_timeout_seconds,
        "max_retries": 0, "retry_max_sleep": 0, "keepalive": False,
        "transport": AiohttpTransport(verify=config.verify_tls),
    }


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a driver or httpx error, if there was a response."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def classify(exc: BaseException) -> BaseException:
    """Map a failed call onto RateLimited / TransientError; permanent errors pass through."""
    if isinstance(exc, RateLimited | TransientError):
        return exc
    if isinstance(exc, TooManyRequests):
        return RateLimited(exc.retry_after)
    if isinstance(exc, MattermostError | InvalidMattermostError):
        status = status_of(exc) or 0
        if status >= 500:
            return TransientError(f"HTTP {status}: {exc}")
        return exc
    if isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError):
        return TransientError(f"{type(exc).__name__}: {exc}" if str(exc)
                              else type(exc).__name__)
    return exc


def describe(exc: BaseException) -> str:
    """A one-line description for logs and health (never a traceback)."""
    status = status_of(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if status:
        return f"HTTP {status} {name}: {text}"[:200]
    return f"{name}: {text}"[:200] if text else name


class UnexpectedResponse(InvalidMattermostError):
    """A success status whose body is not JSON (a proxy's page, a truncated answer)."""


def json_body(response: httpx.Response, what: str) -> Any:
    """The JSON of a successful answer, whatever parameters its Content-Type carries.

    The driver's ``get`` returns the raw response unless the header is exactly
    ``application/json`` (a proxy adding ``; charset=utf-8`` made ``login`` fail forever with a
    TypeError), and its ``post``/``put`` call ``.json()`` on anything. Here every call gets the
    response from ``make_request`` (which still maps error statuses to the driver's exceptions)
    and decodes it: JSON is JSON whatever the label; anything else is a clear error.
    """
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type") or "no Content-Type"
        snippet = " ".join(response.text[:120].split())
        raise UnexpectedResponse(
            f"Mattermost answered the {what} with {kind}, not JSON: {snippet!r}",
            response.status_code) from None


class _DriverErrorLines(logging.Filter):
    """The driver logs each error answer's message at ERROR (a Sentry event each, a bad token
    one per retry); the adapter logs the same failure with its context: keep it at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.funcName == "_check_response":
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_driver_log = logging.getLogger("mattermostautodriver.websocket")  # the driver's client logger
if not any(isinstance(f, _DriverErrorLines) for f in _driver_log.filters):
    _driver_log.addFilter(_DriverErrorLines())


class MattermostRest:
    """The REST calls the adapter makes, each with a deadline and classified failures."""

    def __init__(self, config: MattermostConfig, *, driver: AsyncTypedDriver | None = None,
                 retry_base: float = 0.5, retry_cap: float = 30.0) -> None:
        self.config = config
        self.timeout = config.request_timeout_seconds
        self.driver = driver or AsyncTypedDriver(driver_options(config))
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.user_id = ""
        self.username = ""

    @property
    def http(self) -> httpx.AsyncClient:
        """The driver's httpx client (for ``response_url``, which is outside ``/api/v4``)."""
        return self.driver.client.client

    async def close(self) -> None:
        await self.driver.close()

    async def call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """One call under a total deadline; failures classified (see :func:`classify`)."""
        try:
            async with asyncio.timeout(self.timeout + 1):
                return await make()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = classify(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def retrying(self, what: str, make: Callable[[], Awaitable[T]], *,
                       attempts: int = 5) -> T:
        """:meth:`call`, retrying 429 (after ``Retry-After``) and transient failures."""
        for attempt in range(1, attempts + 1):
            try:
                return await self.call(what, make)
            except (RateLimited, TransientError) as exc:
                if attempt == attempts:
                    raise
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = exc.retry_after
                else:
                    delay = min(self.retry_cap, self.retry_base * 2 ** (attempt - 1))
                    delay *= random.uniform(0.5, 1.0)
                log.warning("Mattermost %s failed (%s); retry %d in %.1f s", what, exc,
                            attempt, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def request(self, what: str, method: str, endpoint: str, *, options: Any = None,
                      params: dict[str, Any] | None = None) -> Any:
        """One REST call (see :meth:`call`) and its JSON (see :func:`json_body`)."""
        response = await self.call(what, lambda: self.driver.client.make_request(
            method, endpoint, options=options, params=params))
        return json_body(response, what)

    # ------------------------------------------------------------------ calls

    async def login(self) -> dict[str, Any]:
        """``GET users/me`` with the bot token; remembers the bot's id and username.

        Not ``driver.login()``: it tests ``"id" in`` whatever ``get`` returned (a TypeError on
        a raw response); the token is set on the client as it would do."""
        self.driver.client.token = secret_value(self.config.token) or ""
        me = await self.request("login", "get", "/api/v4/users/me")
        if not isinstance(me, dict) or not me.get("id") or not me.get("username"):
            raise UnexpectedResponse(f"Mattermost answered the login with {str(me)[:120]!r}",
                                     200)
        self.user_id, self.username = str(me["id"]), str(me["username"])
        self.driver.client.userid, self.driver.client.username = self.user_id, self.username
        return me

    async def team(self, name: str) -> dict[str, Any]:
        return await self.request("team lookup", "get", f"/api/v4/teams/name/{name}")

    async def channel_by_name(self, team: str, name: str) -> dict[str, Any]:
        return await self.request("channel lookup", "get",
                                  f"/api/v4/teams/name/{team}/channels/name/{name}")

    async def channel(self, channel_id: str) -> dict[str, Any]:
        return await self.request("channel lookup", "get", f"/api/v4/channels/{channel_id}")

    async def users_by_usernames(self, names: list[str]) -> list[dict[str, Any]]:
        return await self.request("user lookup", "post", "/api/v4/users/usernames",
                                  options=names)

    async def create_post(self, channel_id: str, message: str, *, root_id: str = "",
                          props: dict[str, Any] | None = None,
                          pending_post_id: str | None = None,
                          file_ids: list[str] | None = None) -> dict[str, Any]:
        """``POST posts``. ``pending_post_id`` makes a retried POST idempotent on the server
        (it deduplicates by that id for 30 s), so a timeout retry cannot post twice.
        ``file_ids``: files uploaded to the channel (``upload_file``), attached to the post."""
        body: dict[str, Any] = {"channel_id": channel_id, "message": message,
                                "pending_post_id": pending_post_id or self.pending_id()}
        if root_id:
            body["root_id"] = root_id
        if props:
            body["props"] = props
        if file_ids:
            body["file_ids"] = list(file_ids)
        return await self.request("post", "post", "/api/v4/posts", options=body)

    async def upload_file(self, channel_id: str, name: str, data: bytes,
                          mime: str) -> dict[str, Any]:
        """``POST files`` (multipart: ``channel_id`` and the file as ``files``): the server's
        ``FileUploadResponse`` (``file_infos[].id`` go into a post's ``file_ids``)."""
        response = await self.call("file upload", lambda: self.driver.client.make_request(
            "post", "/api/v4/files", data={"channel_id": channel_id},
            files={"files": (name, data, mime)}))
        return json_body(response, "file upload")

    async def create_ephemeral(self, user_id: str, channel_id: str, message: str, *,
                               root_id: str = "",
                               props: dict[str, Any] | None = None) -> dict[str, Any]:
        post: dict[str, Any] = {"channel_id": channel_id, "message": message}
        if root_id:
            post["root_id"] = root_id
        if props:
            post["props"] = props
        return await self.request("ephemeral post", "post", "/api/v4/posts/ephemeral",
                                  options={"user_id": user_id, "post": post})

    async def patch_post(self, post_id: str, *, message: str,
                         props: dict[str, Any] | None = None) -> dict[str, Any]:
        """``PUT posts/{id}/patch`` (a plain PUT without props would wipe the attachments)."""
        body: dict[str, Any] = {"message": message}
        if props is not None:
            body["props"] = props
        return await self.request("post update", "put", f"/api/v4/posts/{post_id}/patch",
                                  options=body)

    async def update_post(self, post_id: str, *, message: str,
                          props: dict[str, Any]) -> dict[str, Any]:
        """``PUT posts/{id}``: message *and* props replaced (buttons included)."""
        return await self.request("post update", "put", f"/api/v4/posts/{post_id}",
                                  options={"id": post_id, "message": message, "props": props})

    async def get_post(self, post_id: str) -> dict[str, Any]:
        return await self.request("post lookup", "get", f"/api/v4/posts/{post_id}")

    async def channel_posts(self, channel_id: str, *, page: int = 0,
                            per_page: int = 200) -> dict[str, Any]:
        """``GET channels/{id}/posts``: ``{"order": [ids, newest first], "posts": {id: post}}``."""
        return await self.request("channel posts", "get", f"/api/v4/channels/{channel_id}/posts",
                                  params={"page": page, "per_page": per_page})

    async def thread(self, post_id: str) -> dict[str, Any]:
        """``GET posts/{id}/thread``: the thread's root and replies (same shape as above)."""
        return await self.request("thread", "get", f"/api/v4/posts/{post_id}/thread")

    async def users_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        return await self.request("user lookup", "post", "/api/v4/users/ids", options=ids)

    async def post_to_hook(self, url: str, payload: dict[str, Any]) -> None:
        """POST a command response to a ``response_url``; raises for non-2xx answers."""
        async def send() -> None:
            response = await self.http.post(url, json=payload, timeout=self.timeout)
            if response.status_code == 429:
                retry = response.headers.get("Retry-After")
                raise RateLimited(float(retry) if retry and retry.isdigit() else None)
            if response.status_code >= 500:
                raise TransientError(f"response_url answered HTTP {response.status_code}")
            if response.status_code >= 300:
                raise HookRefused(response.status_code, response.text[:200])

        await self.call("response_url", send)

    async def list_commands(self, team_id: str) -> list[dict[str, Any]]:
        # custom_only=True: without it the server blanks the tokens.
        return await self.request("command list", "get", "/api/v4/commands",
                                  params={"team_id": team_id, "custom_only": "true"})

    async def create_command(self, command: dict[str, Any]) -> dict[str, Any]:
        # The driver's create_command() sends only four fields; post the whole command.
        return await self.request("command create", "post", "/api/v4/commands",
                                  options=command)

    async def update_command(self, command: dict[str, Any]) -> dict[str, Any]:
        return await self.request("command update", "put",
                                  f"/api/v4/commands/{command['id']}", options=command)

    def pending_id(self) -> str:
        """A client-side post id (``<user id>:<random>``, as the web app makes them)."""
        return f"{self.user_id}:{secrets.token_hex(8)}"


class HookRefused(Exception):
    """A ``response_url`` that is used up (400) or expired (404): post through the API."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"response_url answered HTTP {status}: {text}")
        self.status_code = status
