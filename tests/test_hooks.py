"""Feature hooks and declarations (bot/hooks.py, bot/features.py) and the one lifecycle
(bot/lifecycle.py): HTTP routes on the real server, config sections with key paths, per-feature
migrations, config checks, and the start/stop order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import feature_handlers
import pytest
from conftest import CORE_HANDLERS
from sqlalchemy import inspect, select

from bot import db
from bot.config import ConfigError
from bot.configchecks import check_references
from bot.core import Bot
from bot.db import DatabaseError
from bot.features import Migrations
from bot.lifecycle import Lifecycle
from bot.registry import Registry, RegistryError

FEATURE = {"bot": {"handlers": [*CORE_HANDLERS, "feature_handlers"],
                   "http": {"host": "127.0.0.1", "port": 0}}}


@pytest.fixture(autouse=True)
def _fresh_seen() -> None:
    for seen in feature_handlers.SEEN.values():
        seen.clear()


@pytest.fixture
async def served(make_config) -> AsyncIterator[Bot]:
    life = Lifecycle(make_config({**FEATURE, "demo": {"greeting": "hi from config"}}))
    bot = await life.start()
    yield bot
    await life.stop()


async def test_a_feature_route_is_served_by_the_bot_http_server(served: Bot) -> None:
    url = f"{served.http.url}/webhooks/demo"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"event": 1}) as response:
            assert response.status == 200
            assert await response.json() == {"greeting": "hi from config", "got": {"event": 1}}
        # The guard middleware stays in front of feature routes: junk is a 4xx, not a 500.
        async with session.post(url, data=b"{not json",
                                headers={"Content-Type": "application/json"}) as response:
            assert response.status == 400
        async with session.get(url) as response:
            assert response.status == 405
    assert feature_handlers.SEEN["webhooks"] == [{"event": 1}]


async def test_the_lifecycle_order(make_config) -> None:
    class Recorder:
        name = "recorder"

        def __init__(self, bot: Bot) -> None:
            self.bot = bot

        async def start(self) -> None:
            self.bot.platforms["recorder"] = object()  # type: ignore[assignment]

        async def stop(self) -> None:
            feature_handlers.SEEN["order"].append(("adapter stopped",))
            self.bot.platforms.pop("recorder")

    life = Lifecycle(make_config(FEATURE), adapters=lambda bot: [Recorder(bot)])
    bot = await life.start()
    assert bot.http is not None and "demo.tick" in bot.scheduler.jobs
    await life.stop()
    # startup saw the HTTP server and the running scheduler, no adapter yet; shutdown came
    # after the adapters stopped and before the scheduler did.
    assert feature_handlers.SEEN["order"] == [("startup", True, True, []),
                                              ("adapter stopped",),
                                              ("shutdown", True, [])]


async def test_the_console_lifecycle_has_no_http_server_and_no_routes(make_config) -> None:
    life = Lifecycle(make_config(FEATURE), http=False, jobs=False)
    bot = await life.start()
    try:
        assert bot.http is None and bot.scheduler.jobs == {}
    finally:
        await life.stop()


# ----------------------------------------------------------------------------- config sections


async def _problems(make_config: Any, overrides: dict[str, Any]) -> list[str]:
    try:
        await Bot.create(make_config(overrides))
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    raise AssertionError("no ConfigError")


async def test_a_feature_section_is_validated_with_key_paths(make_config) -> None:
    assert await _problems(make_config, {**FEATURE, "demo": {"limt": 2, "limit": 0}}) == [
        "demo.limit: Input should be greater than or equal to 1",
        "demo.limt: unknown key 'limt' (did you mean 'limit'?)"]


async def test_a_section_no_loaded_feature_declares_is_an_error(make_config) -> None:
    assert await _problems(make_config, {"demo": {"greeting": "x"}}) == [
        "demo: unknown key 'demo' (allowed: bot, people, groups, roles, grants, channels, "
        "slack, mattermost, condor, notices)"]
    assert await _problems(make_config, {"status": {"checks": []}}) == [
        "status: no loaded feature module declares the section 'status' (leave it empty until "
        "its feature is installed, or add its module to bot.handlers)"]


async def test_typed_sections_defaults_and_empty_placeholders(make_bot) -> None:
    bot = await make_bot({**FEATURE, "status": {}})  # a planned section, still empty: fine
    section = feature_handlers.CONFIG.of(bot.config)
    assert isinstance(section, feature_handlers.DemoConfig) and section.greeting == "hello"


def test_check_config_runs_the_feature_checks(make_config) -> None:
    config = make_config({**FEATURE, "demo": {"channel": "opz"}})
    registry = Registry().load(config.bot.handlers)
    assert "demo.channel: unknown channel alias 'opz'" in map(str, check_references(
        config, registry))


# ---------------------------------------------------------------------------------- migrations


async def test_feature_migrations_are_numbered_per_feature(make_bot, make_config) -> None:
    bot = await make_bot(FEATURE)
    columns = bot.database.call(lambda c: {x["name"] for x in inspect(c).get_columns(
        "demo_items")})
    assert columns == {"id", "name", "note"}
    rows = bot.database.call(lambda c: c.execute(select(
        db.feature_schema.c.feature, db.feature_schema.c.version)).all())
    assert [tuple(r) for r in rows] == [("demo", 1), ("demo", 2)]
    # The core's own numbering is untouched by the feature's steps 1 and 2.
    assert bot.database.call(db.current_version) == db.LATEST
    await make_bot(FEATURE)  # a restart: nothing to do, nothing fails


async def test_a_database_newer_than_a_feature_is_refused(make_bot, make_config,
                                                          monkeypatch) -> None:
    await make_bot(FEATURE)
    monkeypatch.setattr(feature_handlers, "MIGRATIONS",
                        Migrations("demo", list(feature_handlers.MIGRATIONS.steps[:1])))
    with pytest.raises(DatabaseError, match="schema version 2 of feature 'demo'"):
        await Bot.create(make_config(FEATURE))


def test_registry_refuses_clashing_declarations() -> None:
    import types

    from bot.features import ConfigSection
    from bot.hooks import on_thread_reply

    module = types.ModuleType("handlers.clash")
    module.CONFIG = ConfigSection("notices", feature_handlers.DemoConfig)
    with pytest.raises(RegistryError, match="section 'notices' is already taken"):
        Registry().add_module(module)
    registry = Registry()
    registry.add_module(feature_handlers)
    other = types.ModuleType("handlers.other")

    async def hook(ctx: Any) -> None:
        return None

    hook.__module__ = other.__name__
    other.hook = on_thread_reply("demo")(hook)
    with pytest.raises(RegistryError, match="two @on_thread_reply hooks for owner 'demo'"):
        registry.add_module(other)
