"""The computed rota: the base rule, then explicit shifts on top, latest wins. Pure functions.

The base rule is a rota: ``people`` in order, each for ``period`` days, the first one from
``start_date`` at the handover time in the rota's zone, wrapping around. Every boundary is a
local wall time turned into UTC by :func:`bot.schedule.local.to_utc` (DST decided there, once),
so a weekly Monday 09:00 Europe/Zurich handover is 08:00 UTC in winter and 07:00 UTC in summer,
and the week across a change is 167 or 169 hours long.

On top come *layers*, lowest first: the config's ``ranges`` in order, then the overrides and
swaps stored in the database by id (a later one wins where they overlap). The timeline is the
result with consecutive pieces of one person merged: each slot of it starts with a handover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from bot.schedule.local import to_utc
from bot.timefmt import local_time

PAD_DAYS = 28  # the margin a timeline is computed with (widened until its edges are exact)
LIMIT_DAYS = 4 * 366  # no slot is looked for further than this
SWAP_SEARCH_DAYS = 400  # how far ahead a swap looks for the two people's shifts


class ShiftError(Exception):
    """A shift action that cannot be done; the message is for the person who asked."""


@dataclass(frozen=True, slots=True)
class ShiftSlot:
    """One person's shift: ``start`` (the handover to them) to ``end`` (UTC, exclusive).
    ``origin`` says what made it: ``rota``, ``range``, ``override #3``, ``swap #4``."""

    person: str
    start: datetime
    end: datetime
    origin: str = "rota"

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Layer:
    """An explicit shift laid over the rota: a config range or a stored override/swap."""

    person: str
    start: datetime
    end: datetime
    origin: str


@dataclass(frozen=True, slots=True)
class Handover:
    """A change of shifter at ``at``: ``outgoing`` (None after a gap or at the very start)
    hands over to ``incoming``, whose shift lasts until ``end``."""

    at: datetime
    incoming: str
    outgoing: str | None
    end: datetime


