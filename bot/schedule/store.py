"""What the scheduler keeps in the database: every occurrence that came due (fired, missed,
failed, skipped, or being fired), paused series, and how far the planner got.

``schedule_occurrences`` is the claim table: an occurrence is inserted as ``firing`` by the one
process that wins ``INSERT ... ON CONFLICT`` (SQLite and PostgreSQL alike), before anything is
sent. The same statement takes over a row left ``firing`` by a process that died (its
``updated_at`` older than the lease) and a ``failed`` one (retried while inside its grace);
the notices the source posts are keyed by the occurrence's key, so such a retry cannot post
twice. Functions take a connection first and run inside ``bot.database.run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Insert,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.db import as_utc
from bot.schedule.model import FAILED, FIRED, FIRING, MISSED, SKIPPED, UNSENT, Occurrence

metadata = MetaData()
KEY_MAX, NAME_MAX, WHO_MAX, REASON_MAX, ERROR_MAX = 300, 100, 100, 500, 2000
PLANNED_THROUGH = "planned_through"

occurrences = Table(
    "schedule_occurrences", metadata,
    Column("key", String(KEY_MAX), primary_key=True),
    Column("series", String(NAME_MAX), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("state", String(10), nullable=False),  # firing | fired | missed | failed | skipped
    Column("owner", String(WHO_MAX), nullable=True),  # the process that claimed it
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_schedule_occurrences_at", "at"),
    Index("ix_schedule_occurrences_state", "state", "at"),
)

paused = Table(
    "schedule_paused", metadata,
    Column("series", String(NAME_MAX), primary_key=True),
    Column("by", String(WHO_MAX), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", String(REASON_MAX), nullable=True),
)

marks = Table(
    "schedule_marks", metadata,
    Column("name", String(40), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)


def create_tables(conn: Connection) -> None:
    """Feature migration step 1."""
    metadata.create_all(conn)


@dataclass(frozen=True, slots=True)
class Recorded:
    """An occurrence's row."""

    key: str
    series: str
    kind: str
    at: datetime
    state: str
    owner: str | None
    updated_at: datetime
    error: str | None


@dataclass(frozen=True, slots=True)
class Pause:
    series: str
    by: str
    at: datetime
    reason: str | None


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 3] + "..."


def _recorded(row: object) -> Recorded:
    r = row
    return Recorded(r.key, r.series, r.kind, as_utc(r.at), r.state, r.owner,  # type: ignore[attr-defined,arg-type]
                    as_utc(r.updated_at), r.error)  # type: ignore[attr-defined,arg-type]


# ------------------------------------------------------------------------ claims


def _dialect(conn: Connection) -> str:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


def _row_values() -> dict[str, object]:
    return {"key": bindparam("key"), "series": bindparam("series"), "kind": bindparam("kind"),
            "at": bindparam("at"), "state": bindparam("state"), "owner": bindparam("owner"),
            "updated_at": bindparam("now"), "error": bindparam("error")}


def _claim_statement(dialect: object) -> Insert:
    insert = dialect.insert(occurrences).values(**_row_values())  # type: ignore[attr-defined]
    # In DO UPDATE's WHERE the columns are the row already there: a failed one, or one whose
    # firing process stopped renewing it (crashed) before it finished.
    retry = or_(occurrences.c.state == FAILED,
                and_(occurrences.c.state == FIRING,
                     occurrences.c.updated_at < bindparam("stale")))
    # RETURNING, not rowcount: a conflict whose WHERE is false returns no row (both dialects).
    return insert.on_conflict_do_update(
        index_elements=["key"], where=retry,
        set_={"state": FIRING, "owner": insert.excluded.owner,
              "updated_at": insert.excluded.updated_at, "error": None},
    ).returning(occurrences.c.key)


def _record_statement(dialect: object) -> Insert:
    insert = dialect.insert(occurrences).values(**_row_values())  # type: ignore[attr-defined]
    return insert.on_conflict_do_nothing(index_elements=["key"]).returning(occurrences.c.key)


# Built once: building a statement costs more than running it.
_CLAIM = {name: _claim_statement(d) for name, d in (("postgresql", postgresql),
                                                      ("sqlite", sqlite))}
_RECORD = {name: _record_statement(d) for name, d in (("postgresql", postgresql),
                                                        ("sqlite", sqlite))}


def _params(occ: Occurrence, state: str, owner: str, now: datetime,
            error: str | None = None) -> dict[str, object]:
    return {"key": occ.key, "series": occ.series, "kind": occ.kind, "at": occ.at,
            "state": state, "owner": owner, "now": now, "error": _cut(error, ERROR_MAX)}


CLAIMED, TAKEN = "claimed", "taken"


def claim(conn: Connection, occ: Occurrence, owner: str, now: datetime,
          lease: timedelta) -> str:
    """Take ``occ`` before sending it: CLAIMED for exactly one caller (in any process);
    TAKEN when it is fired, being fired, missed or skipped already; SKIPPED (recorded so)
    when its series is paused. One transaction: a pause and a claim take turns."""
    pause = conn.execute(select(paused).where(paused.c.series == occ.series)).first()
    if pause is not None:
        record(conn, occ, SKIPPED, owner, now, f"series paused by {pause.by}")
        return SKIPPED
    params = {**_params(occ, FIRING, owner, now), "stale": now - lease}
    won = conn.execute(_CLAIM[_dialect(conn)], params).first() is not None
    return CLAIMED if won else TAKEN


def record(conn: Connection, occ: Occurrence, state: str, owner: str, now: datetime,
           error: str | None = None) -> bool:
    """Record ``occ`` as ``state`` (missed, skipped) unless it has a row already (it was
    fired, or is being fired, elsewhere): True when this call recorded it."""
    row = conn.execute(_RECORD[_dialect(conn)], _params(occ, state, owner, now, error)).first()
    return row is not None


