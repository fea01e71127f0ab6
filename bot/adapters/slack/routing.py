"""Where an answer goes: from the place a command came from and the reply's visibility.

Pure functions plus the throttled ``ctx.progress()`` notes; no I/O of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.adapters.slack import blocks
from bot.adapters.slack.outbound import RESPONSE_URL, Post, Responder
from bot.messaging.replies import Throttle, progress_reply
from bot.reply import Reply, Visibility


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
    if reply.visibility == Visibility.EPHEMERAL:
        return _ephemeral(message, where)
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
            # A card with buttons: posted with the Web API, its ts lets a decision made
            # anywhere (typed approve, another platform, expiry) update it; response_url only
            # when the bot is not in the channel.
            return Post(api.method, api.args, fallback=via_url)
        # response_url works in channels the bot is not a member of
        via_url.fallback = api
        return via_url
    return api


def _ephemeral(message: dict[str, object], where: Where) -> Post:
    thread = {"thread_ts": where.thread_ts} if where.thread_ts else {}
    if where.is_direct:
        api = Post("chat.postMessage", {"channel": where.channel_id or where.user_id,
                                        **thread, **message})
    else:
        api = Post("chat.postEphemeral", {"channel": where.channel_id, "user": where.user_id,
                                          **thread, **message})
    if where.responder is not None:
        return Post(RESPONSE_URL, {"response_type": "ephemeral", "replace_original": False,
                                   **message}, where.responder, fallback=api)
    return api


class Progress:
    """``ctx.progress()`` for one command: throttled notes, only once the ack went out."""

    def __init__(self, send: Callable[[Reply, Where], None], where: Where, *,
                 acked: bool = False) -> None:
        self.send = send
        self.where = where
        self.acked = acked
        self.throttle = Throttle()

    async def __call__(self, text: str) -> None:
        if not self.acked:
            return  # still inside the ack budget: the answer itself will follow
        responder = self.where.responder
        if responder is not None and responder.left() <= 2:
            return  # keep the response_url's last uses for the result
        if self.throttle.allow():
            self.send(progress_reply(text), self.where)
