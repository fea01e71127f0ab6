"""Slack's side of the platform port (:class:`bot.messaging.port.Platform`).

The notice deliverer speaks first through this: ``chat.postMessage`` (a notice's tag rides in
the message ``metadata`` as ``{"event_type": NOTICE_TAG, "event_payload": {"tag": ...}}``),
``chat.update``, ``chat.postEphemeral``, and ``conversations.history`` /
``conversations.replies`` with ``include_all_metadata`` to find a tagged message again after a
crash. Posts go through the adapter's per-channel sender (so they keep their order with the
adapter's other posts to that channel) but are tried once: 429 is raised as
:class:`RateLimited` (with Retry-After), 5xx / timeouts / dropped connections as
:class:`TransientError`, and the deliverer retries from the database on its own clock. Slack's
``ok: false`` answers (``channel_not_found``, ``msg_too_long``, ``invalid_auth``...) are
:class:`DeliveryError`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.adapters.slack import blocks, files
from bot.adapters.slack.channels import ChannelDirectory
from bot.adapters.slack.outbound import Outbox, Post
from bot.messaging.port import NOTICE_TAG, DeliveryError, MessageRef, TransientError
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

HISTORY_PAGE = 200  # messages per conversations.history / replies page
HISTORY_PAGES = 3  # a notice is looked for among the channel's last 600 messages
UNREADABLE = frozenset({"not_in_channel"})  # posting works (chat:write.public), reading not


class SlackPlatform:
    """``bot.platforms["slack"]``; built and registered by the adapter when it starts."""

    name = "slack"

    def __init__(self, bot: Bot, outbox: Outbox, channels: ChannelDirectory,
                 identity: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.bot = bot
        self.outbox = outbox
        self.channels = channels
        self.identity = identity  # auth.test's answer: whose messages are "ours"

    async def channel_for(self, alias: str) -> str | None:
        if alias not in self.channels.aliases:
            return None
        try:
            return await self.channels.resolve(alias)
        except LookupError as exc:
            # Not found yet, or conversations.list failed: the bot may be invited, or Slack
            # come back, so the deliverer tries again (and the alias shows in /healthz).
            raise TransientError(f"slack.channels.{alias}: {exc}") from None

    async def post(self, channel_id: str, reply: Reply, *, thread_id: str | None = None,
                   tag: str | None = None) -> MessageRef:
        reply = await self._prepare(reply)
        args: dict[str, Any] = {"channel": channel_id, **blocks.message(reply)}
        if thread_id:
            args["thread_ts"] = thread_id
        if tag:
            args["metadata"] = {"event_type": NOTICE_TAG, "event_payload": {"tag": tag}}
        answer = await self._send(channel_id, Post("chat.postMessage", args))
        ref = MessageRef(self.name, str(answer.get("channel") or channel_id),
                         str(answer.get("ts") or ""), thread_id)
        await self.bot.remember_request_message(reply, self.name, ref.channel_id,
                                                ref.message_id)
        if reply.files:
            await self._share(ref, reply)
        return ref

    async def _share(self, ref: MessageRef, reply: Reply) -> None:
        """The reply's files, in the message's thread (bot/adapters/slack/files.py). A
        failure leaves the text alone: logged once, never retried (the post is done)."""
        try:
            await files.share(self.outbox, ref.channel_id, ref.thread_id or ref.message_id,
                              reply.files)
        except files.UploadFailed as exc:
            log.warning("slack: sent %s without its attachment (%s)", reply.title or "a message",
                        exc)

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        reply = await self._prepare(reply)
        args = {"channel": ref.channel_id, "ts": ref.message_id, **blocks.message(reply)}
        await self._send(ref.channel_id, Post("chat.update", args))

    async def ephemeral(self, channel_id: str, user_id: str, reply: Reply) -> None:
        message = blocks.message(await self._prepare(reply))
        if channel_id.startswith("D"):  # a DM: only that person sees it anyway
            post = Post("chat.postMessage", {"channel": channel_id, **message})
        else:
            post = Post("chat.postEphemeral", {"channel": channel_id, "user": user_id,
                                               **message})
        await self._send(channel_id, post)

    async def find_tagged(self, channel_id: str, tag: str, *,
                          thread_id: str | None = None) -> MessageRef | None:
        me = await self.identity()
        params: dict[str, Any] = {"channel": channel_id, "limit": HISTORY_PAGE,
                                  "include_all_metadata": "true"}
        method = "conversations.history"
        if thread_id:
            method, params["ts"] = "conversations.replies", thread_id
        for _page in range(HISTORY_PAGES):
            answer = await self._read(method, params)
            if answer is None:
                return None
            for message in answer.get("messages") or []:
                if _is_ours(message, me) and _tag_of(message) == tag:
                    ts = str(message["ts"])
                    root = message.get("thread_ts")
                    return MessageRef(self.name, channel_id, ts,
                                      str(root) if root and root != ts else None)
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor or not answer.get("has_more", True):
                return None
            params["cursor"] = cursor
        return None

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>"

    # ------------------------------------------------------------------ internals

    async def _prepare(self, reply: Reply) -> Reply:
        """Templates rendered and command buttons stored (both no-ops when already done)."""
        return await self.bot.actions.store(await self.bot.renderer.render(reply))

    async def _send(self, channel_id: str, post: Post) -> dict[str, Any]:
        try:
            return await self.outbox.send_once(channel_id, post)
        except SlackApiError as exc:
            raise DeliveryError(f"{post.method}: {_error(exc)}") from None

    async def _read(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return await self.outbox.read(method, params)
        except SlackApiError as exc:
            error = _error(exc)
            if error in UNREADABLE:
                log.warning("cannot read %s of %s (%s): a notice posted before a crash may "
                            "be posted again there; invite the bot", method,
                            params["channel"], error)
                return None
            if error == "thread_not_found":
                return None
            raise DeliveryError(f"{method}: {error}") from None


def _error(exc: SlackApiError) -> str:
    response = exc.response
    return str(response.get("error") if hasattr(response, "get") else exc)


def _is_ours(message: dict[str, Any], me: dict[str, Any]) -> bool:
    bot_id, user_id = me.get("bot_id"), me.get("user_id")
    return bool((bot_id and message.get("bot_id") == bot_id)
                or (user_id and message.get("user") == user_id))


def _tag_of(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != NOTICE_TAG:
        return None
    tag = (metadata.get("event_payload") or {}).get("tag")
    return str(tag) if tag is not None else None
