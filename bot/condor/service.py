"""What the ``condor`` handlers call: pools from the config, one worker per pool, deadlines.

Everything chat-typed is validated here, in the bot's process, before anything is sent: the
constraint is parsed and canonicalised, owner and batch names become quoted literals, job ids
are pattern-checked, statuses are mapped to fixed constraints. The pool's scope is ANDed into
every query and every action. Results are the plain dataclasses of :mod:`bot.condor.models`;
failures are :class:`~bot.condor.errors.CondorError` with a one-line message.

This module does not import htcondor2 (the worker does); ``classad2`` is imported on first use
by :mod:`bot.condor.constraints`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.condor import states
from bot.condor.constraints import (
    all_of,
    any_of,
    attr_equals,
    jobs_constraint,
    parse_jobid,
    validate,
)
from bot.condor.errors import CondorConfigError, CondorError, CondorTimeout
from bot.condor.models import (
    ActionResult,
    Analysis,
    Matched,
    PoolSpec,
    QueueSummary,
    SubmitOutcome,
)
from bot.condor.worker import WorkerClient

if TYPE_CHECKING:
    from bot.config import CondorConfig, Config, SubmitDescription

log = logging.getLogger(__name__)

Action = Literal["hold", "release", "remove"]
Progress = Callable[[str], Awaitable[None]]
MAX_REASON = 200
# HoldReasonSubCode for holds made through the bot (HoldReasonCode is 1, UserRequest): the
# bindings drop a plain-string reason, so every act() passes (text, subcode).
SUBCODE = 0


@dataclass(slots=True)
class ResubmitOutcome:
    removed: ActionResult | None  # None when the batch had no jobs
    waited_seconds: float
    submitted: SubmitOutcome
    batch: str


@dataclass(slots=True)
class SubmitSource:
    name: str
    text: str
    attributes: dict[str, str] = field(default_factory=dict)
    batch: str | None = None


def pool_specs(config: CondorConfig) -> dict[str, PoolSpec]:
    """``CondorPoolConfig`` -> :class:`PoolSpec` (scopes validated and canonicalised)."""
    specs = {}
    for name, pool in config.pools.items():
        specs[name] = PoolSpec(
            name=name, backend=pool.backend, collector=pool.collector, schedd=pool.schedd,
            schedd_address=pool.schedd_address,
            scope=validate(pool.scope, what=f"scope of pool {name}") if pool.scope else None,
            timeout=float(pool.timeout_seconds), environment=dict(pool.environment),
            getenv_allow=tuple(pool.getenv_allow),
            demo_jobs=pool.demo_jobs, demo_seed=pool.demo_seed,
            demo_remove_delay=float(pool.demo_remove_delay_seconds),
        )
    return specs


class CondorService:
    """Pools, their workers, and the operations the ``condor`` commands need."""

    def __init__(self, config: CondorConfig, source_dir: Path = Path("."), *,
                 python: str | None = None) -> None:
        self.config = config
        self.source_dir = source_dir
        self.python = python
        self.pools = pool_specs(config)
        self._workers: dict[str, WorkerClient] = {}

    @classmethod
    def from_config(cls, config: Config) -> CondorService:
        return cls(config.condor, config.source_dir)

    # ------------------------------------------------------------------ pools and workers

    @property
    def default_pool(self) -> str | None:
        if self.config.default_pool:
            return self.config.default_pool
        return next(iter(self.pools)) if len(self.pools) == 1 else None

    def pool(self, name: str | None) -> PoolSpec:
        if not self.pools:
            raise CondorConfigError("no HTCondor pool is configured (condor.pools)")
        chosen = name or self.default_pool
        if chosen is None:
            raise CondorConfigError("several pools are configured and none is the default: "
                                    f"name one of {', '.join(self.pools)}")
        spec = self.pools.get(chosen)
        if spec is None:
            raise CondorConfigError(f"unknown pool '{chosen}'; known: {', '.join(self.pools)}")
        return spec

    def worker(self, pool: str | None) -> WorkerClient:
        spec = self.pool(pool)
        client = self._workers.get(spec.name)
        if client is None:
            client = self._workers[spec.name] = WorkerClient(spec, python=self.python)
        return client

    def worker_state(self, pool: str) -> str:
        """``pid 1234, 1 restart(s)`` or ``not started``: for ``condor pools``."""
        client = self._workers.get(pool)
        state = "not started" if client is None or client.pid is None else f"pid {client.pid}"
        if client is not None and client.restarts:
            state += f", {client.restarts} restart(s)"
        return state

    async def close(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)

    # ------------------------------------------------------------------ queries

    def queue_constraint(self, spec: PoolSpec, *, owner: str | None = None,
                         batch: str | None = None, statuses: list[str] | None = None,
                         constraint: str | None = None) -> str:
        """The whole constraint of a ``condor q``: scope && filters, every part checked."""
        letters = states.letters_for(statuses)
        return all_of(
            spec.scope,
            attr_equals("Owner", owner) if owner else None,
            attr_equals("JobBatchName", batch) if batch else None,
            validate(constraint, what="--constraint") if constraint else None,
            any_of(states.LETTER_CONSTRAINT[x] for x in letters) if letters else None,
        )

    async def q(self, pool: str | None = None, *, owner: str | None = None,
                batch: str | None = None, statuses: list[str] | None = None,
                constraint: str | None = None, include_running: bool = False,
                max_rows: int = 40) -> QueueSummary:
        spec = self.pool(pool)
        full = self.queue_constraint(spec, owner=owner, batch=batch, statuses=statuses,
                                     constraint=constraint)
        if statuses:
            letters = states.letters_for(statuses)
        else:
            letters = tuple(x for x in states.LETTERS if include_running or x != "R")
        result: QueueSummary = await self.worker(spec.name).call(
            "q", {"constraint": full, "letters": letters, "max_rows": max(0, max_rows)})
        return result

    async def analyze(self, pool: str | None, job: str) -> Analysis:
        spec = self.pool(pool)
        cluster, proc = parse_jobid(job)
        selector = jobs_constraint([f"{cluster}.{proc}" if proc is not None else f"{cluster}"])
        result: Analysis = await self.worker(spec.name).call(
            "analyze", {"constraint": all_of(spec.scope, selector), "job": job})
        return result

    async def count(self, pool: str | None, *, batch: str) -> dict[str, int]:
        spec = self.pool(pool)
        result: dict[str, int] = await self.worker(spec.name).call(
            "count", {"constraint": all_of(spec.scope, attr_equals("JobBatchName", batch))})
        return result

    # ------------------------------------------------------------------ actions

    async def act(self, pool: str | None, action: Action, *, jobs: list[str] | None = None,
                  batch: str | None = None, reason: str | None = None,
                  caller: str = "shiftbot") -> ActionResult:
        """Hold, release or remove jobs (by id) or a whole batch, always within the scope."""
        spec = self.pool(pool)
        selector = self._selector(jobs, batch)
        text = " ".join((reason or {"hold": "held", "release": "released",
                                     "remove": "removed"}[action]).split())[:MAX_REASON]
        result: ActionResult = await self.worker(spec.name).call("act", {
            "action": action, "constraint": all_of(spec.scope, selector),
            "requested": list(jobs or []),
            "reason": f"{text} (via shiftbot by {caller})", "subcode": SUBCODE,
        })
        return result

    async def match(self, pool: str | None, *, jobs: list[str] | None = None,
                    batch: str | None = None) -> Matched:
        """The jobs :meth:`act` would touch now, within the scope (nothing is changed)."""
        spec = self.pool(pool)
        result: Matched = await self.worker(spec.name).call("match", {
            "constraint": all_of(spec.scope, self._selector(jobs, batch)),
            "requested": list(jobs or [])})
        return result

    @staticmethod
    def _selector(jobs: list[str] | None, batch: str | None) -> str:
        if bool(jobs) == bool(batch):
            raise CondorConfigError("name job ids or a batch, not both and not neither")
        if jobs:
            for job in jobs:
                parse_jobid(job)
            return jobs_constraint(jobs)
        assert batch is not None
        return attr_equals("JobBatchName", batch)

    async def load_submit(self, spec: PoolSpec, name: str) -> SubmitSource:
        """A configured submit description, read from its file off the event loop."""
        pool_config = self.config.pools[spec.name]
        description: SubmitDescription | None = pool_config.submit.get(name)
        if description is None:
            known = ", ".join(pool_config.submit) or "none"
            raise CondorConfigError(f"pool {spec.name} has no submit description '{name}' "
                                    f"(configured: {known})")
        if description.text is not None:
            text = description.text
        else:
            assert description.file is not None
            path = Path(description.file)
            if not path.is_absolute():
                path = self.source_dir / path
            try:
                text = await asyncio.to_thread(path.read_text)
            except OSError as exc:
                raise CondorConfigError(f"submit description {name}: cannot read {path}: "
                                        f"{exc.strerror}") from None
            except UnicodeDecodeError:
                raise CondorConfigError(f"submit description {name}: {path} is not "
                                        "UTF-8 text") from None
        return SubmitSource(name, text, dict(description.attributes), description.batch_name)

    async def submit(self, pool: str | None, name: str) -> SubmitOutcome:
        """Submit a configured description; refused when its batch already has jobs."""
        spec = self.pool(pool)
        source = await self.load_submit(spec, name)
        return await self._submit(spec, source, refuse_if_present=True)

    async def _submit(self, spec: PoolSpec, source: SubmitSource, *,
                      refuse_if_present: bool) -> SubmitOutcome:
        result: SubmitOutcome = await self.worker(spec.name).call("submit", {
            "name": source.name, "text": source.text, "attributes": source.attributes,
            "batch": source.batch, "scope": spec.scope, "refuse_if_present": refuse_if_present,
        })
        return result

    async def resubmit(self, pool: str | None, name: str, *, progress: Progress | None = None,
                       wait_seconds: float | None = None,
                       poll_seconds: float | None = None) -> ResubmitOutcome:
        """GWCelery's ``condor resubmit``: remove the batch, wait until it is gone, submit."""
        spec = self.pool(pool)
        source = await self.load_submit(spec, name)
        if not source.batch:
            raise CondorConfigError(f"submit description {name} has no batch_name: resubmit "
                                    "needs it to know which jobs to remove")
        batch = source.batch
        wait = float(wait_seconds if wait_seconds is not None else
                     self.config.resubmit_wait_seconds)
        poll = float(poll_seconds if poll_seconds is not None else
                     self.config.resubmit_poll_seconds)

        async def say(text: str) -> None:
            if progress is not None:
                try:
                    await progress(text)
                except Exception:  # progress is best effort; the work goes on
                    log.exception("progress callback failed")

        removed: ActionResult | None = None
        left = sum((await self.count(spec.name, batch=batch)).values())
        started = time.monotonic()
        if left:
            removed = await self.act(spec.name, "remove", batch=batch,
                                     reason=f"condor resubmit {name}")
            await say(f"Removed {removed.success} of {left} jobs of batch {batch}; waiting up "
                      f"to {wait:g} s for them to leave the queue.")
            initial = left
            last_reported = -1
            while True:
                counts = await self.count(spec.name, batch=batch)
                left = sum(counts.values())
                if left == 0:
                    break
                elapsed = time.monotonic() - started
                if elapsed >= wait:
                    detail = ", ".join(f"{n} {states.NAMES.get(k, k)}"
                                       for k, n in sorted(counts.items()))
                    raise CondorTimeout(
                        f"gave up after {wait:g} s: {left} jobs of batch {batch} are still in "
                        f"the queue ({detail}); nothing was submitted. Look at them with "
                        f"'condor q --batch {batch} --all'")
                if left != last_reported:
                    await say(f"{initial - left} of {initial} jobs gone, {left} left "
                              f"({elapsed:.0f} s)")
                    last_reported = left
                await asyncio.sleep(min(poll, max(0.0, wait - elapsed)))
        waited = time.monotonic() - started
        await say(f"Batch {batch} is gone; submitting {name}.")
        submitted = await self._submit(spec, source, refuse_if_present=False)
        return ResubmitOutcome(removed, waited, submitted, batch)

    # ------------------------------------------------------------------ diagnostics

    async def ping(self, pool: str | None = None) -> dict[str, Any]:
        spec = self.pool(pool)
        result: dict[str, Any] = await self.worker(spec.name).call("ping")
        return result


__all__ = ["CondorError", "CondorService", "ResubmitOutcome", "SubmitSource", "pool_specs"]
