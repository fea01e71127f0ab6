"""Showing answers: a command's reply where it belongs, request posts kept current.

Everything goes through the adapter's one :class:`~bot.adapters.mattermost.outbound.Outbox`
(per-channel order, 429/5xx retried). Answers to a message go to its thread (``root_id`` = the
thread's first post); errors and denials are ephemeral. A post showing a request's buttons is
remembered, so a decision made anywhere (a click, a typed ``approve ID``, expiry) updates it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bot.adapters.clicks import ClickedMessages
from bot.adapters.mattermost.compose import Composer
from bot.adapters.mattermost.outbound import Outbox, Outgoing, Where, fit
from bot.adapters.mattermost.rest import describe
from bot.commands import CommandSpec
from bot.messaging.replies import Throttle, working_reply
from bot.outcome import DecisionNotice, Outcome
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]


class Answers:
    def __init__(self, bot: Bot, outbox: Outbox, composer: Composer, spawn: Spawn) -> None:
        self.bot = bot
        self.outbox = outbox
        self.composer = composer
        self.spawn = spawn
        self.clicked = ClickedMessages()  # posts a click updates itself
        self.stopping = False

    def note(self, text: str, where: Where, *, hook_reserve: int = 0) -> None:
        """A short private note (progress, "working on it"), queued; failures logged."""
        self.outbox.send_soon(Outgoing("ephemeral", where, fit(text), hook_reserve=hook_reserve))

    def working(self, spec: CommandSpec | None, where: Where) -> None:
        self.note(working_reply(spec).text, where)

    async def deliver(self, reply: Reply, where: Where, *, requester: str) -> None:
        item = self.composer.outgoing(reply, where, requester)
        await self.remember(reply, item, await self.send(item))

    async def answer_later(self, outcome: Awaitable[Outcome], where: Where,
                           requester: str) -> None:
        await self.deliver((await outcome).reply, where, requester=requester)

    def deliver_soon(self, reply: Reply, where: Where, requester: str) -> None:
        """Queue now (order kept); remember the post once it exists."""
        item = self.composer.outgoing(reply, where, requester)
        if item.props is None:
            self.outbox.send_soon(item)
            return
        future = self.outbox.send_nowait(item)

        async def sent() -> None:
            try:
                created = await future
            except Exception as exc:
                log.error("could not deliver a Mattermost %s to %s: %s", item.kind,
                          item.where.queue, describe(exc))
                return
            await self.remember(reply, item, created)

        self.spawn(sent(), "mattermost:remember")

    async def remember(self, reply: Reply, item: Outgoing, created: dict[str, Any] | None) -> None:
        """A stored post with a request's buttons is patched when the request is decided
        anywhere (see :meth:`on_decision`). A slash command's in-channel answer (posted by the
        server through the response_url) has no post id we learn, so it is not remembered."""
        if item.props is None or not created or not created.get("id"):
            return
        await self.bot.remember_request_message(
            reply, "mattermost", str(created.get("channel_id") or item.where.channel_id),
            str(created["id"]))

    async def on_decision(self, notice: DecisionNotice) -> None:
        """A request was decided (a button, a typed ``approve ID``, expiry): its posts lose
        their buttons and say what happened. A clicked post is left to the click's answer."""
        if self.stopping:
            return
        message = self.composer.text(notice.update)
        for ref in notice.messages:
            if ref.platform != "mattermost" or await self.clicked.updated_by_click(
                    ref.message_id):
                continue
            # A patch, not a PUT: props replaced by empty attachments, the buttons go.
            where = Where(ref.channel_id, "")
            try:
                await self.outbox.send(Outgoing("patch", where, message,
                                                props={"attachments": []},
                                                post_id=ref.message_id))
            except Exception as exc:
                log.warning("could not update the Mattermost post of request %s: %s",
                            notice.request_id, describe(exc))

    async def send(self, item: Outgoing) -> dict[str, Any] | None:
        """Deliver; a failure is logged (the sender already retried what was worth it)."""
        try:
            return await self.outbox.send(item)
        except Exception as exc:
            log.error("could not deliver a Mattermost %s to %s: %s", item.kind, item.where.queue,
                      describe(exc))
            return None


class Progress:
    """``ctx.progress()`` for one command: throttled ephemeral notes, only once acknowledged."""

    def __init__(self, answers: Answers, where: Where, *, acked: bool) -> None:
        self.answers = answers
        self.where = where
        self.acked = acked
        self.throttle = Throttle()

    def sent_now(self) -> None:
        self.throttle.allow()

    async def __call__(self, text: str) -> None:
        if self.acked and self.throttle.allow():
            self.answers.note(f"… {text}", self.where, hook_reserve=2)
