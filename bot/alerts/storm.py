"""Storm control (``alerts.storm``; docs/alerts.md, "Storms").

More than ``threshold`` new Sentry issues of one project and environment within ``window``:
the first ``threshold`` get their own posts, every later one goes into ONE summary post
(``storm:<project>:<env>:<window start>``) updated in place, instead of a flood. A storm
stays open while new issues keep arriving within ``window`` of the last one; after a quiet
window the next new issue is counted afresh. Nothing is dropped: every issue still has its
``alerts_issues`` row (``storm_key`` says which summary it is in) and shows in ``alerts list``.

Called inside the decision transaction (one processor at a time holds ``alerts:processor``),
so counting and joining cannot race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from bot.alerts import tables
from bot.alerts.config import StormConfig
from bot.alerts.model import SentryAlert
from bot.db import as_utc

KEY_PART = 50  # project and environment are cut to this in a storm key (column: 300)


@dataclass(frozen=True, slots=True)
class StormVerdict:
    """``storm_key`` None: the alert gets its own notice. Otherwise it goes into that
    summary; ``opened``: it is the first one (the summary is posted, not updated)."""

    storm_key: str | None = None
    opened: bool = False

    @property
    def alone(self) -> bool:
        return self.storm_key is None


@dataclass(frozen=True, slots=True)
class Storm:
    key: str
    project: str | None
    environment: str | None
    started_at: datetime
    updated_at: datetime
    subjects: list[str]


def storm_key(project: str | None, environment: str | None, started: datetime) -> str:
    return (f"storm:{(project or '-')[:KEY_PART]}:{(environment or '-')[:KEY_PART]}:"
            f"{started.isoformat(timespec='seconds')}")


def admit(conn: Connection, settings: StormConfig, alert: SentryAlert,
          now: datetime) -> StormVerdict:
    """Decide where a NEW subject's notice goes (call before inserting its issue row)."""
    window = timedelta(seconds=settings.window)
    project, environment = alert.project, alert.environment
    storms = tables.storms.c
    open_storm = conn.execute(
        select(tables.storms).where(storms.project.is_not_distinct_from(project),
                                    storms.environment.is_not_distinct_from(environment),
                                    storms.updated_at > now - window)
        .order_by(storms.started_at.desc()).limit(1)).first()
    if open_storm is not None:
        subjects = [*json.loads(open_storm.subjects or "[]"), alert.subject]
        conn.execute(update(tables.storms).where(storms.key == open_storm.key)
                     .values(subjects=json.dumps(subjects), updated_at=now))
        return StormVerdict(open_storm.key, opened=False)
    issues = tables.issues.c
    recent = conn.execute(
        select(func.count()).select_from(tables.issues)
        .where(issues.project.is_not_distinct_from(project),
               issues.environment.is_not_distinct_from(environment),
               issues.created_at > now - window, issues.notice_key.is_not(None),
               issues.subject.like("sentry:%"))).scalar_one()
    if recent < settings.threshold:
        return StormVerdict()
    key = storm_key(project, environment, now)
    conn.execute(insert(tables.storms).values(
        key=key, project=project, environment=environment, started_at=now,
        subjects=json.dumps([alert.subject]), updated_at=now))
    return StormVerdict(key, opened=True)


def load(conn: Connection, key: str) -> Storm | None:
    row = conn.execute(select(tables.storms).where(tables.storms.c.key == key)).first()
    if row is None:
        return None
    return Storm(row.key, row.project, row.environment, as_utc(row.started_at),  # type: ignore[arg-type]
                 as_utc(row.updated_at), json.loads(row.subjects or "[]"))  # type: ignore[arg-type]
