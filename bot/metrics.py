"""Prometheus metrics on a registry of the bot's own (tests build many bots per process).

Most are counted where things happen. Gauges that need a query (the alerts inbox) are *sampled*
(:class:`Sampler`): a scrape answers at once with the last sample and, when that is older than
the sampler's interval, starts a new one in the background (a scrape never waits on the
database, and ten scrapes a second cost one query per interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot import __version__

if TYPE_CHECKING:
    from bot.core import Bot
    from bot.readiness import Readiness

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 15.0


class Sampler:
    """``refresh`` run at most every ``interval`` seconds, started by a scrape (see above)."""

    def __init__(self, name: str, refresh: Callable[[], Awaitable[None]],
                 interval: float = SAMPLE_SECONDS) -> None:
        self.name = name
        self.refresh = refresh
        self.interval = interval
        self._last = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Start a refresh when the last one is older than the interval (and none runs)."""
        if self._task is not None and not self._task.done():
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        with contextlib.suppress(RuntimeError):  # no running loop (a synchronous caller)
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name=f"metrics:{self.name}")
            self._last = now

    async def run_now(self) -> None:
        """Refresh at once (an in-memory sample: no I/O to wait for)."""
        self._last = time.monotonic()
        await self._run()

    async def _run(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the database is away: the gauge keeps its last value
            log.debug("metrics sample %s failed: %s", self.name, exc)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "shiftbot_commands", "Commands handled, by family and gate decision",
            ["family", "decision"], registry=self.registry,
        )
        self.latency = Histogram(
            "shiftbot_command_duration_seconds", "Time from receipt to reply, by family",
            ["family"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.auth_failures = Counter(
            "shiftbot_auth_failures", "Inbound requests refused with 401, by source",
            ["source"], registry=self.registry,
        )
        self.component_up = Gauge(
            "shiftbot_component_up", "1 when the component is healthy",
            ["component"], registry=self.registry,
        )
        # Durable notices (bot/messaging): what this process delivered or gave up on, and the
        # outbox as the deliverer last read it (every replica reports the same table).
        self.notices_delivered = Counter(
            "shiftbot_notices_delivered", "Notice messages delivered, by platform",
            ["platform"], registry=self.registry,
        )
        self.notices_failed = Counter(
            "shiftbot_notices_failed", "Notice messages given up on, by platform",
            ["platform"], registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "shiftbot_outbox_depth", "Notice messages waiting to be delivered",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "shiftbot_outbox_oldest_age_seconds", "How long the oldest undelivered notice "
            "message has waited", registry=self.registry,
        )
        # Periodic jobs (bot/jobs.py): ok, error, timeout, taken (another replica ran it),
        # claim-failed (the database could not be asked).
        self.job_runs = Counter(
            "shiftbot_job_runs", "Periodic job runs, by job and result",
            ["job", "result"], registry=self.registry,
        )
        # Operations (docs/operations.md): the alerts inbox and the scheduler, sampled.
        self.alerts_inbox_depth = Gauge(
            "shiftbot_alerts_inbox_depth", "Alert deliveries (Sentry) waiting to be processed",
            registry=self.registry,
        )
        self.alerts_inbox_oldest_age = Gauge(
            "shiftbot_alerts_inbox_oldest_age_seconds", "How long the oldest waiting alert "
            "delivery has waited", registry=self.registry,
        )
        self.schedule_pass_age = Gauge(
            "shiftbot_schedule_last_pass_age_seconds", "Seconds since this process's last "
            "schedule planning pass (-1: none yet)", registry=self.registry,
        )
        self.check_seconds = Histogram(
            "shiftbot_check_seconds", "Status check run time, by check and level",
            ["check", "level"], registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self._operations()
        self.samplers: list[Sampler] = []
        self.watching = False  # watch_operations() ran
        self._attempts: Counter | None = None  # shiftbot_mattermost_reconnects, on first use
        # labels() takes a lock and builds a key each call; commands are counted on every reply
        self._counted: dict[tuple[str, str], Counter] = {}
        self._timed: dict[str, Histogram] = {}
        info = Gauge("shiftbot_build_info", "Version", ["version"], registry=self.registry)
        info.labels(version=__version__).set(1)

    def count_command(self, family: str, decision: str, seconds: float | None = None) -> None:
        """Count one command by family and gate decision (and its duration, when given)."""
        counter = self._counted.get((family, decision))
        if counter is None:
            counter = self._counted[(family, decision)] = self.commands.labels(
                family=family, decision=decision)
        counter.inc()
        if seconds is not None:
            histogram = self._timed.get(family)
            if histogram is None:
                histogram = self._timed[family] = self.latency.labels(family=family)
            histogram.observe(seconds)

    def _operations(self) -> None:
        """Sockets, inbound claims, claim conflicts, scheduler lag (docs/operations.md)."""
        self.platform_connected = Gauge(
            "shiftbot_platform_connected", "1 while /readyz counts the platform connected "
            "(its socket works, or reconnects within its grace; Slack HTTP mode: serving)",
            ["platform"], registry=self.registry,
        )
        self.platform_reconnects = Counter(
            "shiftbot_platform_reconnects", "New working socket connections after the first, "
            "by platform", ["platform"], registry=self.registry,
        )
        self.inbound_claims = Counter(
            "shiftbot_inbound_claims", "Inbound deliveries by claim result: claimed, duplicate, "
            "takeover, error (not run: the claim could not be asked)",
            ["platform", "result"], registry=self.registry,
        )
        self.claim_conflicts = Counter(
            "shiftbot_claim_conflicts", "Claims (job runs, send leases, locks) found held by "
            "another process, and held claims lost to one, by key kind",
            ["kind"], registry=self.registry,
        )
        self.job_lateness = Histogram(
            "shiftbot_job_lateness_seconds", "How late periodic job runs started after they "
            "were due (their instant plus jitter), by job", ["job"], registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )

    def count_job(self, job: str, result: str) -> None:
        self.job_runs.labels(job=job, result=result).inc()

    def observe_lateness(self, job: str, seconds: float) -> None:
        self.job_lateness.labels(job=job).observe(seconds)

    # bot.messaging.claims.ClaimObserver: the claims report here once watch_operations ran.
    def inbound_claim(self, platform: str, result: str) -> None:
        self.inbound_claims.labels(platform=platform, result=result).inc()

    def claim_conflict(self, kind: str) -> None:
        self.claim_conflicts.labels(kind=kind).inc()

    def track_platform(self, platform: str) -> None:
        """Show an enabled platform's series (at 0) before anything happened on it: a rate()
        over a series that appears only at its first event misses that event."""
        from bot.messaging.claims import INBOUND_RESULTS

        self.platform_connected.labels(platform=platform)
        self.platform_reconnects.labels(platform=platform)
        for result in INBOUND_RESULTS:
            self.inbound_claims.labels(platform=platform, result=result)

    def set_connected(self, connected: dict[str, bool]) -> None:
        for platform, up in connected.items():
            self.platform_connected.labels(platform=platform).set(1 if up else 0)

    def count_reconnect(self, platform: str) -> None:
        self.platform_reconnects.labels(platform=platform).inc()

    def connection_attempts(self) -> Counter:
        """``shiftbot_mattermost_reconnects_total`` (attempts after the first, an outage's
        retries included): created by the Mattermost adapter, so only bots with one show it."""
        if self._attempts is None:
            self._attempts = Counter("shiftbot_mattermost_reconnects",
                                     "Mattermost socket connection attempts after the first",
                                     registry=self.registry)
        return self._attempts

    def exposition(self) -> bytes:
        for sampler in self.samplers:
            sampler.poke()
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """``/metrics``: the in-memory samples (``interval`` 0: the platforms' sockets) taken
        now, so the scrape shows this moment; the database ones started, as in
        :meth:`exposition` (they never hold a scrape up)."""
        for sampler in self.samplers:
            if sampler.interval == 0:
                await sampler.run_now()
            else:
                sampler.poke()
        return generate_latest(self.registry)


def watch_operations(bot: Bot, interval: float = SAMPLE_SECONDS, *,
                     readiness: Readiness | None = None) -> None:
    """Sample the alerts inbox (when the alerts feature is loaded) and the scheduler's lag
    into ``bot.metrics`` (``/metrics``); the outbox is sampled by the notices already. The
    claims report to it from now on (inbound results, conflicts); with ``readiness``, the
    enabled platforms' connection gauges follow its verdicts."""
    metrics = bot.metrics
    if metrics.watching:  # once per bot, whoever calls it first
        return
    metrics.watching = True
    bot.claims.observer = metrics
    if readiness is not None:
        _watch_platforms(metrics, readiness)
    if any(m.feature == "alerts" for m in bot.registry.migrations):
        async def inbox() -> None:
            depth, oldest = await bot.database.run(_inbox_stats)
            metrics.alerts_inbox_depth.set(depth)
            metrics.alerts_inbox_oldest_age.set(_age(oldest))

        metrics.samplers.append(Sampler("alerts inbox", inbox, interval))
    if any(m.feature == "schedule" for m in bot.registry.migrations):
        metrics.schedule_pass_age.set_function(lambda: _schedule_pass_age(bot))
    else:
        metrics.schedule_pass_age.set(-1)


def _watch_platforms(metrics: Metrics, readiness: Readiness) -> None:
    for name in readiness.platforms():
        metrics.track_platform(name)

    async def connected() -> None:
        await readiness.platform_verdicts()  # sets the gauges, as each /readyz does

    # The probes read adapter state in memory (no I/O): a fresh sample for every scrape.
    metrics.samplers.append(Sampler("platforms", connected, interval=0))


def _inbox_stats(conn: Any) -> tuple[int, Any]:
    from sqlalchemy import func, select

    from bot.alerts.tables import PENDING, inbox

    row = conn.execute(select(func.count(), func.min(inbox.c.received_at))
                       .where(inbox.c.state == PENDING)).one()
    return int(row[0]), row[1]


def _age(moment: Any) -> float:
    from bot.db import as_utc, utcnow

    return 0.0 if moment is None else max(0.0, (utcnow() - as_utc(moment)).total_seconds())


def _schedule_pass_age(bot: Bot) -> float:
    """The age of the schedule service's last planning pass: one runs every
    ``schedule.plan_minutes`` (and on changes); much older means the scheduler is stuck (-1:
    no pass yet)."""
    from bot.schedule.service import ScheduleService

    service = bot.services.get(ScheduleService)
    last = getattr(service, "last", None)
    return -1.0 if last is None else _age(last.at)
