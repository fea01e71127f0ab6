"""The scheduler: periodic jobs (``@every``), replica-safe.

A small asyncio loop per job, not APScheduler: what the jobs need is exactly what it would not
give (docs/architecture.md, /work/shared/notes/SCHEDULING.md: two processes sharing a job store
run jobs twice, and jobs do not learn their scheduled time). Each job:

- is scheduled on a grid of its period: the instants are ``k * N`` seconds since the epoch, read
  from the one clock (``bot.clock``), so every bot process computes the same instants;
- starts each run up to ``jitter * N`` after its instant (spreads load; the instant, not the
  start, names the run);
- **claims** the run, ``job:<name>:<instant ISO>`` in the database (``bot.claims``), before
  running it: of two processes on one database exactly one runs each instant;
- never overlaps itself: the next instant is chosen after a run ends (instants missed meanwhile
  are skipped, not queued), and each run is cancelled at its deadline (at most the period);
- logs and counts (``shiftbot_job_runs{job, result}``) a run that raises or overruns, and goes
  on: nothing a job does stops the scheduler;
- measures how late each run it won started after it was due (its instant plus the jitter
  drawn for it; ``shiftbot_job_lateness_seconds{job}``): a loop blocked by synchronous work, an
  overloaded host or a slow claim shows there before jobs start missing instants. Another
  replica's claim on an instant is counted as a conflict by the claims (kind ``job``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot import clock
from bot.hooks import JobSpec

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

# Results a run is counted under.
OK, ERROR, TIMEOUT, TAKEN, UNCLAIMED = "ok", "error", "timeout", "taken", "claim-failed"
# How long past its instant a run's claim is kept: longer than any process could still try it.
CLAIM_MARGIN = timedelta(minutes=5)


_instant: contextvars.ContextVar[datetime] = contextvars.ContextVar("job_instant")


def scheduled_instant() -> datetime:
    """Inside a job run: the grid instant it runs for (the same in every replica), e.g. to
    key the notice it posts (``f"digest:{scheduled_instant():%Y-%m-%d}"``). LookupError
    outside a run."""
    return _instant.get()


def next_instant(now: float, period: float) -> float:
    """The first grid instant strictly after ``now`` (seconds since the epoch)."""
    return (math.floor(now / period) + 1) * period


def claim_key(job: JobSpec, instant: float) -> str:
    return f"job:{job.name}:{datetime.fromtimestamp(instant, UTC).isoformat()}"


class Scheduler:
    def __init__(self, bot: Bot, jobs: Iterable[JobSpec]) -> None:
        self.bot = bot
        self.jobs = {job.name: job for job in jobs}
        self.counts: Counter[tuple[str, str]] = Counter()  # (job, result) -> runs, this process
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def add(self, job: JobSpec) -> None:
        """Another job (before :meth:`start`)."""
        if job.name in self.jobs:
            raise ValueError(f"job '{job.name}' is scheduled twice")
        self.jobs[job.name] = job

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}")
                       for job in self.jobs.values()]
        log.info("scheduler: %d job(s): %s", len(self._tasks), ", ".join(sorted(self.jobs)))

    async def stop(self) -> None:
        """Cancel the loops (a run in progress is cancelled too) and wait for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, job: JobSpec) -> None:
        while True:
            now = clock.utcnow().timestamp()
            instant = next_instant(now, job.seconds)
            due = instant + random.uniform(0, job.jitter * job.seconds)
            await asyncio.sleep(due - now)
            await self.run_once(job, instant, due=due)

    async def run_once(self, job: JobSpec, instant: float, *, due: float | None = None) -> str:
        """Claim and run one instant of ``job`` (meant to start at ``due``, by default the
        instant); returns the result it was counted under."""
        try:
            ttl = timedelta(seconds=job.seconds + job.run_deadline) + CLAIM_MARGIN
            if not await self.bot.claims.claim(claim_key(job, instant), ttl):
                return self._count(job, TAKEN)  # another process runs this instant
        except Exception:
            log.exception("job %s: cannot claim its run; skipped", job.name)
            return self._count(job, UNCLAIMED)
        self._lateness(job, instant if due is None else due)
        token = _instant.set(datetime.fromtimestamp(instant, UTC))
        try:
            async with asyncio.timeout(job.run_deadline):
                await job.func(self.bot)
        except TimeoutError:
            log.error("job %s: cut at its deadline (%g s)", job.name, job.run_deadline)
            return self._count(job, TIMEOUT)
        except Exception:
            log.exception("job %s failed", job.name)
            return self._count(job, ERROR)
        finally:
            _instant.reset(token)
        return self._count(job, OK)

    def _lateness(self, job: JobSpec, due: float) -> None:
        late = max(0.0, clock.utcnow().timestamp() - due)  # < 0: the clock stepped back
        self.bot.metrics.observe_lateness(job.name, late)
        if late >= job.seconds:  # a whole period: the instants after it were skipped
            log.warning("job %s started %.1f s late (every %g s): event loop blocked, host "
                        "suspended or claim slow", job.name, late, job.seconds)

    def _count(self, job: JobSpec, result: str) -> str:
        self.counts[(job.name, result)] += 1
        self.bot.metrics.count_job(job.name, result)
        return result


# ------------------------------------------------------------------------- the core's own jobs


async def expire_requests(bot: Bot) -> None:
    """Overdue confirmations and approvals expire (and their messages are updated)."""
    await bot.expire_requests()


async def sweep_claims(bot: Bot) -> None:
    """Forget claims that expired long ago (every claimed job run and delivery leaves one)."""
    await bot.claims.sweep()


def core_jobs(expiry_seconds: float = 30) -> list[JobSpec]:
    return [JobSpec("core.expire-requests", expiry_seconds, expire_requests),
            JobSpec("core.sweep-claims", 3600, sweep_claims)]
