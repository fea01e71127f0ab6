"""`restart TARGET` for http targets (a Nomad-like allocation restart on loopback) and
condor_resubmit targets (the condor handler's own resubmit, on the demo schedd)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from conftest import console
from fakes.condor import CONDOR_HANDLERS, GWCELERY_SCOPE, demo_pool
from test_restart_support import (
    HANDLERS,
    ROLES,
    confirm,
    finished_run,
    follow_ups,
    restart_config,
    runs,
    text,
)

from bot.core import Bot, OutcomeStatus

NOMAD_TOKEN = "nomad-secret-token-0123456789"
ALLOC = "5a1b7a12-6e1d-4b9c-9d0e-3f3c2b1a0f9e"


class FakeNomad:
    """``PUT /v1/client/allocation/:alloc_id/restart`` with ``X-Nomad-Token``; answers what
    ``status`` says (Nomad: 200 ``{}``; 403 ``Permission denied``)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.status = 200
        self.url = ""
        self.hang = False
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.seen.append((request.method, request.rel_url.raw_path, body))
        if self.hang:
            await self.release.wait()
        if request.headers.get("X-Nomad-Token") != NOMAD_TOKEN:
            return web.Response(status=403, text="Permission denied")
        if self.status != 200:
            return web.Response(status=self.status, text=f"failed ({self.status})")
        return web.json_response({})


@pytest.fixture
async def nomad() -> AsyncIterator[FakeNomad]:
    fake = FakeNomad()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def nomad_target(url: str, token: str = NOMAD_TOKEN, **overrides: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "type": "http", "method": "PUT", "description": "restart a GWCelery allocation",
        "url": url + "/v1/client/allocation/{alloc}/restart",
        "headers": {"X-Nomad-Token": token}, "body": {"TaskName": "{task}"},
        "params": {"alloc": {"pattern": "[0-9a-z./-]{1,64}"},
                   "task": {"choices": ["gwcelery-worker", "flower"],
                            "default": "gwcelery-worker"}},
        "expect_status": [200],
    }
    target.update(overrides)
    return target


async def test_the_request_is_sent_with_its_secret_header(make_bot: Any,
                                                          nomad: FakeNomad) -> None:
    bot: Bot = await make_bot(restart_config({"nomad": nomad_target(nomad.url)}))
    asked = await bot.handle(console("carol", f"restart nomad alloc={ALLOC} task=flower", "ops"))
    preview = text(asked)
    assert f"PUT {nomad.url}/v1/client/allocation/{ALLOC}/restart" in preview
    assert "X-Nomad-Token: ***" in preview and NOMAD_TOKEN not in preview
    assert '"TaskName": "flower"' in preview
    done = await bot.decide(console("carol", ""), asked.request_id, "confirm")
    assert done.status == OutcomeStatus.OK, text(done)
    assert nomad.seen == [("PUT", f"/v1/client/allocation/{ALLOC}/restart",
                           {"TaskName": "flower"})]
    assert "HTTP 200" in text(done)
    assert (await finished_run(bot, "nomad")).status == "success"
    assert [e.outcome for e in await follow_ups(bot)] == ["ok"]


async def test_a_value_cannot_leave_its_path_segment(make_bot: Any, nomad: FakeNomad) -> None:
    bot: Bot = await make_bot(restart_config({"nomad": nomad_target(nomad.url)}))
    done = await confirm(bot, "carol", "restart nomad alloc=../../v1/jobs")
    assert done.status == OutcomeStatus.OK, text(done)
    assert nomad.seen[0][1] == "/v1/client/allocation/..%2F..%2Fv1%2Fjobs/restart"


