"""The ``flower`` check: against a fake of Flower's API on loopback (every level and failure),
then against a real Celery worker and a real Flower on a real redis-server (tests/peers.py)."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from peers import HOST, CeleryStack, celery_stack, free_port, kill
from pydantic import ValidationError

from bot.clock import utcnow
from bot.status.checks.flower import FlowerCheck, judge
from bot.status.model import CheckResult, Level

__all__ = ["celery_stack"]  # the fixture, imported for pytest

TOKEN = "Basic " + base64.b64encode(b"shifter:s3cret-flower-pass").decode()


class Env:
    """The smallest CheckEnv: the flower check only needs none of it."""

    previous: CheckResult | None = None

    def now(self) -> datetime:
        return utcnow()

    def values_of(self, check: str) -> Mapping[str, float] | None:
        return None

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        raise AssertionError("not used")


class FakeFlower:
    """Flower's ``/api/workers`` as flower 2.x answers it, with switchable failures."""

    def __init__(self) -> None:
        self.alive: dict[str, bool] = {}
        self.tasks: dict[str, tuple[int, int]] = {}  # name -> (active, reserved)
        self.stale: set[str] = set()  # answer these workers' lists from an old cache
        self.mode = "ok"  # ok | 500 | hang | hang_tasks | badjson | shape
        self.requests: list[web.Request] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/workers", self._workers)
        app.router.add_get("/flower/api/workers", self._workers)  # a --url_prefix
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _workers(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if request.headers.get("Authorization") != TOKEN:
            return web.Response(status=401, text="Access denied")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "500":
            return web.Response(status=500, text="<html>Internal Server Error</html>")
        if self.mode == "badjson":
            return web.Response(text='{"celery@a": tru', content_type="application/json")
        if self.mode == "shape":
            return web.json_response({"celery@a": "online"})
        if request.query.get("status") == "1":
            return web.json_response(self.alive)
        name = request.query.get("workername", "")
        if self.mode == "hang_tasks":
            await asyncio.sleep(3600)
        if name not in self.tasks:
            return web.Response(status=404, text=f"Unknown worker '{name}'")
        active, reserved = self.tasks[name]
        stamp = time.time() - (600 if name in self.stale else 0)
        entry = {"active": [{"id": str(i)} for i in range(active)],
                 "reserved": [{"id": str(i)} for i in range(reserved)],
                 "timestamp": stamp, "stats": {}}
        return web.json_response({name: entry})


@pytest.fixture
async def flower() -> AsyncIterator[FakeFlower]:
    fake = FakeFlower()
    await fake.start()
    yield fake
    await fake.stop()


def check(url: str, **keys: Any) -> FlowerCheck:
    spec = {"name": "flower", "type": "flower", "url": url,
            "headers": {"Authorization": TOKEN}, "timeout_seconds": 5, **keys}
    return FlowerCheck.model_validate(spec)


def workers(fake: FakeFlower, **states: tuple[bool, int, int]) -> None:
    """Name -> (alive, active, reserved); names get ``@host``."""
    for name, (up, active, reserved) in states.items():
        fake.alive[f"{name}@h"] = up
        fake.tasks[f"{name}@h"] = (active, reserved)


# --- levels -----------------------------------------------------------------------------------

async def test_every_expected_worker_online_is_ok(flower: FakeFlower) -> None:
    workers(flower, a=(True, 2, 1), b=(True, 1, 3), c=(False, 0, 0))
    result = await check(flower.url, workers=["a@h", "b@h"]).run(Env())
    assert result.level is Level.OK, result.summary
    assert result.values == {"online": 2, "offline": 0, "active": 3, "reserved": 4}
    assert "a@h: online, active 2, reserved 1" in result.long_output
    assert "c@h" not in result.long_output  # neither expected nor matched by a glob
    assert [p.label for p in result.perfdata] == ["online", "offline", "active", "reserved"]


@pytest.mark.parametrize(("level", "expected"), [("critical", Level.CRITICAL),
                                                  ("warning", Level.WARNING)])
async def test_offline_and_unseen_workers_are_named(flower: FakeFlower, level: str,
                                                    expected: Level) -> None:
    workers(flower, a=(True, 0, 0), b=(False, 0, 0))
    spec = check(flower.url, workers=["a@h", "b@h", "never@h"], offline_level=level)
    result = await spec.run(Env())
    assert result.level is expected
    assert "b@h" in result.summary and "never@h" in result.summary and "a@h" not in result.summary
    assert result.values["online"] == 1 and result.values["offline"] == 2
    lines = result.long_output.splitlines()
    assert "b@h: offline" in lines
    assert any(line.startswith("never@h: offline (Flower has not heard of it") for line in lines)


async def test_globs_need_one_online_match_and_list_dead_ones(flower: FakeFlower) -> None:
    workers(flower, **{"gw-1": (True, 0, 0), "gw-old": (False, 0, 0), "ext-1": (False, 0, 0)})
    ok = await check(flower.url, workers=["gw-*@h"]).run(Env())
    assert ok.level is Level.OK, ok.summary
    assert "gw-old@h: offline (known to Flower, not expected)" in ok.long_output
    bad = await check(flower.url, workers=["gw-*@h", "ext-*@h"]).run(Env())
    assert bad.level is Level.CRITICAL and "ext-*@h" in bad.summary
    assert "ext-*@h: no online worker matches" in bad.long_output.splitlines()


async def test_without_expectations_at_least_min_online(flower: FakeFlower) -> None:
    workers(flower, a=(False, 0, 0), b=(False, 0, 0))
    assert (await check(flower.url).run(Env())).level is Level.CRITICAL
    flower.alive["a@h"] = True
    assert (await check(flower.url).run(Env())).level is Level.OK
    few = await check(flower.url, min_online=2).run(Env())
    assert few.level is Level.CRITICAL and "1 online, fewer than 2" in few.summary


async def test_many_workers_are_listed_briefly(flower: FakeFlower) -> None:
    workers(flower, **{f"w{i:03}": (i == 0, 0, 0) for i in range(80)})
    result = await check(flower.url, task_counts=False).run(Env())
    assert result.level is Level.OK and result.values == {"online": 1, "offline": 0}
    lines = result.long_output.splitlines()
    assert len(lines) == 51 and lines[-1] == "... and 30 more"
    expected = [f"w{i:03}@h" for i in range(1, 16)]
    named = await check(flower.url, workers=expected, task_counts=False).run(Env())
    assert named.summary.endswith("offline: " + ", ".join(expected[:10]) + " and 5 more")


@pytest.mark.parametrize(("keys", "expected"), [
    ({"active": {"warning": "2", "critical": "5"}}, Level.WARNING),  # 3 active: outside 0:2
    ({"active": {"warning": "2", "critical": 2}}, Level.CRITICAL),
    ({"active": {"warning": "3", "critical": "5"}}, Level.OK),
    ({"reserved": {"critical": "@1:10"}}, Level.CRITICAL),  # 4 reserved, inside
    ({"reserved": {"warning": "5:"}}, Level.WARNING),  # fewer than 5
])
async def test_task_thresholds(flower: FakeFlower, keys: dict[str, Any], expected: Level) -> None:
    workers(flower, a=(True, 2, 1), b=(True, 1, 3))
    result = await check(flower.url, workers=["a@h", "b@h"], **keys).run(Env())
    assert result.level is expected, result.summary
    for what, rule in keys.items():
        datum = next(p for p in result.perfdata if p.label == what)
        assert (datum.warn, datum.crit) == tuple(
            None if rule.get(key) is None else str(rule[key]) for key in ("warning", "critical"))
        if expected is not Level.OK:
            assert f"{what}={int(result.values[what])} ({expected.name.lower()}" in result.summary


async def test_stale_or_missing_task_lists_are_not_counted(flower: FakeFlower) -> None:
    workers(flower, a=(True, 2, 1), b=(True, 1, 3))
    flower.stale.add("b@h")
    plain = await check(flower.url, workers=["a@h", "b@h"]).run(Env())
    assert plain.level is Level.OK
    assert "active" not in plain.values and "reserved" not in plain.values
    assert "b@h: online, no fresh task lists from Flower" in plain.long_output
    limited = await check(flower.url, workers=["a@h", "b@h"],
                          active={"critical": 10}).run(Env())
    assert limited.level is Level.UNKNOWN and "active tasks unknown" in limited.summary
    del flower.tasks["b@h"]  # Flower: 404 unknown worker
    assert "active" not in (await check(flower.url, workers=["b@h"]).run(Env())).values


async def test_task_counts_can_be_switched_off(flower: FakeFlower) -> None:
    workers(flower, a=(True, 2, 1))
    result = await check(flower.url, workers=["a@h"], task_counts=False).run(Env())
    assert result.level is Level.OK and set(result.values) == {"online", "offline"}
    assert all("workername" not in r.query for r in flower.requests)


async def test_url_prefix_and_no_proxy(flower: FakeFlower, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{free_port()}")
    for name in ("NO_PROXY", "no_proxy"):  # the check must not need them
        monkeypatch.delenv(name, raising=False)
    workers(flower, a=(True, 0, 0))
    result = await check(flower.url + "/flower/", workers=["a@h"]).run(Env())
    assert result.level is Level.OK, result.summary
    assert {r.path for r in flower.requests} == {"/flower/api/workers"}


# --- failures ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "words"), [
    ("500", "HTTP 500"), ("badjson", "not JSON"), ("shape", "not a {name: true/false} map")])
