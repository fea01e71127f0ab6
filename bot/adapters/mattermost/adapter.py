"""The Mattermost adapter: websocket messages, slash commands, buttons, threads.

Inbound: ``posted`` events (prefixed messages, messages that start with a mention of the bot,
direct messages), custom slash commands (``POST /mattermost/command``, token checked) and button
clicks (``POST /mattermost/action``, signed context checked) become :class:`~bot.identity.Inbound`
lines for :meth:`Bot.handle` / :meth:`Bot.decide`. The adapter knows nothing about handlers.

Outbound: every message goes through one :class:`~bot.adapters.mattermost.outbound.Outbox`
(per-channel order, 429/5xx retried). Answers to a message go to its thread (``root_id`` = the
thread's first post); errors and denials are ephemeral. Buttons live on regular posts:
Mattermost cannot update an ephemeral post from a button's answer, so a confirmation prompt is
visible in the thread, and the decision gate lets only the requester decide it.

Resilience: see :mod:`bot.adapters.mattermost.websocket` (own reconnect loop, backoff, resume,
liveness) and ``docs/mattermost.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from bot.adapters.aliases import AliasTable
from bot.adapters.clicks import ClickedMessages
from bot.adapters.mattermost.actions import (
    ASK,
    ActionSigner,
    ButtonFactory,
    ExpiredContext,
    ForgedContext,
    SignedAction,
    derive_key,
)
from bot.adapters.mattermost.channels import resolve_aliases
from bot.adapters.mattermost.inbound import (
    command_in,
    is_direct_channel,
    is_mattermost_id,
    slash_text,
)
from bot.adapters.mattermost.outbound import (
    Outbox,
    Outgoing,
    Responder,
    Where,
    confirm_question,
    fit,
)
from bot.adapters.mattermost.rest import MattermostRest, describe, status_of, websocket_url
from bot.adapters.mattermost.routes import click_body, command_form
from bot.adapters.mattermost.websocket import Backoff, EventSocket
from bot.commands import CommandSpec
from bot.config import MattermostConfig, secret_value
from bot.core import Bot, DecisionNotice, Outcome, OutcomeStatus
from bot.dedupe import RecentKeys
from bot.health import ComponentState
from bot.http import Refused, clip
from bot.identity import Inbound
from bot.render import render_text
from bot.reply import Choice, Reply, Visibility
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

COMMAND_PATH = "/mattermost/command"
ACTION_PATH = "/mattermost/action"
PROGRESS_INTERVAL = 10.0  # at most one progress note per this many seconds
STARTUP_WAIT = 10.0  # start() waits this long for the first socket, then goes on
SHUTDOWN_WAIT = 5.0  # stop() lets running commands finish for this long


class _Progress:
    """``ctx.progress()`` for one command: throttled ephemeral notes, only once acknowledged."""

    def __init__(self, adapter: MattermostAdapter, where: Where, *, acked: bool) -> None:
        self.adapter = adapter
        self.where = where
        self.acked = acked
        self.last = 0.0

    def sent_now(self) -> None:
        self.last = time.monotonic()

    async def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not self.acked or now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        self.adapter.outbox.send_soon(Outgoing("ephemeral", self.where, fit(f"… {text}"),
                                               hook_reserve=2))


class MattermostAdapter:
    """Built as ``MattermostAdapter(bot, config.mattermost)`` before the HTTP server starts."""

    name = "mattermost"

    def __init__(self, bot: Bot, config: MattermostConfig, *, rest: MattermostRest | None = None,
                 startup_wait: float = STARTUP_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.config = config
        self.clock = clock
        self.startup_wait = startup_wait
        self.rest = rest or MattermostRest(config)
        self.outbox = Outbox(self.rest, base_delay=min(0.5, config.reconnect_min_seconds))
        token = secret_value(config.token) or ""
        key = (secret_value(config.action_secret) or "").encode() or derive_key(token)
        self.signer = ActionSigner(key)
        self.seen = RecentKeys(config.dedupe_seconds)
        self.socket = EventSocket(
            url=websocket_url(config.url), token=token, on_event=self._on_event,
            ping_interval=config.ping_interval_seconds,
            backoff=Backoff(config.reconnect_min_seconds, config.reconnect_max_seconds),
            verify_tls=config.verify_tls, on_ready=self._on_ready,
            on_reconnect=self._count_reconnect, clock=clock)
        self._command_tokens = [t.get_secret_value().encode() for t in config.command_tokens]
        # Grants match channel ids only: aliases by name are resolved in the team at startup.
        self.aliases = AliasTable("mattermost", config.channels, is_mattermost_id, bot.health)
        self.channel_ids = self.aliases.ids  # alias -> id (kept current), for posting
        self.team_id = ""
        self._tasks = BackgroundTasks("Mattermost adapter")
        self._run_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._started = clock()
        self._last_ok: float | None = None
        self._problem = "not started"
        self._stopping = False
        self._reconnects = _reconnect_counter(bot)
        self.clicked = ClickedMessages()  # posts a click updates itself
        self._listening = False
        if bot.http is not None:
            bot.http.add_route("POST", COMMAND_PATH, self._on_command)
            bot.http.add_route("GET", COMMAND_PATH, self._on_command)
            bot.http.add_route("POST", ACTION_PATH, self._on_action)
        else:
            log.warning("no HTTP server attached: Mattermost slash commands and buttons are off")
        bot.health.register("mattermost", self._probe)
        if not self._command_tokens:
            log.warning("mattermost.command_tokens is empty: every slash command will be "
                        "refused (run `shiftbot mattermost register-commands`)")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Log in, resolve people and channels, open the socket (in the background)."""
        self._started = self.clock()
        self._problem = "connecting"
        if self.bot.config.bot.http.public_url is None:
            log.warning("bot.http.public_url is not set: Mattermost buttons fall back to typed "
                        "'confirm ID' / 'approve ID' commands")
        if not self._listening:
            self.bot.add_decision_listener(self._on_decision)
            self._listening = True
        self._run_task = asyncio.create_task(self._run(), name="mattermost")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.startup_wait)
        if not self._ready.is_set():
            log.warning("Mattermost socket not connected after %.0f s (%s); continuing, it "
                        "keeps trying", self.startup_wait, self._problem)

    async def stop(self) -> None:
        """Close the socket, let running commands finish briefly, deliver what is queued."""
        self._stopping = True
        self.socket.stop()
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        await self._tasks.close(SHUTDOWN_WAIT)
        await self.outbox.close()
        await self.rest.close()
        self._problem = "stopped"

    async def _run(self) -> None:
        await self._login()
        await self._resolve()
        self._problem = "opening the socket"
        await self.socket.run()

    async def _login(self) -> None:
        backoff = Backoff(self.config.reconnect_min_seconds, self.config.reconnect_max_seconds)
        while True:
            try:
                me = await self.rest.login()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                refused = status_of(exc) == 401
                if refused:
                    self._problem = "the server refused the bot token (HTTP 401)"
                else:
                    self._problem = f"login failed ({describe(exc)})"
                # A refused token is a config error (ERROR, once); the server being away is
                # a WARNING per retry, never a Sentry event each time.
                level = logging.ERROR if refused and not backoff.failures else logging.WARNING
                delay = backoff.next_delay()
                log.log(level, "Mattermost %s; retrying in %.1f s", self._problem, delay)
                await asyncio.sleep(delay)
                continue
            log.info("Mattermost: logged in as @%s (%s)", me["username"], me["id"])
            return

    async def _resolve(self) -> None:
        """Team, channel aliases and people configured by username: once, at startup."""
        try:
            team = await self.rest.retrying("team lookup", lambda: self.rest.team(
                self.config.team))
            self.team_id = team["id"]
        except Exception as exc:
            log.warning("Mattermost team %r not found or not visible to the bot (%s)",
                        self.config.team, describe(exc))
        await resolve_aliases(self.rest, self.config.team, self.aliases)
        await self._resolve_people()

    async def _resolve_people(self) -> None:
        wanted = {key: person.mattermost_username.lstrip("@").lower()
                  for key, person in self.bot.config.people.items()
                  if person.mattermost_username and not person.mattermost}
        if not wanted:
            return
        try:
            users = await self.rest.retrying("user lookup", lambda: self.rest.users_by_usernames(
                sorted(set(wanted.values()))))
        except Exception as exc:
            log.warning("could not resolve Mattermost usernames %s (%s); those people cannot "
                        "use Mattermost until the next start", sorted(wanted.values()),
                        describe(exc))
            return
        ids = {str(u.get("username", "")).lower(): str(u.get("id", "")) for u in users}
        for key, username in wanted.items():
            user_id = ids.get(username)
            if user_id:
                self.bot.directory.bind(key, "mattermost", user_id)
                log.info("people.%s: Mattermost @%s is %s", key, username, user_id)
            else:
                log.warning("people.%s.mattermost_username: no Mattermost user @%s; %s cannot "
                            "use Mattermost until the config is fixed", key, username, key)

    def _on_ready(self, socket: EventSocket) -> None:
        self._ready.set()
        self._last_ok = self.clock()
        self._problem = "connected"
        log.info("Mattermost socket connected (connection %s, server %s)",
                 socket.connection_id or "resumed", socket.server_version or "?")

    def _count_reconnect(self) -> None:
        self._reconnects.inc()

    async def _probe(self) -> ComponentState:
        """Health: a working socket now, or broken for less than ``unhealthy_after``."""
        now = self.clock()
        if self.socket.working():
            self._last_ok = now
            return ComponentState(True, f"socket connected as @{self.rest.username}")
        if self._stopping:
            return ComponentState(False, "stopped")
        since = self._last_ok if self._last_ok is not None else self._started
        down = now - since
        problem = self.socket.stats.last_close or self._problem
        if down < self.config.unhealthy_after_seconds:
            return ComponentState(True, f"reconnecting for {down:.0f} s: {problem}")
        return ComponentState(False, f"no working socket for {down:.0f} s: {problem}")

    # ------------------------------------------------------------------ websocket events

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "posted":
            self._on_posted(event)

    def _on_posted(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        try:
            post = json.loads(data.get("post") or "")
        except (TypeError, ValueError):
            log.warning("a posted event without a readable post: %.200r", data)
            return
        if not isinstance(post, dict) or post.get("type"):
            return  # system messages (joins, header changes, ...)
        user_id = str(post.get("user_id") or "")
        props = post.get("props") or {}
        if not user_id or user_id == self.rest.user_id:
            return  # our own posts come back too
        if props.get("from_webhook") == "true" or props.get("from_bot") == "true":
            return  # command replies (shown as the user's posts) and other bots: no loops
        channel_id = str(post.get("channel_id") or "")
        channel_name = data.get("channel_name")
        direct = is_direct_channel(data.get("channel_type"), channel_name)
        found = command_in(str(post.get("message") or ""), prefix=self.config.command_prefix,
                           bot_username=self.rest.username, direct=direct)
        if found is None:
            return
        post_id = str(post.get("id") or "")
        if post_id and not self.seen.first_time(post_id):
            log.info("Mattermost post %s delivered again; not running it twice", post_id)
            return
        root = str(post.get("root_id") or "") or post_id
        where = Where(channel_id, user_id, root_id=root, is_direct=direct)
        inbound = Inbound(
            platform="mattermost", user_id=user_id, text=found.text, channel_id=channel_id,
            channel_alias=None if direct else self.alias_for(channel_id),
            user_name=str(data.get("sender_name") or "").lstrip("@") or None,
            thread_id=root or None, is_direct=direct)
        self._spawn(self._run_message(inbound, where), f"mattermost:{post_id}")

    async def _run_message(self, inbound: Inbound, where: Where) -> None:
        spec = self.bot.lookup(inbound.text)
        progress = _Progress(self, where, acked=True)
        if spec is not None and spec.slow:
            progress.sent_now()
            self.outbox.send_soon(Outgoing("ephemeral", where, self._working_text(spec)))
        outcome = await self.bot.handle(inbound, progress=progress)
        await self._deliver(outcome.reply, where, requester=inbound.user_id)

    # ------------------------------------------------------------------ slash commands

    async def _on_command(self, request: web.Request) -> web.StreamResponse:
        # Verified, then parsed (routes.py); refusals are answered by bot.http's guard.
        form = await command_form(request, self._command_tokens)
        user_id = str(form.get("user_id") or "")
        channel_id = str(form.get("channel_id") or "")
        if not user_id or not channel_id:
            return web.json_response({"response_type": "ephemeral",
                                      "text": "This request has no user or channel."},
                                     status=400)
        channel_name = str(form.get("channel_name") or "")
        direct = is_direct_channel(None, channel_name)
        text = slash_text(str(form.get("command") or ""), str(form.get("text") or ""),
                          self.config.commands)
        root = str(form.get("root_id") or "")
        url = str(form.get("response_url") or "")
        where = Where(channel_id, user_id, root_id=root, is_direct=direct,
                      responder=Responder(url) if url else None)
        inbound = Inbound(
            platform="mattermost", user_id=user_id, text=text, channel_id=channel_id,
            channel_alias=None if direct else self.alias_for(channel_id),
            user_name=str(form.get("user_name") or "") or None, thread_id=root or None,
            is_direct=direct)
        spec = self.bot.lookup(text)
        progress = _Progress(self, where, acked=False)
        task = self._spawn(self.bot.handle(inbound, progress=progress), "mattermost:command")
        if spec is None or not spec.slow:
            try:
                outcome = await asyncio.wait_for(asyncio.shield(task),
                                                 self.config.ack_budget_seconds)
            except TimeoutError:
                pass
            else:
                return web.json_response(self._command_body(outcome.reply, where, user_id))
        progress.acked = True
        progress.sent_now()
        self._spawn(self._answer_later(task, where, user_id), "mattermost:later")
        return web.json_response({"response_type": "ephemeral",
                                  "text": self._working_text(spec)})

    async def _answer_later(self, task: Awaitable[Outcome], where: Where, requester: str) -> None:
        outcome = await task
        await self._deliver(outcome.reply, where, requester=requester)

    def _command_body(self, reply: Reply, where: Where, requester: str) -> dict[str, Any]:
        message, props = self._compose(reply, where, requester)
        visible = props is not None or reply.visibility != Visibility.EPHEMERAL
        body: dict[str, Any] = {"response_type": "in_channel" if visible else "ephemeral",
                                "text": message}
        if props is not None:
            body["attachments"] = props["attachments"]
        return body

    # ------------------------------------------------------------------ buttons

    async def _on_action(self, request: web.Request) -> web.StreamResponse:
        body = await click_body(request)  # bounded JSON; refusals answered by bot.http
        try:
            signed = self.signer.verify(body.get("context"))
        except ExpiredContext:
            return web.json_response({"ephemeral_text": "These buttons have expired; run the "
                                                        "command again."})
        except ForgedContext as exc:
            raise Refused(401, "Mattermost button click with a forged context",
                          f"{exc}; as user {clip(body.get('user_id'), 40)}",
                          json_body={"ephemeral_text": "This button is not valid."},
                          auth_source="mattermost") from None
        user_id = str(body.get("user_id") or "")
        channel_id = str(body.get("channel_id") or "")
        post_id = str(body.get("post_id") or "")
        if not user_id:
            return web.json_response({"ephemeral_text": "No user in the request."}, status=400)
        channel_name = str(body.get("channel_name") or "")
        direct = is_direct_channel(None, channel_name)
        where = Where(channel_id, user_id, root_id=signed.root_id or post_id, is_direct=direct)
        user_name = str(body.get("user_name") or "") or None
        if signed.action == ASK:
            return web.json_response(self._second_step(signed, user_id))
        inbound = Inbound(
            platform="mattermost", user_id=user_id, text="", channel_id=channel_id,
            channel_alias=None if direct else self.alias_for(channel_id),
            user_name=user_name, thread_id=where.root_id or None, is_direct=direct)
        choice = Choice(signed.action)
        progress = _Progress(self, where, acked=True)
        task = self._spawn(self.bot.decide(inbound, signed.request_id, choice, progress=progress),
                           "mattermost:decide")
        if post_id:
            mark = self.clicked.begin(post_id)
            task.add_done_callback(functools.partial(self._click_decided, post_id, mark))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), self.config.ack_budget_seconds)
        except TimeoutError:
            self._spawn(self._finish_click_later(task, where, post_id, user_name or user_id),
                        "mattermost:decide-later")
            return web.json_response({"update": {
                "message": f"@{user_name or user_id} chose **{choice.value}** for request "
                           f"{signed.request_id}; working on it…", "props": {}}})
        return web.json_response(self._click_answer(outcome, where, user_name or user_id))

    def _click_decided(self, post_id: str, mark: asyncio.Future[bool],
                       task: asyncio.Task[Outcome]) -> None:
        """The click's own answer updates its post when the decision produced an update."""
        outcome = None if task.cancelled() or task.exception() else task.result()
        updated = outcome is not None and (outcome.update is not None
                                           or outcome.status == OutcomeStatus.PENDING)
        self.clicked.end(post_id, mark, updated)

    def _second_step(self, signed: SignedAction, user_id: str) -> dict[str, Any]:
        if signed.requester and user_id != signed.requester:
            return {"ephemeral_text": f"Only the person who asked can confirm request "
                                      f"{signed.request_id}."}
        buttons = self._buttons()
        if buttons is None:
            return {"ephemeral_text": f"Type `confirm {signed.request_id}` to confirm."}
        return {"update": {
            "message": confirm_question(signed.request_id, signed.question),
            "props": {"attachments": [buttons.second_step(signed)]}}}

    def _click_answer(self, outcome: Outcome, where: Where, who: str) -> dict[str, Any]:
        """The answer to a click: update the post, show results (see _finish_click_later)."""
        if outcome.update is not None:
            answer: dict[str, Any] = {"update": {"message": self._text(outcome.update),
                                                 "props": {}}}
            reply = outcome.reply
            if reply is not outcome.update:
                if reply.visibility == Visibility.EPHEMERAL and not reply.actions:
                    answer["ephemeral_text"] = self._text(reply)
                else:
                    self._deliver_soon(reply, where, where.user_id)
            return answer
        if outcome.status == OutcomeStatus.PENDING:  # confirmed; now an approval is needed
            self._deliver_soon(outcome.reply, where, where.user_id)
            return {"update": {"message": f"Confirmed by @{who}; request {outcome.request_id} "
                                          "now waits for approval.", "props": {}}}
        return {"ephemeral_text": self._text(outcome.reply)}

    async def _finish_click_later(self, task: Awaitable[Outcome], where: Where, post_id: str,
                                  who: str) -> None:
        """A decision that outran the ack budget: update the post and answer afterwards."""
        outcome = await task
        answer = self._click_answer(outcome, where, who)
        update = answer.get("update")
        if update is not None:
            try:
                await self.outbox.send(Outgoing("patch", where, update["message"],
                                                props=update["props"], post_id=post_id))
            except Exception as exc:  # e.g. a slash command's post is not the bot's to edit
                log.info("could not update post %s (%s); answering in the thread", post_id,
                         describe(exc))
                await self._send(Outgoing("post", where, update["message"]))
        text = answer.get("ephemeral_text")
        if text:
            await self._send(Outgoing("ephemeral", where, text))

    # ------------------------------------------------------------------ running

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    # ------------------------------------------------------------------ outbound

    def alias_for(self, channel_id: str | None) -> str | None:
        """The configured alias (``ops``) of a channel, by its id only: a request's
        ``channel_name`` may name an ``ops`` of another team."""
        return self.aliases.alias_for(channel_id)

    def _buttons(self) -> ButtonFactory | None:
        public = self.bot.config.bot.http.public_url
        if not public:
            return None
        ttl = self.config.action_ttl_minutes
        if ttl is None:
            bot = self.bot.config.bot
            ttl = max(bot.approval_timeout_minutes, bot.confirmation_timeout_minutes) + 5
        return ButtonFactory(self.signer, public.rstrip("/") + ACTION_PATH, ttl * 60)

    def _text(self, reply: Reply) -> str:
        return fit(render_text(reply, "mattermost"))

    def _compose(self, reply: Reply, where: Where,
                 requester: str) -> tuple[str, dict[str, Any] | None]:
        """Message text and, when the reply has buttons, the props carrying them."""
        message = self._text(reply)
        if not reply.actions:
            return message, None
        buttons = self._buttons()
        if buttons is None:
            typed = " or ".join(f"`{a.choice.value} {a.request_id}`" for a in reply.actions)
            return fit(f"{message}\nReply {typed}."), None
        attachment = buttons.attachment(reply.actions, reply.level, root_id=where.root_id,
                                        requester=requester)
        return message, {"attachments": [attachment]}

    def _outgoing(self, reply: Reply, where: Where, requester: str) -> Outgoing:
        message, props = self._compose(reply, where, requester)
        # Buttons need a stored post (an ephemeral one cannot be updated by the answer).
        kind = "ephemeral" if reply.visibility == Visibility.EPHEMERAL and props is None \
            else "post"
        return Outgoing(kind, where, message, props=props)

    async def _deliver(self, reply: Reply, where: Where, *, requester: str) -> None:
        item = self._outgoing(reply, where, requester)
        await self._remember(reply, item, await self._send(item))

    def _deliver_soon(self, reply: Reply, where: Where, requester: str) -> None:
        item = self._outgoing(reply, where, requester)
        if item.props is None:
            self.outbox.send_soon(item)
            return
        future = self.outbox.send_nowait(item)  # queued now: order kept

        async def sent() -> None:
            try:
                created = await future
            except Exception as exc:
                log.error("could not deliver a Mattermost %s to %s: %s", item.kind,
                          item.where.queue, describe(exc))
                return
            await self._remember(reply, item, created)

        self._spawn(sent(), "mattermost:remember")

    async def _remember(self, reply: Reply, item: Outgoing,
                        created: dict[str, Any] | None) -> None:
        """A stored post with a request's buttons is patched when the request is decided
        anywhere (see :meth:`_on_decision`). A slash command's in-channel answer (posted by the
        server through the response_url) has no post id we learn, so it is not remembered."""
        if item.props is None or not created or not created.get("id"):
            return
        await self.bot.remember_request_message(
            reply, "mattermost", str(created.get("channel_id") or item.where.channel_id),
            str(created["id"]))

    async def _on_decision(self, notice: DecisionNotice) -> None:
        """A request was decided (a button, a typed ``approve ID``, expiry): its posts lose
        their buttons and say what happened. A clicked post is left to the click's answer."""
        if self._stopping:
            return
        message = self._text(notice.update)
        for ref in notice.messages:
            if ref.platform != "mattermost" or await self.clicked.updated_by_click(
                    ref.message_id):
                continue
            # A patch, not a PUT: props replaced by empty attachments, the buttons go.
            where = Where(ref.channel_id, self.rest.user_id)
            try:
                await self.outbox.send(Outgoing("patch", where, message,
                                                props={"attachments": []},
                                                post_id=ref.message_id))
            except Exception as exc:
                log.warning("could not update the Mattermost post of request %s: %s",
                            notice.request_id, describe(exc))

    async def _send(self, item: Outgoing) -> dict[str, Any] | None:
        try:
            return await self.outbox.send(item)
        except Exception as exc:
            log.error("could not deliver a Mattermost %s to %s: %s", item.kind, item.where.queue,
                      describe(exc))
            return None

    @staticmethod
    def _working_text(spec: CommandSpec | None) -> str:
        what = f"`{spec.words}`" if spec is not None else "that"
        return f"Working on {what}; the answer follows here."

    async def post(self, channel: str, message: Reply | str, *, root_id: str = "") -> str | None:
        """Post to a channel alias (``alerts``), name or id; returns the post id.

        For other sections (alerts, digests). Goes through the same per-channel sender.
        """
        channel_id = self.channel_ids.get(channel)
        if channel_id is None and is_mattermost_id(channel):
            channel_id = channel
        if channel_id is None:
            name = channel.lstrip("~#").lower()
            found = await self.rest.retrying("channel lookup", lambda: self.rest.channel_by_name(
                self.config.team, name))
            channel_id = str(found["id"])
        reply = message if isinstance(message, Reply) else Reply(text=message)
        where = Where(channel_id, self.rest.user_id, root_id=root_id)
        created = await self.outbox.send(Outgoing("post", where, self._text(reply)))
        return str(created["id"]) if created else None


def _reconnect_counter(bot: Bot) -> Counter:
    """``shiftbot_mattermost_reconnects_total`` on the bot's registry (created once per bot)."""
    existing = getattr(bot.metrics, "mattermost_reconnects", None)
    if existing is None:
        existing = Counter("shiftbot_mattermost_reconnects",
                           "Mattermost socket connection attempts after the first",
                           registry=bot.metrics.registry)
        bot.metrics.mattermost_reconnects = existing  # type: ignore[attr-defined]
    return existing

