"""``ScheduleService``: the planner and the wake-ups (``bot.services``), docs/schedule.md.

Sources register here (``register``). A planning pass runs once the platforms are up (after
startup) and then every ``schedule.plan_minutes``: it expands every source for the window
(``planner.window``), reads what the database recorded and applies ``planner.decide``: future
occurrences become one-shot APScheduler jobs named by their key (``replace_existing``; jobs of
vanished occurrences are removed), due ones fire now, the rest are recorded as missed.

APScheduler (3.11, ``AsyncIOScheduler``, in-memory job store) only wakes things up: every
decision reads the bot's clock, and every send is claimed in ``schedule_occurrences`` first,
so two bot processes each with their own scheduler send each occurrence once. A job's
wake-up is placed at the delay the bot's clock gives (``at - clock.utcnow()``) from real now:
the same instant in production, and a test's manual clock cannot make it fire at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection

from bot import clock
from bot.schedule import planner, store
from bot.schedule.model import FAILED, FIRED, MISSED, Occurrence, Source
from bot.secrets import masker
from bot.tasks import BackgroundTasks

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # loaded by start()

    from bot.core import Bot

log = logging.getLogger(__name__)
# APScheduler's scheduler logs every added and removed job and every pause at INFO (1,200
# lines for a first pass); it gets a logger of its own, warnings and errors only.
apscheduler_log = logging.getLogger(f"{__name__}.apscheduler")
apscheduler_log.setLevel(logging.WARNING)

PLANNER_JOB = "schedule:planner"
STARTUP_WAIT = 120.0  # the first pass waits this long at most for the platforms to be up
SOURCE_TIMEOUT = 60.0  # a source's expansion (an iCal feed fetch) within this
FIRE_TIMEOUT = 120.0  # a source's fire within this (it only stores notices)
ABANDONED = "its process stopped while sending it (lease ran out); it may have been sent"


class ScheduleSettings(Protocol):
    """The ``schedule:`` section (bot/schedule/config.py) as the service reads it."""

    horizon_days: float
    plan_minutes: float
    lease_minutes: float
    catchup_days: float
    keep_days: int


@dataclass(slots=True)
class PassResult:
    """What one planning pass did (``schedule list`` shows the last one)."""

    at: datetime
    start: datetime
    end: datetime
    expanded: int = 0
    scheduled: int = 0
    fired: dict[str, str] = field(default_factory=dict)  # key -> result
    missed: int = 0
    failed_sources: list[str] = field(default_factory=list)
    seconds: float = 0.0


class ScheduleService:
    def __init__(self, bot: Bot, settings: ScheduleSettings) -> None:
        self.bot = bot
        self.settings = settings
        self.sources: dict[str, Source] = {}
        self.expanded: dict[str, list[Occurrence]] = {}  # source -> its last good expansion
        self.origin: dict[str, str] = {}  # occurrence key -> source, by the last pass
        self.scheduler: AsyncIOScheduler | None = None
        self.jobs: dict[str, datetime] = {}  # key -> instant of the wake-ups scheduled here
        self.tasks = BackgroundTasks("schedule")
        self.last: PassResult | None = None
        self._lock = asyncio.Lock()  # one pass at a time
        self._first: asyncio.Task[Any] | None = None
        self._failing_sources: set[str] = set()  # logged once per failure streak
        self._logged: set[str] = set()  # occurrences whose failure was logged in full
        self._closed = False

    # ------------------------------------------------------------------ settings

    @property
    def lease(self) -> timedelta:
        return timedelta(minutes=self.settings.lease_minutes)

    @property
    def owner(self) -> str:
        return self.bot.claims.owner

    @property
    def running(self) -> bool:
        return self.scheduler is not None and not self._closed

    def max_grace(self) -> timedelta:
        return max((s.max_grace for s in self.sources.values()), default=timedelta(0))

    # ------------------------------------------------------------------ sources

    def register(self, source: Source) -> None:
        """Plug in a source (a feature's startup); once running, a pass follows soon."""
        if not isinstance(source, Source):
            raise TypeError(f"{source!r} is not a schedule source")
        if source.name in self.sources:
            raise ValueError(f"schedule source '{source.name}' is registered twice")
        self.sources[source.name] = source
        if self.running and self._first is not None and self._first.done():
            self.tasks.spawn(self._pass_logged(), name="schedule pass")

    def series(self) -> dict[str, str]:
        """Every series name -> the source offering it (``schedule pause`` checks names)."""
        return {name: source.name for source in self.sources.values()
                for name in source.series()}

    async def expand(self, start: datetime, end: datetime, *, remember: bool = False
                     ) -> tuple[list[Occurrence], list[str]]:
        """Every source's occurrences in [start, end), sorted; and the sources that failed
        (their last good expansion stands in: a feed that is down keeps its wake-ups).
        ``remember`` (the planner): keep this expansion as each source's last good one."""
        found: list[Occurrence] = []
        failed = []
        origin: dict[str, str] = {}
        for name, source in self.sources.items():
            try:
                async with asyncio.timeout(SOURCE_TIMEOUT):
                    occs = await source.occurrences(self.bot, start, end)
                self._failing_sources.discard(name)
                if remember:
                    self.expanded[name] = occs
            except Exception as exc:
                failed.append(name)
                self._log_source_failure(name, exc)
                occs = self.expanded.get(name, [])
            occs = [occ for occ in occs if start <= occ.at < end]
            origin.update((occ.key, name) for occ in occs)
            found += occs
        if remember:
            self.origin = origin
        return _unique(found), failed

    def _log_source_failure(self, name: str, exc: Exception) -> None:
        if name in self._failing_sources:
            log.warning("schedule source %s still fails: %s", name, masker.mask(str(exc)))
        else:
            self._failing_sources.add(name)
            log.error("schedule source %s failed to expand; its last plan stands", name,
                      exc_info=exc)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait_for_platforms: bool = True) -> None:
        """Start APScheduler in the running loop, with the periodic planning pass; the first
        pass runs once the notice deliverer is started (the platforms are up), or at once."""
        if self.scheduler is not None:
            return
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone=UTC, logger=apscheduler_log, job_defaults={
            # Lateness is ours to judge (grace, by the bot's clock): APScheduler must run a
            # late wake-up rather than drop it with a log line.
            "misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        self.scheduler.start()
        self.scheduler.add_job(self._pass_logged, "interval", id=PLANNER_JOB,
                               seconds=self.settings.plan_minutes * 60)
        self._first = asyncio.create_task(self._first_pass(wait_for_platforms),
                                          name="schedule first pass")

    async def _first_pass(self, wait_for_platforms: bool) -> None:
        deadline = time.monotonic() + STARTUP_WAIT
        while wait_for_platforms and not self.bot.notices.deliverer.running \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._pass_logged()

    async def started(self, timeout: float = 10.0) -> None:
        """Wait for the first planning pass (tests, the console)."""
        if self._first is not None:
            await asyncio.wait_for(asyncio.shield(self._first), timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """No more wake-ups or passes; sends in progress get ``timeout`` s to finish."""
        first_close, self._closed = not self._closed, True
        if self._first is not None and not self._first.done():
            self._first.cancel()
        if first_close and self.scheduler is not None and self.scheduler.running:
            self.scheduler.remove_all_jobs()
            self.scheduler.shutdown(wait=False)
        self.jobs.clear()
        await self.tasks.close(timeout)

    # ------------------------------------------------------------------ planning

    async def _pass_logged(self) -> None:
        if self._closed:
            return
        try:
            await self.plan()
        except Exception:
            log.exception("schedule: a planning pass failed; the next one retries")

    async def plan(self) -> PassResult:
        """One planning pass (see the module's docstring)."""
        async with self._lock:
            started = time.perf_counter()
            now = clock.utcnow()
            mark = await self.bot.database.run(store.planned_through)
            start, end = planner.window(
                now, max_grace=self.max_grace(), planned_through=mark,
                horizon=timedelta(days=self.settings.horizon_days),
                catchup=timedelta(days=self.settings.catchup_days))
            occs, failed = await self.expand(start, end, remember=True)
            recorded = await self.bot.database.run(store.recorded_since, start)
            decided = planner.decide(now, occs, recorded, self.lease)
            result = PassResult(now, start, end, len(occs), len(decided.schedule),
                                failed_sources=failed)
            self._reschedule(decided.schedule, now)
            result.missed = await self.bot.database.run(
                self._record_missed, decided.missed, decided.abandoned, now)
            for occ in decided.due:
                result.fired[occ.key] = await self.fire(occ)
            await self.bot.database.run(store.advance_planned_through, now)
            result.seconds = time.perf_counter() - started
            self.last = result
            return result

    def _record_missed(self, conn: Connection, missed: list[Occurrence],
                       abandoned: list[Occurrence], now: datetime) -> int:
        count = store.record_many(conn, missed, MISSED, self.owner, now,
                                  "not sent: the bot was not running within its grace")
        for occ in missed[:20]:
            log.warning("schedule: %s missed (due %s, grace %s)", occ.key, occ.at, occ.grace)
        for occ in abandoned:
            if store.abandon(conn, occ.key, now, self.lease, ABANDONED):
                count += 1
                log.warning("schedule: %s missed: %s", occ.key, ABANDONED)
        return count

    def _reschedule(self, future: Sequence[Occurrence], now: datetime) -> None:
        """One wake-up per future occurrence (new or moved); wake-ups of occurrences no
        longer planned are removed."""
        if self.scheduler is None or self._closed:
            return
        from apscheduler.jobstores.base import JobLookupError

        wanted = {occ.key: occ for occ in future}
        for key in [key for key in self.jobs if key not in wanted]:
            del self.jobs[key]
            with contextlib.suppress(JobLookupError):  # it ran already
                self.scheduler.remove_job(key)
        real_now = datetime.now(UTC)
        changed = [occ for key, occ in wanted.items() if self.jobs.get(key) != occ.at]
        if not changed:
            return
        # Paused while adding: each add_job would otherwise queue a wake-up of its own
        # (1,200 queued callbacks on a first pass); resume() wakes it once.
        self.scheduler.pause()
        try:
            for occ in changed:
                self.scheduler.add_job(self._wake, "date", id=occ.key, name=occ.key,
                                       replace_existing=True, args=[occ],
                                       run_date=real_now + (occ.at - now))
                self.jobs[occ.key] = occ.at
        finally:
            self.scheduler.resume()

    # ------------------------------------------------------------------ firing

    async def _wake(self, occ: Occurrence) -> None:
        """An APScheduler job: the occurrence's time has come."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.adopt(task)  # close() waits for it
        self.jobs.pop(occ.key, None)
        if not self._closed:
            await self.fire(occ)

    def source_of(self, occ: Occurrence) -> Source | None:
        """The source offering ``occ`` (by the last pass, else by its series' name)."""
        name = self.origin.get(occ.key) or self.series().get(occ.series)
        return self.sources.get(name) if name else None

    async def fire(self, occ: Occurrence) -> str:
        """Claim ``occ`` and send it: fired, failed, missed (too late by the bot's clock),
        skipped (series paused) or taken (another process has it). Never raises."""
        try:
            return await self._fire(occ)
        except Exception:
            log.exception("schedule: firing %s failed in the scheduler", occ.key)
            return FAILED

    async def _fire(self, occ: Occurrence) -> str:
        now = clock.utcnow()
        if now - occ.at > occ.grace:
            late = f"woke {(now - occ.at).total_seconds():.0f} s after its time"
            if await self.bot.database.run(store.record, occ, MISSED, self.owner, now, late):
                log.warning("schedule: %s missed (%s, grace %s)", occ.key, late, occ.grace)
            return self._count(occ, MISSED)
        outcome = await self.bot.database.run(store.claim, occ, self.owner, now, self.lease)
        if outcome != store.CLAIMED:
            return self._count(occ, outcome)
        try:
            source = self.source_of(occ)
            if source is None:
                raise LookupError(f"no source offers series '{occ.series}' any more")
            async with asyncio.timeout(FIRE_TIMEOUT):
                await source.fire(self.bot, occ)
        except Exception as exc:
            error = masker.mask(f"{type(exc).__name__}: {exc}")
            self._log_failure(occ, exc, error)
            await self.bot.database.run(store.finish, occ.key, self.owner, FAILED,
                                        clock.utcnow(), error)
            return self._count(occ, FAILED)
        await self.bot.database.run(store.finish, occ.key, self.owner, FIRED, clock.utcnow())
        self._logged.discard(occ.key)
        log.info("schedule: %s sent", occ.key)
        return self._count(occ, FIRED)

    def _log_failure(self, occ: Occurrence, exc: Exception, error: str) -> None:
        if occ.key in self._logged:  # retried inside its grace: one line, no traceback
            log.warning("schedule: %s failed again: %s", occ.key, error)
            return
        self._logged.add(occ.key)
        log.error("schedule: sending %s failed (retried while inside its grace)", occ.key,
                  exc_info=exc)

    def _count(self, occ: Occurrence, result: str) -> str:
        self.bot.metrics.count_job(f"schedule.{occ.kind}", result)
        return result

    # ------------------------------------------------------------------ commands' helpers

    async def upcoming(self, until: datetime) -> list[Occurrence]:
        """The occurrences from now until ``until`` (a fresh expansion)."""
        now = clock.utcnow()
        occs, _failed = await self.expand(now, until)
        return occs

    async def prune(self) -> int:
        before = clock.utcnow() - timedelta(days=self.settings.keep_days)
        return await self.bot.database.run(store.prune, before)


def _unique(occs: list[Occurrence]) -> list[Occurrence]:
    """Sorted by instant; a key seen twice (two sources naming one series alike) once."""
    seen: dict[str, Occurrence] = {}
    for occ in occs:
        if occ.key in seen:
            log.warning("schedule: two occurrences share the key %s; the first one counts",
                        occ.key)
            continue
        seen[occ.key] = occ
    return sorted(seen.values(), key=lambda o: (o.at, o.key))


def settings_of(bot: Bot) -> ScheduleSettings:
    """The validated ``schedule:`` section, or its defaults."""
    from bot.schedule.config import ScheduleConfig

    section = bot.config.feature_sections.get("schedule")
    return section if isinstance(section, ScheduleConfig) else ScheduleConfig()


def service_of(bot: Bot) -> ScheduleService:
    """The bot's schedule service (made on first use, so a feature's startup may register
    its source whether or not handlers.schedule started before it)."""
    return bot.services.ensure(ScheduleService, lambda: ScheduleService(bot, settings_of(bot)))
