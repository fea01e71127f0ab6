"""Shared by the digest tests: a bot with the digests feature on the console and a manual
clock, and a seeded database (every source the digest reads, each optional).

The period under test is [PREVIOUS, T0): a digest was recorded at PREVIOUS, so `digest
preview` at T0 covers the day since. Each source gets rows inside the period and rows before
it (which must not show)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CORE_HANDLERS, deep_merge
from sqlalchemy import Connection

from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.alerts import tables as alert_tables
from bot.audit import AuditDecision, AuditOutcome
from bot.clock import ManualClock, use_clock
from bot.core import Bot
from bot.digests import store
from bot.identity import Caller
from bot.meetings import store as meeting_store
from bot.schedule import store as schedule_store
from bot.schedule.model import FAILED, MISSED, Occurrence
from bot.status import store as status_store
from bot.status.model import Level

T0 = datetime(2026, 3, 31, 7, 0, tzinfo=UTC)  # Tuesday 09:00 CEST
PREVIOUS = T0 - timedelta(days=1)
INSIDE = T0 - timedelta(hours=12)  # Monday 21:00 CEST
BEFORE = PREVIOUS - timedelta(hours=3)
SOURCES = ("alerts", "status", "meetings", "missed", "condor")

DIGESTS: dict[str, Any] = {
    "bot": {"handlers": [*CORE_HANDLERS, "handlers.digests"], "timezone": "Europe/Zurich"},
    "roles": {"viewer": {"allow": ["help", "digest"]},
              "shifter": {"allow": ["sample.*", "audit", "digest", "digest.now"]}},
    "notices": {"poll_seconds": 0.05, "flush_timeout_seconds": 1},
    "digests": {"channel": "ops", "at_handover": False, "snapshot_minutes": 0},
}


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


@dataclass
class Rig:
    bot: Bot
    console: ConsoleAdapter
    out: io.StringIO

    async def run(self, line: str, person: str = "alice") -> str:
        self.console.session.person = person
        start = len(self.out.getvalue())
        await self.console.run_once(line)
        assert await self.bot.notices.idle(5)
        return self.out.getvalue()[start:]


async def digest_rig(make_bot: Any, overrides: dict[str, Any] | None = None) -> Rig:
    bot = await make_bot(deep_merge(DIGESTS, overrides or {}))
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession("alice"), out=out)
    await console.start()
    return Rig(bot, console, out)


# ------------------------------------------------------------------------ seeding


def _alerts(conn: Connection) -> None:
    alert_tables.create_tables(conn)
    issue = {"deliveries": 1, "regressions": 0, "alert": "{}", "status": "unresolved"}
    conn.execute(alert_tables.issues.insert(), [
        {**issue, "subject": "sentry:101", "short_id": "GWCELERY-1A", "level": "error",
         "title": "KeyError in gracedb upload", "project": "gwcelery",
         "created_at": INSIDE, "updated_at": INSIDE},
        {**issue, "subject": "sentry:102", "short_id": "GWCELERY-2B", "level": "warning",
         "title": "Slow skymap", "project": "gwcelery", "created_at": BEFORE - timedelta(days=3),
         "updated_at": INSIDE},
        {**issue, "subject": "sentry:103", "short_id": "GWCELERY-3C", "level": "error",
         "title": "Old crash only", "project": "gwcelery", "created_at": BEFORE,
         "updated_at": BEFORE}])
    conn.execute(alert_tables.tickets.insert(), [
        {"subject": "sentry:101", "gitlab_project": "emfollow/gwcelery", "iid": 42,
         "web_url": "https://git.example.org/emfollow/gwcelery/-/issues/42",
         "state": "opened", "created_at": INSIDE}])
    rows = [("sentry:101", INSIDE), ("sentry:101", INSIDE + timedelta(minutes=5)),
            ("sentry:102", INSIDE - timedelta(hours=6)), ("sentry:103", BEFORE)]
    conn.execute(alert_tables.inbox.insert(), [
        {"dedupe_key": f"d{i}", "resource": "issue", "action": "created", "subject": subject,
         "body": "{}", "received_at": at, "state": "done", "attempts": 1, "next_at": at}
        for i, (subject, at) in enumerate(rows)])


def _status(conn: Connection) -> None:
    status_store.create_tables(conn)
    status_store.insert_change(conn, "gwcelery", BEFORE, "level", old=None, new=Level.OK,
                               summary="all fine")
    status_store.insert_change(conn, "gwcelery", INSIDE, "level", old=Level.OK,
                               new=Level.CRITICAL, summary="3 workers down")
    status_store.insert_change(conn, "gwcelery", INSIDE + timedelta(minutes=10), "ack",
                               who="carol", reason="restarting")
    status_store.insert_change(conn, "disk", BEFORE, "level", old=None, new=Level.WARNING,
                               summary="disk 85% before the period")


def _meetings(conn: Connection) -> None:
    meeting_store.create_tables(conn)
    start = INSIDE - timedelta(hours=5)  # Monday 16:00 CEST
    report = meeting_store.open_report(
        conn, series="wmcore", meeting_key="wmcore/2026-03-30T14:00:00Z", title="WMCore weekly",
        starts_at=start, ends_at=start + timedelta(hours=1),
        notice_key="report:wmcore/2026-03-30T14:00:00Z", now=start)
    kept = meeting_store.add_item(conn, report.id, "action", "alice", "rotate the certs",
                                  start, owner="bob")
    done = meeting_store.add_item(conn, report.id, "action", "alice", "already done", start,
                                  owner="carol")
    ticketed = meeting_store.add_item(conn, report.id, "action", "alice", "closed ticket",
                                      start, owner="dave")
    meeting_store.mark_done(conn, done.id, "carol", start)
    meeting_store.record_ticket(conn, meeting_store.Ticket(
        ticketed.id, "github", "dmwm/WMCore", 7, "https://github.com/dmwm/WMCore/issues/7",
        "closed"), start)
    meeting_store.record_ticket(conn, meeting_store.Ticket(
        kept.id, "github", "dmwm/WMCore", 8, "https://github.com/dmwm/WMCore/issues/8",
        "open"), start)
    old = meeting_store.open_report(
        conn, series="compops", meeting_key="compops/old", title="CompOPS of last week",
        starts_at=BEFORE, ends_at=BEFORE, notice_key="report:compops/old", now=BEFORE)
    meeting_store.add_item(conn, old.id, "action", "bob", "old business", BEFORE, owner="bob")


def _missed(conn: Connection) -> None:
    schedule_store.create_tables(conn)
    occs = [Occurrence("reminder:wmcore/2026-03-30T14:00:00Z-10m", "wmcore", "reminder",
                       INSIDE, timedelta(minutes=10)),
            Occurrence("announcement:report/2026-03-30T20:00:00Z", "report", "announcement",
                       INSIDE + timedelta(hours=1), timedelta(minutes=10)),
            Occurrence("reminder:wmcore/old", "wmcore", "reminder", BEFORE, timedelta(0))]
    schedule_store.record(conn, occs[0], MISSED, "p1", T0, "not sent: the bot was down")
    schedule_store.record(conn, occs[1], FAILED, "p1", T0, "DeliveryError: refused")
    schedule_store.record(conn, occs[2], MISSED, "p1", T0, "too old")


def _condor(conn: Connection) -> None:
    store.add_snapshot(conn, "gwcelery", BEFORE, {"idle": 99, "held": 9})
    store.add_snapshot(conn, "gwcelery", PREVIOUS - timedelta(minutes=5),
                       {"idle": 40, "held": 2, "running": 100})
    store.add_snapshot(conn, "gwcelery", INSIDE, {"idle": 45, "held": 4, "running": 90})
    store.add_snapshot(conn, "gwcelery", T0 - timedelta(minutes=5),
                       {"idle": 50, "held": 5, "running": 80})


SEEDERS = {"alerts": _alerts, "status": _status, "meetings": _meetings, "missed": _missed,
           "condor": _condor}


async def seed(bot: Bot, sources: tuple[str, ...] = SOURCES) -> None:
    """The chosen sources' tables and rows; a digest recorded at PREVIOUS; audit rows."""
    def write(conn: Connection) -> None:
        for name in sources:
            SEEDERS[name](conn)
        store.record_sent(conn, "digest:daily/prev", "daily", PREVIOUS - timedelta(days=1),
                          PREVIOUS, PREVIOUS)

    await bot.database.run(write)
    await _audit(bot)


