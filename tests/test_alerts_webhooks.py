"""POST /webhooks/sentry and /webhooks/sentry/legacy/{secret} on the bot's real HTTP server
(its guard included): signatures, resources, duplicates, legacy secrets, junk, a database
that fails, and a fuzzer. Nothing is stored unless verified; no request gets a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from fakes.sentry_sender import BAD, SentrySender, resource_of, sample, samples, variant
from pydantic import SecretStr
from sqlalchemy import select, text

from bot.alerts import tables
from bot.alerts.config import SentryConfig
from bot.alerts.payloads import PayloadError
from bot.alerts.webhooks import accept_body, receive_legacy, receive_signed
from bot.core import Bot
from bot.http import HttpServer

SECRET = "sentry-client-secret-0f1e2d3c4b5a"
LEGACY = "legacy-url-secret-9a8b7c6d"


@dataclass
class Rig:
    bot: Bot
    server: HttpServer
    sender: SentrySender
    kicks: list[int] = field(default_factory=list)

    async def rows(self) -> list[Any]:
        return await self.bot.database.run(
            lambda conn: conn.execute(select(tables.inbox).order_by(tables.inbox.c.id)).all())

    async def send(self, payload: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        resource = kwargs.pop("resource", None) or resource_of(payload)
        if resource == "legacy":
            return await self.sender.send_legacy(payload, kwargs.pop("secret", LEGACY), **kwargs)
        return await self.sender.send(resource, payload, **kwargs)


def configure(bot: Bot, **settings: Any) -> None:
    values = {"client_secret": SecretStr(SECRET), "legacy_secret": SecretStr(LEGACY),
              **settings}
    bot.config.feature_sections = {**bot.config.feature_sections,
                                   "sentry": SentryConfig(**values)}


@pytest.fixture
async def rig(make_bot: Callable[..., Awaitable[Bot]]) -> AsyncIterator[Rig]:
    bot = await make_bot()
    await bot.database.run(tables.create_tables)
    configure(bot)
    server = HttpServer(bot.health, bot.metrics, "127.0.0.1", 0)
    kicks: list[int] = []

    async def signed(request: web.Request) -> web.Response:
        return await receive_signed(bot, request, on_accept=lambda: kicks.append(1))

    async def legacy(request: web.Request) -> web.Response:
        return await receive_legacy(bot, request, on_accept=lambda: kicks.append(1))

    server.add_route("POST", "/webhooks/sentry", signed)
    server.add_route("POST", "/webhooks/sentry/legacy/{secret}", legacy)
    await server.start()
    async with SentrySender(server.url, SECRET) as sender:
        yield Rig(bot, server, sender, kicks)
    await server.stop()


async def test_every_sample_is_stored_and_acknowledged(rig: Rig) -> None:
    for name, payload in samples().items():
        status, body = await rig.send(payload, request_id=f"req-{name}")
        assert (status, body) == (200, {"ok": True}), name
    rows = await rig.rows()
    assert sorted(r.resource for r in rows) == sorted(
        "legacy" if resource_of(p) == "legacy" else resource_of(p) for p in samples().values())
    assert all(r.state == "pending" and r.request_id.startswith("req-") for r in rows)
    assert len(rig.kicks) == len(rows)
    sent = {json.dumps(p, separators=(",", ":")) for p in samples().values()}
    assert {r.body for r in rows} == sent  # the raw body, byte for byte


async def test_duplicates_are_acknowledged_and_stored_once(rig: Rig) -> None:
    payload = sample("issue_created")
    for _ in range(3):
        assert await rig.send(payload) == (200, {"ok": True})
    racing = variant(payload, issue_id="4242")
    results = await asyncio.gather(*(rig.send(racing) for _ in range(20)))
    assert {status for status, _ in results} == {200}
    assert len(await rig.rows()) == 2 and len(rig.kicks) == 2


@pytest.mark.parametrize("signature", [None, BAD, "", "0" * 64, "not-hex", "x" * 5000])
async def test_bad_or_missing_signatures_are_401_and_store_nothing(
        rig: Rig, signature: str | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for payload in samples().values():
        if resource_of(payload) != "legacy":
            status, _ = await rig.send(payload, signature=signature)
            assert status == 401
    assert await rig.rows() == [] and rig.kicks == []
    lines = [r for r in caplog.records if "signature" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None  # rate-limited, no traceback
    assert SECRET not in caplog.text


async def test_a_signature_of_another_body_is_refused(rig: Rig) -> None:
    body = json.dumps(sample("issue_created")).encode()
    other = rig.sender.body(sample("issue_resolved"))
    from fakes.sentry_sender import sign

    status, _ = await rig.sender.send("issue", raw=body, signature=sign(SECRET, other))
    assert status == 401 and await rig.rows() == []


async def test_not_configured_is_404(rig: Rig) -> None:
    configure(rig.bot, client_secret=None, legacy_secret=None)
    assert (await rig.send(sample("issue_created")))[0] == 404
    assert (await rig.send(sample("legacy_webhooks_plugin_python")))[0] == 404
    configure(rig.bot, client_secret=SecretStr(""), legacy_secret=SecretStr(""))
    assert (await rig.send(sample("issue_created")))[0] == 404
    assert (await rig.sender.send_legacy(sample("legacy_webhooks_plugin_python"), ""))[0] \
        in (404, 405)  # no secret in the URL: no such route at all
    assert await rig.rows() == []


@pytest.mark.parametrize("resource", ["installation", "comment", "error", "seer", "",
                                      "legacy", "poll"])
async def test_other_resources_are_acknowledged_and_ignored(rig: Rig, resource: str) -> None:
    status, body = await rig.sender.send(resource, {"action": "created", "data": {}})
    assert (status, body) == (200, {"ok": True})
    for payload in samples().values():  # whatever the body
        status, _ = await rig.sender.send(resource, payload)
        assert status == 200
    assert await rig.rows() == [] and rig.kicks == []


async def test_unknown_actions_are_acknowledged_and_ignored(rig: Rig) -> None:
    for resource, payload in (("issue", variant(sample("issue_created"), action="archived")),
                              ("metric_alert", variant(sample("metric_alert_resolved_docs"),
                                                       action="exploded"))):
        assert await rig.sender.send(resource, payload) == (200, {"ok": True})
    assert await rig.rows() == []


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"\xff\xfe", b'{"action": 1}',
                                 b'{"action": "created", "data": {"issue": {"id": "../x"}}}',
                                 b'{"action": "created", "data": []}', b"[" * 5000])
async def test_verified_junk_is_400(rig: Rig, raw: bytes,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    status, _ = await rig.sender.send("issue", raw=raw)
    assert status in (400, 200)  # 200 only for an action we ignore ({"action": 1})
    assert await rig.rows() == []
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)


async def test_legacy_needs_the_url_secret(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    payload = sample("legacy_webhooks_plugin_python")
    for wrong in ("wrong", LEGACY[:-1], LEGACY + "x", LEGACY.upper(), "%00"):
        status, _ = await rig.sender.send_legacy(payload, wrong)
        assert status == 401
    assert await rig.rows() == []
    assert await rig.sender.send_legacy(payload, LEGACY) == (200, {"ok": True})
    assert await rig.sender.send_legacy(payload, LEGACY) == (200, {"ok": True})  # duplicate
    rows = await rig.rows()
    assert [r.resource for r in rows] == ["legacy"] and len(rig.kicks) == 1
    assert LEGACY not in caplog.text
    status, _ = await rig.sender.send_legacy(None, LEGACY, raw=b"not json")
    assert status == 400


async def test_the_same_event_by_both_paths_is_one_delivery(rig: Rig) -> None:
    legacy = sample("legacy_webhooks_plugin_python")
    event = variant(sample("event_alert_triggered_python"),
                    event_id=legacy["event"]["event_id"])
    assert (await rig.send(event))[0] == 200
    assert (await rig.send(legacy))[0] == 200
    assert len(await rig.rows()) == 1


async def test_a_failing_database_is_503_then_recovers(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await rig.bot.database.run(lambda conn: conn.execute(text("DROP TABLE alerts_inbox")))
    status, body = await rig.send(sample("issue_created"))
    assert status == 503 and "cannot store" in body
    lines = [r for r in caplog.records if "database" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None and lines[0].levelno < logging.ERROR
    await rig.bot.database.run(tables.create_tables)
    assert await rig.send(sample("issue_created")) == (200, {"ok": True})
    assert len(await rig.rows()) == 1


async def test_request_ids_are_kept_clean(rig: Rig) -> None:
    await rig.sender.send("issue", sample("issue_created"), request_id="abc\tdef" + "z" * 500)
    row = (await rig.rows())[0]
    assert row.request_id.startswith("abcdef") and len(row.request_id) <= 100


async def test_a_body_over_the_limit_is_413(rig: Rig) -> None:
    status, _ = await rig.sender.send("issue", raw=b"x" * (1024 * 1024 + 1))
    assert status == 413 and await rig.rows() == []


async def test_acks_are_fast(rig: Rig) -> None:
    latencies = []
    for n in range(60):
        started = time.perf_counter()
        status, _ = await rig.send(variant(sample("issue_created"), issue_id=str(9000 + n)))
        latencies.append(time.perf_counter() - started)
        assert status == 200
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.25  # Sentry gives up after 1 s


async def test_accept_body_directly(rig: Rig) -> None:
    body = json.dumps(sample("issue_created")).encode()
    assert await accept_body(rig.bot, "issue", body, None) is True
    assert await accept_body(rig.bot, "issue", body, None) is False
    assert await accept_body(rig.bot, "installation", body, None) is None
    legacy = json.dumps(sample("legacy_webhooks_plugin_python")).encode()
    assert await accept_body(rig.bot, "legacy", legacy, "r") is True
    with pytest.raises(PayloadError):
        await accept_body(rig.bot, "issue", b"[]", None)


def mutate(rng: random.Random, body: bytes) -> bytes:
    """Truncate, flip bytes, splice junk, or swap a JSON value for a wrong type."""
    choice = rng.randrange(4)
    if choice == 0:
        return body[:rng.randrange(len(body) + 1)]
    if choice == 1:
        out = bytearray(body)
        for _ in range(rng.randint(1, 10)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if choice == 2:
        at = rng.randrange(len(body))
        return body[:at] + rng.randbytes(rng.randint(1, 40)) + body[at:]
    junk = rng.choice(['null', '[]', '{}', '1e999', '"\\ud800"', 'true', '-1', '"' + 'x' * 600
                       + '"'])
    text_body = body.decode()
    keys = [i for i in range(len(text_body)) if text_body.startswith('": ', i)]
    at = rng.choice(keys) + 3
    end = at
    while end < len(text_body) and text_body[end] not in ",}]":
        end += 1
    return (text_body[:at] + junk + text_body[end:]).encode()


async def test_fuzz_the_endpoint(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(1414)
    corpus = [(resource_of(p), json.dumps(p).encode()) for p in samples().values()]
    statuses: dict[int, int] = {}
    for _ in range(300):
        resource, body = rng.choice(corpus)
        mutated = mutate(rng, body)
        if resource == "legacy":
            status, _ = await rig.sender.send_legacy(None, LEGACY, raw=mutated)
        else:
            resource = rng.choice([resource, resource, "issue", "metric_alert", "comment"])
            status, _ = await rig.sender.send(resource, raw=mutated)
            unsigned, _ = await rig.sender.send(resource, raw=mutated, signature=None)
            assert unsigned == 401
        statuses[status] = statuses.get(status, 0) + 1
    assert set(statuses) <= {200, 400}, statuses
    assert statuses.get(400, 0) > 50  # the mutator does produce junk
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)
    for row in await rig.rows():  # whatever was stored parses again
        from bot.alerts.payloads import parse_stored

        parse_stored(row.resource, row.body)
