"""The durable inbox: accept once per dedupe key (SQLite and PostgreSQL, concurrent replicas
too), due rows in order, retries, failures, depth, pruning."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.sentry_sender import resource_of, sample, samples, variant

from bot.alerts import inbox, tables
from bot.alerts.model import SentryAlert
from bot.alerts.payloads import parse_legacy, parse_stored, parse_webhook
from bot.db import Database

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def alert_of(payload: dict) -> tuple[SentryAlert, str]:  # type: ignore[type-arg]
    body = json.dumps(payload)
    resource = resource_of(payload)
    alert = (parse_legacy(body.encode()) if resource == "legacy"
             else parse_webhook(resource, body.encode()))
    assert alert is not None
    return alert, body


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbox.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(url: str) -> Iterator[Database]:
    database = Database(url)
    database.call(tables.metadata.drop_all)
    database.call(tables.create_tables)
    yield database
    database.call(tables.metadata.drop_all)
    database.close()


def test_accept_stores_once_per_dedupe_key(database: Database) -> None:
    for payload in samples().values():
        alert, body = alert_of(payload)
        assert database.call(inbox.accept, alert, body, "req-1", T0) is True
        assert database.call(inbox.accept, alert, body, "req-2", T0) is False  # a re-delivery
    assert database.call(inbox.depth) == len(samples())
    rows = database.call(inbox.due, T0, 100)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(r.request_id == "req-1" and r.received_at == T0 and r.attempts == 0
               for r in rows)
    for row in rows:  # the stored body gives the same alert again
        again = parse_stored(row.resource, row.body)
        assert again is not None and again.subject == row.subject


def test_the_same_event_by_legacy_and_integration_is_one_row(database: Database) -> None:
    legacy, legacy_body = alert_of(sample("legacy_webhooks_plugin_python"))
    alert, body = alert_of(variant(sample("event_alert_triggered_python"),
                                   event_id=legacy.event_id))
    assert database.call(inbox.accept, alert, body, None, T0)
    assert not database.call(inbox.accept, legacy, legacy_body, None, T0)


def test_due_retry_failed_done(database: Database) -> None:
    ids = []
    for n in range(5):
        alert, body = alert_of(variant(sample("issue_created"), issue_id=str(100 + n)))
        database.call(inbox.accept, alert, body, None, T0 + timedelta(seconds=n))
        ids.append(max(r.id for r in database.call(inbox.unfinished, 100)))
    assert [r.id for r in database.call(inbox.due, T0 + timedelta(seconds=2), 100)] == ids[:3]
    database.call(inbox.mark_retry, ids[0], T0 + timedelta(minutes=5), "Sentry API 502")
    database.call(inbox.mark_done, ids[1], T0)
    database.call(inbox.mark_failed, ids[2], "payload no longer parses " + "x" * 900, T0)
    now = T0 + timedelta(minutes=1)
    assert [r.id for r in database.call(inbox.due, now, 100)] == ids[3:]
    assert [r.id for r in database.call(inbox.unfinished, 100)] == [ids[0], *ids[3:]]
    later = database.call(inbox.due, T0 + timedelta(minutes=5), 100)
    assert [r.id for r in later] == [ids[0], *ids[3:]] and later[0].attempts == 1
    assert database.call(inbox.depth) == 3
    assert [r.id for r in database.call(inbox.due, now, 1)] == [ids[3]]  # the limit holds
    error = database.call(lambda conn: conn.execute(
        tables.inbox.select().where(tables.inbox.c.id == ids[2])).first().error)
    assert len(error) <= inbox.ERROR_MAX


def test_prune_keeps_pending_rows(database: Database) -> None:
    ids = []
    for n in range(4):
        alert, body = alert_of(variant(sample("issue_created"), issue_id=str(200 + n)))
        database.call(inbox.accept, alert, body, None, T0 - timedelta(days=100 - n))
        ids.append(max(r.id for r in database.call(inbox.unfinished, 100)))
    database.call(inbox.mark_done, ids[0], T0)
    database.call(inbox.mark_failed, ids[1], "bad", T0)
    database.call(inbox.mark_done, ids[3], T0)
    assert database.call(inbox.prune, T0 - timedelta(days=97, hours=12)) == 2
    assert [r.id for r in database.call(inbox.unfinished, 100)] == [ids[2]]  # old but owed
    assert database.call(inbox.prune, T0) == 1  # ids[3]


def test_long_request_ids_are_cut(database: Database) -> None:
    alert, body = alert_of(sample("issue_created"))
    database.call(inbox.accept, alert, body, "r" * 1000, T0)
    assert database.call(inbox.due, T0, 1)[0].request_id == "r" * inbox.REQUEST_ID_MAX


async def test_replicas_racing_store_each_delivery_once(url: str) -> None:
    """Four processes' databases, 40 deliveries each sent to all of them at once."""
    replicas = [Database(url) for _ in range(4)]
    replicas[0].call(tables.metadata.drop_all)
    replicas[0].call(tables.create_tables)
    try:
        deliveries = [alert_of(variant(sample("issue_created"), issue_id=str(300 + n)))
                      for n in range(40)]
        results = await asyncio.gather(*(
            replica.run(inbox.accept, alert, body, None, T0)
            for alert, body in deliveries for replica in replicas))
        assert sum(results) == 40
        assert replicas[0].call(inbox.depth) == 40
    finally:
        replicas[0].call(tables.metadata.drop_all)
        for replica in replicas:
            replica.close()
