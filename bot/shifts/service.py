"""``ShiftService`` (``bot.services``): the computed rota with the stored overrides, the
``on-shift`` role provider, and the actions behind the commands (override, swap, ack).

The role provider is called synchronously by the gate on every permission check, so it reads
an in-memory plan: rebuilt from the database at startup, after every change made here, on
every planning pass of the schedule source and every minute (``handlers.shifts.refresh``: a
change made by another bot process shows here within that minute).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot import clock
from bot.identity import Caller
from bot.schedule.local import to_utc
from bot.schedule.model import occurrence_key
from bot.shifts import store
from bot.shifts.config import ShiftsConfig
from bot.shifts.roles import ROLE  # defined there (light); still importable from here
from bot.shifts.rota import (
    BaseRota,
    Handover,
    Layer,
    RotaPlan,
    ShiftError,
    ShiftSlot,
    choose_swap,
    utc,
)

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

OVERRIDE_PERMISSION = "shift.override"
KEEP_DAYS = 400  # overrides that ended longer ago are not laid over the rota any more


@dataclass(frozen=True, slots=True)
class Swapped:
    swap_id: int
    first: ShiftSlot  # the first person's shift, now the second's
    second: ShiftSlot  # the second person's shift, now the first's


@dataclass(frozen=True, slots=True)
class Acked:
    handover: Handover
    ack: store.Ack
    ahead: bool  # acknowledged before the handover (from the heads-up on)


def series_key(person: str) -> str:
    """The key part naming the incoming shifter (``shifts.bob``): a swap that changes who
    comes in makes a new handover, with its own notice and acknowledgement."""
    return "shifts." + re.sub(r"[^A-Za-z0-9_.-]", "_", person)


def handover_key(handover: Handover) -> str:
    return occurrence_key("handover", series_key(handover.incoming), handover.at)


def build_plan(settings: ShiftsConfig, default_zone: str) -> RotaPlan:
    """The base rule and the config's ranges (no stored overrides yet)."""
    zone = settings.zone or default_zone
    rota = None
    if settings.rota is not None:
        r = settings.rota
        rota = BaseRota(tuple(r.people), r.start_date, r.days,
                        r.handover_time or settings.handover_time, r.zone or zone)
    plan = RotaPlan(rota, (), zone, settings.handover_time)
    layers = [Layer(r.person, _instant(r.start, plan), _instant(r.end, plan), "range")
              for r in settings.ranges]
    return plan.with_layers(layers)


def _instant(value: date | datetime, plan: RotaPlan) -> datetime:
    if not isinstance(value, datetime):
        return plan.at_local(value)
    return utc(value) if value.tzinfo is not None else to_utc(value, plan.zone)


class ShiftService:
    def __init__(self, bot: Bot, settings: ShiftsConfig) -> None:
        self.bot = bot
        self.settings = settings
        self.base = build_plan(settings, bot.config.bot.timezone)
        self.plan = self.base
        self.overrides: list[store.Override] = []

    @property
    def zone(self) -> str:
        return self.plan.zone

    @property
    def configured(self) -> bool:
        return self.base.rota is not None or bool(self.base.layers)

    async def refresh(self) -> RotaPlan:
        """Re-read the stored overrides and rebuild the plan."""
        since = clock.utcnow() - timedelta(days=KEEP_DAYS)
        rows = await self.bot.database.run(store.active_overrides, since)
        self.overrides = rows
        self.plan = self.base.with_layers([*self.base.layers, *(o.layer() for o in rows)])
        return self.plan

    # ------------------------------------------------------------------ the role

    def roles_for(self, caller: Caller) -> list[str]:
        """The gate's role provider: ``on-shift`` for the shifter of this instant."""
        if caller.person is None:
            return []
        return [ROLE] if self.plan.person_at(clock.utcnow()) == caller.person.key else []

    # ------------------------------------------------------------------ changes

    async def override(self, person: str, start: datetime, end: datetime, by: str) -> int:
        now = clock.utcnow()
        if end <= start:
            raise ShiftError("TO must be after FROM")
        if end <= now:
            raise ShiftError("that override would end in the past")
        if end - start > timedelta(days=366):
            raise ShiftError("an override spans at most 366 days")
        ident = await self.bot.database.run(store.add_override, person, start, end, by, now)
        await self.refresh()
        return ident

    async def swap(self, first: str, second: str, week: tuple[datetime, datetime] | None,
                   by: str) -> Swapped:
        """``first``'s next shift (or the one in ``week``) and ``second``'s shift nearest to
        it (both not started yet) trade owners: two overrides, one transaction."""
        now = clock.utcnow()
        await self.refresh()
        mine, other = choose_swap(self.plan, first, second, now, week)
        swap_id = await self.bot.database.run(
            store.add_swap, (second, mine.start, mine.end), (first, other.start, other.end),
            by, now)
        await self.refresh()
        return Swapped(swap_id, mine, other)

    # ------------------------------------------------------------------ acknowledgement

    def target(self, caller: Caller, now: datetime) -> tuple[Handover, bool]:
        """The handover ``caller`` acknowledges: their own (current, or the next one once its
        heads-up is out), or, for someone allowed ``shift.override``, the current one."""
        me = caller.person.key if caller.person else None
        current = self.plan.slot_at(now)
        if current is not None and current.person == me:
            return self.plan.handover_of(current), False
        upcoming = self.plan.next_slot(now)
        window = timedelta(days=max(self.settings.heads_up_days, 1))
        if upcoming is not None and upcoming.person == me and upcoming.start - now <= window:
            return self.plan.handover_of(upcoming), True
        if current is not None and self.bot.gate.check(caller, OVERRIDE_PERMISSION).allowed:
            return self.plan.handover_of(current), False
        if current is None:
            raise ShiftError("nobody is on shift now: there is no handover to acknowledge")
        raise ShiftError(f"only {current.person} (the incoming shifter) or someone allowed "
                         f"{OVERRIDE_PERMISSION} can acknowledge this handover")

    async def acknowledge(self, caller: Caller) -> Acked:
        now = clock.utcnow()
        await self.refresh()
        handover, ahead = self.target(caller, now)
        key = handover_key(handover)
        ack = await self.bot.database.run(store.record_ack, key, handover.incoming, handover.at,
                                          caller.label, now)
        if ack is None:
            first = await self.bot.database.run(store.ack_of, key)
            by = f" by {first.by}" if first else ""
            raise ShiftError(f"{handover.incoming}'s handover was acknowledged already{by}")
        return Acked(handover, ack, ahead)

    async def ack_of(self, handover: Handover) -> store.Ack | None:
        return await self.bot.database.run(store.ack_of, handover_key(handover))
