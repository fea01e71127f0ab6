"""The audit trail: content of every entry, redaction of secrets, the audit command."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import console

from bot.audit import AuditDecision
from bot.core import Bot, OutcomeStatus
from bot.identity import Caller, Inbound
from bot.markup import plain
from bot.render import render_text
from bot.secrets import masker
from handlers.audit import MAX_LIMIT


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


async def test_unstorable_text_never_blocks_the_audit(make_config) -> None:  # type: ignore[no-untyped-def]
    """Slack's and Mattermost's JSON can deliver lone surrogates ("\\ud800"). The parser refuses
    such a line, but its audit row holds the line as sent: SQLite cannot encode it, and the
    writer used to retry that batch forever, so every later row and shutdown waited too."""
    bot = await Bot.create(make_config())
    try:
        out = await bot.handle(Inbound("slack", "U0ALICE01", "sample echo \ud800",
                                       channel_id="C\udc00"))
        assert out.status == OutcomeStatus.USAGE and "U+D800" in plain(out.reply.text)
        # Whoever builds the row: every text column is stored, escaped and cut to its width.
        bot.audit.record_soon(Caller("mattermost", "u\udfff" + "x" * 200, None, "c\x00"), None,
                              "a\x00b\ud83d", AuditDecision.INVALID, detail="d\udc00")
        entries = await asyncio.wait_for(bot.audit.query(limit=5), 5)
    finally:
        await asyncio.wait_for(bot.close(), 5)
    direct, line = entries
    assert (line.decision, line.arguments) == ("invalid", "sample echo \\ud800")
    assert line.channel == "C\ufffd"  # an id with a surrogate is no real id: made unknown
    assert direct.platform_user == "u\\udfff" + "x" * 92 + "…"  # String(100)
    assert (direct.channel, direct.arguments, direct.detail) == ("c\\u0000", "a\\u0000b\\ud83d",
                                                                 "d\\udc00")


# ------------------------------------------------------------------------- the audit view


def view(out) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The audit reply's table as one dict per row, by column name."""
    table = out.reply.table
    assert table is not None, out.reply.text
    assert table.omitted == 0  # the handler fetched no more than one table shows
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


