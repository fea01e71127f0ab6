"""Feature hooks: what a handler module declares besides commands (metadata only).

Next to ``@command`` (``bot/commands.py`` re-exports these), a handler module may declare:

- ``@every(seconds, jitter=0.1, deadline=None, name=None)`` on ``async def job(bot)``: a periodic
  job (``bot/jobs.py`` runs it: never overlapping itself, each run within its deadline, each
  scheduled instant claimed in the database so two bot processes run it once);
- ``@route("POST", "/webhooks/sentry")`` on ``async def handler(bot, request)``: an HTTP route on
  the bot's server (mounted only when the server runs: ``shiftbot run``, not the console);
- ``@on_thread_reply("meetings")`` on ``async def on_reply(ctx: ThreadContext)``: every human
  reply in a thread of a notice posted with ``owner="meetings"`` (``bot/threads.py``).

Like commands, nothing is registered at import time: ``bot/registry.py`` collects the
declarations of the loaded handler modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.reply import Reply

if TYPE_CHECKING:
    from aiohttp import web

    from bot.core import Bot
    from bot.identity import Caller

JobFunc = Callable[["Bot"], Awaitable[None]]
RouteFunc = Callable[["Bot", "web.Request"], Awaitable["web.StreamResponse"]]
ThreadHook = Callable[["ThreadContext"], Awaitable[Reply | None]]

_JOB = "__shiftbot_job__"
_ROUTES = "__shiftbot_routes__"
_THREAD = "__shiftbot_thread_owner__"


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str  # "<module>.<function>" unless given; part of every run's claim key
    seconds: float  # the period; runs are scheduled on a grid of it (floor(now / N) * N)
    func: JobFunc
    jitter: float = 0.1  # a run starts up to jitter * seconds after its instant (spread load)
    deadline: float | None = None  # a run still going after this is cancelled (default: N)

    @property
    def run_deadline(self) -> float:
        # Never longer than the period: a run cut at its deadline cannot overlap the next one.
        return min(self.deadline or self.seconds, self.seconds)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    func: RouteFunc


@dataclass(frozen=True, slots=True)
class ThreadContext:
    """A person's reply in a thread a feature owns."""

    bot: Bot
    caller: Caller  # who wrote it (an unknown person too: the hook decides what it accepts)
    text: str
    owner: str  # the feature that owns the thread (the notice's ``owner``)
    notice_key: str  # the notice whose message opened the thread
    platform: str
    channel_id: str
    thread_id: str  # the thread's root message id on that platform


def every(seconds: float, *, jitter: float = 0.1, deadline: float | None = None,
          name: str | None = None) -> Callable[[JobFunc], JobFunc]:
    """Run ``async def job(bot)`` every ``seconds`` (see :class:`JobSpec`)."""
    if seconds <= 0 or not 0 <= jitter < 1:
        raise ValueError("every(seconds > 0, jitter in [0, 1))")
    if deadline is not None and deadline <= 0:
        raise ValueError("a job's deadline must be > 0 s")

    def attach(func: JobFunc) -> JobFunc:
        short = func.__module__.rpartition(".")[2]
        spec = JobSpec(name or f"{short}.{func.__name__}", float(seconds), func, jitter,
                       deadline)
        setattr(func, _JOB, spec)
        return func

    return attach


def route(method: str, path: str) -> Callable[[RouteFunc], RouteFunc]:
    """Serve ``async def handler(bot, request) -> web.StreamResponse`` at ``method path``."""
    if not path.startswith("/"):
        raise ValueError(f"a route path starts with '/': {path!r}")

    def attach(func: RouteFunc) -> RouteFunc:
        routes: list[RouteSpec] = getattr(func, _ROUTES, [])
        routes.append(RouteSpec(method.upper(), path, func))
        setattr(func, _ROUTES, routes)
        return func

    return attach


def on_thread_reply(owner: str) -> Callable[[ThreadHook], ThreadHook]:
    """Receive the human replies in threads of notices posted with ``owner=owner``."""
    if not owner:
        raise ValueError("on_thread_reply needs an owner name")

    def attach(func: ThreadHook) -> ThreadHook:
        setattr(func, _THREAD, owner)
        return func

    return attach


def job_of(value: Any) -> JobSpec | None:
    return getattr(value, _JOB, None)


def routes_of(value: Any) -> list[RouteSpec]:
    return list(getattr(value, _ROUTES, ()))


def thread_owner_of(value: Any) -> str | None:
    return getattr(value, _THREAD, None)
