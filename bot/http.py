"""The bot's HTTP server (aiohttp): ``/healthz``, ``/metrics``, and what adapters mount.

Adapters add routes before :meth:`HttpServer.start` (``/slack/events``,
``/mattermost/command``, ...). ``/healthz`` answers 200 when every component is healthy and 503
otherwise, with the per-component state as JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.health import Health
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServer:
    def __init__(self, health: Health, metrics: Metrics, host: str, port: int,
                 health_timeout: float = 2.0) -> None:
        self.health = health
        self.metrics = metrics
        self.host = host
        self.port = port
        self.health_timeout = health_timeout
        self.app = web.Application(client_max_size=1024 * 1024)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: RouteHandler) -> None:
        self.app.router.add_route(method, path, handler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("HTTP server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            states = await asyncio.wait_for(self.health.snapshot(), self.health_timeout)
        except TimeoutError:
            return web.json_response({"status": "unhealthy", "error": "health probes timed out"},
                                     status=503)
        healthy = all(s.ok for s in states.values())
        for name, state in states.items():
            self.metrics.component_up.labels(component=name).set(1 if state.ok else 0)
        body = {
            "status": "ok" if healthy else "unhealthy",
            "components": {n: {"ok": s.ok, "detail": s.detail, "since": s.since}
                           for n, s in sorted(states.items())},
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
