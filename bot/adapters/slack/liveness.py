"""Socket Mode liveness: is the WebSocket really working, and force a reconnect when not.

slack_sdk's aiohttp ``SocketModeClient`` already reconnects on ``disconnect`` envelopes, on a
closed session and when its pings go unanswered for 4 ping intervals. Field reports
(python-slack-sdk #1379, #1462, #1701) show sockets that are open but deaf, so this watchdog
judges the connection by what it *hears* (any frame, or a pong) and, when nothing was heard for
``3 x ping_interval``, forces a new connection itself. ``/healthz`` turns unhealthy after
``unhealthy_after`` seconds without a working connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.health import ComponentState

log = logging.getLogger(__name__)


class SocketWatchdog:
    """Watches a slack_sdk aiohttp ``SocketModeClient`` (``handler.client``)."""

    def __init__(self, client: Any, *, ping_interval: float, unhealthy_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ping_interval = ping_interval
        self.unhealthy_after = unhealthy_after
        self.dead_after = 3 * ping_interval
        self.clock = clock
        self.started = clock()
        self.last_ok: float | None = None  # monotonic time the connection was last working
        self.last_heard = 0.0  # wall time of the last frame from Slack
        self.forced_reconnects = 0
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
            self._session, self._session_since = session, self.clock()
        heard = max(self.last_heard, client.last_ping_pong_time or 0.0)
        if heard and time.time() - heard < self.dead_after:
            return True
        # a brand-new session that has not spoken yet gets the same grace
        return self.clock() - self._session_since < self.dead_after and heard == 0.0

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
        if now - self._bad_since >= self.dead_after and not busy and not self.client.closed:
            log.warning("Slack socket silent or closed for %.1f s; forcing a reconnect",
                        now - self._bad_since)
            self.forced_reconnects += 1
            self._bad_since = now  # give the new connection a full window
            self._reconnect = asyncio.create_task(self._force(), name="slack-socket-reconnect")

    async def _force(self) -> None:
        try:
            await self.client.connect_to_new_endpoint(force=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("forced Slack reconnect failed: %s (will retry)", exc)
