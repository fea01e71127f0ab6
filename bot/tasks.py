"""Background tasks that are kept (asyncio holds only weak references), logged when they fail,
and waited for, then cancelled, at shutdown; and deadlines for awaiting in the current task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    def __init__(self, owner: str) -> None:
        self.owner = owner  # named in failure logs: "Slack adapter", "Mattermost adapter", ...
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.adopt(task)
        return task

    def adopt(self, task: asyncio.Future[Any]) -> None:
        """Keep a task started elsewhere until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else "task"
            log.error("%s: background %s failed", self.owner, name, exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float) -> None:
        """Let running tasks finish within ``timeout`` (they are not cancelled)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout``, then cancel what is still running."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def with_deadline(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable`` within ``seconds`` (TimeoutError otherwise), in the current task.

    The deadline is armed only if the coroutine suspends: most commands (help, whoami, why)
    answer without awaiting anything, and ``asyncio.timeout()`` cost more than their handler.
    Synchronous code cannot be interrupted by a deadline anyway, so nothing is lost.
    """
    if not isinstance(awaitable, Coroutine):
        async with asyncio.timeout(seconds):
            return await awaitable
    try:
        pending = awaitable.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    try:
        async with asyncio.timeout(seconds):
            return await _Resumed(awaitable, pending)
    finally:
        awaitable.close()  # a no-op once it finished; stops it if entering the deadline failed


class _Resumed(Generic[T]):
    """Awaiting it drives a coroutine that already ran up to its first suspension, exactly as
    ``await`` would have (what it yields goes to the task; sends and throws come back)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, T], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, T]:
        coro, value = self._coro, self._pending
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation (the deadline) and close() included
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return cast(T, done.value)
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return cast(T, done.value)
