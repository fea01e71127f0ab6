"""The ``meetings:`` section (docs/meetings.md): meeting series, their reminders, reports and
trackers.

A series is a weekly (or every-N-weeks) rule in a named IANA zone, an iCalendar feed (Indico's
category export, or any RRULE calendar), or, for demos, one meeting a few minutes after the
bot starts::

    meetings:
      team_zones: [Europe/Zurich, America/Chicago]
      github: {token: "${GITHUB_TOKEN}"}
      series:
        - name: wmcore
          title: WMCore weekly
          channel: ops
          zone: Europe/Zurich
          weekly: {days: [mon], time: "16:00", duration_minutes: 60}
          reminders: ["1d", "10m"]
          links: ["https://indico.cern.ch/category/1234/"]
          report: {auto_close_hours: 4, tracker: {type: github, repo: dmwm/WMCore}}
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.configbase import Strict
from bot.integrations.github import GitHubConfig
from bot.schedule.config import Weekdays
from bot.schedule.local import weekday_number, zone_info

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$"
_OFFSET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_offset(text: str) -> timedelta:
    """``"10m"``, ``"1d"``, ``"2h"``, ``"90s"``, ``"1w"`` -> a positive timedelta."""
    match = _OFFSET.match(str(text))
    if match is None:
        raise ValueError(f"offset {text!r}: expected a number and a unit (s, m, h, d, w), "
                         "e.g. '1d' or '10m'")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not 0 < seconds <= 30 * 86400:
        raise ValueError(f"offset {text!r}: must be more than 0 and at most 30 days")
    return timedelta(seconds=round(seconds))


def _check_zone(value: str) -> str:
    zone_info(value)
    return value


class Link(Strict):
    label: str = Field(min_length=1, max_length=80)
    url: str = Field(min_length=1, max_length=2000)


class MeetingRule(Strict):
    """Weekly (``every_weeks: 2``: biweekly, counted from ``start_date``'s week)."""

    days: Weekdays
    time: time  # local wall time in the series' zone
    duration_minutes: float = Field(60, gt=0, le=24 * 60)
    every_weeks: int = Field(1, ge=1, le=52)
    start_date: date | None = None  # the parity week of a biweekly rule; none before it
    end_date: date | None = None
    skip_dates: list[date] = Field(default_factory=list)  # holidays: no meeting that day

    @property
    def weekdays(self) -> list[int]:
        return sorted({weekday_number(day) for day in self.days})


class FeedSpec(Strict):
    """An iCalendar feed: Indico (``/export/categ/<id>.ics``) or any RRULE calendar."""

    url: str = Field(pattern=r"^https?://")
    token: SecretStr | None = None  # sent as Authorization: Bearer (Indico: indp_...)
    title_filter: str | None = None  # a regex: only events whose title matches (search)
    duration_minutes: float = Field(60, gt=0, le=24 * 60)  # for events without DTEND

    @field_validator("title_filter")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"title_filter is not a regular expression: {exc}") from None
        return value


class OnceAfterStart(Strict):
    """One meeting this many minutes after the bot starts (demos)."""

    minutes: float = Field(1, ge=0, le=24 * 60)
    duration_minutes: float = Field(1, gt=0, le=24 * 60)


class TrackerSpec(Strict):
    type: Literal["gitlab", "github"]
    project: str | None = None  # gitlab: group/name (default gitlab.project)
    repo: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # owner/name
    labels: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _where(self) -> TrackerSpec:
        if self.type == "github" and not self.repo:
            raise ValueError("a github tracker needs 'repo: owner/name'")
        return self


class ReportSpec(Strict):
    enabled: bool = True  # open a meeting-report thread when the meeting ends
    auto_close_hours: float | None = Field(4, gt=0, le=14 * 24)  # None: only by hand
    tracker: TrackerSpec | None = None
    mention: list[str] = Field(default_factory=lambda: ["on-shift"])


class SeriesSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = Field(None, max_length=200)
    channel: str  # channel alias
    zone: str = "Europe/Zurich"  # IANA: the rule's wall time is here
    weekly: MeetingRule | None = None
    ical: FeedSpec | None = None
    once_after_start: OnceAfterStart | None = None
    reminders: list[str] = Field(default_factory=lambda: ["10m"])
    mention: list[str] = Field(default_factory=lambda: ["on-shift"])
    links: list[Link] = Field(default_factory=list)
    agenda: str | None = Field(None, max_length=3000)
    team_zones: list[str] | None = None  # default: meetings.team_zones
    report: ReportSpec = Field(default_factory=ReportSpec)
    grace_minutes: float | None = Field(None, ge=0, le=24 * 60)  # reminders after downtime

    _zone = field_validator("zone")(_check_zone)

    @field_validator("links", mode="before")
    @classmethod
    def _plain_links(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [{"label": _label_of(item), "url": item} if isinstance(item, str) else item
                for item in value]

    @field_validator("reminders")
    @classmethod
    def _offsets(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_offset(text)
        return value

    @field_validator("team_zones")
    @classmethod
    def _zones(cls, value: list[str] | None) -> list[str] | None:
        for zone in value or []:
            zone_info(zone)
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> SeriesSpec:
        rules = [r for r in (self.weekly, self.ical, self.once_after_start) if r is not None]
        if len(rules) != 1:
            raise ValueError("needs exactly one of 'weekly', 'ical', 'once_after_start'")
        return self

    @property
    def offsets(self) -> list[timedelta]:
        return sorted({parse_offset(text) for text in self.reminders}, reverse=True)

    @property
    def display_title(self) -> str:
        return self.title or self.name


class MeetingsConfig(Strict):
    series: list[SeriesSpec] = Field(default_factory=list)
    team_zones: list[str] = Field(default_factory=list)  # times shown in these zones too
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    reminder_grace_minutes: float = Field(15, ge=0, le=24 * 60)
    report_grace_hours: float = Field(12, gt=0, le=7 * 24)  # the report thread after downtime
    feed_refresh_minutes: float = Field(30, ge=1, le=24 * 60)
    feed_timeout_seconds: float = Field(10, gt=0, le=120)
    open_items_listed: int = Field(15, ge=0, le=100)  # in a reminder, at most

    @field_validator("team_zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        for zone in value:
            zone_info(zone)
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> MeetingsConfig:
        seen: set[str] = set()
        for spec in self.series:
            if spec.name in seen:
                raise ValueError(f"duplicate meeting series name '{spec.name}'")
            seen.add(spec.name)
        return self

    def get(self, name: str) -> SeriesSpec | None:
        return next((spec for spec in self.series if spec.name == name), None)


def _label_of(url: str) -> str:
    host = re.sub(r"^https?://", "", url).split("/")[0]
    return host[:80] or "link"
