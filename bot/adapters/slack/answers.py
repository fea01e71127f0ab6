"""Showing answers: a command's reply where it belongs, request messages kept current.

Everything goes through the adapter's one :class:`~bot.adapters.slack.outbound.Outbox` (the
per-channel sender); this module only decides *what* to post (``routing.route``) and remembers
the messages that show a request's buttons so that a decision made anywhere updates them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from bot.adapters.clicks import ClickedMessages
from bot.adapters.slack import blocks
from bot.adapters.slack.outbound import RESPONSE_URL, Outbox, Post
from bot.adapters.slack.routing import Where, route
from bot.outcome import DecisionNotice, Outcome
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)


class Answers:
    def __init__(self, bot: Bot, outbox: Outbox) -> None:
        self.bot = bot
        self.outbox = outbox
        self.clicked = ClickedMessages()  # messages a click updates itself
        self.stopped = False

    async def deliver(self, reply: Reply, where: Where) -> None:
        """Post ``reply`` where its visibility says; failures are logged, never raised."""
        try:
            answer = await self.outbox.send(where.queue, route(reply, where))
        except Exception as exc:
            log.error("could not deliver a Slack reply to %s: %s", where.queue, exc)
            return
        await self.remember(reply, answer, where.channel_id)

    async def answer_later(self, outcome: Awaitable[Outcome], where: Where) -> None:
        await self.deliver((await outcome).reply, where)

    def post_nowait(self, reply: Reply, where: Where) -> None:
        """Queue ``reply`` (progress notes): failures are logged, never raised."""
        future = self.outbox.send_nowait(where.queue, route(reply, where))
        future.add_done_callback(_log_failure)

    async def remember(self, reply: Reply, answer: Any, channel_id: str) -> None:
        """A posted message showing a request's buttons is updated when the request is decided
        anywhere (see :meth:`on_decision`). Only chat.postMessage answers carry a ``ts`` we can
        update: response_url and ephemeral posts do not."""
        if not isinstance(answer, dict) or not answer.get("ts"):
            return
        await self.bot.remember_request_message(
            reply, "slack", str(answer.get("channel") or channel_id), str(answer["ts"]))

    async def on_decision(self, notice: DecisionNotice) -> None:
        """A request was decided (a button, a typed ``approve ID``, expiry): its messages lose
        their buttons and say what happened. A message whose button was clicked is left to the
        click's own update."""
        if self.stopped:
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

    async def replace(self, reply: Reply, where: Where, original_ts: str | None) -> None:
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


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a Slack progress note was not delivered: %s", future.exception())
