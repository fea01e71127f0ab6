"""The digests' schedule source (:class:`bot.schedule.model.Source`): two series,

- ``digest-handover``: one digest at each handover of the rota (``digests.at_handover``;
  nothing without a configured rota), key ``digest:handover/<handover UTC>``;
- ``digest-daily``: one a day at ``digests.daily.time`` in its zone (DST decided by
  :func:`bot.schedule.local.expand_daily`: a nonexistent time moves forward, an ambiguous one
  fires once), key ``digest:daily/<UTC instant>``.

Each fires :meth:`bot.digests.service.DigestService.send` (a notice keyed by the occurrence
key: a retry posts nothing twice). ``schedule pause digest-daily`` pauses one series.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.digests.service import DigestService
from bot.schedule.local import expand_daily
from bot.schedule.model import Occurrence, occurrence_key
from bot.shifts.service import ShiftService

if TYPE_CHECKING:
    from bot.core import Bot

KIND = "digest"
HANDOVER, DAILY = "digest-handover", "digest-daily"
KINDS = {HANDOVER: "handover", DAILY: "daily"}


class DigestSource:
    name = "digests"

    def __init__(self, service: DigestService) -> None:
        self.service = service
        self.max_grace = timedelta(hours=service.settings.grace_hours)

    def series(self) -> Sequence[str]:
        settings = self.service.settings
        return [name for name, on in ((HANDOVER, settings.at_handover),
                                      (DAILY, settings.daily is not None)) if on]

    async def occurrences(self, bot: Bot, start: datetime, end: datetime) -> list[Occurrence]:
        out = []
        for at in await self._handovers(bot, start, end):
            out.append(self._occurrence(HANDOVER, at, "shift handover digest"))
        daily = self.service.settings.daily
        if daily is not None:
            zone = daily.zone or bot.config.bot.timezone
            out += [self._occurrence(DAILY, at, "daily shift digest")
                    for at in expand_daily(daily.time, zone, window_start=start,
                                           window_end=end)]
        return out

    def _occurrence(self, series: str, at: datetime, title: str) -> Occurrence:
        key = occurrence_key(KIND, KINDS[series], at)
        return Occurrence(key, series, KIND, at, self.max_grace,
                          {"title": title, "channel": self.service.settings.channel})

    async def _handovers(self, bot: Bot, start: datetime, end: datetime) -> list[datetime]:
        """The rota's handover instants in [start, end) (none without a rota)."""
        if not self.service.settings.at_handover:
            return []
        shifts = bot.services.get(ShiftService)
        if shifts is None or not shifts.configured:
            return []
        plan = await shifts.refresh()
        return [handover.at for handover in plan.handovers(start, end)]

    async def fire(self, bot: Bot, occurrence: Occurrence) -> None:
        kind = KINDS.get(occurrence.series)
        if kind is None:
            raise ValueError(f"unknown digest series {occurrence.series!r}")
        await self.service.send(occurrence.key, kind, occurrence.at)
