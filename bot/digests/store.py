"""The digests' tables (feature migration ``digests`` 1). Functions take a connection first and
run inside ``bot.database.run``; times are UTC.

- ``digests_sent``: one row per digest posted: its notice ``key`` (the occurrence key, or
  ``digest:now/<instant>``), ``kind`` (handover | daily | now), the period it covered
  (``period_start`` .. ``period_end``, the digest's instant). The next digest covers the time
  since the latest ``period_end`` before its own instant ("since the last digest").
- ``digests_snapshots``: HTCondor queue counts by state, per pool, every
  ``digests.snapshot_minutes`` (``counts``: JSON ``{"idle": 12, "held": 3, ...}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.db import as_utc

metadata = MetaData()

sent = Table(
    "digests_sent", metadata,
    Column("key", String(300), primary_key=True),
    Column("kind", String(20), nullable=False),  # handover | daily | now
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("by", String(100), nullable=True),  # who typed `digest now`
    Index("ix_digests_sent_end", "period_end"),
)

snapshots = Table(
    "digests_snapshots", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pool", String(100), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("total", Integer, nullable=False),
    Column("counts", Text, nullable=False),  # JSON: state name -> jobs
    Index("ix_digests_snapshots_pool", "pool", "taken_at"),
    Index("ix_digests_snapshots_at", "taken_at"),
)


def create_tables(conn: Connection) -> None:
    """Feature migration step 1."""
    metadata.create_all(conn)


def has_tables(conn: Connection, *names: str) -> bool:
    """Do all these tables exist (a feature never migrated here has none)?"""
    inspector = inspect(conn)
    return all(inspector.has_table(name) for name in names)


@dataclass(frozen=True, slots=True)
class Snapshot:
    pool: str
    taken_at: datetime
    total: int
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class Sent:
    key: str
    kind: str
    period_start: datetime
    period_end: datetime


# ------------------------------------------------------------------------ sent digests


def previous_end(conn: Connection, before: datetime, *, key: str | None = None) -> datetime | None:
    """The instant of the latest digest sent before ``before`` (not ``key`` itself)."""
    query = select(func.max(sent.c.period_end)).where(sent.c.period_end < before)
    if key is not None:
        query = query.where(sent.c.key != key)
    return as_utc(conn.execute(query).scalar())


def record_sent(conn: Connection, key: str, kind: str, start: datetime, end: datetime,
                now: datetime, by: str | None = None) -> bool:
    """Remember a posted digest; False when ``key`` was recorded already (a retry)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    done = conn.execute(dialect.insert(sent).values(
        key=key, kind=kind, period_start=start, period_end=end, sent_at=now,
        by=by and by[:100]).on_conflict_do_nothing(index_elements=["key"]))
    return bool(done.rowcount)


def get_sent(conn: Connection, key: str) -> Sent | None:
    row = conn.execute(select(sent).where(sent.c.key == key)).first()
    if row is None:
        return None
    return Sent(row.key, row.kind, as_utc(row.period_start), as_utc(row.period_end))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ snapshots


def add_snapshot(conn: Connection, pool: str, at: datetime, counts: dict[str, int]) -> None:
    shown = {state: int(n) for state, n in counts.items() if state != "total"}
    total = int(counts.get("total", sum(shown.values())))
    conn.execute(snapshots.insert().values(pool=pool[:100], taken_at=at, total=total,
                                           counts=json.dumps(shown, sort_keys=True)))


def last_taken(conn: Connection) -> datetime | None:
    """When the latest snapshot (of any pool) was taken."""
    return as_utc(conn.execute(select(func.max(snapshots.c.taken_at))).scalar())


def _snapshot(row: object) -> Snapshot:
    r = row
    return Snapshot(r.pool, as_utc(r.taken_at), int(r.total),  # type: ignore[attr-defined,arg-type]
                    {str(k): int(v) for k, v in json.loads(r.counts).items()})  # type: ignore[attr-defined]


def snapshots_between(conn: Connection, start: datetime, end: datetime,
                      limit: int = 5000) -> list[Snapshot]:
    """The snapshots taken in [start, end], oldest first."""
    rows = conn.execute(select(snapshots).where(snapshots.c.taken_at >= start,
                                                snapshots.c.taken_at <= end)
                        .order_by(snapshots.c.taken_at, snapshots.c.id).limit(limit))
    return [_snapshot(row) for row in rows]


def latest_at(conn: Connection, at: datetime) -> dict[str, Snapshot]:
    """Each pool's latest snapshot taken at or before ``at``."""
    newest = (select(snapshots.c.pool, func.max(snapshots.c.taken_at).label("at"))
              .where(snapshots.c.taken_at <= at).group_by(snapshots.c.pool).subquery())
    rows = conn.execute(select(snapshots).join(
        newest, (snapshots.c.pool == newest.c.pool) & (snapshots.c.taken_at == newest.c.at))
        .order_by(snapshots.c.id))
    return {snap.pool: snap for snap in map(_snapshot, rows)}


def prune(conn: Connection, before: datetime) -> int:
    gone = conn.execute(delete(snapshots).where(snapshots.c.taken_at < before)).rowcount or 0
    gone += conn.execute(delete(sent).where(sent.c.period_end < before)).rowcount or 0
    return int(gone)
