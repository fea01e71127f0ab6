"""The ``shifts:`` section (docs/shifts.md): a rota or explicit ranges, and the notices.

::

    shifts:
      channel: ops                 # heads-up, handover, escalation, swap notices
      zone: Europe/Zurich          # dates in ranges and commands (default bot.timezone)
      handover_time: "09:00"       # the time of day a bare date means
      rota:
        people: [alice, bob, carol]
        period: 1w
        start_date: 2026-01-05     # alice's first shift starts then, at the handover time
        handover_day: monday
      ranges:                      # explicit shifts; on top of the rota (later ones win)
        - {person: carol, from: 2026-12-21, to: 2027-01-04}
      heads_up_days: 2
      ack_minutes: 30
      fallback: [experts]

Person keys are checked against ``people:`` by ``handlers.shifts.check_config``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from pydantic import Field, field_validator, model_validator

from bot.configbase import Strict
from bot.schedule.local import FULL_WEEKDAYS, weekday_number, zone_info

PERIOD = re.compile(r"^\s*(\d{1,3})\s*([dw])\s*$")


def period_days(value: str | int) -> int:
    """``"1w"`` -> 7, ``"10d"`` -> 10, ``14`` -> 14 (whole days: a shift changes hands at a
    wall time, so its length is counted in local days, never in hours)."""
    if isinstance(value, int):
        days = value
    else:
        match = PERIOD.match(value)
        if match is None:
            raise ValueError(f"period {value!r}: use Nd or Nw (e.g. 1w, 10d)")
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if not 1 <= days <= 366:
        raise ValueError(f"period of {days} days: must be 1 day to 366 days")
    return days


def _zone(value: str | None) -> str | None:
    if value is not None:
        zone_info(value)
    return value


class RotaConfig(Strict):
    people: list[str] = Field(min_length=1)  # person keys, in order; the list wraps around
    period: str | int = "1w"  # each person's turn: Nd or Nw
    start_date: date  # the first person's shift starts on this local date
    handover_day: str | int | None = None  # must be start_date's weekday (a check)
    handover_time: time | None = None  # default: shifts.handover_time
    zone: str | None = None  # default: shifts.zone

    _zone = field_validator("zone")(_zone)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | int) -> str | int:
        period_days(value)
        return value

    @field_validator("handover_day")
    @classmethod
    def _day(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            weekday_number(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RotaConfig:
        if self.handover_day is None:
            return self
        day = weekday_number(self.handover_day)
        if self.start_date.weekday() != day:
            raise ValueError(f"start_date {self.start_date} is a "
                             f"{FULL_WEEKDAYS[self.start_date.weekday()]}, not a "
                             f"{FULL_WEEKDAYS[day]} (handover_day)")
        if self.days % 7:
            raise ValueError("a handover_day needs a period of whole weeks")
        return self

    @property
    def days(self) -> int:
        return period_days(self.period)


class RangeConfig(Strict):
    """One explicit shift: from ``from`` to ``to`` (a date means that day at the handover
    time; the end is when the next shift starts)."""

    person: str
    start: date | datetime = Field(alias="from")
    end: date | datetime = Field(alias="to")

    @model_validator(mode="after")
    def _order(self) -> RangeConfig:
        if _sortable(self.end) <= _sortable(self.start):
            raise ValueError("'to' must be after 'from'")
        return self


def _sortable(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


class ShiftsConfig(Strict):
    rota: RotaConfig | None = None
    ranges: list[RangeConfig] = Field(default_factory=list)
    zone: str | None = None  # IANA zone of dates in ranges and commands; default bot.timezone
    handover_time: time = time(9, 0)  # the wall time a bare date stands for
    channel: str | None = None  # alias for the notices; none: no notices, commands only
    heads_up_days: int = Field(2, ge=0, le=30)  # 0: no heads-up
    ack_minutes: float = Field(30, ge=0, le=7 * 24 * 60)  # 0: no escalation
    fallback: list[str] = Field(default_factory=list)  # groups/people the escalation mentions
    grace_minutes: float = Field(120, ge=0, le=7 * 24 * 60)  # late after downtime, still sent

    _zone = field_validator("zone")(_zone)

    @field_validator("fallback", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def people(self) -> list[tuple[str, str]]:
        """Every (key path, person key) the section names (check_config)."""
        named = [(f"shifts.rota.people[{i}]", p)
                 for i, p in enumerate(self.rota.people if self.rota else [])]
        return named + [(f"shifts.ranges[{i}].person", r.person)
                        for i, r in enumerate(self.ranges)]