@pytest.mark.parametrize(("status", "token", "effect"), [
    (500, NOMAD_TOKEN, True),  # the server failed: it may have done something
    (200, "wrong-token-value-000", False),  # 403: refused, nothing changed
])
async def test_an_unexpected_status_fails(make_bot: Any, nomad: FakeNomad, status: int,
                                          token: str, effect: bool) -> None:
    nomad.status = status
    bot: Bot = await make_bot(restart_config({"nomad": nomad_target(nomad.url, token)}))
    done = await confirm(bot, "carol", f"restart nomad alloc={ALLOC}")
    assert done.status == OutcomeStatus.ERROR and "expected 200" in text(done)
    [run] = await runs(bot, "nomad")
    assert (run.status, run.effect) == ("failed", effect)


async def test_an_unreachable_server_changes_nothing(make_bot: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = nomad_target(f"http://127.0.0.1:{port}")
    bot: Bot = await make_bot(restart_config({"nomad": target}, cooldown_seconds=600))
    done = await confirm(bot, "carol", f"restart nomad alloc={ALLOC}")
    assert done.status == OutcomeStatus.ERROR and "cannot connect" in text(done)
    [run] = await runs(bot, "nomad")
    assert (run.status, run.effect) == ("error", False)
    again = await bot.handle(console("carol", f"restart nomad alloc={ALLOC}", "ops"))
    assert again.status == OutcomeStatus.PENDING  # no cooldown: it never arrived


async def test_a_silent_server_is_given_up_on(make_bot: Any, nomad: FakeNomad) -> None:
    nomad.hang = True
    target = nomad_target(nomad.url, timeout_seconds=0.5)
    bot: Bot = await make_bot(restart_config({"nomad": target}, cooldown_seconds=600))
    started = time.monotonic()
    done = await confirm(bot, "carol", f"restart nomad alloc={ALLOC}")
    assert time.monotonic() - started < 5
    assert done.status == OutcomeStatus.ERROR and "no answer within 0.5 s" in text(done)
    [run] = await runs(bot, "nomad")
    assert (run.status, run.effect) == ("error", True)  # it may have arrived: cooldown holds


def condor_restart_config(**condor: Any) -> dict[str, Any]:
    raw = restart_config({"gwcelery-jobs": {"type": "condor_resubmit", "submit": "gwcelery",
                                            "description": "resubmit GWCelery's jobs"}})
    raw["bot"]["handlers"] = [*CONDOR_HANDLERS, *HANDLERS[len(CONDOR_HANDLERS) - 2:]]
    raw["condor"] = {"pools": {"gwcelery": demo_pool(scope=GWCELERY_SCOPE)},
                     "resubmit_poll_seconds": 0.1, **condor}
    raw["roles"] = ROLES
    return raw


async def test_condor_resubmit_goes_through_the_condor_handler(make_bot: Any) -> None:
    bot: Bot = await make_bot(condor_restart_config())
    asked = await bot.handle(console("carol", "restart gwcelery-jobs", "ops"))
    assert asked.status == OutcomeStatus.PENDING, text(asked)
    assert "removes 24 jobs" in text(asked) and "then submits gwcelery again" in text(asked)
    done = await bot.decide(console("carol", ""), asked.request_id, "confirm")
    assert done.status == OutcomeStatus.OK, text(done)
    assert "Removed 24 jobs of batch gwcelery" in text(done)
    assert "restart gwcelery-jobs: condor resubmit gwcelery" in text(done)
    assert (await finished_run(bot, "gwcelery-jobs")).status == "success"
    # The shifter's approval rule holds for this target too.
    waiting = await confirm(bot, "alice", "restart gwcelery-jobs")
    assert waiting.status == OutcomeStatus.PENDING and "expert" in text(waiting)


async def test_condor_resubmit_giving_up_is_a_failed_restart(make_bot: Any) -> None:
    raw = condor_restart_config(resubmit_wait_seconds=0.3)
    raw["condor"]["pools"]["gwcelery"]["demo_remove_delay_seconds"] = 60
    bot: Bot = await make_bot(raw)
    done = await confirm(bot, "carol", "restart gwcelery-jobs")
    assert done.status == OutcomeStatus.ERROR and "nothing was submitted" in text(done)
    run = await finished_run(bot, "gwcelery-jobs")
    assert run.status == "error" and run.effect  # jobs were removed: the cooldown holds
