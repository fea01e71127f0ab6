"""The http check against a real aiohttp server on 127.0.0.1: status codes, latency, bodies,
JSON values, secret headers, size caps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from status_env import StubEnv

from bot.secrets import masker
from bot.status.checks.http import HttpCheck
from bot.status.jsonselect import SelectError, parse_selector
from bot.status.model import Level
from bot.status.runner import run_check

TOKEN = "Bearer tok-3f9a77c2e1"
DOC = {"status": "ok", "workers": [{"name": "w1", "load": 0.5}, {"name": "w2", "load": 3.5}],
       "queue": {"length": 42, "odd key": True}, "version": "1.2"}


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response(DOC)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.3")))
        return web.Response(text="late")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="service broken")

    async def bad_json(request: web.Request) -> web.Response:
        return web.Response(text='{"status": "ok", ', content_type="application/json")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * (2 * 1024 * 1024) + b"1]")

    async def secret(request: web.Request) -> web.Response:
        seen = request.headers.get("Authorization", "")
        if seen != TOKEN:  # echoes what it got: the check's result must not show it
            return web.Response(status=401, text=f"bad credentials {seen}")
        return web.json_response({"ok": True})

    async def method(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "body": await request.text()})

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(30):  # each read is quick; the whole answer takes 6 s
            await response.write(b".")
            await asyncio.sleep(0.2)
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/bad-json", bad_json)
    app.router.add_get("/big", big)
    app.router.add_get("/secret", secret)
    app.router.add_route("*", "/method", method)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/trickle", trickle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def http(url: str, **keys: Any) -> HttpCheck:
    return HttpCheck.model_validate({"type": "http", "name": "h", "url": url, **keys})


async def run(check: HttpCheck):
    return await run_check(check, StubEnv())


async def test_ok_with_values(base: str) -> None:
    result = await run(http(f"{base}/ok"))
    assert result.level is Level.OK and result.summary.startswith("HTTP 200 in ")
    assert result.values["status"] == 200
    assert result.values["size"] == len(json.dumps(DOC))
    assert 0 <= result.values["time"] < 1


@pytest.mark.parametrize(("code", "expect", "level"), [
    (500, 200, Level.CRITICAL), (503, [200, 204], Level.CRITICAL), (204, [200, 204], Level.OK),
    (404, 404, Level.OK), (301, 200, Level.CRITICAL)])
async def test_status_codes(base: str, code: int, expect: Any, level: Level) -> None:
    result = await run(http(f"{base}/status/{code}", expect_status=expect))
    assert result.level is level
    if level is Level.CRITICAL:
        assert result.summary.startswith(f"HTTP {code} from {base}/status/{code} (expected ")
        assert result.long_output == "service broken"


async def test_latency_thresholds(base: str) -> None:
    result = await run(http(f"{base}/slow?s=0.3", latency={"warning": 0.2, "critical": 5}))
    assert result.level is Level.WARNING
    assert "time=0.3" in result.summary and "(warning: > 0.2)" in result.summary
    result = await run(http(f"{base}/slow?s=0.3", latency={"critical": 0.1}))
    assert result.level is Level.CRITICAL


async def test_silent_server_is_critical_before_the_runner_gives_up(base: str) -> None:
    result = await run(http(f"{base}/slow?s=3&key=abc", timeout_seconds=2))
    assert result.level is Level.CRITICAL
    assert result.summary == f"no answer within 2 s from {base}/slow"  # no query shown
    assert result.duration_seconds < 1.9  # before the runner's deadline


async def test_a_trickling_server_cannot_stretch_the_deadline(base: str) -> None:
    result = await run(http(f"{base}/trickle", timeout_seconds=2))
    assert (result.level, result.summary) == (Level.CRITICAL,
                                              f"no answer within 2 s from {base}/trickle")
    assert result.duration_seconds < 1.9


async def test_connection_refused() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    result = await run(http(f"http://127.0.0.1:{port}/x"))
    assert result.level is Level.CRITICAL
    assert result.summary.startswith(f"http://127.0.0.1:{port}/x: ")
    assert "refused" in result.summary.lower()


@pytest.mark.parametrize(("extract", "level", "words"), [
    ({"select": ".status", "expect": "ok"}, Level.OK, ""),
    ({"select": ".status", "expect": "down"}, Level.CRITICAL, 'value is "ok", expected "down"'),
    ({"select": ".status", "expect": "down", "level": "warning"}, Level.WARNING, "expected"),
    ({"select": ".queue.length", "warning": 40, "critical": 100}, Level.WARNING,
     "value=42 (warning: > 40)"),
    ({"select": ".queue.length", "critical": "@40:50"}, Level.CRITICAL, "inside 40..50"),
    ({"select": ".workers | length", "critical": "3:"}, Level.CRITICAL, "value=2"),
    ({"select": ".workers[-1].load", "warning": 3}, Level.WARNING, "value=3.5"),
    ({"select": '.queue["odd key"]', "expect": True}, Level.OK, ""),
    ({"select": '.queue["odd key"]', "expect": 1}, Level.CRITICAL, "expected 1"),
    ({"select": ".version", "expect": 1.2}, Level.CRITICAL, 'value is "1.2"'),
    ({"select": ".workers[5].load", "warning": 3}, Level.UNKNOWN, "no value at .workers[5]"),
    ({"select": ".status", "warning": 3}, Level.UNKNOWN, 'value is "ok", not a number'),
    ({"select": ".status | length", "critical": "3"}, Level.OK, ""),
])
async def test_json_extraction(base: str, extract: dict, level: Level, words: str) -> None:
    result = await run(http(f"{base}/ok", extract=[extract]))
    assert result.level is level, result.summary
    assert words in result.summary


async def test_several_values_named(base: str) -> None:
    result = await run(http(f"{base}/ok", extract=[
        {"name": "queued", "select": ".queue.length"},
        {"name": "workers", "select": ".workers | length", "critical": "2:"}]))
    assert result.level is Level.OK
    assert (result.values["queued"], result.values["workers"]) == (42, 2)


async def test_bad_json_and_body_regex(base: str) -> None:
    result = await run(http(f"{base}/bad-json", extract=[{"select": ".status"}]))
    assert result.level is Level.CRITICAL and "the answer is not JSON" in result.summary
    result = await run(http(f"{base}/bad-json", body_regex=r'"status":\s*"ok"'))
    assert result.level is Level.OK
    result = await run(http(f"{base}/bad-json", body_regex=r"healthy"))
    assert result.level is Level.CRITICAL and "does not match 'healthy'" in result.summary


async def test_big_answers_are_capped(base: str) -> None:
    result = await run(http(f"{base}/big", max_body_bytes=65536))
    assert result.level is Level.OK and result.values["size"] == 65536
    result = await run(http(f"{base}/big", max_body_bytes=65536,
                            extract=[{"select": ". | length"}]))
    assert result.level is Level.UNKNOWN and "larger than 65536 bytes" in result.summary


async def test_secret_headers_sent_never_shown(base: str) -> None:
    masker.add(TOKEN)  # as the config loader does for ${VAR} and *_file values
    try:
        good = http(f"{base}/secret", headers={"Authorization": TOKEN})
        assert TOKEN not in repr(good) and TOKEN not in str(good.model_dump())
        assert (await run(good)).level is Level.OK
        wrong = http(f"{base}/secret", headers={"Authorization": TOKEN + "x"})
        result = await run(wrong)
    finally:
        masker.clear()
    assert result.level is Level.CRITICAL
    assert "tok-3f9a77c2e1" not in result.summary + result.long_output
    assert "bad credentials" in result.long_output


async def test_method_body_and_redirects(base: str) -> None:
    result = await run(http(f"{base}/method", method="POST", body="ping",
                            extract=[{"select": ".body", "expect": "ping"},
                                     {"name": "m", "select": ".method", "expect": "POST"}]))
    assert result.level is Level.OK
    assert (await run(http(f"{base}/redirect"))).level is Level.CRITICAL
    assert (await run(http(f"{base}/redirect", follow_redirects=True))).level is Level.OK


async def test_proxy_variables_ignored(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert (await run(http(f"{base}/ok"))).level is Level.OK


@pytest.mark.parametrize("keys", [
    {"url": "ftp://127.0.0.1/"}, {"url": "http://user:pw@127.0.0.1/"}, {"url": "127.0.0.1"},
    {"expect_status": 99}, {"expect_status": ["200"]}, {"method": "BREW"},
    {"body_regex": "("}, {"extract": [{"select": "status"}]},
    {"extract": [{"select": ".a", "name": "a b"}]}, {"extract": [{"select": ".a | keys"}]},
    {"latency": {"warning": "fast"}},
])
def test_bad_config(keys: dict) -> None:
    with pytest.raises(ValueError):
        http(**{"url": "http://127.0.0.1/", **keys})


@pytest.mark.parametrize(("selector", "document", "value"), [
    (".", 5, 5), (".a.b", {"a": {"b": None}}, None), (".a[0][1]", {"a": [[1, 2]]}, 2),
    ('.["a b"]', {"a b": 1}, 1), ('.a["q\\"x"]', {"a": {'q"x': 3}}, 3),
    (".a | length", {"a": {"x": 1, "y": 2}}, 2), (" .a|length ", {"a": "abc"}, 3),
])
def test_selectors(selector: str, document: Any, value: Any) -> None:
    assert parse_selector(selector).apply(document) == value


@pytest.mark.parametrize(("selector", "document"), [
    (".a", [1]), (".a[0]", {"a": {"0": 1}}), (".a[1]", {"a": [1]}), (".a | length", {"a": 1}),
    (".a.b", {"a": "text"})])
def test_selectors_missing(selector: str, document: Any) -> None:
    with pytest.raises(SelectError):
        parse_selector(selector).apply(document)
