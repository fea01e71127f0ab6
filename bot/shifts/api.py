"""What other features (meetings, digests) ask about shifts, without knowing the rota.

``shifter_at(bot, at)`` is the shift covering ``at``; ``next_shift(bot, after)`` the first one
starting after ``after``. Both answer None when shifts are not configured (``handlers.shifts``
not loaded, or no rota and no ranges), so a caller works without them. The plan includes the
overrides as this process last read them (within a minute of a change anywhere).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.shifts.rota import ShiftSlot
from bot.shifts.service import ShiftService

if TYPE_CHECKING:
    from bot.core import Bot

__all__ = ["ShiftSlot", "next_shift", "shifter_at"]


def _service(bot: Bot) -> ShiftService | None:
    return bot.services.get(ShiftService)


def shifter_at(bot: Bot, at: datetime) -> ShiftSlot | None:
    """The shift (person key, start, end in UTC) covering ``at``, or None."""
    service = _service(bot)
    return service.plan.slot_at(at) if service is not None else None


def next_shift(bot: Bot, after: datetime) -> ShiftSlot | None:
    """The first shift starting after ``after``, or None."""
    service = _service(bot)
    return service.plan.next_slot(after) if service is not None else None
