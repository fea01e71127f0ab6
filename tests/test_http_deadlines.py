"""Slow clients are cut (slowloris): bot.http.header_timeout_seconds / body_timeout_seconds.

A client that connects and sends nothing, stops in the middle of its headers, or sends a body
(Content-Length or chunked) that never ends would otherwise keep its connection, and its
handler task, as long as it likes: anyone who can reach the port could hold every file
descriptor the bot has. Deadlines of 1 s here; the defaults are 15 s and 30 s.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from junk_harness import junk_rig

TIMEOUTS = {"header_timeout_seconds": 1, "body_timeout_seconds": 1}
CUT_WITHIN = 3.0  # a deadline, plus the drain of a body nobody read (also the body deadline)

SLOW = {
    "nothing sent": b"",
    "headers never end": b"POST /mattermost/command HTTP/1.1\r\nHost: x\r\n",
    "headers trickle in": b"GET /healthz HTTP/1.1\r\n",  # more arrives below, never the end
    "body shorter than Content-Length": (b"POST /mattermost/action HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: 100\r\n\r\n{"),
    "chunked body never ends": (b"POST /mattermost/command HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    "unsigned Slack body never ends": (b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    "a feature route's body never ends": (b"POST /webhooks/slow HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 10\r\n\r\n{"),
    "a body sent to no route": (b"POST /nowhere HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 10\r\n\r\n{"),
}


async def feature_webhook(request: web.Request) -> web.Response:
    """A feature's @route reads its body itself, not through bot.http.read_body."""
    return web.Response(text=f"got {len(await request.read())} bytes\n")


async def _held(port: int, data: bytes) -> tuple[float | None, bytes]:
    """Seconds until the server closed the connection (None: still open), and what it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    started = time.monotonic()
    try:
        if data.startswith(b"GET /healthz"):
            for _ in range(3):  # a header line every 0.4 s: each on time, the head never done
                await asyncio.sleep(0.4)
                writer.write(b"X-Slow: 1\r\n")
        answer = await asyncio.wait_for(reader.read(), CUT_WITHIN + 2)
        return time.monotonic() - started, answer
    except TimeoutError:
        return None, b""
    finally:
        writer.close()


async def test_slow_requests_are_cut_after_their_deadline(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    routes = (("POST", "/webhooks/slow", feature_webhook),)
    async with junk_rig(make_bot, slack, extra_routes=routes, http=TIMEOUTS) as rig:
        held = await asyncio.gather(*(_held(rig.port, data) for data in SLOW.values()))
        late = {name: seconds for name, (seconds, _) in zip(SLOW, held, strict=True)
                if seconds is None or seconds > CUT_WITHIN}
        assert late == {}, f"not cut within {CUT_WITHIN:g} s: {late}"
        unsigned = held[list(SLOW).index("unsigned Slack body never ends")][1]
        assert unsigned.startswith(b"HTTP/1.1 401"), unsigned  # refused before the body
        assert rig.loud_records() == [], [r.getMessage() for r in rig.loud_records()]
        assert any("request body not received within 1 s" in line
                   for line in rig.refusal_lines()), rig.refusal_lines()
        # The server still serves, and a body that arrives in parts within the deadline is read.
        answer = await rig.send(b"GET", b"/healthz", [])
        assert answer.status in (200, 503), answer.raw
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(b"POST /webhooks/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Length: 10\r\n\r\n01234")
        await asyncio.sleep(0.5)
        writer.write(b"56789")
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"got 10 bytes\n"), reply


async def test_an_idle_keep_alive_connection_is_closed(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    async with junk_rig(make_bot, slack, http=TIMEOUTS) as rig:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), CUT_WITHIN + 2)  # answered, then closed
        writer.close()
    assert data.startswith(b"HTTP/1.1 "), data
    assert time.monotonic() - started < CUT_WITHIN
