"""The durable inbox: every accepted Sentry delivery is a row here before Sentry gets its 200.

A crash after the ack loses nothing: the alerts service processes pending rows (in id order,
their ``next_at`` reached) on every start. A delivery whose dedupe key is already stored (a
re-fired alert rule, the same event by the legacy plugin and the integration, a status flip
seen twice, polling finding what a webhook brought) is not stored again: :func:`accept` is one
``INSERT ... ON CONFLICT DO NOTHING``, so two replicas receiving the same delivery at once
store it once. Every function takes the connection of a ``bot.database.run`` transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Insert, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.alerts.model import SentryAlert
from bot.alerts.tables import DONE, FAILED, PENDING, inbox
from bot.db import as_utc
from bot.secrets import masker

ERROR_MAX = 500  # alerts_inbox.error
REQUEST_ID_MAX = 100


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    resource: str  # model.Resource value: how to parse body again (payloads.parse_stored)
    action: str
    subject: str
    body: str  # the raw JSON as received
    request_id: str | None
    received_at: datetime
    attempts: int  # failed processing attempts so far


def _accept_statement(dialect: object) -> Insert:
    insert = dialect.insert(inbox).values(  # type: ignore[attr-defined]
        dedupe_key=bindparam("dedupe_key"), resource=bindparam("resource"),
        action=bindparam("action"), subject=bindparam("subject"), body=bindparam("body"),
        request_id=bindparam("request_id"), received_at=bindparam("now"), state=PENDING,
        attempts=0, next_at=bindparam("now"))
    # RETURNING, not rowcount (unreliable with RETURNING on PostgreSQL): no row = a duplicate.
    return insert.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(inbox.c.id)


# Built once: the webhook's only work before its 200 is running one of these.
_ACCEPT = {"postgresql": _accept_statement(postgresql), "sqlite": _accept_statement(sqlite)}
_COLUMNS = (inbox.c.id, inbox.c.resource, inbox.c.action, inbox.c.subject, inbox.c.body,
            inbox.c.request_id, inbox.c.received_at, inbox.c.attempts)


def accept(conn: Connection, alert: SentryAlert, body: str, request_id: str | None,
           now: datetime) -> bool:
    """Store the delivery ``body`` parsed as ``alert``; False when its dedupe key is stored
    already (a duplicate: nothing written)."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    row = conn.execute(_ACCEPT[dialect], {
        "dedupe_key": alert.dedupe_key[:300], "resource": str(alert.resource.value),
        "action": alert.action[:40], "subject": alert.subject[:120], "body": body,
        "request_id": (request_id or "")[:REQUEST_ID_MAX] or None, "now": now}).first()
    return row is not None


def _accept_many_statement(dialect: object) -> Insert:
    insert = dialect.insert(inbox)  # type: ignore[attr-defined]
    return insert.on_conflict_do_nothing(index_elements=["dedupe_key"])


_ACCEPT_MANY = {"postgresql": _accept_many_statement(postgresql),
                "sqlite": _accept_many_statement(sqlite)}


def accept_many(conn: Connection, deliveries: list[tuple[SentryAlert, str, str | None]],
                now: datetime) -> list[bool]:
    """:func:`accept` for a batch, in one statement (the webhooks' group commit): whether each
    was new. Duplicates within the batch or of stored rows are not stored; a row another
    replica stores at the same moment may be reported new here (one spurious wake-up)."""
    if not deliveries:
        return []
    keys = [alert.dedupe_key[:300] for alert, _, _ in deliveries]
    stored = set(conn.execute(select(inbox.c.dedupe_key)
                              .where(inbox.c.dedupe_key.in_(set(keys)))).scalars())
    new: list[bool] = []
    for key in keys:
        new.append(key not in stored)
        stored.add(key)
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    conn.execute(_ACCEPT_MANY[dialect], [{
        "dedupe_key": key, "resource": str(alert.resource.value), "action": alert.action[:40],
        "subject": alert.subject[:120], "body": body,
        "request_id": (request_id or "")[:REQUEST_ID_MAX] or None, "received_at": now,
        "state": PENDING, "attempts": 0, "next_at": now}
        for key, (alert, body, request_id) in zip(keys, deliveries, strict=True)])
    return new


def due(conn: Connection, now: datetime, limit: int) -> list[InboxRow]:
    """Pending rows whose time has come, oldest first."""
    query = (select(*_COLUMNS).where(inbox.c.state == PENDING, inbox.c.next_at <= now)
             .order_by(inbox.c.id).limit(limit))
    return [_row(row) for row in conn.execute(query)]


def unfinished(conn: Connection, limit: int) -> list[InboxRow]:
    """Every pending row, due or waiting for a retry, oldest first (``alerts pending``)."""
    query = select(*_COLUMNS).where(inbox.c.state == PENDING).order_by(inbox.c.id).limit(limit)
    return [_row(row) for row in conn.execute(query)]


def mark_done(conn: Connection, row_id: int, now: datetime) -> bool:
    """Mark a pending row done; False when it is not pending any more (another process, whose
    lease this one outlived, got there first: the caller must not act on it again). Done first
    in the deciding transaction, so of two processes only one decides the row."""
    result = conn.execute(update(inbox).where(inbox.c.id == row_id, inbox.c.state == PENDING)
                          .values(state=DONE, processed_at=now, error=None))
    return result.rowcount == 1


def mark_retry(conn: Connection, row_id: int, next_at: datetime, error: str) -> None:
    """Processing failed for now: try again at ``next_at`` (one more attempt counted)."""
    conn.execute(update(inbox).where(inbox.c.id == row_id, inbox.c.state == PENDING).values(
        next_at=next_at, attempts=inbox.c.attempts + 1, error=_error(error)))


def mark_failed(conn: Connection, row_id: int, error: str, now: datetime) -> None:
    """Never going to work (the stored body does not parse any more, ...): kept, not retried."""
    conn.execute(update(inbox).where(inbox.c.id == row_id, inbox.c.state == PENDING).values(
        state=FAILED, processed_at=now, attempts=inbox.c.attempts + 1, error=_error(error)))


def depth(conn: Connection) -> int:
    """How many deliveries wait to be processed."""
    return int(conn.execute(select(func.count()).select_from(inbox)
                            .where(inbox.c.state == PENDING)).scalar() or 0)


def prune(conn: Connection, before: datetime) -> int:
    """Forget processed (done or failed) rows received before ``before``; returns how many.
    Pending rows are never pruned, however old: they are work still owed."""
    return conn.execute(delete(inbox).where(inbox.c.state.in_((DONE, FAILED)),
                                            inbox.c.received_at < before)).rowcount


def _row(row: object) -> InboxRow:
    values = row._mapping  # type: ignore[attr-defined]
    return InboxRow(id=values["id"], resource=values["resource"], action=values["action"],
                    subject=values["subject"], body=values["body"],
                    request_id=values["request_id"],
                    received_at=as_utc(values["received_at"]),  # type: ignore[arg-type]
                    attempts=values["attempts"])


def _error(text: str) -> str:
    text = masker.mask(" ".join(str(text).split()))
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX - 1] + "…"
