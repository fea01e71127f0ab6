"""Socket Mode liveness: is the WebSocket really working, and force a reconnect when not.

slack_sdk's aiohttp ``SocketModeClient`` already reconnects on ``disconnect`` envelopes, on a
closed session and when its pings go unanswered for 4 ping intervals. Field reports
(python-slack-sdk #1379, #1462, #1701) show sockets that are open but deaf, so this watchdog
judges the connection by what it *hears* (any frame, or a pong) and, when nothing was heard for
``3 x ping_interval``, forces a new connection itself. ``/healthz`` turns unhealthy after
``unhealthy_after`` seconds without a working connection.

While Slack is unreachable, slack_sdk logs every failed attempt at ERROR with a full traceback
(and Sentry makes each an event): :func:`socket_logger` gives the client a logger that turns
those into one WARNING line per attempt, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.health import ComponentState

log = logging.getLogger(__name__)

# What slack_sdk's Socket Mode client logs at ERROR when a (re)connection attempt fails.
_CONNECT_FAILED = "Failed to connect"
_URL_FAILED = "Failed to retrieve WSS URL"  # followed by one of the others: dropped
_RECONNECT_FAILED = ("Failed to check the current session", "Failed to close the old session")
# The reader of a socket that went away retries every ping interval until it is replaced.
_READ_FAILED = re.compile(r"Failed to receive or enqueue a message: \w*(Connection|Disconnect)")


_AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive"})


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        return f"Slack answered {error or exc.response.status_code}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class QuietReconnects(logging.Filter):
    """slack_sdk's failed-connection lines -> one WARNING with the reason, no traceback."""

    def __init__(self, retry_in: float) -> None:
        super().__init__()
        self.retry_in = retry_in
        self.auth_reported = False  # a refused app token is an ERROR once, then warnings

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not isinstance(record.msg, str):
            return True
        if record.msg.startswith(_URL_FAILED):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if record.msg.startswith(_CONNECT_FAILED) and exc is not None:
            message, args = "Slack Socket Mode connection failed (%s); retrying in %.1f s", (
                _reason(exc), self.retry_in)
        elif record.msg.startswith(_RECONNECT_FAILED) or _READ_FAILED.match(record.msg):
            message, args = "Slack Socket Mode connection trouble: %s", (
                " ".join(record.getMessage().split())[:300],)
        else:
            return True  # anything else (a failing listener, ...) stays an error
        level = logging.WARNING
        if (isinstance(exc, SlackApiError) and not self.auth_reported
                and _reason(exc).removeprefix("Slack answered ") in _AUTH_ERRORS):
            level, self.auth_reported = logging.ERROR, True  # check slack.app_token
        record.msg, record.args = message, args
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info, record.exc_text = None, None
        return True


def socket_logger(retry_in: float) -> logging.Logger:
    """The logger for the ``SocketModeClient`` (which retries every ``ping_interval``)."""
    logger = logging.getLogger(f"{__name__}.sdk")
    for old in [f for f in logger.filters if isinstance(f, QuietReconnects)]:
        logger.removeFilter(old)  # one adapter per process: the latest one's interval
    logger.addFilter(QuietReconnects(retry_in))
    return logger


class SocketWatchdog:
    """Watches a slack_sdk aiohttp ``SocketModeClient`` (``handler.client``)."""

    def __init__(self, client: Any, *, ping_interval: float, unhealthy_after: float,
                 clock: Callable[[], float] = time.monotonic,
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self.client = client
        self.ping_interval = ping_interval
        self.unhealthy_after = unhealthy_after
        self.dead_after = 3 * ping_interval
        self.clock = clock
        self.started = clock()
        self.last_ok: float | None = None  # monotonic time the connection was last working
        self.last_heard = 0.0  # wall time of the last frame from Slack
        self.forced_reconnects = 0
        self.reconnects = 0  # sessions seen after the first (slack_sdk's or forced)
        self.on_reconnect = on_reconnect
        self.stopped = False
        self._session: Any = None
        self._session_since = clock()
        self._bad_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        client.on_message_listeners.append(self._heard)

    async def _heard(self, _message: Any) -> None:
        self.last_heard = time.time()

    def working(self) -> bool:
        """True when the current session is open and Slack was heard from recently."""
        client = self.client
        session = client.current_session
        if client.closed or session is None or session.closed or client.stale:
            return False
        if session is not self._session:
            if self._session is not None:
                self._reconnected()
            self._session, self._session_since = session, self.clock()
        heard = max(self.last_heard, client.last_ping_pong_time or 0.0)
        if heard and time.time() - heard < self.dead_after:
            return True
        # a brand-new session that has not spoken yet gets the same grace
        return self.clock() - self._session_since < self.dead_after and heard == 0.0

    def _reconnected(self) -> None:
        self.reconnects += 1
        if self.on_reconnect is not None:
            self.on_reconnect()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="slack-socket-watchdog")

    async def stop(self) -> None:
        self.stopped = True
        for task in (self._task, self._reconnect):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def state(self) -> ComponentState:
        """Health: working now, or broken for less than ``unhealthy_after`` seconds."""
        if self.stopped:
            return ComponentState(False, "socket mode stopped")
        now = self.clock()
        if self.working():
            self.last_ok = now
            return ComponentState(True, "socket mode connected")
        since = self.last_ok if self.last_ok is not None else self.started
        down = now - since
        what = "reconnecting" if self.last_ok is not None else "connecting"
        if down < self.unhealthy_after:
            return ComponentState(True, f"socket mode {what} ({down:.0f} s)")
        return ComponentState(False, f"no working Socket Mode connection for {down:.0f} s")

    async def probe(self) -> ComponentState:
        return self.state()

    async def _run(self) -> None:
        period = max(0.05, self.ping_interval / 2)
        while not self.stopped:
            await asyncio.sleep(period)
            try:
                self._check()
            except Exception:
                log.exception("Socket Mode watchdog check failed")

    def _check(self) -> None:
        now = self.clock()
        if self.working():
            self.last_ok = now
            self._bad_since = None
            return
        if self._bad_since is None:
            self._bad_since = now
            return
        busy = self._reconnect is not None and not self._reconnect.done()
        if (now - self._bad_since >= self.dead_after and not busy and not self.client.closed
                and not self._sdk_connecting()):
            log.warning("Slack socket silent or closed for %.1f s; forcing a reconnect",
                        now - self._bad_since)
            self.forced_reconnects += 1
            self._bad_since = now  # give the new connection a full window
            self._reconnect = asyncio.create_task(self._force(), name="slack-socket-reconnect")

    def _sdk_connecting(self) -> bool:
        """slack_sdk is connecting on its own (its first connection, or a reconnect under its
        lock): forcing now would run a second retry loop beside it, logging twice as much."""
        lock = getattr(self.client, "connect_operation_lock", None)
        return self.client.current_session is None or (lock is not None and lock.locked())

    async def _force(self) -> None:
        try:
            await self.client.connect_to_new_endpoint(force=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("forced Slack reconnect failed: %s (will retry)", exc)
