"""The Slack adapter: slack-bolt ``AsyncApp`` in Socket Mode or HTTP mode.

Inbound: slash commands (``/shiftbot`` and alias commands such as ``/condor``), app mentions,
direct messages and button clicks become :class:`~bot.identity.Inbound` lines for
:meth:`Bot.handle` / :meth:`Bot.decide`; the adapter knows nothing about handlers.

Acks: bolt runs with ``process_before_response=True`` (the listener runs inline, no 10 ms ack
polling) and every listener returns within Slack's 3 s: a fast command is answered in the ack
when it finishes within ``ack_budget_seconds``; a ``slow`` command (or one that overruns the
budget) is acked with "working on it" and answered later through ``response_url``; events and
clicks are acked at once and handled in a task.

Outbound: every post (``chat.postMessage`` / ``postEphemeral`` / ``update`` and
``response_url``) goes through one :class:`~bot.adapters.slack.outbound.Outbox` (per-channel
queue, 429 ``Retry-After`` honoured, 5xx retried, order kept).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
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

from bot.adapters.clicks import ClickedMessages
from bot.adapters.slack import blocks
from bot.adapters.slack.channels import ChannelDirectory
from bot.adapters.slack.inbound import clean_text
from bot.adapters.slack.liveness import SocketWatchdog, socket_logger
from bot.adapters.slack.outbound import RESPONSE_URL, Outbox, Post, Responder
from bot.adapters.slack.verify import SlackSignature
from bot.commands import CommandSpec
from bot.config import SlackConfig, secret_value
from bot.core import Bot, DecisionNotice, Outcome, OutcomeStatus
from bot.dedupe import RecentKeys
from bot.health import ComponentState
from bot.identity import Inbound
from bot.reply import Level, Reply, Visibility
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

ACTION_IDS = re.compile(r"^shiftbot\.(confirm|cancel|approve|deny)$")
PROGRESS_INTERVAL = 10.0  # at most one progress message per this many seconds
STARTUP_WAIT = 10.0  # start() waits this long for the first socket connection, then goes on
SHUTDOWN_WAIT = 5.0


@dataclass(slots=True)
class Where:
    """Where a command came from, hence where its answers go."""

    channel_id: str
    user_id: str
    thread_ts: str | None = None  # parent ts of the thread the command was typed in
    message_ts: str | None = None  # the (non-ephemeral) message a new thread would start on
    responder: Responder | None = None  # slash commands and clicks
    is_direct: bool = False

    @property
    def queue(self) -> str:
        """The sender queue: per channel (a DM without id queues per user)."""
        return self.channel_id or f"user:{self.user_id}"


def route(reply: Reply, where: Where) -> Post:
    """The post that shows ``reply`` where its visibility says, from ``where``."""
    message = blocks.message(reply)
    thread = {"thread_ts": where.thread_ts} if where.thread_ts else {}
    if reply.visibility == Visibility.EPHEMERAL:
        if where.is_direct:
            api = Post("chat.postMessage", {"channel": where.channel_id or where.user_id,
                                            **thread, **message})
        else:
            api = Post("chat.postEphemeral", {"channel": where.channel_id,
                                              "user": where.user_id, **thread, **message})
        if where.responder is not None:
            return Post(RESPONSE_URL, {"response_type": "ephemeral",
                                       "replace_original": False, **message},
                        where.responder, fallback=api)
        return api
    parent = where.thread_ts or (where.message_ts if reply.visibility == Visibility.THREAD
                                 else None)
    if parent:
        return Post("chat.postMessage", {"channel": where.channel_id, "thread_ts": parent,
                                         **message})
    api = Post("chat.postMessage", {"channel": where.channel_id or where.user_id, **message})
    if where.responder is not None:
        via_url = Post(RESPONSE_URL, {"response_type": "in_channel",
                                      "replace_original": False, **message}, where.responder)
        if reply.actions:
            # A request card: posted with the Web API, its ts lets a decision made anywhere
            # (typed approve, another platform, expiry) update it; response_url only when the
            # bot is not in the channel.
            return Post(api.method, api.args, fallback=via_url)
        # response_url works in channels the bot is not a member of
        via_url.fallback = api
        return via_url
    return api


class _Progress:
    """``ctx.progress()`` for one command: throttled ephemeral notes, only after the ack."""

    def __init__(self, adapter: SlackAdapter, where: Where) -> None:
        self.adapter = adapter
        self.where = where
        self.acked = False
        self.last: float | None = None

    async def __call__(self, text: str) -> None:
        if not self.acked:
            return  # still inside the ack budget: the answer itself will follow
        now = time.monotonic()
        if self.last is not None and now - self.last < PROGRESS_INTERVAL:
            return
        responder = self.where.responder
        if responder is not None and responder.left() <= 2:
            return  # keep the response_url's last uses for the result
        self.last = now
        self.adapter.post_nowait(Reply(text=f"_{text}_"), self.where)


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
        # Slack retries deliveries it thinks were not acknowledged: run each once.
        self.seen = RecentKeys(ttl=600, max_items=10_000)
        self.identity: dict[str, Any] | None = None  # auth.test answer
        self.auth_error: str | None = None
        self.handler: Any = None  # AsyncSocketModeHandler in socket mode
        self.watchdog: SocketWatchdog | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks = BackgroundTasks("Slack adapter")
        self._identity_task: asyncio.Task[Any] | None = None
        self.clicked = ClickedMessages()  # messages a click updates itself
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
        self._session = aiohttp.ClientSession(trust_env=True)
        self.api.session = self._session
        self.poster.session = self._session
        self.outbox.session = self._session
        self._identity_task = self._spawn(self._fetch_identity())
        self.channels.start()  # aliases by name -> ids, in the background
        if not self._listening:
            self.bot.add_decision_listener(self._on_decision)
            self._listening = True
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
                unhealthy_after=self.config.unhealthy_after_seconds)
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
        self._stopped = True
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
        async def on_command(ack: Any, body: dict[str, Any]) -> None:
            await self._on_command(ack, body)

        async def on_event(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
            self._on_event(body, event, context.bot_user_id)

        async def on_action(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            key = body.get("trigger_id") or (body.get("actions") or [{}])[0].get("action_ts")
            if self.seen.first_time(key and f"action:{key}"):
                self._spawn(self._on_action(body))

        for command in self.config.commands:
            self.app.command(command)(on_command)
        self.app.event("app_mention")(on_event)
        self.app.event("message")(on_event)
        self.app.action(ACTION_IDS)(on_action)

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        trigger = body.get("trigger_id")
        if not self.seen.first_time(trigger and f"command:{trigger}"):
            await ack()  # a repeated delivery: the first one is being answered
            return
        inbound = await self._command_inbound(body)
        url = body.get("response_url")
        where = Where(inbound.channel_id or "", inbound.user_id,
                      responder=Responder(url) if url else None, is_direct=inbound.is_direct)
        progress = _Progress(self, where)
        spec = self.bot.lookup(inbound.text)
        if spec is not None and spec.slow:
            progress.acked = True
            await ack(self._working(spec))
            self._spawn(self._answer_later(self.bot.handle(inbound, progress=progress), where))
            return
        task = loop.create_task(self.bot.handle(inbound, progress=progress))
        budget = self.config.ack_budget_seconds - (loop.time() - started)
        await _done_or_timeout(task, max(0.01, budget))
        if task.done():
            reply = task.result().reply
            if reply.actions and reply.visibility != Visibility.EPHEMERAL:
                await ack()  # a request card is posted instead, so that it can be updated
                self._spawn(self._deliver(reply, where))
                return
            await ack(self._ack_body(reply))
            return
        progress.acked = True
        await ack(self._working(spec))
        self._tasks.adopt(task)
        self._spawn(self._answer_later(task, where))

    async def _command_inbound(self, body: dict[str, Any]) -> Inbound:
        family = self.config.commands.get(str(body.get("command") or ""))
        text = clean_text(str(body.get("text") or ""))
        if family:
            text = f"{family} {text}".strip()
        channel_id = str(body.get("channel_id") or "")
        channel_name = body.get("channel_name")
        is_direct = channel_name == "directmessage" or channel_id.startswith("D")
        alias = await self.channels.alias_for(channel_id)  # by id: never the request's name
        return Inbound(platform="slack", user_id=str(body.get("user_id") or ""),
                       text=text or "help", channel_id=channel_id or None, channel_alias=alias,
                       user_name=body.get("user_name"), is_direct=is_direct)

    def _on_event(self, body: dict[str, Any], event: dict[str, Any],
                  bot_user_id: str | None) -> None:
        if event.get("type") == "message" and event.get("channel_type") != "im":
            return  # channel messages arrive as app_mention when they concern us
        if event.get("subtype") or event.get("bot_id"):
            return  # edits, joins, bot posts (our own included)
        user = event.get("user")
        if not user or user == bot_user_id:
            return
        key = body.get("event_id") or event.get("ts")
        if not self.seen.first_time(key and f"event:{key}"):
            log.info("ignoring a retried Slack event %s", body.get("event_id"))
            return
        self._spawn(self._on_message(event, bot_user_id))

    async def _on_message(self, event: dict[str, Any], bot_user_id: str | None) -> None:
        channel = str(event.get("channel") or "")
        is_direct = event.get("channel_type") == "im" or channel.startswith("D")
        thread = event.get("thread_ts")
        inbound = Inbound(
            platform="slack", user_id=str(event["user"]),
            text=clean_text(str(event.get("text") or ""), bot_user_id) or "help",
            channel_id=channel or None,
            channel_alias=None if is_direct else await self.channels.alias_for(channel),
            thread_id=thread, is_direct=is_direct)
        where = Where(channel, inbound.user_id, thread_ts=thread, message_ts=event.get("ts"),
                      is_direct=is_direct)
        progress = _Progress(self, where)
        progress.acked = True
        spec = self.bot.lookup(inbound.text)
        if spec is not None and spec.slow:
            self.post_nowait(Reply(**self._working_reply(spec)), where)
        await self._answer_later(self.bot.handle(inbound, progress=progress), where)

    async def _on_action(self, body: dict[str, Any]) -> None:
        action = (body.get("actions") or [{}])[0]
        parsed = blocks.parse_action(action)
        if parsed is None:
            log.warning("ignoring an unknown Slack button %r", action.get("action_id"))
            return
        choice, request_id = parsed
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        user = body.get("user") or {}
        ephemeral = bool(container.get("is_ephemeral"))
        message_ts = container.get("message_ts")
        thread = container.get("thread_ts")
        url = body.get("response_url")
        where = Where(channel, str(user.get("id") or ""), thread_ts=thread,
                      message_ts=None if ephemeral else message_ts,
                      responder=Responder(url) if url else None,
                      is_direct=channel.startswith("D"))
        inbound = Inbound(platform="slack", user_id=where.user_id, text="",
                          channel_id=channel or None,
                          channel_alias=await self.channels.alias_for(channel),
                          user_name=user.get("username") or user.get("name"), thread_id=thread,
                          is_direct=where.is_direct)
        progress = _Progress(self, where)
        progress.acked = True
        original = None if ephemeral else message_ts
        mark = self.clicked.begin(original) if original else None
        updated = False
        try:
            outcome = await self.bot.decide(inbound, request_id, choice, progress=progress)
            updated = outcome.update is not None or outcome.status == OutcomeStatus.PENDING
        finally:
            if mark is not None and original:
                self.clicked.end(original, mark, updated)
        if outcome.update is not None:
            await self._replace(outcome.update, where, original)
            if outcome.reply is not outcome.update:
                await self._deliver(outcome.reply, where)
        elif outcome.status == OutcomeStatus.PENDING:  # confirmed; now an approval is needed
            note = Reply(text=f"Confirmed by <@{where.user_id}>; request {outcome.request_id} "
                              "now waits for approval.", level=Level.INFO)
            await self._replace(note, where, original)
            await self._deliver(outcome.reply, where)
        else:  # refused, expired, already decided: only the clicker sees why
            await self._deliver(outcome.reply.with_visibility(Visibility.EPHEMERAL), where)

    # ------------------------------------------------------------------ running commands

    async def _answer_later(self, outcome: Awaitable[Outcome], where: Where) -> None:
        await self._deliver((await outcome).reply, where)

    @staticmethod
    def _working_reply(spec: CommandSpec | None) -> dict[str, Any]:
        what = f"`{spec.words}`" if spec is not None else "that"
        return {"text": f"Working on {what}; the answer follows here.",
                "visibility": Visibility.EPHEMERAL}

    def _working(self, spec: CommandSpec | None) -> dict[str, Any]:
        return self._ack_body(Reply(**self._working_reply(spec)))

    @staticmethod
    def _ack_body(reply: Reply) -> dict[str, Any]:
        response_type = "ephemeral" if reply.visibility == Visibility.EPHEMERAL else "in_channel"
        return {"response_type": response_type, **blocks.message(reply)}

    # ------------------------------------------------------------------ outbound

    async def _deliver(self, reply: Reply, where: Where) -> None:
        try:
            answer = await self.outbox.send(where.queue, route(reply, where))
        except Exception as exc:
            log.error("could not deliver a Slack reply to %s: %s", where.queue, exc)
            return
        await self._remember(reply, answer, where.channel_id)

    async def _remember(self, reply: Reply, answer: Any, channel_id: str) -> None:
        """A posted message showing a request's buttons is updated when the request is decided
        anywhere (see :meth:`_on_decision`). Only chat.postMessage answers carry a ``ts`` we can
        update: response_url and ephemeral posts do not."""
        if not isinstance(answer, dict) or not answer.get("ts"):
            return
        await self.bot.remember_request_message(
            reply, "slack", str(answer.get("channel") or channel_id), str(answer["ts"]))

    async def _on_decision(self, notice: DecisionNotice) -> None:
        """A request was decided (a button, a typed ``approve ID``, expiry): its messages lose
        their buttons and say what happened. A message whose button was clicked is left to the
        click's own update."""
        if self._stopped:
            return
        message = blocks.message(notice.update, with_actions=False)
        for ref in notice.messages:
            if ref.platform != "slack" or await self.clicked.updated_by_click(ref.message_id):
                continue
            post = Post("chat.update", {"channel": ref.channel_id, "ts": ref.message_id,
                                        **message})
            try:
                await self.outbox.send(ref.channel_id, post)
            except Exception as exc:
                log.warning("could not update the Slack message of request %s: %s",
                            notice.request_id, exc)

    def post_nowait(self, reply: Reply, where: Where) -> None:
        """Queue ``reply`` (progress notes): failures are logged, never raised."""
        future = self.outbox.send_nowait(where.queue, route(reply, where))
        future.add_done_callback(_log_failure)

    async def _replace(self, reply: Reply, where: Where, original_ts: str | None) -> None:
        """Show ``reply`` instead of the message whose button was clicked."""
        message = blocks.message(reply, with_actions=False)
        fallback = (Post("chat.update", {"channel": where.channel_id, "ts": original_ts,
                                         **message}) if original_ts else None)
        if where.responder is None:
            if fallback is None:
                return
            post = fallback
        else:
            body = {"replace_original": True, **message}
            if original_ts:
                body["response_type"] = "in_channel"
            post = Post(RESPONSE_URL, body, where.responder, fallback=fallback)
        try:
            await self.outbox.send(where.queue, post)
        except Exception as exc:
            log.error("could not update the Slack request message: %s", exc)

    async def post(self, channel: str, message: Reply | str, *,
                   thread_ts: str | None = None) -> str | None:
        """Post to a channel alias (``alerts``), ``#name`` or id; returns the message ts.

        For other sections (alerts, digests). Goes through the same per-channel sender.
        """
        channel_id = await self.channels.resolve(channel)
        reply = message if isinstance(message, Reply) else Reply(text=message)
        args = {"channel": channel_id, **blocks.message(reply)}
        if thread_ts:
            args["thread_ts"] = thread_ts
        answer = await self.outbox.send(channel_id, Post("chat.postMessage", args))
        await self._remember(reply, answer, channel_id)
        return answer.get("ts") if isinstance(answer, dict) else None


async def _done_or_timeout(task: asyncio.Task[Any], timeout: float) -> None:
    """Wait until ``task`` is done or ``timeout`` passed (the task is never cancelled).

    A cheaper ``asyncio.wait({task}, timeout=...)``: it runs on every slash command.
    """
    if task.done():
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a Slack progress note was not delivered: %s", future.exception())
