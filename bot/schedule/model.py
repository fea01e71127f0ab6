"""What the scheduler plans and fires: occurrences, and the sources that produce them.

An :class:`Occurrence` is one concrete UTC instant of a series ("the WMCore meeting's 10-minute
reminder on 2026-03-30"), named by a stable key that every process computes alike: the key is
the occurrence's identity in ``schedule_occurrences`` (claim before send) and the key of the
notice it posts, so a restart, a re-plan or a second bot process can never post it twice.

A :class:`Source` (announcements, meetings, the rota, digests) expands its series for a window
and fires one occurrence; ``bot.services.require(ScheduleService).register(source)`` plugs it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bot.core import Bot

# Recorded states of an occurrence (schedule_occurrences.state).
FIRING, FIRED, MISSED, FAILED, SKIPPED = "firing", "fired", "missed", "failed", "skipped"
# The states `schedule missed` lists: the ones nobody received as planned.
UNSENT = (MISSED, FAILED, SKIPPED)


def instant_text(at: datetime) -> str:
    """The UTC instant as a key shows it: ``2026-03-30T14:00:00Z`` (always UTC, seconds)."""
    if at.tzinfo is None:
        raise ValueError("an occurrence's instant must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offset_text(offset: timedelta) -> str:
    """``-10m``, ``-1d``, ``+2h``, ``-90s``: an offset from the series' instant, in its largest
    exact unit (keys stay short and readable)."""
    seconds = int(offset.total_seconds())
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{sign}{seconds // size}{unit}"
    return f"{sign}{seconds}s"


def occurrence_key(kind: str, series: str, base: datetime,
                   offset: timedelta | None = None) -> str:
    """``<kind>:<series>/<UTC instant>`` plus ``<offset>`` when the occurrence is a reminder
    relative to the series' instant (``reminder:wmcore/2026-03-30T14:00:00Z-10m``): the key
    names the meeting, not the reminder's own time, so moving an offset never renames the
    meeting's other reminders."""
    if not kind or ":" in kind or not series or "/" in series:
        raise ValueError(f"bad kind or series for a key: {kind!r}, {series!r}")
    key = f"{kind}:{series}/{instant_text(base)}"
    return key if offset is None else key + offset_text(offset)


@dataclass(frozen=True, slots=True, eq=True)
class Occurrence:
    """One instant a source fires at.

    ``at`` is when it fires (UTC); ``grace`` how late it may still fire after downtime (later
    it is recorded as missed); ``data`` is the source's own (title, channel, ...), shown by
    ``schedule list`` where it has a ``title``."""

    key: str
    series: str
    kind: str
    at: datetime
    grace: timedelta
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"occurrence {self.key}: its instant must be timezone-aware")
        if self.grace < timedelta(0):
            raise ValueError(f"occurrence {self.key}: negative grace")
        if self.at.tzinfo is not UTC:
            object.__setattr__(self, "at", self.at.astimezone(UTC))

    @property
    def title(self) -> str:
        return str(self.data.get("title") or self.series)


@runtime_checkable
class Source(Protocol):
    """A producer of occurrences (announcements, meetings, shifts, digests).

    ``name`` is unique among registered sources. ``series()`` names every series the source
    offers (``schedule pause NAME`` accepts these; a series is paused by name, whichever
    source has it). ``max_grace`` bounds the grace of its occurrences (the planner looks that
    far back for catch-up)."""

    name: str
    max_grace: timedelta

    def series(self) -> Sequence[str]: ...

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        """The occurrences with ``start <= at < end`` (UTC)."""
        ...

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        """Send it. Must be idempotent: post notices keyed by ``occurrence.key`` (or keys
        derived from it), so a retry after a crash posts nothing twice."""
        ...
