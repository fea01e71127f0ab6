"""``shiftbot doctor``: the HTCondor pools and the status checks, run as the bot runs them.

Each pool is asked for its queue totals through the condor service's worker (``condor q``'s
projected query, no rows): a real schedd must answer; the demo backend answers from its fake
queue. Every status check runs once through the status runner (``bot/status/runner.py``),
without the database: no previous result, other checks' values from this same run (an
expression check runs after the checks it reads). A check's level is reported, not judged:
CRITICAL is the pipeline's state (verdict RAN); only a check that could not run (UNKNOWN, its
plugin missing or timing out) is a FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.doctor import FAIL, OK, RAN, Check, Failed, Outcome, first_line, skipped

if TYPE_CHECKING:
    from bot.condor.service import CondorService
    from bot.config import Config
    from bot.status.model import CheckResult, CheckSpec

POOL_MARGIN = 5.0  # seconds on top of a pool's timeout (the worker starts first)


class Condor:
    """The condor service the pool checks and the status checks share (one worker a pool)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._service: CondorService | None = None

    @property
    def service(self) -> CondorService:
        if self._service is None:
            from bot.condor.service import CondorService

            self._service = CondorService.from_config(self.config)
        return self._service

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()


def condor_checks(config: Config, condor: Condor) -> list[Check]:
    pools = config.condor.pools
    if not pools:
        return [skipped("condor", "no pool configured (condor.pools)")]
    return [_pool_check(name, float(getattr(pool, "timeout_seconds", 10.0)), condor)
            for name, pool in pools.items()]


def _pool_check(name: str, timeout: float, condor: Condor) -> Check:
    async def run() -> list[Outcome]:
        service = condor.service
        spec = service.pool(name)
        try:
            summary = await service.q(name, include_running=True, max_rows=0)
        except Exception as exc:
            raise Failed(f"{spec.backend}: {first_line(exc)}",
                         f"condor.pools.{name}: is the schedd (schedd / schedd_address / "
                         "collector) reachable from this host? try condor_q -name ... here"
                         ) from None
        where = "demo backend" if spec.backend == "demo" else "schedd answered"
        return [Outcome(OK, f"condor {name}", f"{where}: {summary.total} job(s) in scope")]

    return Check(f"condor {name}", run, timeout + POOL_MARGIN,
                 f"condor.pools.{name}.timeout_seconds: the schedd did not answer in time")


class DoctorEnv:
    """A status check's environment without the database (see the module docstring)."""

    def __init__(self, condor: Condor) -> None:
        self._condor = condor

    def now(self) -> datetime:
        return clock.utcnow()

    @property
    def previous(self) -> CheckResult | None:
        return None

    def values_of(self, check: str) -> Mapping[str, float] | None:
        return None  # the runner's overlay gives this run's values

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        from bot.condor import states
        from bot.status.env import state_name

        summary = await self._condor.service.q(pool, include_running=True, max_rows=0)
        counts = {state_name(letter): 0 for letter in states.LETTERS}
        for letter, count in summary.totals.items():
            counts[state_name(letter)] = counts.get(state_name(letter), 0) + count
        counts["total"] = summary.total
        return counts


def status_checks(config: Config, condor: Condor) -> list[Check]:
    """One check running every status check (the runner orders them in waves)."""
    section = config.feature_sections.get("status")
    specs: list[CheckSpec] = list(getattr(section, "checks", []))
    if not specs:
        return [skipped("status", "no status checks configured (status.checks)")]
    margin = float(getattr(section, "margin_seconds", 2.0))
    deadline = sum(max(s.timeout_seconds for s in wave) for wave in _waves(specs)) \
        + margin * len(_waves(specs)) + 5

    async def run() -> list[Outcome]:
        from bot.status.runner import run_checks

        env = DoctorEnv(condor)
        results = await run_checks(specs, lambda _spec: env, margin=margin)
        return [_status_outcome(spec.name, results.get(spec.name)) for spec in specs]

    return [Check("status", run, deadline, "a status check hung past its timeout")]


def _waves(specs: list[CheckSpec]) -> list[list[Any]]:
    from bot.status.runner import waves

    return waves(specs)


def _status_outcome(name: str, result: CheckResult | None) -> Outcome:
    from bot.status.model import Level

    label = f"status {name}"
    if result is None:
        return Outcome(FAIL, label, "no result", "see the bot's log")
    summary = result.summary  # a Nagios plugin's summary usually starts with its level
    if not summary.upper().startswith(result.level.name):
        summary = f"{result.level.name}: {summary}"
    text = f"{summary} ({result.duration_seconds:.1f} s)"
    if result.level is Level.UNKNOWN:
        return Outcome(FAIL, label, text, f"status.checks {name}: the check could not run "
                       "(its command, URL or timeout); `status " + name + "` shows more")
    return Outcome(RAN, label, text)
