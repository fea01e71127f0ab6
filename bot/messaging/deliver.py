"""The deliverer: one background task per bot that sends what the outbox holds.

Each pass reads the oldest pending row of every channel on the platforms this process has
(``bot.platforms``); a channel whose head is due gets a sender task that sends rows in id
order until the channel is empty or its head must wait (a retry later). So order is kept per
channel (row N+1 never before N is sent or failed) while channels flow side by side.

Every attempt is claimed first (``notice:<row>:<attempt>``, in the claims table, in the same
transaction that counts the attempt): two replicas never send one row at once, and a crash
after the count leaves ``attempts > 0``, so the next try asks the platform for the tagged
message (``find_tagged``) before posting again. Failures: ``RateLimited`` waits Retry-After;
``TransientError``, timeouts and anything unexpected back off exponentially (capped); past
``fail_after_hours`` the row is failed, counted and logged; ``DeliveryError`` fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from bot import db
from bot.messaging import mentions, outbox, replyjson
from bot.messaging.outbox import POST, THREAD, Attempt, Delivery, Result
from bot.messaging.port import DeliveryError, MessageRef, Platform, RateLimited, TransientError

if TYPE_CHECKING:
    from bot.config import NoticesConfig
    from bot.core import Bot

log = logging.getLogger(__name__)

BUSY_ELSEWHERE_SECONDS = 1.0  # a channel another replica is sending to: look again after this
PASS_INTERVAL = 0.01  # seconds between two reads of the whole outbox
BATCH = 20  # rows of one channel claimed (and recorded) in one transaction
RETRY = "retry"
MORE, EMPTY, WAIT = "more", "empty", "wait"  # what a channel's sender does after a batch


class Deliverer:
    def __init__(self, bot: Bot, config: NoticesConfig,
                 on_change: Callable[[], None] = lambda: None,
                 on_pass: Callable[[], Awaitable[object]] | None = None) -> None:
        self.bot = bot
        self.config = config
        self.on_change = on_change  # told after every recorded result (delivered() waits)
        self.on_pass = on_pass  # at most once a second after a pass (the /metrics gauges)
        self._last_pass_report = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._senders: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()  # rows added while their sender ran
        self._elsewhere: dict[tuple[str, str], float] = {}  # channel -> monotonic retry time
        self._slots = asyncio.Semaphore(config.max_channels)
        # Checked by the loops as well as cancelling them: Python 3.11's wait_for can swallow
        # a cancellation that arrives as the awaited event fires.
        self._stopping = False

    @property
    def lease(self) -> timedelta:
        # Longer than any attempt may take: a claim outliving its sender is only a delay.
        return timedelta(seconds=self.config.send_timeout_seconds * 2 + 30)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="notice-deliverer")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, flush_timeout: float) -> None:
        """Send what is due for up to ``flush_timeout`` s, then stop (the rest stays queued
        in the table for the next start, here or in another replica)."""
        if not self.running:
            return
        if flush_timeout > 0:
            await self.idle(flush_timeout)
        self._stopping = True
        tasks = [t for t in (self._task, *self._senders.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._senders.clear()

    async def idle(self, timeout: float) -> bool:
        """Wait until no row due on this process's platforms is left; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.wake()
            if not self._senders and not await self._due_heads():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def _due_heads(self) -> list[Delivery]:
        now = db.utcnow()
        heads = await self.bot.database.run(outbox.heads, sorted(self.bot.platforms))
        return [h for h in heads if h.next_at <= now]

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                wait = await self._pass()
            except Exception:  # the database away for a moment: never end the loop
                log.exception("reading the notice outbox failed; trying again")
                wait = self.config.poll_seconds
            await self._report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            # A burst of posts wakes us once per post: read the outbox once for all of them
            # (channels being sent to pick up their new rows by themselves meanwhile).
            await asyncio.sleep(PASS_INTERVAL)

    async def _report(self) -> None:
        if self.on_pass is None or time.monotonic() - self._last_pass_report < 1:
            return
        self._last_pass_report = time.monotonic()
        try:
            await self.on_pass()
        except Exception:
            log.warning("reading the outbox's size failed", exc_info=True)

    async def _pass(self) -> float:
        """Start a sender for every channel whose head is due; returns how long to sleep."""
        heads = await self.bot.database.run(outbox.heads, sorted(self.bot.platforms))
        now, clock = db.utcnow(), time.monotonic()
        wait = self.config.poll_seconds
        for head in heads:
            channel = head.channel
            if channel in self._senders or self._elsewhere.get(channel, 0) > clock:
                continue
            if head.next_at > now:
                wait = min(wait, (head.next_at - now).total_seconds())
                continue
            self._start_sender(channel)
        return max(wait, 0.01)

    def kick(self, channels: list[tuple[str, str]]) -> None:
        """New rows for these channels (post/update here): send them now, without reading the
        whole outbox (a burst of posts would otherwise cost one full read each)."""
        if not self.running:
            return
        for channel in channels:
            if channel in self._senders:
                self._again.add(channel)  # the sender may be past its last read: once more
            elif channel[0] in self.bot.platforms:
                self._start_sender(channel)

    def _start_sender(self, channel: tuple[str, str]) -> None:
        self._senders[channel] = asyncio.create_task(self._send_channel(channel),
                                                     name=f"notices:{channel[0]}")

    async def _send_channel(self, channel: tuple[str, str]) -> None:
        waits = False
        try:
            async with self._slots:
                while not self._stopping:
                    self._again.discard(channel)
                    state = await self._batch(*channel)
                    if state == WAIT:
                        waits = True
                        break
                    if state == EMPTY and channel not in self._again:
                        break
        except Exception:
            waits = True
            log.exception("sending notices to %s:%s failed", *channel)
        finally:
            self._senders.pop(channel, None)
            if waits:  # the loop works out when the channel's head is due
                self.wake()

    # ------------------------------------------------------------------ rows

    async def _batch(self, platform_name: str, channel_id: str) -> str:
        """Claim the channel's next due rows, send them in order, record what happened (two
        transactions per batch, not per row): MORE, EMPTY, or WAIT (a row must wait)."""
        database = self.bot.database
        platform = self.bot.platforms.get(platform_name)
        if platform is None:  # the adapter stopped: its rows wait for the next start
            return WAIT
        attempts = await database.run(outbox.begin, platform_name, channel_id,
                                      self.bot.claims.owner, self.lease, BATCH)
        if attempts is None:
            self._elsewhere[(platform_name, channel_id)] = (time.monotonic()
                                                            + BUSY_ELSEWHERE_SECONDS)
            return WAIT
        if not attempts:
            return EMPTY
        results: list[Result] = []
        posts: dict[str, Result] = {}  # step 0 sent in this batch: its updates follow it
        for attempt in attempts:
            row = attempt.row
            if results and results[-1].status == RETRY:  # order: the rest waits behind it
                results.append(Result(row, "untried", next_at=results[-1].next_at))
                continue
            post = posts.get(row.notice_key)
            if row.step > 0 and post is not None:
                attempt = replace(attempt, root_id=post.message_id, root_status=post.status)
            results.append(await self._attempt(platform, attempt))
            if row.step == 0:
                posts[row.notice_key] = results[-1]
        await database.run(outbox.record, results)
        self._count(results)
        return WAIT if results[-1].status in (RETRY, "untried") else MORE

    async def _attempt(self, platform: Platform, attempt: Attempt) -> Result:
        row = attempt.row
        if row.step > 0 and attempt.root_status != outbox.SENT:
            return self._failed(row, "the notice's first message was not delivered")
        try:
            ref = await asyncio.wait_for(self._send(platform, attempt),
                                         self.config.send_timeout_seconds)
        except DeliveryError as exc:
            return self._failed(row, f"refused: {exc}")
        except RateLimited as exc:
            delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
            return self._retry(row, f"rate limited (retry after {delay:g} s)", delay)
        except TimeoutError:
            return self._retry(row, f"no answer within {self.config.send_timeout_seconds:g} s",
                               self._backoff(attempt))
        except Exception as exc:  # TransientError and anything unexpected: try again later
            if attempt.attempt == 0 and not isinstance(exc, TransientError):
                log.warning("notice %s to %s:%s failed", row.tag, *row.channel, exc_info=exc)
            return self._retry(row, f"{type(exc).__name__}: {exc}", self._backoff(attempt))
        return Result(row, outbox.SENT, message_id=ref.message_id if ref else None)

    async def _send(self, platform: Platform, attempt: Attempt) -> MessageRef | None:
        row = attempt.row
        thread_id = attempt.root_id if row.kind == THREAD else None
        if attempt.attempt > 0 and row.kind in (POST, THREAD):
            # Sent before a crash (or a timeout that was not one)? Then record, do not repost.
            found = await platform.find_tagged(row.channel_id, row.tag, thread_id=thread_id)
            if found is not None:
                return found
        reply = replyjson.load(row.reply)
        if row.kind != THREAD and attempt.mention:
            persons = mentions.people(attempt.mention, self.bot.gate, self.bot.directory)
            reply = replace(reply, mentions=mentions.render(persons, platform))
        if row.kind == outbox.UPDATE:
            assert attempt.root_id is not None
            await platform.update(MessageRef(row.platform, row.channel_id, attempt.root_id),
                                  reply)
            return None
        return await platform.post(row.channel_id, reply, thread_id=thread_id, tag=row.tag)

    def _backoff(self, attempt: Attempt) -> float:
        base = self.config.retry_min_seconds * 2 ** min(attempt.attempt, 30)
        return min(self.config.retry_max_seconds, base) * random.uniform(0.8, 1.0)

    def _retry(self, row: Delivery, error: str, delay: float) -> Result:
        now = db.utcnow()
        if now - row.created_at >= timedelta(hours=self.config.fail_after_hours):
            return self._failed(row, f"gave up after {self.config.fail_after_hours:g} h: {error}")
        return Result(row, RETRY, error=error, next_at=now + timedelta(seconds=delay))

    def _failed(self, row: Delivery, error: str) -> Result:
        log.error("notice %s to %s:%s failed for good: %s", row.tag, row.platform,
                  row.channel_id, error)
        return Result(row, outbox.FAILED, error=error)

    def _count(self, results: list[Result]) -> None:
        metrics = self.bot.metrics
        for result in results:
            if result.status == outbox.SENT:
                metrics.notices_delivered.labels(platform=result.row.platform).inc()
            elif result.status == outbox.FAILED:
                metrics.notices_failed.labels(platform=result.row.platform).inc()
        self.on_change()
