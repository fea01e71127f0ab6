"""A bot with every inbound route mounted, Sentry recording, and a raw HTTP/1.1 client.

No tests here; ``test_inbound_junk.py`` imports :func:`junk_rig`. The client writes requests
byte by byte (any method, target, header or body, however malformed) so the server's own HTTP
parser is exercised too, not only the route handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sample_handlers
import sentry_sdk
from sentry_sdk.transport import Transport

from bot.adapters.mattermost import MattermostAdapter
from bot.adapters.slack import SlackAdapter
from bot.core import Bot
from bot.http import HttpServer
from bot.observability import init_sentry
from bot.runtime import attach_http

MM_TOKEN = "cmdtoken-junk-test"  # the configured Mattermost slash-command token
TRACEBACK = re.compile(rb'Traceback \(most recent|File "[^"]*", line \d|Error handling request')


class RecordingTransport(Transport):
    """Sentry envelopes kept in memory (no network)."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        sentry_sdk.flush(timeout=2)
        return [item.payload.json for env in self.envelopes for item in env.items
                if item.headers.get("type") == "event"]


@dataclass
class Answer:
    status: int
    head: bytes
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.head + b"\r\n\r\n" + self.body


@dataclass
class JunkRig:
    bot: Bot
    http: HttpServer
    slack: SlackAdapter
    mattermost: MattermostAdapter
    sentry: RecordingTransport
    records: list[logging.LogRecord] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.http.port

    def routes(self) -> list[tuple[str, str]]:
        """(method, path pattern) of every route the running server has."""
        return sorted({(r.method, r.resource.canonical) for r in self.http.app.router.routes()
                       if r.resource is not None})

    async def send(self, method: bytes, target: bytes,
                   headers: list[tuple[bytes, bytes] | bytes], body: bytes = b"", *,
                   timeout: float = 10.0) -> Answer:
        """One request on its own connection; the answer as the server sent it. A header is
        ``(name, value)`` or a raw line (which need not be a header at all)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
                    b"Connection: close", b"Content-Length: %d" % len(body)]
            head += [h if isinstance(h, bytes) else h[0] + b": " + h[1] for h in headers]
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        head_part, _, rest = data.partition(b"\r\n\r\n")
        status_line = head_part.split(b"\r\n", 1)[0].split()
        assert len(status_line) >= 2 and status_line[0].startswith(b"HTTP/"), data[:200]
        return Answer(int(status_line[1]), head_part, rest)

    async def ran_nothing(self) -> bool:
        """No command ran and nothing reached the audit trail."""
        return sample_handlers.RUNS == [] and await self.bot.audit.query(limit=1) == []

    def loud_records(self) -> list[logging.LogRecord]:
        """Records that would page someone: ERROR and above, or carrying a traceback."""
        return [r for r in self.records if r.levelno >= logging.ERROR
                or (r.exc_info and r.levelno >= logging.INFO)]

    def refusal_lines(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == "bot.http"
                and r.getMessage().startswith("refused: ")]


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.asynccontextmanager
async def junk_rig(make_bot: Callable[..., Awaitable[Bot]], slack: Any, *,
                   extra_routes: tuple[tuple[str, str, Any], ...] = (),
                   http: dict[str, Any] | None = None) -> AsyncIterator[JunkRig]:
    """Slack (HTTP mode) and Mattermost routes (plus ``extra_routes``: method, path, handler)
    on one server (``http``: more ``bot.http`` settings); Sentry on, recording."""
    sample_handlers.RUNS.clear()
    bot = await make_bot({
        "bot": {"sentry_dsn": "https://public@sentry.invalid/1", "environment": "test",
                "http": http or {}},
        "slack": {"mode": "http", "bot_token": slack.bot_token,
                  "signing_secret": slack.signing_secret, "api_url": slack.api_url,
                  "commands": {"/shiftbot": None, "/sample": "sample"}},
        "mattermost": {"url": "http://127.0.0.1:9", "token": "mm-bot-token", "team": "ops",
                       "command_tokens": [MM_TOKEN]},
    })
    transport = RecordingTransport()
    assert init_sentry(bot.config, transport=transport)
    records: list[logging.LogRecord] = []
    keep = _Keep(records)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(keep)
    root.setLevel(logging.INFO)
    server = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.slack is not None and bot.config.mattermost is not None
    slack_adapter = SlackAdapter(bot, bot.config.slack)
    mattermost = MattermostAdapter(bot, bot.config.mattermost)  # routes only: not started
    for method, path, handler in extra_routes:
        server.add_route(method, path, handler)
    await server.start()
    await slack_adapter.start()
    try:
        yield JunkRig(bot, server, slack_adapter, mattermost, transport, records)
    finally:
        await slack_adapter.stop()
        await server.stop()
        root.removeHandler(keep)
        root.setLevel(old_level)
        sentry_sdk.init(dsn=None)
