"""``shiftbot run``: adapters, HTTP server and scheduler in one asyncio process (the order of
starting and stopping them is bot/lifecycle.py's)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
from typing import Any

from bot.config import Config
from bot.core import Bot
from bot.health import ComponentState
from bot.http import HttpServer
from bot.lifecycle import Lifecycle
from bot.observability import init_sentry

log = logging.getLogger(__name__)

# platform -> "module:Class"; the class is built as Class(bot, section) and has start()/stop().
ADAPTERS = {
    "slack": "bot.adapters.slack:SlackAdapter",
    "mattermost": "bot.adapters.mattermost:MattermostAdapter",
}


class StartupError(Exception):
    """Something the operator must fix before the bot can run; the message is one line, with
    the key path when there is one (the CLI prints it instead of a traceback)."""


def settle_gc() -> None:
    """Call once started. Everything allocated so far lives as long as the process: keep the
    collector from rescanning it (full collections then stay short), and collect young objects
    less often (bursts of commands allocate many short-lived dicts; this cut the Slack
    benchmark's p99 by about a quarter)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def build_adapters(bot: Bot) -> list[Any]:
    adapters = []
    for platform, target in ADAPTERS.items():
        section = getattr(bot.config, platform)
        if section is None or not section.enabled:
            continue
        module_name, _, class_name = target.partition(":")
        adapter_class = getattr(importlib.import_module(module_name), class_name)
        adapter = adapter_class(bot, section)
        bot.adapters[platform] = adapter
        adapters.append(adapter)
    return adapters


def attach_http(bot: Bot, host: str | None = None, port: int | None = None) -> HttpServer:
    """Give the bot its HTTP server (adapters mount routes on it) with the database probe."""
    section = bot.config.bot.http
    http = HttpServer(bot.health, bot.metrics,
                      host if host is not None else section.host,
                      port if port is not None else section.port,
                      header_timeout=section.header_timeout_seconds,
                      body_timeout=section.body_timeout_seconds)

    async def database_probe() -> ComponentState:
        try:
            await asyncio.wait_for(bot.database.ping(), 1.5)
        except Exception as exc:
            return ComponentState(False, f"database unreachable: {type(exc).__name__}")
        return ComponentState(True, bot.database.dialect)

    bot.health.register("database", database_probe)
    bot.http = http
    from bot.readiness import attach_readiness  # /readyz and the operations gauges

    attach_readiness(bot, http)
    return http


async def _listen(http: HttpServer) -> None:
    try:
        await http.start()
    except OSError as exc:  # the port is taken, or the address is not this host's
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text repeats
        raise StartupError(f"bot.http.port: cannot listen on {http.host}:{http.port}: "
                           f"{reason} (another shiftbot or service has it? choose another "
                           "port, or bot.http.host)") from None


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """``shiftbot run``: the lifecycle (bot/lifecycle.py) with the HTTP server, the scheduler
    and every enabled adapter, until SIGTERM/SIGINT (or ``stop``)."""
    init_sentry(config)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not possible outside the main thread (tests run serve() in a task).
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # One `shiftbot run` per SQLite file (bot/sqliteguard.py), decided before the migrations.
    from bot.sqliteguard import hold_run_lock

    run_lock = hold_run_lock(config.bot.database, config.source_dir)
    try:
        lifecycle = Lifecycle(config, adapters=build_adapters, listen=_listen)
        bot = await lifecycle.start()
        try:
            settle_gc()
            log.info("shiftbot running: %s", ", ".join(["http", *bot.adapters]))
            await stop.wait()
            log.info("shutting down")
        finally:
            await lifecycle.stop()
    finally:
        if run_lock is not None:
            run_lock.release()