def record_many(conn: Connection, occs: list[Occurrence], state: str, owner: str,
                now: datetime, error: str | None = None) -> int:
    """:func:`record` for many (the planner's missed ones, in one transaction)."""
    return sum(record(conn, occ, state, owner, now, error) for occ in occs)


def finish(conn: Connection, key: str, owner: str, state: str, now: datetime,
           error: str | None = None) -> bool:
    """The claimed occurrence ``key`` is ``state`` (fired, failed) now; False when this
    process no longer holds it (its lease ran out and another took it over)."""
    done = conn.execute(update(occurrences).where(
        occurrences.c.key == key, occurrences.c.owner == owner, occurrences.c.state == FIRING,
    ).values(state=state, updated_at=now, error=_cut(error, ERROR_MAX)))
    return bool(done.rowcount)


def abandon(conn: Connection, key: str, now: datetime, lease: timedelta, note: str) -> bool:
    """A row left ``firing`` past its lease and past its grace: recorded as missed (with
    ``note``: it may or may not have been sent before its process stopped)."""
    done = conn.execute(update(occurrences).where(
        occurrences.c.key == key, occurrences.c.state == FIRING,
        occurrences.c.updated_at < now - lease).values(state=MISSED, updated_at=now,
                                                       error=_cut(note, ERROR_MAX)))
    return bool(done.rowcount)


# ------------------------------------------------------------------------ reading


def recorded_since(conn: Connection, since: datetime) -> dict[str, Recorded]:
    """Every row of an occurrence at or after ``since``, by key (the planner's view)."""
    rows = conn.execute(select(occurrences).where(occurrences.c.at >= since))
    return {row.key: _recorded(row) for row in rows}


def get(conn: Connection, key: str) -> Recorded | None:
    row = conn.execute(select(occurrences).where(occurrences.c.key == key)).first()
    return None if row is None else _recorded(row)


def unsent(conn: Connection, since: datetime, limit: int,
           series: str | None = None) -> tuple[list[Recorded], int]:
    """Occurrences nobody received as planned (missed, failed, skipped) at or after
    ``since``, newest first, at most ``limit``; and how many there are in all."""
    where = [occurrences.c.state.in_(UNSENT), occurrences.c.at >= since]
    if series is not None:
        where.append(occurrences.c.series == series)
    rows = conn.execute(select(occurrences).where(*where)
                        .order_by(occurrences.c.at.desc()).limit(limit))
    total = conn.execute(select(func.count()).select_from(occurrences).where(*where)).scalar()
    return [_recorded(row) for row in rows], int(total or 0)


def count_states(conn: Connection, since: datetime) -> dict[str, int]:
    rows = conn.execute(select(occurrences.c.state, func.count()).where(
        occurrences.c.at >= since).group_by(occurrences.c.state))
    return {state: int(count) for state, count in rows}


def prune(conn: Connection, before: datetime) -> int:
    """Forget occurrences due before ``before`` (``schedule.keep_days``)."""
    gone = conn.execute(delete(occurrences).where(occurrences.c.at < before,
                                                  occurrences.c.state != FIRING))
    return int(gone.rowcount or 0)


# ------------------------------------------------------------------------ pauses


def is_paused(conn: Connection, series: str) -> bool:
    return conn.execute(select(paused.c.series).where(paused.c.series == series)).first() \
        is not None


def pauses(conn: Connection) -> dict[str, Pause]:
    return {row.series: Pause(row.series, row.by, as_utc(row.at), row.reason)  # type: ignore[arg-type]
            for row in conn.execute(select(paused))}


def pause(conn: Connection, series: str, by: str, at: datetime, reason: str | None) -> bool:
    """Pause ``series``; False (and nothing changed) when it is paused already."""
    if is_paused(conn, series):
        return False
    conn.execute(paused.insert().values(series=series, by=_cut(by, WHO_MAX), at=at,
                                        reason=_cut(reason, REASON_MAX)))
    return True


def resume(conn: Connection, series: str) -> Pause | None:
    """Lift the pause of ``series``; the pause it lifted, or None when it was not paused."""
    row = conn.execute(select(paused).where(paused.c.series == series)).first()
    if row is None:
        return None
    conn.execute(delete(paused).where(paused.c.series == series))
    return Pause(row.series, row.by, as_utc(row.at), row.reason)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ the planner's mark


def planned_through(conn: Connection) -> datetime | None:
    """Up to when past occurrences have been decided (the last planning pass): after
    downtime the planner looks back to here, so nothing due meanwhile goes unrecorded."""
    return as_utc(conn.execute(select(marks.c.at).where(marks.c.name == PLANNED_THROUGH))
                  .scalar())


def advance_planned_through(conn: Connection, at: datetime) -> None:
    """Move the mark forward to ``at`` (never back: replicas pass at different times)."""
    done = conn.execute(update(marks).where(marks.c.name == PLANNED_THROUGH, marks.c.at < at)
                        .values(at=at))
    if not done.rowcount and planned_through(conn) is None:
        conn.execute(_RECORD_MARK[_dialect(conn)], {"name": PLANNED_THROUGH, "at": at})


_RECORD_MARK = {name: d.insert(marks).values(name=bindparam("name"), at=bindparam("at"))
                .on_conflict_do_nothing(index_elements=["name"])
                for name, d in (("postgresql", postgresql), ("sqlite", sqlite))}

__all__ = ["CLAIMED", "FIRED", "MISSED", "SKIPPED", "TAKEN", "Pause", "Recorded"]
