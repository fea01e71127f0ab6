"""The shifts' schedule source (:class:`bot.schedule.model.Source`): for every handover of the
computed rota, three occurrences of the series ``shifts`` (``schedule pause shifts`` pauses
them all):

- ``heads-up`` ``heads_up_days`` before (same local time): the incoming shifter is mentioned;
  key ``heads-up:shifts.bob/<handover UTC>-2d``;
- ``handover`` at the change: outgoing and incoming named, the incoming mentioned, with an
  Acknowledge button (``shift ack``); key ``handover:shifts.bob/<handover UTC>``;
- ``escalate`` ``ack_minutes`` later: unless the handover was acknowledged, a reply in the
  handover notice's thread naming the fallback and the incoming shifter; key
  ``escalate:shifts.bob/<handover UTC>+30m``.

The incoming shifter is part of each key: a swap or override that changes who comes in makes
new occurrences (and the old ones vanish from the plan). Before sending, each occurrence is
checked against the rota as it is then (a change since the last planning pass wins).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import clock
from bot.messaging.mentions import people as mentioned_people
from bot.schedule.local import to_utc
from bot.schedule.model import Occurrence, occurrence_key
from bot.shifts import views
from bot.shifts.rota import Handover
from bot.shifts.service import ShiftService, handover_key, series_key

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

SERIES = "shifts"
HEADS_UP, HANDOVER, ESCALATE = "heads-up", "handover", "escalate"


class ShiftSource:
    name = "shifts"

    def __init__(self, service: ShiftService, channel: str) -> None:
        self.service = service
        self.channel = channel
        settings = service.settings
        self.max_grace = timedelta(minutes=settings.grace_minutes)
        self.heads_up_days = settings.heads_up_days
        self.ack = timedelta(minutes=settings.ack_minutes)

    def series(self) -> Sequence[str]:
        return [SERIES]

    def heads_up_at(self, handover: Handover) -> datetime:
        """``heads_up_days`` local days before the handover, at its local time."""
        local = self.service.plan.local(handover.at).replace(tzinfo=None)
        return to_utc(local - timedelta(days=self.heads_up_days), self.service.zone)

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        plan = await self.service.refresh()
        ahead = timedelta(days=self.heads_up_days + 1)
        out = []
        for handover in plan.handovers(start - self.ack, end + ahead):
            out += [occ for occ in self._of(handover) if start <= occ.at < end]
        return out

    def _of(self, handover: Handover) -> list[Occurrence]:
        series = series_key(handover.incoming)
        data = {"channel": self.channel, "person": handover.incoming,
                "outgoing": handover.outgoing, "handover": handover.at.isoformat(),
                "end": handover.end.isoformat()}
        who = f"{handover.outgoing} → {handover.incoming}" if handover.outgoing \
            else handover.incoming
        occs = [Occurrence(handover_key(handover), SERIES, HANDOVER, handover.at,
                           self.max_grace, {**data, "title": f"shift handover {who}"})]
        if self.heads_up_days:
            occs.append(Occurrence(
                occurrence_key(HEADS_UP, series, handover.at, timedelta(days=-self.heads_up_days)),
                SERIES, HEADS_UP, self.heads_up_at(handover), self.max_grace,
                {**data, "title": f"shift heads-up for {handover.incoming}"}))
        if self.ack > timedelta(0):
            occs.append(Occurrence(
                occurrence_key(ESCALATE, series, handover.at, self.ack), SERIES, ESCALATE,
                handover.at + self.ack, self.max_grace,
                {**data, "title": f"shift escalation unless {handover.incoming} acknowledges"}))
        return occs

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        handover = await self._still(occurrence)
        if handover is None:
            return
        if occurrence.kind == HEADS_UP:
            await bot.notices.post(self.channel, views.heads_up(
                handover, self.service.zone, self.heads_up_days), key=occurrence.key,
                mention=[handover.incoming])
        elif occurrence.kind == HANDOVER:
            ack = await self.service.ack_of(handover)
            reply = views.handover(handover, self.service.zone, ack,
                                   self.service.settings.ack_minutes, clock.utcnow())
            await bot.notices.post(self.channel, reply, key=occurrence.key,
                                   mention=[handover.incoming])
        elif occurrence.kind == ESCALATE:
            await self._escalate(bot, handover, occurrence)
        else:
            raise ValueError(f"unknown shift occurrence kind {occurrence.kind!r}")

    async def _still(self, occurrence: Occurrence) -> Handover | None:
        """The occurrence's handover as the rota says now; None (logged) when it changed."""
        plan = await self.service.refresh()
        at = datetime.fromisoformat(occurrence.data["handover"])
        slot = plan.slot_at(at)
        if slot is None or slot.start != at or slot.person != occurrence.data["person"]:
            log.info("shifts: %s no longer matches the rota; not sent", occurrence.key)
            return None
        return plan.handover_of(slot)

    async def _escalate(self, bot: Bot, handover: Handover, occurrence: Occurrence) -> None:
        if await self.service.ack_of(handover) is not None:
            return  # acknowledged in time: nothing to say
        fallback = list(self.service.settings.fallback)
        names = [p.key for p in mentioned_people(fallback, bot.gate, bot.directory)]
        reply = views.escalation(handover, self.service.zone, self.service.settings.ack_minutes,
                                 fallback, names)
        try:
            await bot.notices.thread(handover_key(handover), reply,
                                     mention=[*fallback, handover.incoming])
        except KeyError:
            # The handover notice was never posted (missed during downtime): say it at the
            # top of the channel instead, mentioning them.
            await bot.notices.post(self.channel, reply, key=occurrence.key,
                                   mention=[*fallback, handover.incoming])
