"""A CheckEnv for the status check tests: a clock, previous results and other checks' values
held in memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import utcnow
from bot.status.model import CheckResult

DATA = Path(__file__).parent / "data" / "status"
PLUGINS = Path("/usr/lib/nagios/plugins")


@dataclass
class StubEnv:
    previous_result: CheckResult | None = None
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str | None, dict[str, int]] = field(default_factory=dict)
    at: datetime | None = None
    pools_asked: list[str | None] = field(default_factory=list)

    def now(self) -> datetime:
        return self.at or utcnow()

    @property
    def previous(self) -> CheckResult | None:
        return self.previous_result

    def values_of(self, check: str) -> Mapping[str, float] | None:
        return self.values.get(check)

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        self.pools_asked.append(pool)
        if pool not in self.counts:
            raise RuntimeError(f"pool {pool!r} cannot be read")
        return self.counts[pool]


def env_at(year: int = 2025, month: int = 1, day: int = 1, hour: int = 12,
           minute: int = 0, second: int = 0) -> StubEnv:
    return StubEnv(at=datetime(year, month, day, hour, minute, second, tzinfo=UTC))
