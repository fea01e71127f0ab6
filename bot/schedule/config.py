"""The ``schedule:`` section: the planner's settings and the announcements (docs/schedule.md).

An announcement is a plain notice on a rule: weekly (``days``, ``time``, ``zone``, optionally
every N weeks from a start date), daily, or once a few minutes after the bot starts (demos)::

    schedule:
      announcements:
        - name: shift-report
          channel: ops
          text: "Shift report due: fill in the week's summary before the 16:00 meeting."
          mention: [on-shift]
          weekly: {days: [mon], time: "15:00", zone: Europe/Zurich}
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from bot.configbase import Strict
from bot.schedule.local import weekday_number, zone_info

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$"


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        zone_info(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, (str, int)) else value


def _weekdays(value: list[str | int]) -> list[str | int]:
    for day in value:
        weekday_number(day)  # ValueError names the bad one
    return value


# Days of a weekly rule: mon .. sun (or monday .. sunday, 0 .. 6); one day may stand alone.
Weekdays = Annotated[list[str | int], BeforeValidator(_one_or_many), AfterValidator(_weekdays),
                     Field(min_length=1)]

class WeeklyRule(Strict):
    days: Weekdays
    time: time  # local wall time, "16:00"
    zone: str | None = None  # IANA name; default bot.timezone
    every_weeks: int = Field(1, ge=1, le=52)  # 2: biweekly, counted from start_date's week
    start_date: date | None = None  # no occurrence before it
    end_date: date | None = None  # none after it

    _zone = field_validator("zone")(_check_zone)

    @property
    def weekdays(self) -> list[int]:
        return sorted({weekday_number(day) for day in self.days})


class DailyRule(Strict):
    time: time
    zone: str | None = None
    start_date: date | None = None
    end_date: date | None = None

    _zone = field_validator("zone")(_check_zone)


class AnnouncementSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)  # the series' name: schedule pause NAME
    channel: str  # channel alias
    text: str = Field(min_length=1, max_length=3000)
    title: str | None = Field(None, max_length=200)
    mention: list[str] = Field(default_factory=list)  # people, groups, roles (on-shift)
    weekly: WeeklyRule | None = None
    daily: DailyRule | None = None
    # Once, this many minutes after the bot process starts (demos; every start posts it).
    in_minutes_after_start: float | None = Field(None, ge=0, le=24 * 60)
    # After downtime it is still posted this late; later it is recorded as missed.
    grace_minutes: float = Field(10, ge=0, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _one_rule(self) -> AnnouncementSpec:
        rules = [r for r in (self.weekly, self.daily, self.in_minutes_after_start)
                 if r is not None]
        if len(rules) != 1:
            raise ValueError("needs exactly one of 'weekly', 'daily', 'in_minutes_after_start'")
        return self


class ScheduleConfig(Strict):
    horizon_days: float = Field(7, gt=0, le=60)  # how far ahead each pass plans
    plan_minutes: float = Field(5, ge=0.1, le=60)  # a planning pass this often
    lease_minutes: float = Field(5, gt=0, le=24 * 60)  # a crashed send is retried after this
    catchup_days: float = Field(7, ge=0, le=90)  # downtime longer than this: older not recorded
    keep_days: int = Field(90, ge=1, le=3650)  # recorded occurrences are kept this long
    announcements: list[AnnouncementSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> ScheduleConfig:
        seen: set[str] = set()
        for spec in self.announcements:
            if spec.name in seen:
                raise ValueError(f"duplicate announcement name '{spec.name}'")
            seen.add(spec.name)
        return self
