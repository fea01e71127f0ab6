"""Unauthenticated junk on every inbound route: 4xx, one rate-limited line, no Sentry event.

Two hypothesis fuzzers send raw HTTP/1.1 to a bot with every route mounted (Slack HTTP mode,
Mattermost slash commands and buttons, /healthz, /metrics): the first aims at the routes the
running server *has* (enumerated from its router, so routes added later are fuzzed too), the
second at the HTTP layer itself (any method, target and header line). The deterministic tests
below pin each named example of issue #11.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import re
import string
import time
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junk_harness import MM_TOKEN, TRACEBACK, Answer, JunkRig, junk_rig

from bot.http import Refused

EXPECTED_ROUTES = {"/healthz", "/metrics", "/slack/events", "/mattermost/command",
                   "/mattermost/action"}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND",
           "get", "P0ST"]
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=nope",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=unknown-8bit",
    'application/x-www-form-urlencoded; charset="', "text/plain; charset=utf-16",
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
    "multipart/form-data; boundary=" + "b" * 200, 'multipart/mixed; boundary="open', ";;;", "",
    "*/*", "application/json; charset=utf-8; charset=ascii", "application/json; charset=utf-32",
]
TIMESTAMPS = ["", "soon", "1e9", "-1", "0", "9" * 30, "\u0661\u0662\u0663", " 1700000000",
              "0x10", "nan", "inf", "1700000000.5"]
SIGNATURES = ["", "v0=", "v0=" + "0" * 64, "v0=" + "zz" * 32, "v1=abc", "v0=" + "é" * 64]
AUTHORIZATIONS = ["Token ", "Token", f"Token {MM_TOKEN}x", "token wrong", "Bearer x",
                  "Basic Zm9vOmJhcg==", "Token é", "Token \x7f"]


def header_value(choices: list[str]) -> st.SearchStrategy[bytes]:
    """A listed value, arbitrary text, or arbitrary bytes (never a line break)."""
    return st.one_of(
        st.sampled_from(choices).map(lambda v: v.encode("utf-8")),
        st.text(max_size=40).map(lambda v: v.encode("utf-8")),
        st.binary(max_size=40),
    ).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))


HEADERS = st.lists(st.one_of(
    st.tuples(st.just(b"Content-Type"), header_value(CONTENT_TYPES)),
    st.tuples(st.just(b"X-Slack-Request-Timestamp"), st.one_of(
        header_value(TIMESTAMPS), st.integers().map(lambda n: str(n).encode()),
        st.just(str(int(time.time())).encode()))),
    st.tuples(st.just(b"X-Slack-Signature"), header_value(SIGNATURES)),
    st.tuples(st.just(b"Authorization"), header_value(AUTHORIZATIONS)),
    st.tuples(st.just(b"Content-Encoding"), header_value(["gzip", "deflate", "br", "x"])),
    st.tuples(st.just(b"Transfer-Encoding"), header_value(["chunked", "gzip, chunked"])),
    st.tuples(st.text(TOKEN_CHARS, min_size=1, max_size=20).map(str.encode),
              header_value(["", "x"])),
), max_size=6)

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CONTEXT = st.dictionaries(
    st.sampled_from(list("arevtuqsx")),
    st.one_of(st.text(max_size=20), st.text(SURROGATES, max_size=3), st.integers(),
              st.none(), st.just("9999999999"), st.just("confirm")), max_size=8)
CLICKS = st.fixed_dictionaries({"context": st.one_of(CONTEXT, st.text(max_size=10), st.none())},
                               optional={"user_id": st.text(max_size=30),
                                         "post_id": st.text(max_size=30)})
FORM_FIELDS = st.dictionaries(
    st.sampled_from(["token", "user_id", "channel_id", "text", "command", "payload", "type",
                     "ssl_check", "response_url", "x"]),
    st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)), max_size=6)
MULTIPART = st.tuples(st.sampled_from([b"--x", b"--" + b"b" * 80, b"", b"--"]),
                      st.binary(max_size=80), st.booleans()).map(
    lambda p: p[0] + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n" + p[1]
    + (b"\r\n" + p[0] + b"--\r\n" if p[2] else b""))
BODIES = st.one_of(
    st.binary(max_size=1024),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    CLICKS.map(lambda c: json.dumps(c).encode()),
    FORM_FIELDS.map(lambda f: b"&".join(quote_from_bytes(k.encode()).encode() + b"="
                                        + quote_from_bytes(v).encode() for k, v in f.items())),
    MULTIPART,
)


def concrete(path: str) -> st.SearchStrategy[bytes]:
    """A request target for a route pattern (``/webhooks/{name}`` gets a random name)."""
    segment = st.text(string.ascii_letters + string.digits + "-_.%~", min_size=1, max_size=12)
    query = st.one_of(st.just(""), st.text("abc=&%ff0123_", max_size=30).map(lambda q: "?" + q))
    return st.tuples(st.lists(segment, min_size=path.count("{"), max_size=path.count("{")),
                     query).map(lambda p: _fill(path, p[0], p[1]))


def _fill(path: str, names: list[str], query: str) -> bytes:
    parts = iter(names)
    return (re.sub(r"\{[^}]*\}", lambda _: next(parts), path) + query).encode()


async def fuzz(rig: JunkRig, requests: st.SearchStrategy[Any], examples: int) -> list[Answer]:
    """Send ``examples`` generated requests (hypothesis runs in a thread, the bot in this
    loop); every answer must be below 500 and free of traceback text."""
    loop = asyncio.get_running_loop()
    answers: list[Answer] = []

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def one(request: tuple[bytes, bytes, list[Any], bytes]) -> None:
        answer = asyncio.run_coroutine_threadsafe(rig.send(*request), loop).result(30)
        answers.append(answer)
        assert answer.status < 500, (request[:3], request[3][:200], answer.raw[:500])
        assert not TRACEBACK.search(answer.raw), answer.raw[:2000]

    await asyncio.to_thread(one)
    return answers


async def assert_quiet(rig: JunkRig) -> None:
    """Nothing ran, nothing reached Sentry, nothing was logged loudly, no line repeated."""
    assert await rig.ran_nothing()
    assert rig.sentry.events() == []
    assert [(r.levelname, r.name, r.getMessage()[:200]) for r in rig.loud_records()] == []
    reasons = collections.Counter(line.split(" (", 1)[0] for line in rig.refusal_lines())
    assert all(n == 1 for n in reasons.values()), reasons  # rate-limited: one per reason


# ------------------------------------------------------------------------- fuzzers


async def careless_webhook(request: web.Request) -> web.Response:
    """A route as a hasty later change might write it (parsing before checking anything):
    the generic guard in bot.http must still turn whatever it meets into a 4xx."""
    body = await request.json()
    if request.headers.get("X-Token") != "right" or request.match_info["source"] != "ci":
        raise Refused(401, "webhook with a wrong token")
    return web.json_response({"got": str(body)[:10]}, status=202)


async def test_fuzzed_requests_to_every_route(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    webhook = ("POST", "/webhooks/{source}", careless_webhook)
    async with junk_rig(make_bot, slack, extra_routes=(webhook,)) as rig:
        routes = rig.routes()
        assert {path for _, path in routes} >= EXPECTED_ROUTES | {"/webhooks/{source}"}
        methods = sorted({m for m, _ in routes} | set(METHODS))
        requests = st.sampled_from(routes).flatmap(lambda route: st.tuples(
            st.one_of(st.just(route[0]), st.sampled_from(methods)).map(str.encode),
            concrete(route[1]), HEADERS, BODIES))
        answers = await fuzz(rig, requests, examples=500)
        statuses = collections.Counter(a.status for a in answers)
        assert {400, 401} <= set(statuses), statuses  # the guards were reached, not only 405
        await assert_quiet(rig)
        assert len(rig.refusal_lines()) < len(answers) / 2


async def test_fuzzed_http_layer(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    async with junk_rig(make_bot, slack) as rig:
        no_space = st.binary(min_size=1, max_size=30).filter(
            lambda b: not set(b) & set(b" \r\n"))
        methods = st.one_of(st.sampled_from(METHODS).map(str.encode), no_space)
        paths = st.one_of(
            st.sampled_from([p for _, p in rig.routes()]).map(str.encode),
            st.just(b"*"), st.just(b"http://example.org/healthz"),
            no_space.map(lambda b: b"/" + b),
            st.text("/%.az09~?#&=", max_size=30).map(lambda t: ("/" + t).encode()))
        lines = st.lists(st.one_of(
            st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b),
            HEADERS.map(lambda hs: hs[0][0] + b": " + hs[0][1] if hs else b"X: y")), max_size=4)
        requests = st.tuples(methods, paths, lines, st.one_of(st.just(b""), BODIES))
        await fuzz(rig, requests, examples=300)
        await assert_quiet(rig)


# ------------------------------------------------------------------------- named examples

FORM = b"application/x-www-form-urlencoded"
NOT_UTF8 = b"token=x&user_id=u&channel_id=c&text=\xff\xfe"
DEEP = b"[" * 10_000 + b"]" * 10_000
BIG = b"a=" + b"x" * (2 * 1024 * 1024)
MM_AUTH = (b"Authorization", b"Token " + MM_TOKEN.encode())


def click(context: dict[str, Any]) -> bytes:
    return json.dumps({"user_id": "u", "channel_id": "c", "context": context}).encode()


CASES: dict[str, tuple[str, str, list[tuple[bytes, bytes]], bytes, int]] = {
    "slack timestamp not numeric": ("POST", "/slack/events", [
        (b"Content-Type", FORM), (b"X-Slack-Request-Timestamp", b"soon"),
        (b"X-Slack-Signature", b"v0=" + b"0" * 64)], b"command=%2Fshiftbot&text=help", 401),
    "slack timestamp in other digits": ("POST", "/slack/events", [
        (b"X-Slack-Request-Timestamp", ("\u0661\u0667" + "\u0660" * 8).encode()),
        (b"X-Slack-Signature", b"v0=" + b"0" * 64)], b"text=help", 401),
    "slack body not utf-8": ("POST", "/slack/events", [(b"Content-Type", FORM)], NOT_UTF8, 401),
    "slack unknown charset": ("POST", "/slack/events", [
        (b"Content-Type", FORM + b"; charset=nope")], b"text=help", 401),
    # Unsigned: refused on its headers, before a byte of the body is read.
    "slack 2 MB": ("POST", "/slack/events", [(b"Content-Type", FORM)], BIG, 401),
    "command body not utf-8": ("POST", "/mattermost/command", [(b"Content-Type", FORM)],
                               NOT_UTF8, 400),
    "command body not utf-8, right token": ("POST", "/mattermost/command", [
        (b"Content-Type", FORM), MM_AUTH], NOT_UTF8, 400),
    "command percent-encoded non-utf-8": ("POST", "/mattermost/command", [
        (b"Content-Type", FORM), MM_AUTH], b"user_id=%ff&channel_id=c", 400),
    "command unknown charset": ("POST", "/mattermost/command", [
        (b"Content-Type", FORM + b"; charset=nope")], b"token=wrong&user_id=u", 401),
    "command malformed multipart": ("POST", "/mattermost/command", [
        (b"Content-Type", b"multipart/form-data; boundary=x")], b"--x\r\ngarbage", 415),
    "command malformed multipart, right token": ("POST", "/mattermost/command", [
        (b"Content-Type", b"multipart/form-data"), MM_AUTH], b"--x\r\ngarbage", 415),
    "command query not utf-8": ("GET", "/mattermost/command?token=%ff", [], b"", 400),
    "command 2 MB": ("POST", "/mattermost/command", [(b"Content-Type", FORM)], BIG, 413),
    "click nested 10,000 deep": ("POST", "/mattermost/action", [
        (b"Content-Type", b"application/json")], DEEP, 400),
    "click not utf-8": ("POST", "/mattermost/action", [], b'{"context": "\xff"}', 400),
    "click unknown charset": ("POST", "/mattermost/action", [
        (b"Content-Type", b"application/json; charset=nope")], b"{}", 401),
    "click signature not ascii": ("POST", "/mattermost/action", [], click(
        {"v": "1", "a": "confirm", "r": "abc", "e": "9999999999", "s": "é" * 64}), 401),
    "click lone surrogate": ("POST", "/mattermost/action", [], click(
        {"v": "1", "a": "confirm", "r": "\ud800", "e": "9999999999", "s": "0" * 64}), 401),
    "click 2 MB": ("POST", "/mattermost/action", [], BIG, 413),
    "healthz wrong method": ("POST", "/healthz", [], b"", 405),
    "no such route": ("GET", "/.env", [], b"", 404),
    "bad header bytes": ("GET", "/healthz", [(b"X-Junk", b"\x00\x01")], b"", 400),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_named_junk_is_refused_quietly(make_bot, slack, case: str) -> None:  # type: ignore[no-untyped-def]
    method, target, headers, body, expected = CASES[case]
    async with junk_rig(make_bot, slack) as rig:
        for _ in range(3):
            answer = await rig.send(method.encode(), target.encode(), list(headers), body)
            assert answer.status == expected, answer.raw[:300]
            assert not TRACEBACK.search(answer.raw)
        await assert_quiet(rig)
        assert len(rig.refusal_lines()) == 1, rig.refusal_lines()  # 3 refusals, 1 line


@pytest.mark.parametrize("case", ["not utf-8", "deep json", "not a bolt payload"])
async def test_signed_slack_junk_is_a_400(make_bot, slack, case: str) -> None:  # type: ignore[no-untyped-def]
    """Verified first, decoded after: even a correctly signed body that is not UTF-8 or not
    parseable is a 400 (Slack never sends one), not a 500."""
    body, kind = {"not utf-8": (b"text=\xff", FORM), "deep json": (DEEP, b"application/json"),
                  "not a bolt payload": (b"[1, 2]", b"application/json")}[case]
    async with junk_rig(make_bot, slack) as rig:
        ts = str(int(time.time())).encode()
        mac = hmac.new(slack.signing_secret.encode(), b"v0:" + ts + b":" + body, hashlib.sha256)
        signed = [(b"X-Slack-Request-Timestamp", ts),
                  (b"X-Slack-Signature", b"v0=" + mac.hexdigest().encode())]
        answer = await rig.send(b"POST", b"/slack/events", [(b"Content-Type", kind), *signed],
                                body)
        assert answer.status == 400, answer.raw[:300]
        await assert_quiet(rig)


async def test_unauthenticated_requests_are_counted(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    async with junk_rig(make_bot, slack) as rig:
        for method, target, headers, body, _ in (CASES["slack timestamp not numeric"],
                                                 CASES["command unknown charset"],
                                                 CASES["click signature not ascii"]):
            await rig.send(method.encode(), target.encode(), list(headers), body)
        text = rig.bot.metrics.exposition().decode()
        assert 'shiftbot_auth_failures_total{source="slack"} 1.0' in text
        assert 'shiftbot_auth_failures_total{source="mattermost"} 2.0' in text
