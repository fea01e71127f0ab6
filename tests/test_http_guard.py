"""The pieces of the inbound guard: rate-limited refusal lines, body decoding, Slack signatures,
and the middleware's split between a bad request (400) and a bug (500, one Sentry event)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest
from aiohttp import web
from junk_harness import TRACEBACK, junk_rig

from bot.adapters.slack.verify import SlackSignature
from bot.http import RefusalLog, Refused, json_depth_ok, parse_form, parse_json


def test_refusals_are_logged_once_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t")
    now = [100.0]
    refusals = RefusalLog(logging.getLogger("t"), interval=60, clock=lambda: now[0])
    assert refusals.note("bad signature", "from 10.0.0.1")
    for _ in range(4):
        assert not refusals.note("bad signature", "from 10.0.0.2")
    assert refusals.note("not UTF-8")  # another reason has its own budget
    now[0] += 61
    assert refusals.note("bad signature", "from 10.0.0.3")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused: bad signature (from 10.0.0.1)", "refused: not UTF-8",
                     "refused: bad signature (from 10.0.0.3) [4 more since the last such line]"]
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in caplog.records)


def test_json_depth_is_measured_without_parsing() -> None:
    assert json_depth_ok('{"a": [1, {"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]}', 3)
    assert not json_depth_ok("[" * 5 + "]" * 5, 4)
    assert json_depth_ok('["\\"[[[[[", ' + "[]," * 50 + "1]", 2)  # escaped quotes stay strings
    with pytest.raises(Refused, match="nested deeper than 32"):
        parse_json(b"[" * 10_000 + b"]" * 10_000, what="click")
    with pytest.raises(Refused, match="not JSON"):
        parse_json(b"{", what="click")
    with pytest.raises(Refused, match="not UTF-8") as caught:
        parse_json(b'"\xff"', what="click")
    assert caught.value.status == 400
    assert parse_json(json.dumps({"a": [1, 2]}).encode(), what="click") == {"a": [1, 2]}


def test_forms_are_strict_utf8_and_bounded() -> None:
    assert parse_form(b"a=1&b=%C3%A9&c=", what="f") == {"a": "1", "b": "é", "c": ""}
    for raw in (b"a=\xff", b"a=%ff", b"&".join(b"f%d=1" % i for i in range(101))):
        with pytest.raises(Refused) as caught:
            parse_form(raw, what="f")
        assert caught.value.status == 400


def test_slack_signature_is_checked_before_anything_else() -> None:
    signer = SlackSignature("s3cret", clock=lambda: 1_700_000_000.0)
    body = b"text=\xff\x00 anything at all"

    def headers(ts: str, body: bytes = body, secret: bytes = b"s3cret") -> dict[str, str]:
        mac = hmac.new(secret, f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac}

    signer.check(headers("1700000100"), body)  # raw bytes, whatever they are
    refused = {
        "unsigned": ({}, "unsigned"),
        "not numeric": (headers("soon"), "malformed timestamp"),
        "other digits": (headers("\u0661\u0667\u0660\u0660"), "malformed timestamp"),
        "negative": (headers("-1700000000"), "malformed timestamp"),
        "huge": (headers("9" * 40), "malformed timestamp"),
        "stale": (headers("1699999000"), "5 minute window"),
        "other secret": (headers("1700000000", secret=b"other"), "wrong signature"),
        "other body": (headers("1700000000", body=b"text=hi"), "wrong signature"),
        "not hex": ({**headers("1700000000"), "X-Slack-Signature": "v0=" + "é" * 64},
                    "malformed signature"),
    }
    for name, (given, reason) in refused.items():
        with pytest.raises(Refused, match=reason) as caught:
            signer.check(given, body)
        assert caught.value.status == 401 and caught.value.auth_source == "slack", name


async def test_a_bug_is_a_500_with_one_event_and_no_traceback_shown(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    """Bad requests are 400s; an exception of the bot's own is a bug: 500, a reference, one
    ERROR line with the traceback (one Sentry event however often it happens)."""
    async def decodes(request: web.Request) -> web.Response:
        await request.post()  # aiohttp's own parser meets a broken multipart body
        return web.Response(text="ok")

    async def buggy(request: web.Request) -> web.Response:
        raise KeyError("a genuine bug")

    routes = (("POST", "/test/decodes", decodes), ("GET", "/test/buggy", buggy))
    async with junk_rig(make_bot, slack, extra_routes=routes) as rig:
        broken = [(b"Content-Type", b"multipart/form-data; boundary=x")]
        assert (await rig.send(b"POST", b"/test/decodes", broken, b"--x\r\nzz")).status == 400
        for _ in range(3):
            answer = await rig.send(b"GET", b"/test/buggy", [])
            assert answer.status == 500 and b"internal error (reference " in answer.body
            assert not TRACEBACK.search(answer.raw) and b"genuine" not in answer.raw
        errors = [r for r in rig.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is not None
        events = rig.sentry.events()
        assert len(events) == 1 and events[0]["exception"]["values"][-1]["type"] == "KeyError"
