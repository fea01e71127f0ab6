"""The audit trail: content of every entry, redaction of secrets, the audit command."""

from __future__ import annotations

import logging

from conftest import console

from bot.core import OutcomeStatus
from bot.identity import Inbound
from bot.secrets import masker


async def test_entries_have_the_full_story(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    await bot.handle(Inbound("slack", "U0ALICE01", "sample echo hi", channel_id="C1",
                             channel_alias="ops"))
    await bot.handle(console("dave", "sample wipe x"))
    await bot.handle(Inbound("slack", "U0NOBODY", "audit"))
    await bot.handle(console("alice", "sample fail expected"))
    await bot.handle(console("alice", "sample nosuch"))
    entries = {e.command or "?": e for e in await bot.audit.query(limit=10)}
    ok = entries["sample.echo"]
    assert (ok.person, ok.platform, ok.platform_user, ok.channel) == ("alice", "slack",
                                                                      "U0ALICE01", "ops")
    assert ok.decision == "allowed" and ok.outcome == "ok" and ok.duration_ms is not None
    assert '"words": ["hi"]' in ok.arguments
    assert entries["sample.wipe"].decision == "denied"
    assert "no grant gives dave" in (entries["sample.wipe"].detail or "")
    unknown = entries["audit"]
    assert unknown.person is None and unknown.platform_user == "U0NOBODY"
    assert entries["sample.fail"].outcome == "error"
    assert "did not answer" in (entries["sample.fail"].detail or "")
    assert entries["?"].decision == "invalid"


async def test_secrets_are_redacted(make_bot, caplog) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"slack": {"bot_token": "xoxb-very-secret-123", "app_token": "xapp-1"}})
    await bot.handle(console("alice", "sample login --token hunter2hunter2"))
    await bot.handle(console("alice", "sample echo xoxb-very-secret-123"))
    masker.add("secret-token-value")
    with caplog.at_level(logging.ERROR):
        await bot.handle(console("alice", "sample fail internal"))
    entries = await bot.audit.query(limit=10)
    dump = " ".join(f"{e.arguments} {e.detail}" for e in entries)
    assert "hunter2hunter2" not in dump and "xoxb-very-secret-123" not in dump
    assert '"token": "***"' in dump and "secret-token-value" not in dump
    assert "xoxb-very-secret-123" not in repr(bot.config)


async def test_audit_command_filters(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    for line in ("sample echo a", "sample echo b", "sample table"):
        await bot.handle(console("alice", line))
    await bot.handle(console("bob", "sample echo c"))
    out = await bot.handle(console("alice", "audit --who bob --command 'sample.*'"))
    assert out.status == OutcomeStatus.OK and out.reply.table is not None
    assert [row[1] for row in out.reply.table.rows] == ["bob"]
    limited = await bot.handle(console("alice", "audit --limit 2"))
    assert limited.reply.table is not None and len(limited.reply.table.rows) == 2
    denied = await bot.handle(console("dave", "audit", "ops"))
    assert denied.status == OutcomeStatus.DENIED
