"""The Slack adapter: slack-bolt ``AsyncApp`` in Socket Mode or HTTP mode.

Inbound (``listeners.py``): slash commands (``/shiftbot`` and alias commands such as
``/condor``), app mentions, direct messages, human replies in threads and button clicks become
:class:`~bot.identity.Inbound` lines for :meth:`Bot.handle` / :meth:`Bot.decide` /
:meth:`Bot.click` / ``Bot.thread_reply``, each claimed in the database first so that two bot
processes run a delivery once; the adapter knows nothing about handlers.

Acks: bolt runs with ``process_before_response=True`` (the listener runs inline, no 10 ms ack
polling) and every listener returns within Slack's 3 s: a fast command is answered in the ack
when it finishes within ``ack_budget_seconds``; a ``slow`` command (or one that overruns the
budget) is acked with "working on it" and answered later through ``response_url``; events and
clicks are acked at once and handled in a task.

Outbound: every post (``chat.postMessage`` / ``postEphemeral`` / ``update`` and
``response_url``) goes through one :class:`~bot.adapters.slack.outbound.Outbox` (per-channel
queue, 429 ``Retry-After`` honoured, 5xx retried, order kept): answers to commands
(``answers.py``) and the platform port the notice deliverer uses (``platform.py``,
registered as ``bot.platforms["slack"]``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.answers import Answers
from bot.adapters.slack.blocks import LINK_PREFIX, RUN_PREFIX
from bot.adapters.slack.channels import ChannelDirectory
from bot.adapters.slack.listeners import Listeners
from bot.adapters.slack.liveness import SocketWatchdog, socket_logger
from bot.adapters.slack.outbound import Outbox
from bot.adapters.slack.platform import SlackPlatform
from bot.adapters.slack.routing import Where, route
from bot.adapters.slack.verify import SlackSignature
from bot.config import SlackConfig, secret_value
from bot.core import Bot
from bot.health import ComponentState
from bot.messaging.port import TransientError
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

# Decision buttons (shiftbot.confirm ...), command buttons (shiftbot.run.<id>) and link buttons
# (shiftbot.link.<n>: only acknowledged, or Slack marks the click as failed)
ACTION_IDS = re.compile(r"^shiftbot\.(confirm|cancel|approve|deny)$|^" + re.escape(RUN_PREFIX)
                        + "|^" + re.escape(LINK_PREFIX))
STARTUP_WAIT = 10.0  # start() waits this long for the first socket connection, then goes on
SHUTDOWN_WAIT = 5.0

__all__ = ["SlackAdapter", "Where", "route"]


class SlackAdapter:
    """``SlackAdapter(bot, config.slack)``; ``await start()`` / ``await stop()``."""

    name = "slack"

    def __init__(self, bot: Bot, config: SlackConfig) -> None:
        self.bot = bot
        self.config = config
        token = config.bot_token.get_secret_value()
        timeout = max(1, round(config.request_timeout_seconds))
        # Lookups (and bolt's own auth.test) retry 429s inside slack_sdk; posts do not: the
        # outbox retries them from the head of the channel queue so order is kept.
        self.api = AsyncWebClient(
            token=token, base_url=config.api_url, timeout=timeout, logger=log,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1),
                            AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        self.poster = AsyncWebClient(token=token, base_url=config.api_url, timeout=timeout,
                                     logger=log, retry_handlers=[])
        self.outbox = Outbox(self.poster, None, config.request_timeout_seconds)
        self.channels = ChannelDirectory(self.api, config.channels,
                                         ttl=config.channel_cache_seconds, health=bot.health)
        self.identity: dict[str, Any] | None = None  # auth.test answer
        self.auth_error: str | None = None
        self.handler: Any = None  # AsyncSocketModeHandler in socket mode
        self.watchdog: SocketWatchdog | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks = BackgroundTasks("Slack adapter")
        self._identity_task: asyncio.Task[Any] | None = None
        self.answers = Answers(bot, self.outbox)
        self.clicked = self.answers.clicked  # messages a click updates itself
        self.listeners = Listeners(bot, config, self.channels, self.answers, self._spawn,
                                   self._tasks.adopt)
        self.platform = SlackPlatform(bot, self.outbox, self.channels, self.whoami)
        self._listening = False
        self._started_at = time.monotonic()
        self._stopped = False
        self.app = AsyncApp(
            name="shiftbot",
            logger=logging.getLogger("bot.adapters.slack.bolt"),
            process_before_response=True,
            signing_secret=secret_value(config.signing_secret) or "",
            client=self.api,
            request_verification_enabled=config.mode == "http",
        )
        self._register_listeners()
        if config.mode == "http":
            if not secret_value(config.signing_secret):
                # bolt would check signatures against an empty secret: refuse to start
                raise RuntimeError("Slack http mode needs slack.signing_secret")
            self.signature = SlackSignature(secret_value(config.signing_secret) or "")
            if bot.http is None:
                raise RuntimeError("Slack http mode needs the bot's HTTP server (attach_http)")
            bot.http.add_route("POST", config.events_path, self.handle_http)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the HTTP session, connect Socket Mode (http mode: nothing to connect)."""
        self._started_at = time.monotonic()
        # slack_sdk applies its own timeout only to sessions it creates: a shared one needs
        # it, or a hanging Slack would hold a channel's queue for aiohttp's default 5 min.
        self._session = aiohttp.ClientSession(trust_env=True, timeout=aiohttp.ClientTimeout(
            total=self.config.request_timeout_seconds))
        self.api.session = self._session
        self.poster.session = self._session
        self.outbox.session = self._session
        self._identity_task = self._spawn(self._fetch_identity())
        self.channels.start()  # aliases by name -> ids, in the background
        if not self._listening:
            self.bot.add_decision_listener(self.answers.on_decision)
            self._listening = True
        self.bot.platforms[self.name] = self.platform
        if self.config.mode == "socket":
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            app_token = secret_value(self.config.app_token)
            if not app_token:
                raise RuntimeError("Slack socket mode needs slack.app_token (xapp-...)")
            interval = self.config.ping_interval_seconds  # also slack_sdk's retry delay
            self.handler = AsyncSocketModeHandler(
                self.app, app_token, web_client=self.api, logger=socket_logger(interval),
                ping_interval=interval)
            self.watchdog = SocketWatchdog(
                self.handler.client, ping_interval=self.config.ping_interval_seconds,
                unhealthy_after=self.config.unhealthy_after_seconds,
                on_reconnect=lambda: self.bot.metrics.count_reconnect(self.name))
            self.bot.health.register("slack", self.watchdog.probe)
            connect = self._spawn(self.handler.connect_async())
            await asyncio.wait({connect}, timeout=STARTUP_WAIT)
            if not connect.done():
                log.warning("no Slack Socket Mode connection after %.0f s; still trying",
                            STARTUP_WAIT)
            self.watchdog.start()
        else:
            self.bot.health.register("slack", self._http_probe)
        log.info("Slack adapter started (%s mode)", self.config.mode)

    async def stop(self) -> None:
        """Close the socket, let queued posts go out (briefly), release the HTTP session."""
        self._stopped = self.answers.stopped = True
        if self.bot.platforms.get(self.name) is self.platform:
            del self.bot.platforms[self.name]
        if self._identity_task is not None:
            self._identity_task.cancel()
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self.handler is not None:
            try:
                await asyncio.wait_for(self.handler.close_async(), SHUTDOWN_WAIT)
            except Exception as exc:
                log.warning("closing the Slack socket failed: %s", exc)
        await self._tasks.close(SHUTDOWN_WAIT)
        await self.channels.close()
        await self.outbox.close(SHUTDOWN_WAIT)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro)

    async def _fetch_identity(self) -> None:
        delay = 1.0
        while not self._stopped:
            try:
                answer = await self.api.auth_test()
            except SlackApiError as exc:
                self.auth_error = str(exc.response.get("error") if hasattr(exc.response, "get")
                                      else exc)
                log.error("Slack auth.test failed: %s (check slack.bot_token)", self.auth_error)
            except Exception as exc:
                log.warning("Slack auth.test failed: %s; retrying", exc)
            else:
                self.identity, self.auth_error = dict(answer.data), None  # type: ignore[arg-type]
                log.info("Slack: connected as %s (%s) in %s", answer.get("user"),
                         answer.get("user_id"), answer.get("team"))
                return
            await asyncio.sleep(delay)
            delay = min(60.0, delay * 2)

    async def whoami(self) -> dict[str, Any]:
        """auth.test's answer (the bot's user and bot ids); asked now if not known yet."""
        if self.identity is None:
            try:
                answer = await self.outbox.read("auth.test", {})
            except SlackApiError as exc:
                raise TransientError(f"auth.test: {exc.response.get('error')}") from None
            self.identity = answer
        return self.identity

    async def _http_probe(self) -> ComponentState:
        if self._stopped:
            return ComponentState(False, "stopped")
        if self.identity is not None:
            return ComponentState(True, "http mode, Web API reachable")
        if self.auth_error:
            return ComponentState(False, f"Slack rejected the bot token: {self.auth_error}")
        waited = time.monotonic() - self._started_at
        if waited < self.config.unhealthy_after_seconds:
            return ComponentState(True, f"http mode, checking the Web API ({waited:.0f} s)")
        return ComponentState(False, f"Slack Web API unreachable for {waited:.0f} s")

    # ------------------------------------------------------------------ HTTP mode

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """``POST /slack/events``: verified before it is parsed (``verify.py``), dispatched by
        bolt; refusals and failures are answered and logged by ``bot.http``'s guard."""
        response = await self.app.async_dispatch(await self.signature.bolt_request(request))
        if response.status == 401:  # bolt checks too (defence in depth)
            self.bot.metrics.auth_failures.labels(source="slack").inc()
        return await to_aiohttp_response(response)

    # ------------------------------------------------------------------ listeners

    def _register_listeners(self) -> None:
        # Closures, not bound methods: bolt injects arguments by parameter name.
        listeners = self.listeners

        async def on_command(ack: Any, body: dict[str, Any]) -> None:
            await listeners.on_command(ack, body)

        async def on_event(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
            listeners.on_event(body, event, context.bot_user_id)

        async def on_action(ack: Any, body: dict[str, Any]) -> None:
            await listeners.on_action(ack, body)

        for command in self.config.commands:
            self.app.command(command)(on_command)
        self.app.event("app_mention")(on_event)
        self.app.event("message")(on_event)
        self.app.action(ACTION_IDS)(on_action)
