"""What restarts leave in the database: one row per run (``restart_runs``), which is also each
target's last restart, its outcome and the cooldown's reference.

A run is ``running`` while its action runs (and while its pipeline is followed), then ends as
``success``, ``failed``, ``canceled``, ``skipped`` (GitLab's words for a pipeline), ``error``
(it could not be done, or we lost sight of it), ``timeout`` or ``lost`` (the bot stopped while a
command or request was under way: nobody knows how it ended). ``effect`` says whether the run
may have changed anything: runs refused before they reached the target (GitLab 401, no such
program) do not start a cooldown, so fixing the configuration does not mean waiting.

Functions take a connection first and run inside ``bot.database.run`` (one transaction each).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

from bot import db
from bot.audit import storable

metadata = MetaData()
RUNNING = "running"
FINISHED = frozenset({"success", "failed", "canceled", "skipped", "error", "timeout", "lost"})
DETAIL_MAX = 500

runs = Table(
    "restart_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # the target's type
    Column("person", String(100), nullable=True),
    Column("platform", String(20), nullable=False),
    Column("platform_user", String(100), nullable=False),
    Column("channel", String(100), nullable=True),
    Column("arguments", Text, nullable=False),  # as the audit stores them (secrets masked)
    Column("action", Text, nullable=False),  # what was done, as the preview showed it
    Column("status", String(20), nullable=False),
    Column("effect", Boolean, nullable=False, default=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("deadline_at", DateTime(timezone=True), nullable=True),  # following ends then
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("detail", String(DETAIL_MAX), nullable=True),
    Column("project", String(200), nullable=True),  # gitlab_pipeline
    Column("pipeline_id", Integer, nullable=True),
    Column("pipeline_url", String(500), nullable=True),
    Column("pipeline_status", String(30), nullable=True),
    Column("notice_key", String(100), nullable=True),
    Index("ix_restart_runs_target", "target", "started_at"),
    Index("ix_restart_runs_status", "status"),
)


def create_tables(conn: Connection) -> None:
    metadata.create_all(conn)


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    target: str
    kind: str
    person: str | None
    platform: str
    platform_user: str
    channel: str | None
    arguments: str
    action: str
    status: str
    effect: bool
    started_at: datetime
    deadline_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    project: str | None
    pipeline_id: int | None
    pipeline_url: str | None
    pipeline_status: str | None
    notice_key: str | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _run(row: Any) -> Run:
    values = dict(row._mapping)
    for name in ("started_at", "deadline_at", "finished_at"):
        values[name] = db.as_utc(values[name])
    return Run(**values)


def start(conn: Connection, values: dict[str, Any]) -> int:
    """A new run, ``running``; returns its id."""
    row = {**values, "status": RUNNING, "effect": True, "started_at": db.utcnow(),
           "arguments": storable(values["arguments"]), "action": storable(values["action"])}
    return int(conn.execute(runs.insert().values(**row)).inserted_primary_key[0])


def change(conn: Connection, run_id: int, **values: Any) -> None:
    if "detail" in values and values["detail"] is not None:
        values["detail"] = storable(values["detail"], DETAIL_MAX)
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def finish(conn: Connection, run_id: int, status: str, detail: str | None, *,
           effect: bool = True) -> bool:
    """End a run that is still ``running``; False when it had already ended (another replica
    finished it first: its outcome is audited once)."""
    result = conn.execute(update(runs).where(runs.c.id == run_id, runs.c.status == RUNNING)
                          .values(status=status, effect=effect, finished_at=db.utcnow(),
                                  detail=storable(detail, DETAIL_MAX) if detail else None))
    return result.rowcount == 1


def get(conn: Connection, run_id: int) -> Run | None:
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    return _run(row) if row is not None else None


def last(conn: Connection, target: str, *, with_effect: bool = False) -> Run | None:
    """The target's newest run (only runs that may have changed something: ``with_effect``)."""
    query = select(runs).where(runs.c.target == target)
    if with_effect:
        query = query.where(runs.c.effect.is_(True))
    row = conn.execute(query.order_by(runs.c.id.desc()).limit(1)).first()
    return _run(row) if row is not None else None


def unfinished(conn: Connection) -> list[Run]:
    rows = conn.execute(select(runs).where(runs.c.status == RUNNING).order_by(runs.c.id))
    return [_run(row) for row in rows]
