"""Schema migrations and the two supported databases: SQLite (WAL) and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sample_handlers
from conftest import console
from sqlalchemy import func, select, text

from bot import db
from bot.audit import _insert_many
from bot.core import Bot, OutcomeStatus
from bot.identity import Inbound


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    database = db.Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert database.migrate() == 0
    assert database.migrate() == db.LATEST
    versions = database.call(lambda c: c.execute(text("SELECT version FROM schema_version"))
                             .scalars().all())
    assert versions == [v for v, _, _ in db.MIGRATIONS]
    mode = database.call(lambda c: c.execute(text("PRAGMA journal_mode")).scalar())
    assert mode == "wal"
    database.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    database = db.Database(f"sqlite:///{tmp_path / 'x.db'}")
    database.migrate()
    database.call(lambda c: c.execute(db.schema_version.insert().values(
        version=db.LATEST + 1, description="from the future", applied_at=db.utcnow())))
    with pytest.raises(db.SchemaError, match="newer than this shiftbot"):
        database.migrate()
    database.close()


def test_relative_sqlite_path_is_relative_to_the_config(tmp_path: Path) -> None:
    database = db.Database("sqlite:///var/here.db", base_dir=tmp_path)
    database.migrate()
    assert (tmp_path / "var" / "here.db").exists()
    database.close()


def assert_batched_rows_equal_core_inserts(url: str) -> None:
    """The audit's driver-level batch insert stores exactly what a Core insert stores."""
    database = db.Database(url)
    database.migrate()
    rows = [
        {"ts": db.utcnow(), "person": "alice", "platform": "slack", "platform_user": "U0ALICE01",
         "channel": "ops", "command": "condor.rm", "arguments": '{"jobs": ["1.0"]}',
         "decision": "denied", "outcome": None, "duration_ms": 0.25, "approver": None,
         "request_id": None, "detail": "100% 'quoted' %(not)s a ? placeholder"},
        {"ts": db.utcnow(), "person": None, "platform": "console", "platform_user": "x",
         "channel": None, "command": None, "arguments": "", "decision": "invalid",
         "outcome": "ok", "duration_ms": None, "approver": "carol", "request_id": "r-1",
         "detail": None},
    ]
    try:
        before = database.call(
            lambda conn: conn.execute(select(func.coalesce(func.max(db.audit.c.id), 0))).scalar())
        database.call(lambda conn: conn.execute(db.audit.insert(), rows))
        database.call(_insert_many, rows)
        stored = database.call(lambda conn: [
            {k: v for k, v in row._asdict().items() if k != "id"}
            for row in conn.execute(db.audit.select().where(db.audit.c.id > before)
                                    .order_by(db.audit.c.id))])
    finally:
        database.close()
    for row in stored:
        row["ts"] = db.as_utc(row["ts"])
    assert stored[:2] == stored[2:] == rows


def test_audit_batches_store_what_core_inserts_store_on_sqlite(tmp_path: Path) -> None:
    assert_batched_rows_equal_core_inserts(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.mark.postgres
async def test_everything_works_on_postgresql(make_config, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    sample_handlers.RUNS.clear()
    config = make_config({"bot": {"database": postgres_url}})
    bot = await Bot.create(config)
    try:
        assert bot.database.dialect == "postgresql"
        assert (await bot.handle(console("alice", "sample echo hi"))).status == OutcomeStatus.OK
        asked = await bot.handle(console("alice", "sample restart gw"))
        approved = await bot.handle(console("carol", f"approve {asked.request_id}"))
        assert approved.status == OutcomeStatus.OK
        again = await bot.handle(console("erin", f"approve {asked.request_id}"))
        assert "already decided" in again.reply.text
        entries = await bot.audit.query(who="alice", command_glob="sample.*")
        assert {e.decision for e in entries} >= {"allowed", "approval requested", "approved"}
    finally:
        await bot.close()
    assert_batched_rows_equal_core_inserts(postgres_url)
    # A second start (a second replica) finds the schema in place.
    second = db.Database(postgres_url)
    assert second.migrate() == db.LATEST
    second.close()


@pytest.mark.postgres
async def test_postgresql_refusals_never_block_the_audit(make_config, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL refuses NUL in text and values longer than a column: an unparsable line with
    a NUL, or a platform id longer than 100 characters, used to fail its batch forever."""
    bot = await Bot.create(make_config({"bot": {"database": postgres_url}}))
    try:
        bad = await bot.handle(console("alice", "sample echo a\x00b"))
        long_id = await bot.handle(Inbound("slack", "U" * 300, "help"))
        assert (bad.status, long_id.status) == (OutcomeStatus.USAGE, OutcomeStatus.OK)
        entries = await asyncio.wait_for(bot.audit.query(limit=2), 5)
    finally:
        await asyncio.wait_for(bot.close(), 5)
    assert entries[0].platform_user == "U" * 99 + "…"
    assert entries[1].arguments == "sample echo a\\u0000b"


@pytest.mark.postgres
async def test_two_identical_requests_at_once_make_one_pending_request(
        make_config, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """READ COMMITTED and four database threads: a SELECT before the INSERT lets both of two
    identical commands through (a double click, a retried delivery, two replicas); the partial
    unique index on (person, fingerprint) of pending rows lets one."""
    bot = await Bot.create(make_config({"bot": {"database": postgres_url}}))
    try:
        for _ in range(5):
            outcomes = await asyncio.gather(*(bot.handle(console("alice", "sample wipe race"))
                                              for _ in range(4)))
            pending = [o for o in outcomes if o.status == OutcomeStatus.PENDING]
            assert len(pending) == 1, [o.request_id for o in pending]
            refused = [o for o in outcomes if o.status != OutcomeStatus.PENDING]
            assert all(pending[0].request_id in o.reply.text for o in refused)
            await bot.handle(console("alice", f"cancel {pending[0].request_id}"))
    finally:
        await bot.close()
