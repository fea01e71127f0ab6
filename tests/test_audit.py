"""The audit trail: content of every entry, redaction of secrets, the audit command."""

from __future__ import annotations

import asyncio
import logging
import time

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


async def test_quick_rows_are_written_in_batches(make_bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Rows of quick outcomes wait (up to the batching window) for company and go in one
    transaction; flush() writes them at once instead of waiting out the window."""
    from bot import audit as audit_module

    bot = await make_bot()
    batches: list[int] = []
    insert_many = audit_module._insert_many

    def counting(conn, rows):  # type: ignore[no-untyped-def]
        batches.append(len(rows))
        insert_many(conn, rows)

    monkeypatch.setattr(audit_module, "_insert_many", counting)
    monkeypatch.setattr(audit_module, "BATCH_WINDOW_SECONDS", 30.0)
    for _ in range(25):
        await bot.handle(console("alice", "help"))
    await asyncio.sleep(0.05)
    assert batches == []  # waiting for company
    started = time.monotonic()
    await bot.audit.flush()
    assert time.monotonic() - started < 5 and batches == [25]
    assert len(await bot.audit.query(command_glob="help", limit=100)) == 25

    monkeypatch.setattr(audit_module, "BATCH_WINDOW_SECONDS", 0.05)
    await bot.handle(console("bob", "whoami"))
    for _ in range(100):  # written by the background flush, no flush() call
        if batches[1:]:
            break
        await asyncio.sleep(0.02)
    assert batches == [25, 1]
