"""Durable notices: the bot speaking first (``bot.notices``).

``await bot.notices.post("alerts", Reply(...), key="alert:4711", mention=["on-shift"])`` stores
the notice and one delivery row per (platform, channel) the alias maps to -- an alias mapped on
Slack and on Mattermost gets one message on each -- and returns at once: the deliverer
(``bot/messaging/deliver.py``) sends it in the background, retrying from the table across
restarts. A key posts once, ever: posting it again returns the first one's references.
``update(key, reply)`` replaces the message in place, ``thread(key, reply)`` answers in its
thread; both are queued behind the post in each channel.

``post()`` returns the references of the messages already sent: none for a new notice, since
it does not wait for any platform. ``await notices.delivered(key, timeout)`` waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from bot import db
from bot.health import ComponentState
from bot.messaging import mentions, outbox, replyjson
from bot.messaging.deliver import Deliverer
from bot.messaging.port import MessageRef, TransientError
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.config import NoticesConfig
    from bot.core import Bot

log = logging.getLogger(__name__)

__all__ = ["Notices", "UnfinishedDelivery"]


@dataclass(frozen=True, slots=True)
class UnfinishedDelivery:
    """One row of ``notices pending``."""

    key: str
    step: int
    kind: str
    platform: str
    channel_id: str
    status: str  # pending | failed
    attempts: int
    created_at: datetime
    next_at: datetime
    last_error: str | None


class Notices:
    def __init__(self, bot: Bot, config: NoticesConfig) -> None:
        self.bot = bot
        self.config = config
        self._changed = asyncio.Event()  # replaced after each result: delivered() waits
        self.deliverer = Deliverer(bot, config, on_change=self._notify, on_pass=self.refresh)
        bot.health.register("notices", self._probe)

    # ------------------------------------------------------------------ the API

    async def post(self, to: str | Sequence[str], reply: Reply, *, key: str,
                   mention: Sequence[str] = (), owner: str | None = None) -> list[MessageRef]:
        """Store a notice for the channel alias(es) ``to`` and wake the deliverer. Returns the
        references sent so far: [] for a new notice; the first one's for a key seen before."""
        targets = [to] if isinstance(to, str) else list(to)
        unknown = [a for a in targets if a not in self.bot.config.channels]
        if unknown:
            raise ValueError(f"no channel alias {', '.join(map(repr, unknown))} in 'channels:'")
        names = mentions.check_names(mention, self.bot.gate)
        stored = replyjson.dump(await self.bot.actions.store(await self.bot.renderer.render(reply)))
        # A platform that cannot say now where an alias is (its API is down) raises
        # TransientError here, before anything is stored: the caller learns it and retries
        # (a status notice with the next result; announce tells the person). Storing the
        # notice for the other platforms only would lose it on that one for good.
        channels = await self.routes(targets, strict=True)
        if not channels:
            log.error("notice %s: channel(s) %s are mapped on no running platform (%s); it is "
                      "stored but goes nowhere", key, ", ".join(targets),
                      ", ".join(sorted(self.bot.platforms)) or "none running")
        existing = await self.bot.database.run(outbox.insert_notice, key, targets, names,
                                               owner, stored, channels)
        if existing is not None:
            return existing
        self.deliverer.kick(channels)
        return []

    async def update(self, key: str, reply: Reply) -> None:
        """Replace the notice's message (in every channel) by ``reply``, in order behind what
        was queued for it before. KeyError for an unknown key."""
        await self._add_step(key, outbox.UPDATE, reply)

    async def thread(self, key: str, reply: Reply, *, mention: Sequence[str] = ()) -> None:
        """Reply in the notice's thread (in every channel), mentioning ``mention`` (people,
        groups, roles: checked like post()'s). KeyError for an unknown key."""
        await self._add_step(key, outbox.THREAD, reply, mention)

    async def delivered(self, key: str, timeout: float) -> list[MessageRef]:
        """The notice's messages once none of its posts is pending any more (failed ones are
        missing); TimeoutError after ``timeout`` s, KeyError for an unknown key."""
        deadline = time.monotonic() + timeout
        while True:
            done = await self.bot.database.run(outbox.step_zero_done, key)
            if done is None:
                raise KeyError(key)
            if done:
                return await self.bot.database.run(outbox.refs, key)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"notice {key} not delivered within {timeout:g} s")
            await self._wait_change(min(left, self.config.poll_seconds))

    async def unfinished(self, limit: int = 200) -> list[UnfinishedDelivery]:
        rows = await self.bot.database.run(outbox.unfinished, limit)
        return [UnfinishedDelivery(r.notice_key, r.step, r.kind, r.platform, r.channel_id,
                                   r.status, r.attempts, r.created_at, r.next_at, r.last_error)
                for r in rows]

    async def refresh(self) -> outbox.OutboxStats:
        """Read the outbox's size and age, and show them in ``/metrics``."""
        stats = await self.bot.database.run(outbox.stats)
        self.bot.metrics.outbox_depth.set(stats.depth)
        self.bot.metrics.outbox_oldest_age.set(oldest_age(stats))
        return stats

    async def _probe(self) -> ComponentState:
        stats = await self.refresh()
        age = oldest_age(stats)
        detail = f"{stats.depth} waiting, oldest {age:.0f} s, {stats.failed} failed"
        if age > self.config.unhealthy_after_seconds:
            return ComponentState(False, f"{detail} (limit {self.config.unhealthy_after_seconds:g}"
                                  " s)")
        return ComponentState(True, detail)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start delivering (idempotent): call once the platforms are registered."""
        self.deliverer.start()

    async def stop(self, flush_timeout: float | None = None) -> None:
        """Deliver what is due for up to ``flush_timeout`` s (default: the config), then stop."""
        await self.deliverer.stop(self.config.flush_timeout_seconds if flush_timeout is None
                                  else flush_timeout)

    def wake(self) -> None:
        """Look at the outbox now (tests that move the clock; a platform that came back)."""
        self.deliverer.wake()

    async def idle(self, timeout: float) -> bool:
        """Wait until nothing due is left to send here; False on timeout."""
        return await self.deliverer.idle(timeout)

    # ------------------------------------------------------------------ helpers

    async def routes(self, aliases: Sequence[str], *, strict: bool = False
                     ) -> list[tuple[str, str]]:
        """(platform, channel id) for each alias on each running platform it is mapped on.
        A platform that cannot resolve an alias now is left out (logged), or with ``strict``
        its TransientError is raised."""
        channels: list[tuple[str, str]] = []
        for name, platform in sorted(self.bot.platforms.items()):
            for alias in aliases:
                try:
                    channel = await platform.channel_for(alias)
                except TransientError as exc:
                    if strict:
                        raise TransientError(f"{name} cannot resolve channel alias {alias!r} "
                                             f"now ({exc}); nothing was stored") from exc
                    log.error("notice to %s: %s cannot resolve it now (%s); not sent there",
                              alias, name, exc)
                    continue
                if channel is not None and (name, channel) not in channels:
                    channels.append((name, channel))
        return channels

    async def _add_step(self, key: str, kind: str, reply: Reply,
                        mention: Sequence[str] = ()) -> None:
        names = mentions.check_names(mention, self.bot.gate) if mention else []
        stored = replyjson.dump(await self.bot.actions.store(await self.bot.renderer.render(reply)),
                                mention=names)
        for tries in range(3):
            try:
                channels = await self.bot.database.run(outbox.add_step, key, kind, stored)
                break
            except IntegrityError:  # another replica took the same step number: next one
                if tries == 2:
                    raise
        self.deliverer.kick(channels)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


def oldest_age(stats: outbox.OutboxStats) -> float:
    """Seconds the oldest undelivered row has waited (0 when none)."""
    return (db.utcnow() - stats.oldest).total_seconds() if stats.oldest else 0.0