async def test_flower_errors_are_unknown(flower: FakeFlower, mode: str, words: str) -> None:
    flower.mode = mode
    result = await check(flower.url, workers=["a@h"]).run(Env())
    assert result.level is Level.UNKNOWN and words in result.summary
    assert flower.url in result.long_output


async def test_hanging_flower_is_unknown_within_the_timeout(flower: FakeFlower) -> None:
    flower.mode = "hang"
    started = time.monotonic()
    result = await check(flower.url, workers=["a@h"], timeout_seconds=1).run(Env())
    took = time.monotonic() - started
    assert result.level is Level.UNKNOWN and "did not answer within" in result.summary
    assert 0.5 <= took < 1.0  # before the runner's own deadline


async def test_hanging_task_lists_still_report_the_workers(flower: FakeFlower) -> None:
    workers(flower, a=(True, 1, 0), b=(False, 0, 0))
    flower.mode = "hang_tasks"
    started = time.monotonic()
    spec = check(flower.url, workers=["a@h", "b@h"], timeout_seconds=1)
    result = await spec.run(Env())
    assert time.monotonic() - started < 1.0
    assert result.level is Level.CRITICAL and "offline: b@h" in result.summary
    assert "a@h: online, no fresh task lists from Flower" in result.long_output


async def test_refused_credentials_and_secrets_never_shown(
        flower: FakeFlower, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Basic " + base64.b64encode(b"shifter:wrong-password-x").decode()
    spec = check(flower.url, workers=["a@h"], headers={"Authorization": wrong})
    result = await spec.run(Env())
    assert result.level is Level.UNKNOWN and "refused the credentials (HTTP 401)" in result.summary
    shown = result.summary + result.long_output + repr(spec) + str(spec.model_dump())
    assert wrong not in shown and wrong not in caplog.text


async def test_unreachable_flower_is_unknown() -> None:
    result = await check(f"http://127.0.0.1:{free_port()}", workers=["a@h"]).run(Env())
    assert result.level is Level.UNKNOWN and "unreachable" in result.summary


@pytest.mark.parametrize("keys", [
    {"url": "ftp://h/x"}, {"url": "http://user:pw@h/"}, {"url": "h:5555"},
    {"active": {"warning": "ten"}}, {"reserved": {"critical": "5:1"}},
    {"active": {"critical": ""}}, {"active": {"severe": 1}},
    {"min_online": -1}, {"offline_level": "unknown"}, {"headers": {"Bad Name": "x"}},
    {"headers": {"Authorization": "Basic abc\r\nX-Injected: 1"}}])
def test_bad_config_is_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        FlowerCheck.model_validate({"name": "f", "type": "flower",
                                    "url": "http://127.0.0.1:5555", **keys})
    # A header value is a secret: our message never quotes it (the loader masks the input).
    assert all("X-Injected" not in error["msg"] for error in raised.value.errors())


# --- the pieces -------------------------------------------------------------------------------

names = st.sampled_from(["a@h", "b@h", "c@x", "gw-1@h", "gw-2@x"])


@given(alive=st.dictionaries(names, st.booleans()),
       expected=st.lists(st.sampled_from(["a@h", "c@x", "gw-*", "*@h", "z@h"]), unique=True))
def test_judge_accounts_for_every_expectation(alive: dict[str, bool], expected: list[str]) -> None:
    view = judge(expected, alive)
    assert all(alive[name] for name in view.online)
    assert not any(alive.get(name, False) for name in view.dead)
    assert not set(view.online) & set(view.dead)
    for pattern in expected:
        satisfied = any(up and fnmatch.fnmatchcase(name, pattern)
                        for name, up in alive.items())
        assert (pattern in view.missing) is not satisfied
    if not expected:
        assert len(view.online) + len(view.dead) == len(alive) and not view.missing


# --- the real peers -----------------------------------------------------------------------------

HEARTBEAT = 2.0  # a Celery worker's event heartbeat interval (celery.worker.heartbeat.Heart)
EXPIRY = 2 * HEARTBEAT  # Flower: alive while the last heartbeat is younger than 2 intervals


async def poll(spec: FlowerCheck, want: Level, within: float) -> tuple[CheckResult, float]:
    """Run the check every 0.25 s until it says ``want``; (last result, seconds taken)."""
    started = time.monotonic()
    while True:
        result = await spec.run(Env())
        took = time.monotonic() - started
        if result.level is want or took > within:
            return result, took
        await asyncio.sleep(0.25)


def real_check(stack: CeleryStack, **keys: Any) -> FlowerCheck:
    spec = {"name": "celery", "type": "flower", "url": stack.flower_url,
            "headers": stack.auth_header, "interval_seconds": 2, "timeout_seconds": 4, **keys}
    return FlowerCheck.model_validate(spec)


async def test_real_worker_online_then_killed(celery_stack: CeleryStack) -> None:
    worker = celery_stack.start_worker("alpha", queue="alpha")
    spec = real_check(celery_stack, workers=[f"alpha@{HOST}"])
    result, took = await poll(spec, Level.OK, within=30)
    assert result.level is Level.OK, (result.summary, celery_stack.log("worker-alpha"))
    print(f"\nworker online in Flower after {took:.1f} s")
    assert result.values == {"online": 1, "offline": 0, "active": 0, "reserved": 0}

    kill(worker)
    # Flower notices by heartbeat expiry (no worker-offline event after SIGKILL): at most
    # EXPIRY after the kill; a scheduler sees it on its next run: + interval + the run itself.
    bound = EXPIRY + spec.interval_seconds + spec.timeout_seconds
    result, took = await poll(spec, Level.CRITICAL, within=bound)
    print(f"killed worker offline in Flower after {took:.1f} s (bound {bound:g} s)")
    assert result.level is Level.CRITICAL, result.summary
    assert f"offline: alpha@{HOST}" in result.summary and took <= bound


async def test_real_task_counts(celery_stack: CeleryStack) -> None:
    from celery import Celery

    celery_stack.start_worker("beta", queue="beta", pool="prefork", concurrency=1)
    spec = real_check(celery_stack, workers=[f"beta@{HOST}"], active={"warning": 0})
    assert (await poll(spec, Level.OK, within=30))[0].level is Level.OK
    client = Celery(broker=celery_stack.redis_url)

    def send() -> None:
        for _ in range(3):  # one runs, one is prefetched (multiplier 1), one stays queued
            client.send_task("shiftbot_test.sleep", args=[60], queue="beta")

    await asyncio.to_thread(send)
    result, _ = await poll(spec, Level.WARNING, within=20)
    assert result.level is Level.WARNING, result.summary
    assert result.values["active"] == 1 and result.values["reserved"] == 1
    assert "active=1 (warning: > 0)" in result.summary


async def test_real_flower_refuses_wrong_credentials(celery_stack: CeleryStack) -> None:
    wrong = {"Authorization": "Basic " + base64.b64encode(b"shifter:nope").decode()}
    result = await real_check(celery_stack, headers=wrong).run(Env())
    assert result.level is Level.UNKNOWN and "HTTP 401" in result.summary
