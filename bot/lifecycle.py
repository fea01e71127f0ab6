"""One lifecycle for ``shiftbot run`` and the console.

Start, in this order (each step may use what the ones before it built):

1. config: the handler modules are loaded and the feature sections validated (``Bot.create``);
2. database: the core's migrations, then each feature's;
3. HTTP server (``shiftbot run`` only): ``/healthz``, ``/metrics``, the adapters' routes (they
   mount them when built) and the features' ``@route``s, then it listens;
4. scheduler: the core's jobs (request expiry, claim housekeeping) and the features' ``@every``;
5. the handler modules' ``startup(bot)`` (they may add services, role providers, listeners);
6. adapters, each adding its platform to ``bot.platforms``; then the notice deliverer.

Stop in reverse: the deliverer flushes the outbox (``notices.flush_timeout_seconds``) while the
adapters still run, then adapters, the handler modules' ``shutdown``, scheduler, HTTP server,
and last the database (``Bot.close``: audit queue flushed, executor stopped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.core import Bot
from bot.jobs import Scheduler, core_jobs

if TYPE_CHECKING:
    from bot.http import HttpServer

log = logging.getLogger(__name__)

EXPIRY_SWEEP_SECONDS = 30
ADAPTER_STOP_SECONDS = 10

AdapterFactory = Callable[[Bot], list[Any]]  # built after the HTTP server (they mount routes)
Listen = Callable[["HttpServer"], Any]


class Lifecycle:
    def __init__(self, config: Config, *, adapters: AdapterFactory = lambda bot: [],
                 http: bool = True, jobs: bool = True, listen: Listen | None = None) -> None:
        self.config = config
        self.make_adapters = adapters
        self.serve_http = http
        self.run_jobs = jobs
        self.listen = listen  # how to start listening (the runtime turns OSError into words)
        self.bot: Bot | None = None
        self.http: HttpServer | None = None
        self.scheduler: Scheduler | None = None
        self.adapters: list[Any] = []
        self._started: list[Any] = []

    async def start(self) -> Bot:
        """Steps 1 to 6; on a failure, what was started is stopped again and it re-raises."""
        bot = self.bot = await Bot.create(self.config, start_handlers=False)  # 1, 2
        try:
            await self._start_rest(bot)
        except BaseException:
            await self.stop()
            raise
        return bot

    async def _start_rest(self, bot: Bot) -> None:
        if self.serve_http:  # 3
            from bot.runtime import attach_http

            self.http = attach_http(bot)
            for spec in bot.registry.routes:
                self.http.add_route(spec.method, spec.path, _bound(bot, spec.func))
        self.adapters = self.make_adapters(bot)
        if self.http is not None:
            await (self.listen(self.http) if self.listen else self.http.start())
        self.scheduler = Scheduler(bot, core_jobs(EXPIRY_SWEEP_SECONDS)
                                   if self.run_jobs else [])
        for job in bot.registry.jobs.values() if self.run_jobs else ():
            self.scheduler.add(job)
        bot.scheduler = self.scheduler
        self.scheduler.start()  # 4
        await bot.start_handlers()  # 5
        for adapter in self.adapters:  # 6
            await adapter.start()
            self._started.append(adapter)
        await bot.notices.start()

    async def stop(self) -> None:
        """Everything :meth:`start` did, in reverse; each step's failure is logged and the
        next step still runs."""
        bot = self.bot
        if bot is None:
            return
        await _step("flushing notices", bot.notices.stop())
        for adapter in reversed(self._started):
            stop = getattr(adapter, "stop", None)  # the console has nothing to stop
            if stop is not None:
                await _step(f"stopping {getattr(adapter, 'name', adapter)}",
                            asyncio.wait_for(stop(), ADAPTER_STOP_SECONDS))
        self._started.clear()
        await _step("stopping the handler modules", bot.stop_handlers())
        if self.scheduler is not None:
            await _step("stopping the scheduler", self.scheduler.stop())
        if self.http is not None:
            await _step("stopping the HTTP server", self.http.stop())
        self.bot = None
        await bot.close()
        # Outgoing HTTP (checks, restarts, GitLab) is over once the handler modules stopped.
        from bot import httpclient

        await _step("closing the HTTP clients", httpclient.close_all())


async def _step(what: str, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s failed", what)


def _bound(bot: Bot, func: Any) -> Any:
    """A feature route ``func(bot, request)`` as the aiohttp handler ``handler(request)``."""

    async def handler(request: Any) -> Any:
        return await func(bot, request)

    handler.__name__ = getattr(func, "__name__", "feature_route")
    return handler
