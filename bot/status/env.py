"""The :class:`~bot.status.model.CheckEnv` a running check gets: the one clock, its previous
result, other checks' latest values, and HTCondor queue counts through the condor service.

Values of other checks are read from the database *before* a batch runs (``values_of`` is
synchronous: a check must not wait on the database), so an expression check sees the values
stored by the previous runs, never a half-finished batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from bot import clock
from bot.condor import states as condor_states
from bot.status.model import CheckResult

if TYPE_CHECKING:
    from bot.condor.service import CondorService
    from bot.core import Bot


class CondorUnavailable(RuntimeError):
    """No HTCondor pool is configured, so queue counts cannot be read."""


def condor_service(bot: Bot) -> CondorService:
    """The bot's condor service (handlers/condor.py keeps it in ``bot.services``); made from
    the config when that module's startup did not run; CondorUnavailable without pools."""
    from bot.condor.service import CondorService

    service = bot.services.get(CondorService)
    if service is not None:
        return service
    if not bot.config.condor.pools:
        raise CondorUnavailable("no HTCondor pool is configured (condor.pools), so a check "
                                "cannot count jobs")
    return bot.services.add(CondorService.from_config(bot.config))


def state_name(letter: str) -> str:
    """condor_q's letter -> the name checks use: ``I`` idle, ``>`` transferring_output."""
    return condor_states.NAMES.get(letter, letter).replace(" ", "_")


async def condor_counts(bot: Bot, pool: str | None) -> dict[str, int]:
    """Jobs by state name in ``pool`` (within its scope), plus ``total``: the totals of
    ``condor q`` (one projected query in the pool's worker, no rows fetched)."""
    service = condor_service(bot)
    summary = await service.q(pool, include_running=True, max_rows=0)
    counts = {state_name(letter): 0 for letter in condor_states.LETTERS}
    for letter, count in summary.totals.items():
        counts[state_name(letter)] = counts.get(state_name(letter), 0) + count
    counts["total"] = summary.total
    return counts


class StatusEnv:
    """The environment of one check in one batch."""

    def __init__(self, bot: Bot, previous: CheckResult | None,
                 values: Mapping[str, Mapping[str, float]],
                 now: Callable[[], datetime] = clock.utcnow) -> None:
        self._bot = bot
        self._previous = previous
        self._values = values
        self._now = now

    def now(self) -> datetime:
        return self._now()

    @property
    def previous(self) -> CheckResult | None:
        return self._previous

    def values_of(self, check: str) -> Mapping[str, float] | None:
        return self._values.get(check)

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        return await condor_counts(self._bot, pool)
