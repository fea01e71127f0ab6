"""The Mattermost adapter: websocket messages, slash commands, buttons, threads, the port.

Inbound: ``posted`` events (prefixed messages, messages that start with a mention of the bot,
direct messages, human replies in threads; :mod:`.listen`), custom slash commands
(``POST /mattermost/command``, token checked; :mod:`.slash`) and button clicks
(``POST /mattermost/action``, signed context checked; :mod:`.clicks`) become
:class:`~bot.identity.Inbound` lines for :meth:`Bot.handle` / :meth:`Bot.decide` /
:meth:`Bot.click` / ``Bot.thread_reply``. Websocket posts and clicks are claimed in the database
first, so two bot processes on one database answer each once. The adapter knows nothing about
handlers.

Outbound: every message goes through one :class:`~bot.adapters.mattermost.outbound.Outbox`
(per-channel order, 429/5xx retried); answers are placed by :mod:`.answers`, rendered by
:mod:`.compose`. Speaking first (notices) goes through :class:`.platform.MattermostPlatform`,
registered as ``bot.platforms["mattermost"]`` while the adapter runs.

Resilience: see :mod:`bot.adapters.mattermost.websocket` (own reconnect loop, backoff, resume,
liveness) and ``docs/mattermost.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bot.adapters.aliases import AliasTable
from bot.adapters.mattermost.actions import ActionSigner, derive_key
from bot.adapters.mattermost.answers import Answers
from bot.adapters.mattermost.channels import resolve_aliases
from bot.adapters.mattermost.clicks import Clicks
from bot.adapters.mattermost.compose import ACTION_PATH, Composer
from bot.adapters.mattermost.inbound import is_mattermost_id
from bot.adapters.mattermost.listen import Listener
from bot.adapters.mattermost.outbound import Outbox
from bot.adapters.mattermost.platform import MattermostPlatform
from bot.adapters.mattermost.rest import MattermostRest, describe, status_of, websocket_url
from bot.adapters.mattermost.slash import SlashCommands
from bot.adapters.mattermost.websocket import Backoff, EventSocket
from bot.config import MattermostConfig, secret_value
from bot.core import Bot
from bot.health import ComponentState
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

COMMAND_PATH = "/mattermost/command"
STARTUP_WAIT = 10.0  # start() waits this long for the first socket, then goes on
SHUTDOWN_WAIT = 5.0  # stop() lets running commands finish for this long


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
        self.socket = EventSocket(
            url=websocket_url(config.url), token=token, on_event=self._on_event,
            ping_interval=config.ping_interval_seconds,
            backoff=Backoff(config.reconnect_min_seconds, config.reconnect_max_seconds),
            verify_tls=config.verify_tls, on_ready=self._on_ready,
            on_reconnect=self._count_reconnect, clock=clock)
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
        self._attempts = bot.metrics.connection_attempts()
        self.composer = Composer(bot.config, config, self.signer,
                                 bot.actions.ttl.total_seconds())
        self.answers = Answers(bot, self.outbox, self.composer, self.spawn)
        self.clicked = self.answers.clicked  # posts a click updates itself
        self.listener = Listener(self, self.answers, self.spawn)
        self.platform = MattermostPlatform(bot, self.rest, self.outbox, self.composer,
                                           self.aliases, config.team, self.spawn)
        self._listening = False
        tokens = [t.get_secret_value().encode() for t in config.command_tokens]
        if bot.http is not None:
            slash = SlashCommands(self, self.answers, tokens)
            clicks = Clicks(self, self.answers, self.listener.claims)
            bot.http.add_route("POST", COMMAND_PATH, slash.on_command)
            bot.http.add_route("GET", COMMAND_PATH, slash.on_command)
            bot.http.add_route("POST", ACTION_PATH, clicks.on_action)
        else:
            log.warning("no HTTP server attached: Mattermost slash commands and buttons are off")
        bot.health.register("mattermost", self._probe)
        if not tokens:
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
            self.bot.add_decision_listener(self.answers.on_decision)
            self._listening = True
        self.bot.platforms[self.name] = self.platform
        self._run_task = asyncio.create_task(self._run(), name="mattermost")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.startup_wait)
        if not self._ready.is_set():
            log.warning("Mattermost socket not connected after %.0f s (%s); continuing, it "
                        "keeps trying", self.startup_wait, self._problem)

    async def stop(self) -> None:
        """Close the socket, let running commands finish briefly, deliver what is queued."""
        self._stopping = True
        self.answers.stopping = True
        if self.bot.platforms.get(self.name) is self.platform:
            del self.bot.platforms[self.name]
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
        await resolve_aliases(self.rest, self.config.team, self.aliases, self.team_id)
        await self._resolve_people()
        # mention() must not wait for REST: everyone configured is looked up now, once.
        await self.platform.learn_usernames([
            p.ids["mattermost"] for p in self.bot.directory.people.values()
            if p.ids.get("mattermost")])

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
        if self._ready.is_set():  # ready before: a reconnect (resumed or new)
            self.bot.metrics.count_reconnect(self.name)
        self._ready.set()
        self._last_ok = self.clock()
        self._problem = "connected"
        log.info("Mattermost socket connected (connection %s, server %s)",
                 socket.connection_id or "resumed", socket.server_version or "?")

    def _count_reconnect(self) -> None:
        self._attempts.inc()

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

    # ------------------------------------------------------------------ inbound, running

    def _on_event(self, event: dict[str, Any]) -> None:
        self.listener.on_event(event)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def alias_for(self, channel_id: str | None) -> str | None:
        """The configured alias (``ops``) of a channel, by its id only: a request's
        ``channel_name`` may name an ``ops`` of another team."""
        return self.aliases.alias_for(channel_id)
