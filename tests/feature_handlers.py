"""A feature module for hook tests: a config section, migrations, a config check, a job, an HTTP
route and a thread owner, declared exactly as a real feature (handlers/<feature>.py) would."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table

from bot.commands import ThreadContext, every, on_thread_reply, route
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.reply import Reply


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "hello"
    limit: int = Field(3, ge=1)
    channel: str | None = None  # a channel alias: check_config checks it exists


CONFIG = ConfigSection("demo", DemoConfig)

_metadata = MetaData()
demo_items = Table("demo_items", _metadata, Column("id", Integer, primary_key=True),
                   Column("name", String(50), nullable=False))


def _create(conn: Connection) -> None:
    demo_items.create(conn)


def _add_column(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE demo_items ADD COLUMN note VARCHAR(50)")


MIGRATIONS = Migrations("demo", [(1, "demo items", _create), (2, "demo item notes", _add_column)])


def check_config(config: Config) -> list[Problem]:
    section = CONFIG.of(config)
    if section is not None and section.channel and section.channel not in config.channels:
        return [Problem("demo.channel", f"unknown channel alias '{section.channel}'")]
    return []


# What the hooks saw, for the tests to read.
SEEN: dict[str, list[Any]] = {"ticks": [], "replies": [], "webhooks": []}


@every(3600, name="demo.tick", jitter=0)
async def tick(bot: Any) -> None:
    SEEN["ticks"].append(bot)


@route("POST", "/webhooks/demo")
async def webhook(bot: Any, request: web.Request) -> web.StreamResponse:
    body = await request.json()
    SEEN["webhooks"].append(body)
    section = CONFIG.of(bot.config)
    return web.json_response({"greeting": section.greeting if section else None,
                              "got": body})


@on_thread_reply("demo")
async def on_reply(ctx: ThreadContext) -> Reply | None:
    SEEN["replies"].append(ctx)
    if ctx.text == "quiet":
        return None
    who = ctx.caller.person.key if ctx.caller.person else "stranger"
    return Reply(f"noted from {who}: {ctx.text}")


async def startup(bot: Any) -> None:
    # The lifecycle's promise: the HTTP server and the scheduler exist, adapters not started.
    SEEN.setdefault("order", []).append(
        ("startup", bot.http is not None, bot.scheduler is not None and bot.scheduler.running,
         sorted(bot.platforms)))


async def shutdown(bot: Any) -> None:
    SEEN.setdefault("order", []).append(
        ("shutdown", bot.scheduler is not None and bot.scheduler.running, sorted(bot.platforms)))
