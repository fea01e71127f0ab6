"""The deliverer: one background task per bot that sends what the outbox holds.

Each pass reads the oldest pending row of every channel on the platforms this process has
(``bot.platforms``); a channel whose head is due gets a sender task that sends rows in id
order until the channel is empty or its head must wait (a retry later). So order is kept per
channel (row N+1 never before N is sent or failed) while channels flow side by side.

A channel is sent to by one process at a time: its sender holds the channel's lease
(``notices:<platform>:<channel>`` in the claims table), taken in the transaction that claims
the channel's due rows and counts their attempts. Each later transaction records a batch's
results and claims the next rows under the same lease (renewed as it runs low); the lease is
given back when nothing is due. A row is only handed to the platform while the lease has
room for a whole attempt (``send_timeout_seconds`` and a margin), so a lease that runs out
(a stuck process, a crash) never lets two processes send one row. A crash after the count
leaves ``attempts > 0``, so the next try asks the platform for the tagged message
(``find_tagged``) before posting again. Failures: ``RateLimited`` waits Retry-After;
``TransientError``, timeouts and anything unexpected back off exponentially (capped); past
``fail_after_hours`` the row is failed, counted and logged; ``DeliveryError`` fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import db
from bot.messaging import mentions, outbox, replyjson
from bot.messaging.outbox import POST, THREAD, UNTRIED, Attempt, Claimed, Delivery, Result
from bot.messaging.port import DeliveryError, MessageRef, Platform, RateLimited, TransientError

if TYPE_CHECKING:
    from bot.config import NoticesConfig
    from bot.core import Bot

log = logging.getLogger(__name__)

BUSY_ELSEWHERE_SECONDS = 1.0  # a channel another replica is sending to: look again after this
PASS_INTERVAL = 0.01  # seconds between two reads of the whole outbox
BATCH = 20  # rows of one channel claimed (and recorded) in one transaction
# A row is sent only while the channel's lease outlasts the attempt by this much: room for
# the transaction that records it, a slow loop, clocks of two hosts a little apart.
LEASE_MARGIN_SECONDS = 5.0
RETRY = "retry"


@dataclass
class _Lane:
    """A channel whose lease this process holds: rows claimed and not sent yet, results not
    recorded yet, and at most one transaction in flight that records and claims ahead."""

    platform: str
    channel_id: str
    queue: deque[Attempt] = field(default_factory=deque)
    done: list[Result] = field(default_factory=list)
    until: datetime | None = None  # the lease's end
    last_id: int = 0  # the last row claimed: the next claim starts after it
    full: bool = False  # the last claim filled a batch: more rows may be due
    ahead: asyncio.Task[Claimed | None] | None = None
    ahead_releases: bool = False  # ...and gives the lease back if it finds nothing
    posts: dict[str, Result] = field(default_factory=dict)  # step 0s sent: updates follow

    def take(self, claimed: Claimed) -> None:
        self.queue.extend(claimed.attempts)
        self.full = len(claimed.attempts) >= BATCH
        if claimed.attempts:
            self.last_id = claimed.attempts[-1].row.id
        if claimed.until is not None:
            self.until = claimed.until


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
                waits = await self._drain(*channel)
        except Exception:
            waits = True
            log.exception("sending notices to %s:%s failed", *channel)
        finally:
            self._senders.pop(channel, None)
            if waits:  # the loop works out when the channel's head is due
                self.wake()

    async def _drain(self, platform_name: str, channel_id: str) -> bool:
        """Hold the channel's lease while it has due rows and send them; True when a row is
        left waiting (a retry later, another process's lease, the platform gone)."""
        channel = (platform_name, channel_id)
        while not self._stopping:
            self._again.discard(channel)  # rows posted before the claim below: it sees them
            claimed = await self.bot.database.run(outbox.begin, platform_name, channel_id,
                                                  self.bot.claims.owner, self.lease, BATCH)
            if claimed is None:
                self._elsewhere[channel] = time.monotonic() + BUSY_ELSEWHERE_SECONDS
                return True
            lane = _Lane(platform_name, channel_id)
            lane.take(claimed)
            try:
                waits = await self._send_lane(lane)
            finally:
                if lane.ahead is not None and not lane.ahead.done():
                    lane.ahead.cancel()  # stopping: its transaction ends on its own
            if waits or channel not in self._again:
                return waits
        return False

    async def _send_lane(self, lane: _Lane) -> bool:
        """Send the lane's rows in order. Once the last claimed row is being sent, the next
        rows (if more were posted) are claimed meanwhile, in the transaction that records
        the rows sent so far: the database is then off the path from one send to the next."""
        channel = (lane.platform, lane.channel_id)
        while lane.queue and not self._stopping:
            platform = self.bot.platforms.get(lane.platform)
            if platform is None:  # the adapter stopped: its rows wait for the next start
                await self._give_back(lane, db.utcnow())
                return True
            if len(lane.queue) == 1 and lane.ahead is None and (
                    lane.full or channel in self._again):
                self._claim_ahead(lane, release_if_none=False)
            result = await self._next(platform, lane)
            lane.done.append(result)
            if result.status in (RETRY, UNTRIED):  # order: everything behind it waits too
                await self._give_back(lane, result.next_at or db.utcnow())
                return True
            if not lane.queue and not await self._refill(lane):
                return True
        return False

    async def _refill(self, lane: _Lane) -> bool:
        """The lane's queue ran empty: take the rows claimed ahead, or claim (recording what
        was sent; the lease is given back when nothing is due). False when the lease was lost."""
        while True:
            if lane.ahead is None:
                self._claim_ahead(lane, release_if_none=True)
            assert lane.ahead is not None
            last_try = lane.ahead_releases
            claimed = await lane.ahead
            lane.ahead = None
            if claimed is None:
                self._elsewhere[(lane.platform, lane.channel_id)] = (
                    time.monotonic() + BUSY_ELSEWHERE_SECONDS)
                return False
            lane.take(claimed)
            if lane.queue or last_try:
                return True
            # Claimed ahead while a row was on its way, and nothing more: record that row.

    def _claim_ahead(self, lane: _Lane, *, release_if_none: bool) -> None:
        self._again.discard((lane.platform, lane.channel_id))
        done, lane.done = lane.done, []
        assert lane.until is not None
        lane.ahead_releases = release_if_none
        lane.ahead = asyncio.create_task(self.bot.database.run(
            outbox.finish, done, lane.platform, lane.channel_id, self.bot.claims.owner,
            self.lease, lane.until, BATCH, lane.last_id, release_if_none))
        lane.ahead.add_done_callback(
            lambda task: None if task.cancelled() or task.exception() else self._count(done))

    async def _give_back(self, lane: _Lane, next_at: datetime) -> None:
        """Record what was sent, hand every other claimed row back (due at ``next_at``, its
        attempt not counted) and release the lease."""
        rest = [Result(a.row, UNTRIED, next_at=next_at) for a in lane.queue]
        lane.queue.clear()
        if lane.ahead is not None:
            claimed = await lane.ahead
            lane.ahead = None
            rest += [Result(a.row, UNTRIED, next_at=next_at)
                     for a in (claimed.attempts if claimed else [])]
        done = lane.done
        await self.bot.database.run(outbox.release, done + rest, lane.platform,
                                    lane.channel_id, self.bot.claims.owner)
        self._count(done)

    # ------------------------------------------------------------------ rows

    async def _next(self, platform: Platform, lane: _Lane) -> Result:
        """Send the lane's next row (unless the lease might run out during the attempt)."""
        attempt = lane.queue.popleft()
        row = attempt.row
        assert lane.until is not None
        room = lane.until - db.utcnow()
        if room < timedelta(seconds=self.config.send_timeout_seconds + LEASE_MARGIN_SECONDS):
            return Result(row, UNTRIED, next_at=db.utcnow())  # claimed afresh right away
        post = lane.posts.get(row.notice_key)
        if row.step > 0 and post is not None:  # its post was sent in this lane
            attempt = replace(attempt, root_id=post.message_id, root_status=post.status)
        result = await self._attempt(platform, attempt)
        if row.step == 0:
            lane.posts[row.notice_key] = result
        return result

    async def _attempt(self, platform: Platform, attempt: Attempt) -> Result:
        row = attempt.row
        if row.step > 0 and attempt.root_status != outbox.SENT:
            return self._failed(row, "the notice's first message was not delivered")
        try:
            async with asyncio.timeout(self.config.send_timeout_seconds):  # no extra task
                ref = await self._send(platform, attempt)
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
        # A post (and its updates) mentions the notice's names; a thread reply its own.
        names = replyjson.mention_of(row.reply) if row.kind == THREAD else attempt.mention
        if names:
            persons = mentions.people(names, self.bot.gate, self.bot.directory)
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
