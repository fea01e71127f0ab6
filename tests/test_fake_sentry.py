"""The fake Sentry API and the webhook sender behave as Sentry does (checked with raw HTTP,
not with the client under test)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fakes.sentry import TOKEN, FakeSentry, SentryState
from fakes.sentry_sender import BAD, SentrySender, resource_of, sample, samples, variant

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def call(sentry: FakeSentry, method: str, path: str, *, headers: dict[str, str] = AUTH,
               body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, sentry.api_url + path, headers=headers, json=body) as response:
        return response.status, await response.json()


async def test_issues_events_and_auth() -> None:
    state = SentryState()
    issue = state.add_issue(project="gwcelery", count=3, tags={"htcondor.cluster_id": "1.0"})
    async with FakeSentry(state) as sentry:
        assert issue["permalink"].startswith(sentry.url)  # links point at the fake
        status, got = await call(sentry, "GET", f"organizations/ligo/issues/{issue['id']}/")
        assert status == 200 and got["count"] == "3" and got["shortId"] == "GWCELERY-1"
        status, event = await call(
            sentry, "GET", f"organizations/ligo/issues/{issue['id']}/events/latest/")
        assert {"key": "htcondor.cluster_id", "value": "1.0"} in event["tags"]
        frames = event["entries"][0]["data"]["values"][-1]["stacktrace"]["frames"]
        assert frames[-1]["inApp"] is True
        assert (await call(sentry, "GET", f"organizations/ligo/issues/{issue['id']}/",
                           headers={}))[0] == 401
        assert (await call(sentry, "GET", "organizations/ligo/issues/1/"))[0] == 404
        assert (await call(sentry, "GET", f"organizations/x/issues/{issue['id']}/"))[0] == 404


async def test_status_changes_links_and_listing() -> None:
    state = SentryState()
    first = state.add_issue(project="gwcelery")
    state.add_issue(project="gwcelery", status="resolved")
    async with FakeSentry(state) as sentry:
        path = f"organizations/ligo/issues/{first['id']}/"
        assert (await call(sentry, "PUT", path, body={"status": "bogus"}))[0] == 400
        assert (await call(sentry, "PUT", path, body={"status": "ignored"}))[0] == 200
        assert state.status_changes[0].status == "ignored"
        assert (await call(sentry, "GET", "projects/ligo/gwcelery/issues/"))[1] == []
        state.touch(first["id"], times=4, status="unresolved")
        _, listed = await call(sentry, "GET", "projects/ligo/gwcelery/issues/")
        assert [i["count"] for i in listed] == ["5"]
        link = {"issueId": int(first["id"]), "webUrl": "https://g/1", "project": "p",
                "identifier": "p#1"}
        assert (await call(sentry, "POST", "sentry-app-installations/u-1/external-issues/",
                           body=link))[0] == 201
        assert (await call(sentry, "POST", "sentry-app-installations/u-1/external-issues/",
                           body={"issueId": 1}))[0] == 400
        assert len(state.external_issues) == 1


async def test_injected_failures_are_counted_and_hangs_released() -> None:
    state = SentryState()
    issue = state.add_issue()
    async with FakeSentry(state) as sentry:
        path = f"organizations/ligo/issues/{issue['id']}/"
        state.fail("issues/", 429, times=2, retry_after="3")
        async with aiohttp.ClientSession() as session, \
                session.get(sentry.api_url + path, headers=AUTH) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "3"
        assert (await call(sentry, "GET", path))[0] == 429
        assert (await call(sentry, "GET", path))[0] == 200
        state.fail("events/latest", 502, hang=True)
        pending = asyncio.ensure_future(call(sentry, "GET", path + "events/latest/"))
        await asyncio.sleep(0.1)
        assert not pending.done()
        state.released.set()
        assert (await pending)[0] == 502
        assert [r.status for r in state.requests][-1] == 502


@pytest.mark.parametrize("name", sorted(samples()))
def test_variants_change_every_shape(name: str) -> None:
    payload = sample(name)
    resource = resource_of(payload)
    assert resource in ("issue", "event_alert", "metric_alert", "legacy")
    if resource == "metric_alert":
        changed = variant(payload, metric_id="77", project="gw", title="T")
        assert changed["data"]["metric_alert"]["id"] == "77"
    else:
        changed = variant(payload, issue_id="77", level="fatal", project="gw")
        assert "77" in json.dumps(changed) and "fatal" in json.dumps(changed)
    assert payload == sample(name)  # the sample itself is untouched
    with pytest.raises(ValueError):
        variant(payload, no_such_field=1)


async def test_sender_signs_the_exact_bytes() -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhooks/sentry", record)
    app.router.add_post("/webhooks/sentry/legacy/{secret}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        sender = SentrySender(url, "s3cret")
        assert await sender.send("issue", sample("issue_created")) == (200, {"ok": True})
        await sender.send("issue", sample("issue_created"), signature=BAD)
        await sender.send("issue", sample("issue_created"), signature=None)
        await sender.send_legacy(sample("legacy_webhooks_plugin_python"), "url-secret")
        good = hmac.new(b"s3cret", seen[0][0], hashlib.sha256).hexdigest()
        assert seen[0][1]["Sentry-Hook-Signature"] == good
        assert seen[0][1]["Sentry-Hook-Resource"] == "issue" and seen[0][1]["Request-ID"]
        assert seen[1][1]["Sentry-Hook-Signature"] != good
        assert "Sentry-Hook-Signature" not in seen[2][1]
        assert "Sentry-Hook-Signature" not in seen[3][1]
    finally:
        await runner.cleanup()