async def test_view_shows_arguments_reasons_and_request_ids(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    await bot.handle(console("alice", "sample echo hi there"))
    await bot.handle(console("alice", "sample login --token hunter2hunter2"))
    await bot.handle(console("dave", "sample table"))  # dave is a viewer only in #ops
    asked = await bot.handle(console("alice", "sample restart gwcelery"))
    request = asked.request_id
    await bot.handle(console("erin", f"deny {request} not during the O4 run"))
    rows = view(await bot.handle(console("alice", "audit")))
    what = {row["what"].split()[0]: row for row in rows}
    assert 'words="hi there"' in what["sample.echo"]["what"]
    assert what["sample.login"]["what"] == "sample.login token=***"  # redacted as stored
    assert "hunter2" not in str(rows)
    denied = what["sample.table"]
    assert (denied["who"], denied["decision"]) == ("dave", "denied")
    assert "no grant gives dave" in denied["detail"]
    story = [(row["who"], row["what"], row["decision"].split(":")[0], row["detail"])
             for row in rows if row["request"] == request]
    assert story == [
        ("erin", f"deny {request} not during the O4 run", "allowed", ""),
        ("alice", "sample.restart service=gwcelery", "denied by erin", "not during the O4 run"),
        ("alice", "sample.restart service=gwcelery", "approval requested", ""),
    ]


async def test_refused_approval_reads_as_a_refused_decision(make_bot) -> None:  # type: ignore[no-untyped-def]
    """bob (no expert) tries to approve alice's request: the view must not read as bob's own
    restart being denied."""
    bot = await make_bot()
    request = (await bot.handle(console("alice", "sample restart gwcelery"))).request_id
    assert (await bot.handle(console("bob", f"approve {request}"))).status == OutcomeStatus.DENIED
    await bot.handle(console("carol", f"approve {request}"))
    rows = view(await bot.handle(console("alice", "audit --who bob")))
    assert len(rows) == 2  # the decision the gate refused, and the typed command asking for it
    bob, typed = rows
    assert (typed["what"], typed["request"]) == (f"approve {request}", request)
    assert bob["decision"] == "refused" and bob["request"] == request
    assert bob["what"].split()[0] in ("approve", "decision")  # "decision on": older rows
    assert f"{request} (" in bob["what"] and "gwcelery" in bob["what"]
    assert not bob["what"].startswith("sample.restart")
    assert "needs role expert" in bob["detail"]
    alice = view(await bot.handle(console("alice", "audit --who alice --command sample.restart")))
    assert [row["decision"].split(":")[0] for row in alice] == ["approved by carol",
                                                                "approval requested"]


async def test_refused_decisions_name_the_choice(make_bot) -> None:  # type: ignore[no-untyped-def]
    """Rows recorded with the refused-decision values say which decision was refused, also
    when the decider is the requester (approving one's own request)."""
    from bot.audit import AuditDecision
    from bot.reply import Choice

    bot = await make_bot()
    arguments = '{"service": "gwcelery"}'
    for who, choice in (("bob", Choice.APPROVE), ("alice", Choice.APPROVE),
                        ("carol", Choice.CONFIRM)):
        caller = bot.directory.caller(console(who, ""))
        await bot.audit.record(caller, "sample.restart", arguments,
                               AuditDecision.refused(choice), request_id="k3x9qa",
                               detail=f"{who} may not")
    rows = view(await bot.handle(console("alice", "audit --command sample.restart")))
    assert [(r["who"], r["what"], r["decision"]) for r in rows] == [
        ("carol", "confirm k3x9qa (sample.restart service=gwcelery)", "refused"),
        ("alice", "approve k3x9qa (sample.restart service=gwcelery)", "refused"),
        ("bob", "approve k3x9qa (sample.restart service=gwcelery)", "refused"),
    ]
    assert AuditDecision.refused(Choice.DENY) == AuditDecision.DENY_REFUSED


async def test_limit_beyond_one_table_is_said_and_paged(make_bot) -> None:  # type: ignore[no-untyped-def]
    """--limit 100 with tables of 5 rows: 5 are fetched and the reply says so (not "100
    shown"), and the command it names for older entries pages through all of them."""
    import re

    bot = await make_bot({"bot": {"max_table_rows": 5}})
    for i in range(12):
        await bot.handle(console("alice", f"sample echo n{i}"))
    line, seen, replies = "audit --command sample.echo --limit 100", [], []
    while line:
        out = await bot.handle(console("alice", line))
        replies.append(out.reply.text)
        seen += [row["what"].split("words=")[1] for row in view(out)]
        found = re.search(r"Older: `([^`]+)`", render_text(out.reply, "console"))
        line = found.group(1) if found else ""
    assert seen == [f"n{i}" for i in range(11, -1, -1)]  # all 12, newest first, none twice
    assert len(replies) == 3
    assert "The newest 5 entries" in replies[0] and "older ones match too" in replies[0]
    assert "--limit 100 was lowered to 5" in replies[0] and "100 shown" not in replies[0]
    assert replies[2].startswith("All 2 entries") and "Older" not in replies[2]


async def test_limit_says_whether_more_entries_exist(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    for word in ("a", "b", "c"):
        await bot.handle(console("alice", f"sample echo {word}"))
    exactly = await bot.handle(console("alice", "audit --command sample.echo --limit 3"))
    assert len(view(exactly)) == 3
    assert exactly.reply.text.startswith("All 3 entries") and "older" not in exactly.reply.text
    await bot.handle(console("alice", "sample echo d"))
    more = await bot.handle(console("alice", "audit --command sample.echo --limit 3"))
    assert [row["what"].split("words=")[1] for row in view(more)] == ["d", "c", "b"]
    assert more.reply.text.startswith("The newest 3 entries")
    assert "older ones match too" in more.reply.text and "--before" in more.reply.text
    assert "lowered" not in more.reply.text
    # Out of bounds: the parser refuses it with the usage; the handler never sees it.
    for bounds, said in (("--limit 0", "limit: must be at least 1, got 0"),
                         ("--limit -3", "limit: must be at least 1, got -3"),
                         (f"--limit {MAX_LIMIT + 1}", f"must be at most {MAX_LIMIT}, got"),
                         ("--before 0", "before: must be at least 1, got 0")):
        bad = await bot.handle(console("alice", f"audit {bounds}"))
        assert bad.status == OutcomeStatus.USAGE, bounds
        assert said in plain(bad.reply.text) and "Usage: audit" in plain(bad.reply.text)


async def test_filters_find_old_matches_and_unknown_users(make_bot) -> None:  # type: ignore[no-untyped-def]
    """A command glob finds a match behind many newer non-matching rows, and --who takes the
    platform:id the view shows for people the config does not know."""
    bot = await make_bot()
    await bot.handle(console("alice", "sample echo old"))
    for _ in range(60):
        await bot.handle(console("alice", "whoami"))
    out = await bot.handle(console("alice", "audit --command sample.echo --limit 1"))
    assert [row["what"] for row in view(out)] == ["sample.echo times=1 words=old"]
    assert out.reply.text.startswith("The only entry")
    await bot.handle(Inbound("slack", "U0NOBODY", "help"))
    unknown = view(await bot.handle(console("alice", "audit --who slack:U0NOBODY")))
    assert [(row["who"], row["what"]) for row in unknown] == [("slack:U0NOBODY", "help")]


async def test_view_times_are_local_and_named_across_dst(make_bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two entries an hour apart the night Zurich falls back both happened at 02:30 local
    time: the zone names tell them apart; the database keeps UTC."""
    from datetime import UTC, datetime

    from bot import db
    from bot.audit import AuditDecision, AuditLog, AuditOutcome

    bot = await make_bot({"bot": {"timezone": "Europe/Zurich"}})
    alice = bot.directory.caller(console("alice", ""))
    rows = []
    for hour in (0, 1):  # 00:30 and 01:30 UTC on 2026-10-25
        row = AuditLog._row(alice, "sample.echo", '{"words": ["dst"]}', AuditDecision.ALLOWED,
                            outcome=AuditOutcome.OK)
        row["ts"] = datetime(2026, 10, 25, hour, 30, tzinfo=UTC)
        rows.append(row)
    await bot.database.run(lambda conn: conn.execute(db.audit.insert(), rows))
    # "--since 1d" counts back from the database's now: make that the morning after.
    monkeypatch.setattr(db, "utcnow", lambda: datetime(2026, 10, 25, 9, 0, tzinfo=UTC))
    out = await bot.handle(console("alice", "audit --since 1d --command sample.echo"))
    assert [row["time"] for row in view(out)] == ["2026-10-25 02:30:00 CET",
                                                  "2026-10-25 02:30:00 CEST"]
    assert "Times in Europe/Zurich" in out.reply.text
    stored = await bot.audit.query(since=None, command_glob="sample.echo")
    assert [e.ts.hour for e in stored] == [1, 0] and all(e.ts.utcoffset() == timedelta(0)
                                                         for e in stored)


async def test_arguments_mask_a_secret_before_json_escapes_it(
        make_bot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """JSON escapes a secret ('ä' -> '\\u00e4', '"' -> '\\"'): masked before encoding, so the
    stored row and the 'audit' view (which decodes it) never hold it."""
    secret = 'pässwort-"geheim"-4711'
    monkeypatch.setenv("DB_PASSWORD", secret)
    bot = await make_bot({"bot": {"environment": "${DB_PASSWORD}"}})  # any key: a secret
    await bot.handle(console("alice", f"sample echo '{secret}'"))
    await bot.audit.flush()
    rows = sqlite3.connect(tmp_path / "bot.db").execute("select arguments from audit").fetchall()
    stored = [r[0] for r in rows]
    assert any("***" in row for row in stored), stored
    assert not any("geheim" in row or "geheim" in str(json.loads(row)) for row in stored
                   if row.startswith("{")), stored
    shown = render_text((await bot.handle(console("alice", "audit"))).reply, "console")
    assert "geheim" not in shown, shown
