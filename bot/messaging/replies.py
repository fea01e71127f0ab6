"""What every chat adapter does the same way when it answers a command.

Small, platform-neutral helpers (no Slack or Mattermost here): the "working on it" wording,
waiting for a command within the ack budget without cancelling it, and the throttle that keeps
``ctx.progress()`` notes to one per interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bot.commands import CommandSpec
from bot.reply import Reply, Visibility

PROGRESS_INTERVAL = 10.0  # at most one progress note per this many seconds


def working_reply(spec: CommandSpec | None) -> Reply:
    """The private note shown when a command's answer will follow later."""
    what = f"`{spec.words}`" if spec is not None else "that"
    return Reply(text=f"Working on {what}; the answer follows here.",
                 visibility=Visibility.EPHEMERAL)


def progress_reply(text: str) -> Reply:
    """A ``ctx.progress()`` note, shown in italics to the caller only."""
    return Reply(text=f"_{text}_")


class Throttle:
    """Allows one event per ``interval`` seconds (progress notes)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last: float | None = None

    def allow(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return False
        self.last = now
        return True


async def done_or_timeout(task: asyncio.Task[Any], timeout: float) -> None:
    """Wait until ``task`` is done or ``timeout`` passed (the task is never cancelled).

    A cheaper ``asyncio.wait({task}, timeout=...)``: it runs on every slash command.
    """
    if task.done():
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
