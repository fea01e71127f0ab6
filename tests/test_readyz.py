"""``/readyz`` (bot/readiness.py) over real sockets, against ``/healthz``: the database reachable
(hanging, failing, cut off behind a proxy on a real PostgreSQL), the schema current (core and
features, newer and older), every enabled platform connected, the outbox not stuck."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import BASE, deep_merge
from sqlalchemy import insert, update

from bot import db
from bot.core import Bot
from bot.health import ComponentState
from bot.http import HttpServer
from bot.readiness import Readiness, attach_readiness
from bot.runtime import attach_http

Serve = Callable[..., Awaitable[tuple[Bot, HttpServer]]]


@pytest.fixture
async def serve(make_bot: Any) -> AsyncIterator[Serve]:
    servers: list[HttpServer] = []

    async def factory(overrides: dict[str, Any] | None = None, **kwargs: Any
                      ) -> tuple[Bot, HttpServer]:
        bot = await make_bot(overrides, **kwargs)
        http = attach_http(bot, "127.0.0.1", 0)
        attach_readiness(bot, http)  # the runtime's attach_http is to call it too
        await http.start()
        servers.append(http)
        return bot, http

    yield factory
    for http in servers:
        await http.stop()


async def get(http: HttpServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
        return await client.get(path)


async def test_ready_when_everything_is(serve: Serve) -> None:
    _, http = await serve()
    answer = await get(http, "/readyz")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == {"database", "migrations", "outbox"}
    assert body["components"]["database"]["reason"].startswith("sqlite answered in")
    assert all(c["ready"] for c in body["components"].values())


async def test_not_wired_is_not_ready(make_bot: Any) -> None:
    """A server nobody gave the bot to (bot.readiness.attach_readiness) is never ready."""
    bot = await make_bot()
    http = HttpServer(bot.health, bot.metrics, "127.0.0.1", 0)
    await http.start()
    try:
        answer = await get(http, "/readyz")
    finally:
        await http.stop()
    assert answer.status_code == 503
    assert answer.json()["components"]["readiness"]["ready"] is False


@pytest.mark.parametrize("failure", ["hangs", "raises"])
async def test_database_down_is_not_ready_but_alive(serve: Serve, failure: str) -> None:
    """A database that hangs or refuses: /readyz 503 within its deadline; /healthz stays 200
    (restarting the process cures neither); a hanging query is not asked again meanwhile."""
    bot, http = await serve()
    calls: list[int] = []
    gate = asyncio.Event()

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        calls.append(1)
        if failure == "hangs":
            await gate.wait()
        raise ConnectionRefusedError("connection refused by 127.0.0.1:5432")

    real_run = bot.database.run
    bot.database.run = broken  # type: ignore[method-assign]
    http.readiness = Readiness(bot, database_deadline=0.3)
    try:
        started = asyncio.get_running_loop().time()
        answer = await get(http, "/readyz")
        assert asyncio.get_running_loop().time() - started < 2.5
        assert answer.status_code == 503
        components = answer.json()["components"]
        assert components["database"]["ready"] is False
        expected = "no answer within 0.3 s" if failure == "hangs" else "connection refused"
        assert expected in components["database"]["reason"]
        assert components["migrations"]["ready"] is False
        assert components["outbox"]["reason"] == "not checked: the database is not ready"
        live = await get(http, "/healthz")
        assert live.status_code == 200, live.json()
        assert live.json()["components"]["database"] == {
            **live.json()["components"]["database"], "ok": False, "readiness_only": True}
        before = len(calls)
        again = await get(http, "/readyz")
        assert again.status_code == 503
        if failure == "hangs":  # the same query still hangs: not a second one behind it
            assert len(calls) == before
            assert "previous query has had no answer" in \
                again.json()["components"]["database"]["reason"]
    finally:
        gate.set()
        bot.database.run = real_run  # type: ignore[method-assign]
    assert (await get(http, "/readyz")).status_code == 200


@pytest.mark.parametrize("who", ["core", "feature"])
@pytest.mark.parametrize("direction", [1, -1])
async def test_schema_not_the_code_s_is_not_ready(serve: Serve, who: str, direction: int
                                                  ) -> None:
    """Another replica upgraded the database (newer), or it was restored (older)."""
    bot, http = await serve({"bot": {"handlers": [*BASE["bot"]["handlers"], "handlers.status"]}})
    feature = next(m for m in bot.registry.migrations if m.feature == "status")

    def change(conn: Any) -> None:
        if who == "core" and direction > 0:
            conn.execute(insert(db.schema_version).values(
                version=db.LATEST + 1, description="from the future", applied_at=db.utcnow()))
        elif who == "core":
            conn.execute(db.schema_version.delete().where(
                db.schema_version.c.version == db.LATEST))
        elif direction > 0:
            conn.execute(insert(db.feature_schema).values(
                feature="status", version=feature.latest + 1, description="future",
                applied_at=db.utcnow()))
        else:
            conn.execute(db.feature_schema.delete().where(
                db.feature_schema.c.feature == "status",
                db.feature_schema.c.version == feature.latest))

    await bot.database.run(change)
    answer = await get(http, "/readyz")
    assert answer.status_code == 503
    reason = answer.json()["components"]["migrations"]["reason"]
    assert ("core" if who == "core" else "feature status") in reason
    assert ("newer than" if direction > 0 else "older than") in reason
    assert answer.json()["components"]["database"]["ready"] is True
    assert (await get(http, "/healthz")).status_code == 200


async def test_every_enabled_platform_must_be_connected(serve: Serve) -> None:
    overrides = {"slack": {"bot_token": "xoxb-1", "app_token": "xapp-1"},
                 "mattermost": {"url": "http://127.0.0.1:9", "token": "t", "team": "x",
                                "enabled": False}}
    bot, http = await serve(overrides)
    body = (await get(http, "/readyz")).json()
    assert body["components"]["slack"] == {"ready": False, "reason": "slack: not started"}
    assert "mattermost" not in body["components"]  # disabled: not required
    state = {"ok": True}

    async def probe() -> ComponentState:
        return ComponentState(state["ok"], "socket connected" if state["ok"] else "no socket")

    bot.health.register("slack", probe)
    assert (await get(http, "/readyz")).status_code == 200
    state["ok"] = False
    answer = await get(http, "/readyz")
    assert answer.status_code == 503
    assert answer.json()["components"]["slack"] == {"ready": False, "reason": "no socket"}


async def test_stuck_outbox_is_not_ready(serve: Serve) -> None:
    bot, http = await serve({"notices": {"unhealthy_after_seconds": 60}})
    from bot.messaging import outbox

    await bot.database.run(outbox.insert_notice, "k", ["ops"], [], None, "{}",
                           [("slack", "C1")])
    assert (await get(http, "/readyz")).status_code == 200  # waiting, not yet stuck

    def age(conn: Any) -> None:
        old = db.utcnow().replace(year=db.utcnow().year - 1)
        conn.execute(update(db.notice_deliveries).values(created_at=old, next_at=old))

    await bot.database.run(age)
    answer = await get(http, "/readyz")
    assert answer.status_code == 503
    outbox_verdict = answer.json()["components"]["outbox"]
    assert outbox_verdict["ready"] is False and "limit 60 s" in outbox_verdict["reason"]


# ------------------------------------------------------------- a real PostgreSQL, cut off


class CuttableProxy:
    """TCP on loopback between the bot and PostgreSQL; ``cut()`` stops forwarding (packets
    dropped, as by a firewall or a dead network), ``mend()`` closes what was held."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.cut_off = False
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.held.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.cut_off:
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> None:
        self.cut_off = True

    def mend(self) -> None:
        self.cut_off = False
        for writer in self.held:  # what was held is lost: the driver sees it closed
            writer.close()
        self.held.clear()

    async def stop(self) -> None:
        self.mend()
        if self.server is not None:
            self.server.close()


async def test_replica_cut_off_from_postgresql_is_not_ready(serve: Serve) -> None:
    from postgres import temporary_postgres

    with temporary_postgres() as url:
        if url is None:
            pytest.skip("no PostgreSQL server could be started (Debian's postgresql package)")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        proxy = CuttableProxy(port)
        proxied = url.replace(f":{port}/", f":{await proxy.start()}/")
        try:
            bot, http = await serve(deep_merge({}, {"bot": {"database": proxied}}))
            http.readiness = Readiness(bot, database_deadline=0.5)
            assert (await get(http, "/readyz")).status_code == 200
            proxy.cut()
            answer = await get(http, "/readyz")
            assert answer.status_code == 503
            assert answer.json()["components"]["database"]["reason"].startswith("postgresql")
            assert (await get(http, "/healthz")).status_code == 200  # alive, just not ready
            proxy.mend()
            for _ in range(50):  # the pool's pre-ping drops the dead connection, reconnects
                if (await get(http, "/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("never ready again after the network came back")
        finally:
            with contextlib.suppress(Exception):
                await proxy.stop()
