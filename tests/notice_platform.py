"""An in-process Platform for notice tests: records what it was asked to send, and fails on
demand (5xx for a while, 429 with Retry-After, a hang, a permanent refusal).

Its messages live in the object, not in a bot, so a second Bot (a restart, a replica) can be
given the same "workspace" and ``find_tagged`` finds what the first one posted.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from bot.messaging.port import DeliveryError, MessageRef
from bot.render import render_text
from bot.reply import Reply
from bot.sender import RateLimited, TransientError


@dataclass
class Message:
    ref: MessageRef
    text: str
    tag: str | None
    reply: Reply
    edits: int = 0


class FakePlatform:
    def __init__(self, name: str, channels: dict[str, str], *, latency: float = 0.0) -> None:
        self.name = name
        self.channels = channels  # alias -> channel id
        self.latency = latency  # seconds each call takes (the benchmark's "network")
        self.messages: list[Message] = []
        self.updates: list[tuple[MessageRef, str]] = []
        self.calls = 0
        # Called before every post/update: return an exception to raise (or None to succeed).
        self.failure: Callable[[], Exception | None] | None = None
        self.hang_after_post = False  # the message is sent, then the call never returns
        self._ids = itertools.count(1)

    async def channel_for(self, alias: str) -> str | None:
        return self.channels.get(alias)

    async def _call(self) -> None:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        error = self.failure() if self.failure else None
        if error is not None:
            raise error

    async def post(self, channel_id: str, reply: Reply, *, thread_id: str | None = None,
                   tag: str | None = None) -> MessageRef:
        await self._call()
        ref = MessageRef(self.name, channel_id, f"{self.name}-{next(self._ids)}", thread_id)
        self.messages.append(Message(ref, render_text(reply, "mattermost"), tag, reply))
        if self.hang_after_post:
            await asyncio.Event().wait()
        return ref

    async def update(self, ref: MessageRef, reply: Reply) -> None:
        await self._call()
        self.updates.append((ref, render_text(reply, "mattermost")))

    async def ephemeral(self, channel_id: str, user_id: str, reply: Reply) -> None:
        await self._call()

    async def find_tagged(self, channel_id: str, tag: str, *,
                          thread_id: str | None = None) -> MessageRef | None:
        for message in self.messages:
            if (message.ref.channel_id, message.ref.thread_id, message.tag) == \
                    (channel_id, thread_id, tag):
                return message.ref
        return None

    def mention(self, user_id: str) -> str:
        return f"<@{user_id}>" if self.name == "slack" else f"@{user_id}"

    def texts(self, channel_id: str | None = None) -> list[str]:
        return [m.text for m in self.messages
                if channel_id is None or m.ref.channel_id == channel_id]


def failing_for(until: Callable[[], bool], error: Callable[[], Exception]
                ) -> Callable[[], Exception | None]:
    """A failure mode: ``error()`` while ``until()`` is false."""
    return lambda: None if until() else error()


__all__ = ["DeliveryError", "FakePlatform", "RateLimited", "TransientError", "failing_for"]
