"""The Sentry API client against the fake Sentry: paths, Bearer token, answers, and errors
(transient or not, Retry-After in seconds or as a date, timeouts), never showing the token."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from fakes.sentry import TOKEN, FakeSentry, SentryState
from pydantic import SecretStr

from bot.alerts.config import SentryConfig
from bot.alerts.sentry_api import SentryApi, SentryError
from bot.clock import ManualClock, use_clock


@pytest.fixture
async def sentry() -> AsyncIterator[FakeSentry]:
    state = SentryState()
    state.add_issue("101", project="gwcelery", count=5)
    state.add_issue("102", project="gwcelery", status="resolved")
    state.add_issue("103", project="other")
    async with FakeSentry(state) as fake:
        yield fake


def api(sentry: FakeSentry, *, token: str = TOKEN, org: str = "ligo",
        timeout: float = 5.0) -> SentryApi:
    return SentryApi(sentry.api_url, token, org, timeout)


async def test_issue_and_latest_event(sentry: FakeSentry) -> None:
    client = api(sentry)
    issue = await client.issue("101")
    assert issue["id"] == "101" and issue["count"] == "5"
    event = await client.latest_event("101")
    assert event["groupID"] == "101" and event["entries"][0]["type"] == "exception"
    first = sentry.state.requests[0]
    assert first.method == "GET" and first.path == "organizations/ligo/issues/101/"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sentry.state.requests[1].path == "organizations/ligo/issues/101/events/latest/"


async def test_set_status_and_link_external(sentry: FakeSentry) -> None:
    client = api(sentry)
    for status in ("resolved", "ignored", "unresolved"):
        assert (await client.set_status("101", status))["status"] == status
    assert [(c.issue_id, c.status) for c in sentry.state.status_changes] == [
        ("101", "resolved"), ("101", "ignored"), ("101", "unresolved")]
    with pytest.raises(SentryError, match="unknown issue status"):
        await client.set_status("101", "deleted")
    await client.link_external("a8e5d37a-696c", "101", "https://git.example/g/p/-/issues/7",
                               "g/p", "g/p#7")
    link = sentry.state.external_issues[0]
    assert (link["installation"], link["issueId"], link["identifier"]) == (
        "a8e5d37a-696c", "101", "g/p#7")
    assert sentry.state.requests[-1].body["issueId"] == 101  # an integer, as Sentry wants


async def test_unresolved_issues(sentry: FakeSentry) -> None:
    client = api(sentry)
    found = await client.unresolved_issues("gwcelery")
    assert [i["id"] for i in found] == ["101"]
    assert unquote(sentry.state.requests[-1].path) == \
        "projects/ligo/gwcelery/issues/?query=is:unresolved&limit=100"
    for n in range(5):
        sentry.state.add_issue(str(200 + n), project="busy")
    assert len(await client.unresolved_issues("busy", limit=3)) == 3
    assert await client.unresolved_issues("nobody") == []


@pytest.mark.parametrize("status,transient", [(401, False), (403, False), (404, False),
                                              (400, False), (500, True), (502, True),
                                              (503, True)])
async def test_statuses(sentry: FakeSentry, status: int, transient: bool) -> None:
    sentry.state.fail(r"issues/101/$", status)
    with pytest.raises(SentryError) as caught:
        await api(sentry).issue("101")
    assert caught.value.status == status and caught.value.transient is transient
    assert TOKEN not in str(caught.value)
    assert (await api(sentry).issue("101"))["id"] == "101"  # one failure injected, then fine


async def test_real_auth_and_not_found_errors(sentry: FakeSentry) -> None:
    with pytest.raises(SentryError, match="refused the token") as caught:
        await api(sentry, token="sntrys-wrong-token-abcdef").issue("101")
    assert "sntrys-wrong-token-abcdef" not in str(caught.value)
    assert not caught.value.transient
    with pytest.raises(SentryError, match="404") as caught:
        await api(sentry).issue("999")
    with pytest.raises(SentryError, match="404"):
        await api(sentry, org="other-org").issue("101")


@pytest.mark.parametrize("header,expected", [("7", 7.0), ("0.5", 0.5), (None, None),
                                             ("soon", None), ("-5", 0.0)])
async def test_429_retry_after_seconds(sentry: FakeSentry, header: str | None,
                                       expected: float | None) -> None:
    sentry.state.fail("issues/", 429, retry_after=header)
    with pytest.raises(SentryError) as caught:
        await api(sentry).issue("101")
    assert caught.value.transient and caught.value.status == 429
    assert caught.value.retry_after == expected


async def test_429_retry_after_http_date(sentry: FakeSentry) -> None:
    start = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # the bot's clock, not the wall's
    clock = ManualClock(start)
    when = start + timedelta(seconds=90)
    sentry.state.fail("issues/", 429, retry_after=email.utils.format_datetime(when,
                                                                                usegmt=True))
    with use_clock(clock), pytest.raises(SentryError) as caught:
        await api(sentry).issue("101")
    assert caught.value.retry_after == pytest.approx(90, abs=1)


async def test_a_hang_is_a_transient_timeout(sentry: FakeSentry) -> None:
    sentry.state.fail("events/latest", 200, hang=True)
    started = time.monotonic()
    with pytest.raises(SentryError, match="did not answer within") as caught:
        await api(sentry, timeout=0.3).latest_event("101")
    assert caught.value.transient and time.monotonic() - started < 3


async def test_unreachable_is_transient() -> None:
    client = SentryApi("http://127.0.0.1:9/api/0/", TOKEN, "ligo", 2.0)
    with pytest.raises(SentryError, match="cannot reach Sentry") as caught:
        await client.issue("1")
    assert caught.value.transient


async def test_bad_ids_never_reach_sentry(sentry: FakeSentry) -> None:
    for bad in ("../../admin", "1/events", "", "12a", "١٢٣"):
        with pytest.raises(SentryError, match="not a Sentry issue id"):
            await api(sentry).issue(bad)
    assert sentry.state.requests == []


async def test_a_non_json_or_wrong_shape_answer_is_an_error(sentry: FakeSentry) -> None:
    sentry.state.issues["101"] = ["not", "an", "object"]  # type: ignore[assignment]
    with pytest.raises(SentryError, match="not an issue"):
        await api(sentry).issue("101")


def test_from_config() -> None:
    assert SentryApi.from_config(None) is None
    assert SentryApi.from_config(SentryConfig()) is None
    assert SentryApi.from_config(SentryConfig(token=SecretStr("tok-12345"))) is None
    client = SentryApi.from_config(SentryConfig(token=SecretStr("tok-12345"), org="ligo",
                                                api_url="https://sentry.example/api/0",
                                                timeout_seconds=3))
    assert client is not None and client.api_url == "https://sentry.example/api/0/"
    assert (client.org, client.timeout) == ("ligo", 3)
    assert "tok-12345" not in repr(vars(client).get("api_url"))
