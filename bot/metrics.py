"""Prometheus metrics on a registry of the bot's own (tests build many bots per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot import __version__

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

    def count_job(self, job: str, result: str) -> None:
        self.job_runs.labels(job=job, result=result).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