@dataclass(frozen=True, slots=True)
class BaseRota:
    people: tuple[str, ...]
    start_date: date
    days: int
    at: time
    zone: str

    def boundary(self, index: int) -> datetime:
        """The UTC instant slot ``index`` starts (0: the first person's first shift)."""
        day = self.start_date + timedelta(days=index * self.days)
        return to_utc(datetime.combine(day, self.at.replace(tzinfo=None)), self.zone)

    def index(self, at: datetime) -> int | None:
        """The slot ``at`` falls in; None before the rota starts."""
        first = self.boundary(0)
        if at < first:
            return None
        guess = int((at - first) / timedelta(days=self.days))
        while self.boundary(guess) > at:  # an hour of DST either way: at most one step
            guess -= 1
        while self.boundary(guess + 1) <= at:
            guess += 1
        return guess

    def slot(self, index: int) -> ShiftSlot:
        return ShiftSlot(self.people[index % len(self.people)], self.boundary(index),
                         self.boundary(index + 1))

    def slots(self, start: datetime, end: datetime) -> list[ShiftSlot]:
        """Every slot overlapping [start, end)."""
        if end <= self.boundary(0):
            return []
        first = self.index(start)
        first = 0 if first is None else first
        last = self.index(end - timedelta(microseconds=1))
        assert last is not None
        return [self.slot(i) for i in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class RotaPlan:
    """The base rule and its layers (lowest first), in the team's ``zone``; a bare date in a
    command or a range means ``handover_time`` on that day there."""

    rota: BaseRota | None
    layers: tuple[Layer, ...] = ()
    zone: str = "UTC"
    handover_time: time = time(9, 0)
    _cache: dict[tuple[datetime, datetime], list[ShiftSlot]] = field(
        default_factory=dict, compare=False, repr=False)

    def with_layers(self, layers: Sequence[Layer]) -> RotaPlan:
        return replace(self, layers=tuple(layers), _cache={})

    # ------------------------------------------------------------------ lookups

    def person_at(self, at: datetime) -> str | None:
        """Who is on shift at ``at`` (the role provider's fast path: no timeline)."""
        for layer in reversed(self.layers):
            if layer.start <= at < layer.end:
                return layer.person
        if self.rota is None:
            return None
        index = self.rota.index(at)
        return None if index is None else self.rota.people[index % len(self.rota.people)]

    def slot_at(self, at: datetime) -> ShiftSlot | None:
        return next((s for s in self.timeline(at, at + timedelta(seconds=1)) if s.covers(at)),
                    None)

    def next_slot(self, after: datetime) -> ShiftSlot | None:
        """The first shift starting after ``after``."""
        span = timedelta(days=PAD_DAYS)
        while span <= timedelta(days=LIMIT_DAYS):
            found = [s for s in self.timeline(after, after + span) if s.start > after]
            if found:
                return found[0]
            span *= 2
        return None

    def handover_of(self, slot: ShiftSlot) -> Handover:
        before = self.slot_at(slot.start - timedelta(microseconds=1))
        outgoing = before.person if before is not None and before.end == slot.start else None
        return Handover(slot.start, slot.person, outgoing, slot.end)

    def handovers(self, start: datetime, end: datetime) -> list[Handover]:
        """Every handover with ``start <= at < end``."""
        slots = self.timeline(start - timedelta(seconds=1), end)
        out = []
        for previous, slot in zip([None, *slots], slots, strict=False):
            if not start <= slot.start < end:
                continue
            if previous is None:
                out.append(self.handover_of(slot))
                continue
            touching = previous.person if previous.end == slot.start else None
            out.append(Handover(slot.start, slot.person, touching, slot.end))
        return out

    # ------------------------------------------------------------------ the timeline

    def timeline(self, start: datetime, end: datetime) -> list[ShiftSlot]:
        """The merged slots overlapping [start, end), each with its true start and end (the
        margin is widened until no slot touches its edges, up to :data:`LIMIT_DAYS`)."""
        cached = self._cache.get((start, end))
        if cached is not None:
            return cached
        pad = timedelta(days=max(PAD_DAYS, 2 * (self.rota.days if self.rota else 0)))
        while True:
            low, high = start - pad, end + pad
            merged = _merge(self._pieces(low, high))
            shown = [s for s in merged if s.end > start and s.start < end]
            exact = all(low < s.start and s.end < high for s in shown[:1] + shown[-1:])
            if exact or pad > timedelta(days=LIMIT_DAYS):
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[(start, end)] = shown
                return shown
            pad *= 2

    def _pieces(self, low: datetime, high: datetime) -> list[ShiftSlot]:
        pieces = self.rota.slots(low, high) if self.rota is not None else []
        for layer in self.layers:
            if layer.end > low and layer.start < high:
                pieces = _overlay(pieces, layer)
        return pieces

    # ------------------------------------------------------------------ local dates

    def at_local(self, day: date, at: time | None = None) -> datetime:
        """``day`` at ``at`` (default the handover time) in the team's zone, as UTC."""
        wall = (at or self.handover_time).replace(tzinfo=None)
        return to_utc(datetime.combine(day, wall), self.zone)

    def local(self, at: datetime) -> datetime:
        return local_time(at, self.zone)


def choose_swap(plan: RotaPlan, first: str, second: str, now: datetime,
                week: tuple[datetime, datetime] | None = None) -> tuple[ShiftSlot, ShiftSlot]:
    """The two shifts a swap trades: ``first``'s next one not started yet (or the one that
    starts in ``week``), and ``second``'s not-started one nearest to it (the earlier on a
    tie). ShiftError says why there are none."""
    if first == second:
        raise ShiftError("a swap needs two different people")
    upcoming = [s for s in plan.timeline(now, now + timedelta(days=SWAP_SEARCH_DAYS))
                if s.start > now]
    mine = next((s for s in upcoming if s.person == first and _in_week(s, week)), None)
    if mine is None:
        raise ShiftError(_no_shift(plan, first, now, week))
    theirs = [s for s in upcoming if s.person == second]
    if not theirs:
        raise ShiftError(f"{second} has no shift in the next {SWAP_SEARCH_DAYS} days")
    return mine, min(theirs, key=lambda s: (abs(s.start - mine.start), s.start))


def _in_week(slot: ShiftSlot, week: tuple[datetime, datetime] | None) -> bool:
    """Does ``slot`` belong to ``week``: it starts in it (a shift that only ends there, on the
    Monday morning, is the week before's)."""
    return week is None or week[0] <= slot.start < week[1]


def _no_shift(plan: RotaPlan, person: str, now: datetime,
              week: tuple[datetime, datetime] | None) -> str:
    if week is None:
        return f"{person} has no shift in the next {SWAP_SEARCH_DAYS} days"
    current = plan.slot_at(now)
    if current is not None and current.person == person and week[0] <= current.start < week[1]:
        return (f"{person}'s shift in that week has started already: use `shift override` "
                "for the rest of it")
    return f"{person} has no shift in the week of {plan.local(week[0]):%Y-%m-%d}"


def _overlay(pieces: list[ShiftSlot], layer: Layer) -> list[ShiftSlot]:
    """``pieces`` with [layer.start, layer.end) cut out and given to the layer's person."""
    out = []
    for piece in pieces:
        if piece.end <= layer.start or piece.start >= layer.end:
            out.append(piece)
            continue
        if piece.start < layer.start:
            out.append(replace(piece, end=layer.start))
        if piece.end > layer.end:
            out.append(replace(piece, start=layer.end))
    out.append(ShiftSlot(layer.person, layer.start, layer.end, layer.origin))
    return sorted(out, key=lambda s: s.start)


def _merge(pieces: list[ShiftSlot]) -> list[ShiftSlot]:
    """Touching pieces of one person become one shift (no handover between them)."""
    out: list[ShiftSlot] = []
    for piece in pieces:
        last = out[-1] if out else None
        if last is not None and last.person == piece.person and last.end == piece.start:
            origins = list(dict.fromkeys(last.origin.split(", ") + piece.origin.split(", ")))
            out[-1] = replace(last, end=piece.end, origin=", ".join(origins))
        else:
            out.append(piece)
    return out


def utc(value: datetime) -> datetime:
    """An aware instant in UTC (naive values are UTC: what SQLite hands back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
