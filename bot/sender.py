"""One outbound sender per adapter: a queue per channel, order kept, nothing dropped.

Adapters give it a coroutine that performs one post and raises :class:`RateLimited` (the
platform said 429, with its ``Retry-After``) or :class:`TransientError` (5xx, timeout, dropped
connection). The sender retries those from the head of the channel's queue, so later messages
never overtake an earlier one, and other channels keep flowing meanwhile. Anything else is a
permanent failure: logged, counted, and reported to the waiting caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimited(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(f"rate limited (retry after {retry_after} s)")
        self.retry_after = retry_after


class TransientError(Exception):
    """A failure worth retrying: 5xx, timeout, connection reset."""


@dataclass
class _Item(Generic[T]):
    payload: Any
    future: asyncio.Future[T]
    attempts: int = 0


@dataclass
class SenderStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0


@dataclass
class ChannelSender(Generic[T]):
    """``await sender.send(channel, payload)``: what ``post`` returned; in order per channel."""

    post: Callable[[str, Any], Awaitable[T]]
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    idle_seconds: float = 60.0  # a channel's worker ends after this long with nothing to send
    stats: SenderStats = field(default_factory=SenderStats)
    _queues: dict[str, asyncio.Queue[_Item[T]]] = field(default_factory=dict)
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _unfinished: int = 0

    def send_nowait(self, channel: str, payload: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._unfinished += 1
        future.add_done_callback(self._one_finished)
        queue = self._queues.setdefault(channel, asyncio.Queue())
        queue.put_nowait(_Item(payload, future))
        worker = self._workers.get(channel)
        if worker is None or worker.done():
            self._workers[channel] = asyncio.create_task(
                self._drain(channel, queue), name=f"sender:{channel}"
            )
        return future

    def _one_finished(self, _future: asyncio.Future[T]) -> None:
        self._unfinished -= 1

    async def send(self, channel: str, payload: Any) -> T:
        return await self.send_nowait(channel, payload)

    def pending(self) -> int:
        """Messages queued or being delivered (retries included)."""
        return self._unfinished

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued message is sent or failed (clean shutdown)."""
        async with asyncio.timeout(timeout):
            while self._unfinished:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    async def _drain(self, channel: str, queue: asyncio.Queue[_Item[T]]) -> None:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=self.idle_seconds)
            except TimeoutError:
                if queue.empty():
                    return
                continue
            await self._deliver(channel, item)

    async def _deliver(self, channel: str, item: _Item[T]) -> None:
        while True:
            item.attempts += 1
            try:
                result = await self.post(channel, item.payload)
            except RateLimited as exc:
                self.stats.rate_limited += 1
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(item)
            except TransientError as exc:
                if item.attempts >= self.max_attempts:
                    self._fail(channel, item, exc)
                    return
                delay = self._backoff(item)
                log.warning("post to %s failed (%s); retry %d in %.1f s",
                            channel, exc, item.attempts, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # permanent: channel_not_found, invalid_auth, ...
                self._fail(channel, item, exc)
                return
            else:
                self.stats.sent += 1
                if not item.future.done():
                    item.future.set_result(result)
                return
            self.stats.retried += 1
            await asyncio.sleep(delay)

    def _backoff(self, item: _Item[T]) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (item.attempts - 1))
        return delay * random.uniform(0.5, 1.0)

    def _fail(self, channel: str, item: _Item[T], exc: BaseException) -> None:
        self.stats.failed += 1
        log.error("giving up on a post to %s after %d attempts: %s", channel, item.attempts, exc)
        if not item.future.done():
            item.future.set_exception(exc)
