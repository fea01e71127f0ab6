"""What every status check shares: levels, performance data, results, and the check contract.

A check type is a pydantic model (its config keys) with ``async def run(env) -> CheckResult``;
``bot/status/runner.py`` runs checks concurrently under their timeouts and turns exceptions and
hangs into UNKNOWN. Levels are the Nagios plugin API's exit codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Level(IntEnum):
    """Nagios plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """Badness for sorting and the overall level: OK < WARNING < UNKNOWN < CRITICAL."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Level:
        return cls[text.strip().upper()]


_RANK = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.CRITICAL: 3}


def worst(levels: list[Level]) -> Level:
    """The overall level of several results (OK for none)."""
    return max(levels, key=lambda level: level.rank, default=Level.OK)


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One ``label=value[UOM];warn;crit;min;max`` item (ranges kept as written)."""

    label: str
    value: float | None  # None for "U" (the plugin could not determine it)
    uom: str = ""
    warn: str | None = None
    crit: str | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    level: Level
    summary: str  # one line: "DISK OK - free space: / 3326 MB (56%)"
    long_output: str = ""  # further lines (Nagios long output), shown by `status NAME`
    perfdata: tuple[PerfDatum, ...] = ()
    # Named numbers other checks' expressions refer to (`nomad.workers`); perfdata values are
    # included under their labels by the runner.
    values: Mapping[str, float] = field(default_factory=dict)
    # Carried to this check's next run as ``env.previous.state`` (the expression check's
    # "condition true since"); stored with the result, JSON-serialisable.
    state: Mapping[str, Any] = field(default_factory=dict)
    duration_seconds: float = 0.0
    checked_at: datetime | None = None  # set by the runner
    # The check's own verdict when the per-check ``severity`` remap changed it (set by the
    # runner; None when no remap applied).
    raw_level: Level | None = None


class CheckEnv(Protocol):
    """What a running check may use besides its own config."""

    def now(self) -> datetime: ...  # the one clock (bot.clock.utcnow)

    @property
    def previous(self) -> CheckResult | None: ...  # this check's last result, if any

    def values_of(self, check: str) -> Mapping[str, float] | None:
        """The latest values of another check (expression checks), None when unknown."""
        ...

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        """Jobs by state name (idle, running, held, ...) in a pool, through the HTCondor
        worker; raises when the pool cannot be read."""
        ...


class CheckSpec(BaseModel):
    """Keys every check has; each type adds its own and a ``type: Literal[...]``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    timeout_seconds: float = Field(10.0, gt=0, le=600)
    interval_seconds: float = Field(60.0, ge=1)
    channel: str | None = None  # channel alias for state-change notices (default: status.channel)
    runbook: str | None = None  # a link shown with the check and on its notices
    # Remap a result level before it counts, e.g. {unknown: warning, warning: critical}.
    severity: dict[str, str] = Field(default_factory=dict)
    # A new level counts after this many consecutive results (Nagios' max_check_attempts).
    notify_after: int | None = Field(None, ge=1, le=20)
    renotify_minutes: float | None = Field(None, ge=0, le=7 * 24 * 60)  # default: status.*
    mention: list[str] | None = None  # people, groups or roles (default: status.mention)
    description: str = ""

    async def run(self, env: CheckEnv) -> CheckResult:  # pragma: no cover - each type's own
        raise NotImplementedError

    def references(self) -> frozenset[str]:
        """Other checks whose values this one reads (expression checks): the runner runs
        those first, and the config refuses names that are not checks."""
        return frozenset()

    def remap(self, level: Level) -> Level:
        """``level`` after this check's ``severity`` map."""
        target = self.severity.get(level.name.lower())
        return Level.parse(target) if target is not None else level

    @field_validator("severity")
    @classmethod
    def _level_names(cls, value: dict[str, str]) -> dict[str, str]:
        names = [level.name.lower() for level in Level]
        out = {}
        for key, target in value.items():
            for word in (key, target):
                if str(word).strip().lower() not in names:
                    raise ValueError(f"{word!r} is not a level (one of: {', '.join(names)})")
            out[key.strip().lower()] = target.strip().lower()
        return out


def http_url(value: str, hint: str = "") -> str:
    """A check's URL: http(s) with a host, and no credentials (URLs are shown in results and
    logs; credentials go in ``headers``). ValueError otherwise (a config problem)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"must not hold credentials: put them in `headers`{hint}")
    return value