async def _audit(bot: Bot) -> None:
    from bot import clock as bot_clock

    manual = bot_clock._now
    assert isinstance(manual, ManualClock)
    alice = Caller("console", "alice", bot.directory.people["alice"])
    carol = Caller("console", "carol", bot.directory.people["carol"])
    rows = [(BEFORE, alice, "condor.rm", AuditDecision.ALLOWED, {"outcome": AuditOutcome.OK}),
            (INSIDE, alice, "condor.q", AuditDecision.ALLOWED, {"outcome": AuditOutcome.OK}),
            (INSIDE, alice, "condor.hold", AuditDecision.ALLOWED, {"outcome": AuditOutcome.OK}),
            (INSIDE, alice, "restart", AuditDecision.APPROVED,
             {"outcome": AuditOutcome.OK, "approver": "carol", "request_id": "r7"}),
            (INSIDE, carol, "sample.echo", AuditDecision.DENIED_BY_APPROVER,
             {"request_id": "r8"}),
            (INSIDE, alice, "condor.release", AuditDecision.DENIED, {"detail": "no grant"})]
    saved = manual.now
    for at, caller, command, decision, extra in rows:
        manual.now = at
        await bot.audit.record(caller, command, json.dumps({"job": "1234.0"}), decision,
                               **extra)
    manual.now = saved
