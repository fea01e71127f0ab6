"""The bot's own errors reach Sentry (captured by a custom transport: no network)."""

from __future__ import annotations

import sentry_sdk
from conftest import console
from sentry_sdk.transport import Transport

from bot import __version__
from bot.observability import init_sentry
from bot.secrets import masker


class RecordingTransport(Transport):
    def __init__(self, options: dict | None = None) -> None:  # type: ignore[type-arg]
        super().__init__(options)
        self.envelopes: list = []  # type: ignore[type-arg]

    def capture_envelope(self, envelope) -> None:  # type: ignore[no-untyped-def]
        self.envelopes.append(envelope)


async def test_internal_error_is_reported(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"sentry_dsn": "https://public@sentry.invalid/1",
                                  "environment": "test"}})
    transport = RecordingTransport()
    masker.add("secret-token-value")
    try:
        assert init_sentry(bot.config, transport=transport)
        expected = await bot.handle(console("alice", "sample fail expected"))
        assert expected.status == "error"  # a CommandError is an answer, not a crash
        outcome = await bot.handle(console("alice", "sample fail internal"))
        assert "internal error" in outcome.reply.text
        sentry_sdk.flush(timeout=2)
        events = [item.payload.json for env in transport.envelopes for item in env.items
                  if item.headers.get("type") == "event"]
        assert len(events) == 1, events  # once, from the log record with the traceback
        event = events[0]
        assert event["release"] == f"shiftbot@{__version__}"
        assert event["environment"] == "test"
        assert "command sample.fail failed" in str(event.get("logentry") or event.get("message"))
        assert event["exception"]["values"][-1]["type"] == "RuntimeError"
        assert "secret-token-value" not in str(event)  # masked before it leaves
    finally:
        sentry_sdk.init(dsn=None)


async def test_no_dsn_no_sentry(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    assert init_sentry(bot.config) is False
