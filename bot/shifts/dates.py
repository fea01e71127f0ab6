"""Dates people type in shift commands, read in the team's zone (docs/shifts.md).

- ``2026-03-30``: that day at the handover time (``shifts.handover_time``), for FROM and TO;
- ``2026-03-30T14:00``: that wall time;
- ``now``, ``today``, ``tomorrow`` (the latter two at the handover time);
- a WEEK: ``2026-W14`` (ISO week) or any date in it.

Every wall time becomes UTC through :func:`bot.schedule.local.to_utc` (DST decided there).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from bot.shifts.rota import RotaPlan

ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)
WALL = re.compile(r"^(\d{4}-\d{2}-\d{2})[T_](\d{1,2}:\d{2})$")


class BadDate(ValueError):
    """A date a person typed that means nothing; the message says what would."""


FORMS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM, now, today or tomorrow"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadDate(f"'{text}' is not a date ({FORMS})") from None


def parse_instant(text: str, plan: RotaPlan, now: datetime) -> datetime:
    """The UTC instant ``text`` names (the forms above)."""
    word = text.strip().lower()
    today = plan.local(now).date()
    if word == "now":
        return now
    if word in ("today", "tomorrow"):
        return plan.at_local(today + timedelta(days=word == "tomorrow"))
    wall = WALL.match(text.strip())
    if wall:
        day = _date(wall.group(1))
        try:
            clock = datetime.strptime(wall.group(2), "%H:%M").time()
        except ValueError:
            raise BadDate(f"'{text}': {wall.group(2)} is not a time of day") from None
        return plan.at_local(day, clock)
    return plan.at_local(_date(text.strip()))


def parse_day(text: str, plan: RotaPlan, now: datetime) -> tuple[datetime, datetime] | None:
    """A whole local day [00:00, next 00:00) as UTC when ``text`` is a bare date (or today,
    tomorrow); None when it names an instant."""
    word = text.strip().lower()
    if word == "now" or WALL.match(text.strip()):
        return None
    today = plan.local(now).date()
    day = {"today": today, "tomorrow": today + timedelta(days=1)}.get(word)
    day = day or _date(text.strip())
    midnight = datetime.min.time()
    return plan.at_local(day, midnight), plan.at_local(day + timedelta(days=1), midnight)


def parse_week(text: str, plan: RotaPlan) -> tuple[datetime, datetime]:
    """The local week (Monday 00:00 to Monday 00:00, as UTC) of ``2026-W14`` or a date."""
    match = ISO_WEEK.match(text.strip())
    if match:
        try:
            monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        except ValueError:
            raise BadDate(f"'{text}' is not an ISO week (2026-W14)") from None
    else:
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise BadDate(f"'{text}' is not a week: give 2026-W14 or a date in it") from None
        monday = day - timedelta(days=day.weekday())
    midnight = datetime.min.time()
    return (plan.at_local(monday, midnight),
            plan.at_local(monday + timedelta(days=7), midnight))
