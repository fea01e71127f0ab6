"""Websocket ``posted`` events -> the core: commands, and human replies in threads.

Every post is *claimed* in the database before anything runs (``bot.claims``, key
``inbound:mattermost:<post id>``): each bot process on one database has its own socket, and the
server sends every ``posted`` event to all of them (and again when a socket resumes), so without
the claim two replicas would both run ``!condor hold``. A replay within this process is caught in
memory first, without a database round trip.

A message is a command when it starts with the prefix or a mention of the bot, or is in a direct
channel. Other human replies in a thread (``root_id`` set) go to ``Bot.thread_reply``, which
hands them to the feature that owns the thread; in threads nobody owns they stay ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.mattermost.answers import Answers, Progress
from bot.adapters.mattermost.inbound import command_in, is_direct_channel
from bot.adapters.mattermost.outbound import Where
from bot.identity import Inbound
from bot.messaging.inbound import InboundClaims

if TYPE_CHECKING:
    from bot.adapters.mattermost.adapter import MattermostAdapter

log = logging.getLogger(__name__)


def read_post(event: dict[str, Any]) -> dict[str, Any] | None:
    """The post of a ``posted`` event (``data.post`` is a JSON string), or None."""
    data = event.get("data") or {}
    try:
        post = json.loads(data.get("post") or "")
    except (TypeError, ValueError):
        log.warning("a posted event without a readable post: %.200r", data)
        return None
    return post if isinstance(post, dict) else None


def from_person(post: dict[str, Any], bot_user_id: str) -> bool:
    """Written by a person: not a system message, not the bot, not a webhook or another bot."""
    user_id = str(post.get("user_id") or "")
    props = post.get("props") or {}
    if post.get("type") or not user_id or user_id == bot_user_id:
        return False  # system messages (joins, header changes), and our own posts come back
    # Command replies (shown as the user's posts) and other bots: no loops.
    return props.get("from_webhook") != "true" and props.get("from_bot") != "true"


class Listener:
    def __init__(self, adapter: MattermostAdapter, answers: Answers,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], Any]) -> None:
        self.adapter = adapter
        self.bot = adapter.bot
        self.answers = answers
        self.spawn = spawn
        self.claims = InboundClaims(adapter.bot.claims, "mattermost",
                                    timedelta(seconds=adapter.config.dedupe_seconds))

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "posted":
            return
        post = read_post(event)
        if post is None or not from_person(post, self.adapter.rest.user_id):
            return
        data = event.get("data") or {}
        direct = is_direct_channel(data.get("channel_type"), data.get("channel_name"))
        found = command_in(str(post.get("message") or ""),
                           prefix=self.adapter.config.command_prefix,
                           bot_username=self.adapter.rest.username, direct=direct)
        root = str(post.get("root_id") or "")
        if found is None and not root:
            return  # channel chatter
        post_id = str(post.get("id") or "")
        channel_id = str(post.get("channel_id") or "")
        inbound = Inbound(
            platform="mattermost", user_id=str(post["user_id"]),
            text=found.text if found is not None else str(post.get("message") or ""),
            channel_id=channel_id,
            channel_alias=None if direct else self.adapter.alias_for(channel_id),
            user_name=str(data.get("sender_name") or "").lstrip("@") or None,
            thread_id=root or post_id or None, is_direct=direct)
        if found is None:
            self.spawn(self._thread_reply(post_id, inbound), f"mattermost:thread:{post_id}")
        else:
            where = Where(channel_id, inbound.user_id, root_id=root or post_id, is_direct=direct)
            self.spawn(self._command(post_id, inbound, where), f"mattermost:{post_id}")

    async def _claimed(self, post_id: str) -> bool:
        if not post_id:
            return True  # nothing to recognise a repeat by
        if await self.claims.first(post_id):
            return True
        log.info("Mattermost post %s already taken (a replay, or another replica); not "
                 "running it twice", post_id)
        return False

    async def _command(self, post_id: str, inbound: Inbound, where: Where) -> None:
        if not await self._claimed(post_id):
            return
        spec = self.bot.lookup(inbound.text)
        progress = Progress(self.answers, where, acked=True)
        if spec is not None and spec.slow:
            progress.sent_now()
            self.answers.working(spec, where)
        outcome = await self.bot.handle(inbound, progress=progress)
        await self.answers.deliver(outcome.reply, where, requester=inbound.user_id)

    async def _thread_reply(self, post_id: str, inbound: Inbound) -> None:
        """A person answered in a thread: the feature owning it (if any) gets the reply."""
        route = getattr(self.bot, "thread_reply", None)
        if route is None or not await self._claimed(post_id):
            return
        try:
            await route(inbound)
        except Exception:
            log.exception("a Mattermost thread reply in %s (thread %s) failed",
                          inbound.channel_id, inbound.thread_id)
