"""Everything the Slack adapter sends goes through one :class:`~bot.sender.ChannelSender`.

A :class:`Post` is either a Web API call (``chat.postMessage``, ``chat.postEphemeral``,
``chat.update``) or a ``response_url`` POST with an optional Web API fallback for when the URL is
used up (5 uses) or expired (30 min); a Web API post may fall back to a ``response_url`` when
the bot is not in the channel. The post function maps Slack's answers onto the sender's
contract: HTTP 429 -> :class:`RateLimited` (``Retry-After``), 5xx / timeouts / dropped
connections -> :class:`TransientError`; ``ok: false`` errors are permanent.

A post marked ``once`` (the platform port's, :mod:`bot.adapters.slack.platform`) keeps its
place in the channel's queue but is not retried here: its caller (the notice deliverer) retries
from the database with its own clock, so the failure is handed back to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sender import ChannelSender, RateLimited, TransientError

log = logging.getLogger(__name__)

RESPONSE_URL = "response_url"
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60 - 60  # Slack's 30 minutes, with a minute of margin
# Web API errors after which a post's fallback (a response_url) may still get through
NOT_POSTABLE = frozenset({"not_in_channel", "channel_not_found"})


class ResponseUrlGone(Exception):
    """The response_url refused the post (used up, expired, unknown)."""


@dataclass
class Responder:
    """A slash command's or click's ``response_url`` and what is left of it."""

    url: str
    max_uses: int = RESPONSE_URL_USES
    ttl: float = RESPONSE_URL_TTL
    created: float = field(default_factory=time.monotonic)
    uses: int = 0
    gone: bool = False

    def left(self) -> int:
        """How many posts this URL still takes (0 when used up, expired or refused)."""
        if self.gone or time.monotonic() - self.created > self.ttl:
            return 0
        return max(0, self.max_uses - self.uses)


@dataclass
class Post:
    """One outbound message: a Web API call, or a response_url POST with a fallback."""

    method: str  # a Web API method, or RESPONSE_URL
    args: dict[str, Any]
    responder: Responder | None = None
    fallback: Post | None = None
    once: bool = False  # hand RateLimited / TransientError back instead of retrying


@dataclass(frozen=True)
class Unsent:
    """A ``once`` post that failed in a retryable way (returned through the sender, so that
    the sender neither retries it nor logs it as given up)."""

    error: RateLimited | TransientError


def retry_after(headers: Mapping[str, Any] | None, default: float = 1.0) -> float:
    """Seconds from a ``Retry-After`` header (case-insensitive), else ``default``."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value if isinstance(value, str | int | float)
                                      else value[0]))
            except (TypeError, ValueError, IndexError):
                return default
    return default


class Outbox:
    """The adapter's single outbound path: per-channel order, 429 and 5xx handled."""

    def __init__(self, client: AsyncWebClient, session: aiohttp.ClientSession | None = None,
                 timeout: float = 10.0) -> None:
        self.client = client
        self.session = session
        self.timeout = timeout
        self.sender: ChannelSender[Any] = ChannelSender(self._post)
        self._outstanding: set[asyncio.Future[Any]] = set()

    def send_nowait(self, channel: str, post: Post) -> asyncio.Future[Any]:
        """Queue ``post`` behind everything already queued for ``channel``."""
        future = self.sender.send_nowait(channel, post)
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        return future

    async def send(self, channel: str, post: Post) -> Any:
        """Queue ``post`` and wait until it is delivered (raises when it finally failed)."""
        return await self.send_nowait(channel, post)

    async def send_once(self, channel: str, post: Post) -> dict[str, Any]:
        """One attempt, in the channel's order: raises RateLimited / TransientError for the
        caller to retry, SlackApiError when Slack refused."""
        post.once = True
        answer = await self.send(channel, post)
        if isinstance(answer, Unsent):
            raise answer.error
        return answer if isinstance(answer, dict) else {}

    async def read(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A read method (``conversations.history``): form parameters, no queue, no retry;
        errors mapped like posts."""
        return await self._api(method, params, form=True)

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the workers."""
        # Not ChannelSender.flush(): it also waits for idle workers, which linger 60 s.
        if self._outstanding:
            _done, pending = await asyncio.wait(set(self._outstanding), timeout=timeout)
            if pending:
                log.warning("%d Slack posts still queued at shutdown; dropping them",
                            len(pending))
        await self.sender.close()

    async def _post(self, channel: str, post: Post) -> Any:
        try:
            return await self._post_with_fallback(post)
        except (RateLimited, TransientError) as exc:
            if post.once:
                return Unsent(exc)
            raise

    async def _post_with_fallback(self, post: Post) -> Any:
        while True:
            if post.method == RESPONSE_URL:
                responder = post.responder
                if responder is not None and responder.left() > 0:
                    try:
                        return await self._response_url(responder, post.args)
                    except ResponseUrlGone as exc:
                        responder.gone = True
                        log.info("response_url refused a post (%s); using the Web API", exc)
                if post.fallback is None:
                    raise ResponseUrlGone("response_url used up or expired and no fallback")
                post = post.fallback
                continue
            try:
                return await self._api(post.method, post.args)
            except SlackApiError as exc:
                error = exc.response.get("error") if hasattr(exc.response, "get") else None
                if post.fallback is None or error not in NOT_POSTABLE:
                    raise
                log.info("%s refused (%s); using the fallback", post.method, error)
                post = post.fallback

    async def _api(self, method: str, args: dict[str, Any], *,
                   form: bool = False) -> dict[str, Any]:
        try:
            if form:  # Slack's read methods take form fields, not JSON bodies
                response = await self.client.api_call(method, http_verb="GET", params=args)
            else:
                response = await self.client.api_call(method, json=args)
        except SlackApiError as exc:
            # A SlackResponse normally; the raw aiohttp response when the body was not JSON.
            status = int(getattr(exc.response, "status_code", None)
                         or getattr(exc.response, "status", 0) or 0)
            if status == 429:
                raise RateLimited(retry_after(getattr(exc.response, "headers", None))) from None
            if status >= 500:
                raise TransientError(f"{method}: HTTP {status}") from None
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{method}: {type(exc).__name__}: {exc}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _response_url(self, responder: Responder, body: dict[str, Any]) -> str:
        if self.session is None or self.session.closed:
            # honours HTTP(S)_PROXY *and* NO_PROXY (slack_sdk's own clients ignore NO_PROXY)
            self.session = aiohttp.ClientSession(trust_env=True)
        try:
            async with self.session.post(
                responder.url, json=body, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as response:
                text = await response.text()
                status = response.status
                headers = response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"response_url: {type(exc).__name__}: {exc}") from None
        if status == 200:
            responder.uses += 1
            return text
        if status == 429:
            raise RateLimited(retry_after(headers))
        if status >= 500:
            raise TransientError(f"response_url: HTTP {status} {text[:100]}")
        if status in (404, 410):
            raise ResponseUrlGone(f"HTTP {status} {text[:100]}")
        raise ValueError(f"response_url refused the message: HTTP {status} {text[:200]}")
