"""The Mattermost event socket, with a reconnect loop of our own.

mattermostautodriver's ``Websocket.connect`` reconnects after a fixed delay with no backoff on any
failure (a bad token forever, an exception in the handler), answers nothing but its own
unsolicited pongs and never notices a dead server. This module replaces it (aiohttp directly,
same URL and TLS choices) with:

* one attempt per connection: the upgrade carries ``Authorization: Bearer`` (so the server can
  resume the session) and the first frame is the ``authentication_challenge`` (for proxies that
  strip the header); ``hello`` or the answer to a ``ping`` action marks the socket ready;
* resume: a reconnect passes ``connection_id`` and ``sequence_number`` (the next expected
  ``seq``) and the server replays what was missed from its 128-event buffer;
* liveness: a WebSocket ping every ``ping_interval``; no frame and no pong for two intervals
  means the socket is dead: it is closed and replaced;
* exponential backoff with jitter between attempts (capped), reset once a connection has been
  up for one ping interval;
* events go to a synchronous callback that must not block (the adapter schedules tasks), so a
  failing command can never kill or recycle the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
CLOSE_TIMEOUT = 2.0  # closing a socket never takes longer than this


def seconds(value: float) -> str:
    """``4.0`` -> ``4.0``, ``0.0375`` -> ``0.04``: delays readable in logs."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": delay in [d/2, d], d doubling up to ``cap``."""

    base: float = 1.0
    cap: float = 60.0
    failures: int = 0
    rng: Callable[[], float] = random.random

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        return delay / 2 + self.rng() * delay / 2

    def reset(self) -> None:
        self.failures = 0


@dataclass
class SocketStats:
    attempts: int = 0
    connections: int = 0  # attempts that became ready
    reconnects: int = 0  # attempts after the first
    recycled: int = 0  # sockets closed by the liveness check
    events: int = 0
    missed: int = 0  # events the server could not replay (sequence gaps)
    last_close: str = ""


@dataclass
class EventSocket:
    """``await socket.run()`` until ``stop()``; ``working()`` says whether it is usable now."""

    url: str
    token: str
    on_event: EventHandler
    ping_interval: float = 15.0
    backoff: Backoff = field(default_factory=Backoff)
    verify_tls: bool = True
    on_ready: Callable[[EventSocket], None] | None = None
    on_reconnect: Callable[[], None] | None = None
    clock: Callable[[], float] = time.monotonic
    stats: SocketStats = field(default_factory=SocketStats)
    connection_id: str = ""
    next_seq: int = 0
    server_version: str = ""
    ready_since: float | None = None  # clock() when the current socket became ready
    last_heard: float = 0.0
    _stopping: bool = False
    _action_seq: int = 0
    _ws: aiohttp.ClientWebSocketResponse | None = None

    @property
    def close_timeout(self) -> float:
        """How long a close handshake may take (a dead server never answers it)."""
        return min(CLOSE_TIMEOUT, self.ping_interval)

    @property
    def dead_after(self) -> float:
        return 2 * self.ping_interval

    def working(self) -> bool:
        """Ready, open, and heard from within two ping intervals."""
        ws = self._ws
        return (ws is not None and not ws.closed and self.ready_since is not None
                and self.clock() - self.last_heard <= self.dead_after)

    def stop(self) -> None:
        """Ask the loop to end; cancel the task running :meth:`run` to end it now."""
        self._stopping = True

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff: until :meth:`stop` or cancellation."""
        connector = aiohttp.TCPConnector(ssl=self._ssl_context())
        async with aiohttp.ClientSession(connector=connector, trust_env=True) as session:
            while not self._stopping:
                if self.stats.attempts and self.on_reconnect is not None:
                    self.on_reconnect()
                reason = await self._attempt(session)
                self.stats.last_close = reason
                if self._stopping:
                    break
                delay = self.backoff.next_delay()
                log.warning("Mattermost socket %s; reconnecting in %s s", reason, seconds(delay))
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ one attempt

    async def _attempt(self, session: aiohttp.ClientSession) -> str:
        self.stats.attempts += 1
        if self.stats.attempts > 1:
            self.stats.reconnects += 1
        self.ready_since = None
        self._action_seq = 0
        params = ({"connection_id": self.connection_id, "sequence_number": str(self.next_seq)}
                  if self.connection_id else None)
        try:
            async with asyncio.timeout(max(self.dead_after, 5.0)):
                ws = await session.ws_connect(
                    self.url, headers={"Authorization": f"Bearer {self.token}"}, params=params,
                    autoping=False, heartbeat=None, max_msg_size=16 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.close_timeout))
        except asyncio.CancelledError:
            raise
        except aiohttp.WSServerHandshakeError as exc:
            return f"upgrade refused (HTTP {exc.status})"
        except Exception as exc:
            return f"connect failed ({type(exc).__name__}: {exc})" if str(exc) else \
                f"connect failed ({type(exc).__name__})"
        self._ws = ws
        self.last_heard = self.clock()
        reader = asyncio.create_task(self._read(ws), name="mattermost-socket-read")
        keeper = asyncio.create_task(self._keepalive(ws), name="mattermost-socket-keepalive")
        try:
            await self._send(ws, "authentication_challenge", {"token": self.token})
            await self._send(ws, "ping")  # answered once authenticated (even when resumed)
            done, _ = await asyncio.wait({reader, keeper}, return_when=asyncio.FIRST_COMPLETED)
            finished = next(iter(done))
            error = finished.exception()
            reason = (finished.result() if error is None
                      else self._closed_reason(f"1006, {type(error).__name__}"))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            reason = self._closed_reason(f"1006, {type(exc).__name__}")
        finally:
            for task in (reader, keeper):
                task.cancel()
            await asyncio.gather(reader, keeper, return_exceptions=True)
            self._ws = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self.close_timeout + 0.5)
        if self.ready_since is not None and self.clock() - self.ready_since >= self.ping_interval:
            self.backoff.reset()
        self.ready_since = None
        return reason

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, action: str,
                    data: dict[str, Any] | None = None) -> None:
        self._action_seq += 1
        frame: dict[str, Any] = {"seq": self._action_seq, "action": action}
        if data is not None:
            frame["data"] = data
        await ws.send_str(json.dumps(frame))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        while True:
            msg = await ws.receive()
            self.last_heard = self.clock()
            if msg.type is WSMsgType.TEXT:
                self._frame(msg.data)
                # Buffered frames would be read without yielding: let the command just
                # scheduled run first, so a burst is taken in at the pace it is handled and
                # never stalls the loop (bench: loop lag 13-18 ms instead of 170-270 ms, and
                # fewer commands alive at once).
                await asyncio.sleep(0)
            elif msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG or msg.type is WSMsgType.BINARY:
                continue
            elif msg.type is WSMsgType.CLOSE:
                return self._closed_reason(msg.data)
            else:  # CLOSING, CLOSED, ERROR: the transport went away
                return self._closed_reason(ws.close_code or 1006)

    def _closed_reason(self, code: Any) -> str:
        if self.ready_since is None:
            return f"closed before authentication ({code}; is the bot token valid?)"
        return f"lost ({code})"

    async def _keepalive(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        tick = self.ping_interval / 2
        last_ping = self.clock()
        opened = self.clock()
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            if self.ready_since is None and now - opened > max(self.dead_after, 5.0):
                return f"not authenticated within {now - opened:.1f} s"
            silent = now - self.last_heard
            if silent > self.dead_after:
                self.stats.recycled += 1
                return f"silent for {seconds(silent)} s (no event, no pong): recycling it"
            if now - last_ping >= self.ping_interval:
                last_ping = now
                try:
                    await ws.ping()
                except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
                    return f"ping failed ({type(exc).__name__})"

    # ------------------------------------------------------------------ frames

    def _frame(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            log.warning("Mattermost sent a frame that is not JSON: %.100r", text)
            return
        if not isinstance(frame, dict):
            return
        if "event" not in frame:  # a reply to one of our actions
            if frame.get("status") == "OK":
                self._ready()
            elif frame.get("status") == "FAIL":
                log.warning("Mattermost refused a socket action: %s",
                            (frame.get("error") or {}).get("message", frame))
            return
        seq = frame.get("seq")
        if isinstance(seq, int):
            if frame["event"] == "hello":
                data = frame.get("data") or {}
                if data.get("connection_id") != self.connection_id and self.connection_id:
                    log.info("Mattermost started a new socket session (events while "
                             "disconnected may be lost)")
                self.connection_id = str(data.get("connection_id") or "")
                self.server_version = str(data.get("server_version") or "")
                self.next_seq = seq + 1
                self._ready()
                return
            if seq > self.next_seq:
                self.stats.missed += seq - self.next_seq
                log.warning("Mattermost socket skipped %d event(s) (seq %d, expected %d)",
                            seq - self.next_seq, seq, self.next_seq)
            if seq >= self.next_seq:
                self.next_seq = seq + 1
        self._ready()
        self.stats.events += 1
        try:
            self.on_event(frame)
        except Exception:
            log.exception("handling a Mattermost %s event failed", frame.get("event"))

    def _ready(self) -> None:
        if self.ready_since is not None:
            return
        self.ready_since = self.clock()
        self.stats.connections += 1
        if self.on_ready is not None:
            try:
                self.on_ready(self)
            except Exception:
                log.exception("Mattermost socket ready callback failed")

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("wss://"):
            return True  # unused for ws://
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
