"""The planner's decisions, as pure functions of the time, the occurrences the sources expanded
and what the database recorded (``service.py`` applies them).

For every occurrence in the window:

- **future** (``at > now``): a one-shot wake-up at ``at`` (an APScheduler job named by its key);
- **due** (past, ``now - at <= grace``) and not done: fire it now (claimed first). "Not done"
  is: never recorded, ``failed`` (a retry inside its grace), or left ``firing`` by a process
  whose lease ran out (it crashed mid-send; the notice's key makes the retry harmless);
- **past its grace** and never recorded: recorded as ``missed`` (``schedule missed``), never
  dropped silently; left ``firing`` past its lease: ``missed`` too, noting it may have gone out.

The window starts far enough back to see everything due since the last pass: the longest
grace, or the mark of the last planning pass when that is older (downtime), at most
``catchup_days`` back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.schedule.model import FAILED, FIRING, Occurrence
from bot.schedule.store import Recorded


@dataclass(slots=True)
class Decisions:
    schedule: list[Occurrence] = field(default_factory=list)
    due: list[Occurrence] = field(default_factory=list)
    missed: list[Occurrence] = field(default_factory=list)
    abandoned: list[Occurrence] = field(default_factory=list)


def window(now: datetime, *, max_grace: timedelta, horizon: timedelta,
           planned_through: datetime | None, catchup: timedelta) -> tuple[datetime, datetime]:
    """[start, end) the sources are expanded for in a pass at ``now``."""
    start = now - max_grace
    if planned_through is not None:
        start = min(start, max(planned_through, now - catchup))
    return start, now + horizon


def _retry(row: Recorded, now: datetime, lease: timedelta) -> bool:
    """May a recorded occurrence be claimed again (failed, or its firing process died)?"""
    return row.state == FAILED or (row.state == FIRING and row.updated_at < now - lease)


def decide(now: datetime, occurrences: Iterable[Occurrence],
           recorded: Mapping[str, Recorded], lease: timedelta) -> Decisions:
    """What to do with each occurrence at ``now`` (see the module's docstring)."""
    out = Decisions()
    for occ in occurrences:
        row = recorded.get(occ.key)
        if occ.at > now:
            if row is None:  # a row for a future instant: a replica's clock ran ahead
                out.schedule.append(occ)
        elif now - occ.at <= occ.grace:
            if row is None or _retry(row, now, lease):
                out.due.append(occ)
        elif row is None:
            out.missed.append(occ)
        elif row.state == FIRING and row.updated_at < now - lease:
            out.abandoned.append(occ)
    out.schedule.sort(key=lambda o: o.at)
    out.due.sort(key=lambda o: o.at)
    return out
