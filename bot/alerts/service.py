"""The alerts processor (``bot.services``): drains the inbox and runs the task queue
(docs/alerts.md, "Processing").

One drain loop per process, woken by :meth:`AlertsService.kick` (a webhook stored something,
a command enqueued a task) and by the ``alerts.drain`` backstop job; it works only while it
holds the lease ``alerts:processor`` (bot/messaging/claims.py), renewed while it works, so two
bot processes never decide one inbox row. Per due row, oldest first:

1. parse the stored body again (a row that cannot parse is failed: one log line);
2. an ``event_alert`` or legacy post lacks counts: when ``sentry.token`` and ``org`` are set,
   fetch the issue and its latest event within :data:`ENRICH_SECONDS` (failure: one log line,
   go on without);
3. ONE transaction: the decision (bot/alerts/decide.py) and the row marked done.

A row failing for a passing reason (the database) is retried with backoff; then the task
runner performs the due chat notices and GitLab/Sentry calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.alerts import decide as decisions
from bot.alerts import inbox, noticetasks, payloads
from bot.alerts.config import ALERTS, SENTRY, AlertsConfig, SentryConfig
from bot.alerts.inbox import InboxRow
from bot.alerts.model import Resource, SentryAlert
from bot.alerts.sentry_api import SentryApi, SentryError
from bot.alerts.tasks import TaskRunner, backoff
from bot.messaging.claims import claim_in, release_in
from bot.secrets import masker
from bot.tasks import BackgroundTasks

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

LEASE = "alerts:processor"
LEASE_TTL = timedelta(seconds=60)
RENEW_EVERY = 20.0  # seconds of work between two renewals of the lease
BATCH = 100  # inbox rows fetched per query
ENRICH_SECONDS = 3.0  # the Sentry API's answer for an event alert, at most
IDLE_SECONDS = 5.0  # the loop looks again this often when nobody kicks it (retries due)
QUIET_SECONDS = 0.05  # a pause in deliveries this long ends a burst: processing starts
SETTLE_MAX_SECONDS = 1.0  # ... or this long after the first kick, whatever still arrives
TASK_PASSES = 20  # task runner passes per drain at most
MAX_ATTEMPTS = 30  # an inbox row still failing after this many tries is failed for good
# Deliveries that lack counts (events) or the environment (a new issue's webhook).
ENRICHED = (Resource.EVENT_ALERT, Resource.LEGACY, Resource.ISSUE)


def tickets_module() -> Any:
    """B's tickets module (bot/alerts/tickets.py): hooks for the decision, task handlers.
    Imported late: it imports the GitLab client, which the pipeline's tests fake."""
    from bot.alerts import tickets

    return tickets


class AlertsService:
    def __init__(self, bot: Bot, *, tickets: Any | None = None,
                 api: SentryApi | None = None, background: bool = True) -> None:
        self.bot = bot
        self.settings: AlertsConfig = ALERTS.of(bot.config) or AlertsConfig()
        self.sentry: SentryConfig = SENTRY.of(bot.config) or SentryConfig()
        self.api = api if api is not None else SentryApi.from_config(self.sentry)
        self._tickets = tickets
        self._runner: TaskRunner | None = None
        self._wake = asyncio.Event()
        self._last_kick = 0.0  # time.monotonic() of the latest kick
        self._lock = asyncio.Lock()  # one drain at a time in this process
        self._holding = False
        self._closed = False
        self.tasks = BackgroundTasks("alerts processor")
        self._loop_task: asyncio.Task[None] | None = None
        self.background = background  # False: no loop; the caller drains (tests, tools)

    @property
    def tickets(self) -> Any:
        if self._tickets is None:
            self._tickets = tickets_module()
        return self._tickets

    @property
    def runner(self) -> TaskRunner:
        if self._runner is None:
            handlers = {**getattr(self.tickets, "HANDLERS", {}), **noticetasks.HANDLERS}
            self._runner = TaskRunner(self.bot, handlers, give_up_after=timedelta(
                hours=self.settings.retry_hours))
        return self._runner

    # ------------------------------------------------------------------ lifecycle

    def kick(self) -> None:
        """Look at the inbox and the tasks now (after a burst of deliveries settles)."""
        self._last_kick = time.monotonic()
        self._wake.set()

    async def _settle(self) -> None:
        """Acks first: while deliveries keep arriving (a storm, a re-firing rule) processing
        waits until they pause for QUIET_SECONDS, at most SETTLE_MAX_SECONDS, so Sentry's
        answers are not slowed by the work the deliveries cause (it is the same CPU)."""
        began = time.monotonic()
        while not self._closed:
            now = time.monotonic()
            quiet, waited = now - self._last_kick, now - began
            if quiet >= QUIET_SECONDS or waited >= SETTLE_MAX_SECONDS:
                return
            await asyncio.sleep(min(QUIET_SECONDS - quiet, SETTLE_MAX_SECONDS - waited))

    def start(self) -> None:
        if self.background and not self._closed and (self._loop_task is None
                                                     or self._loop_task.done()):
            self._loop_task = self.tasks.spawn(self._loop(), name="alerts drain loop")

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (a drain in progress finishes its row) and give the lease back."""
        self._closed = True
        self._wake.set()
        await self.tasks.close(timeout)
        if self._holding:
            with contextlib.suppress(Exception):
                await self.bot.database.run(release_in, LEASE, self.bot.claims.owner)
            self._holding = False

    async def _loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                await self.drain()
            except Exception:
                log.exception("alerts: the drain failed; trying again shortly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
            await self._settle()

    # ------------------------------------------------------------------ draining

    async def lease(self) -> bool:
        """Take or renew ``alerts:processor``; False while another process holds it."""
        held = await self.bot.database.run(claim_in, LEASE, self.bot.claims.owner, LEASE_TTL,
                                           renew=True)
        self._holding = held
        return held

    async def drain(self) -> int:
        """Process every due inbox row, then the due tasks (returns the rows processed)."""
        if self._closed:
            return 0
        async with self._lock:
            if not await self.lease():
                return 0
            processed = await self._drain_inbox()
            for _ in range(TASK_PASSES):  # a finished task may have enqueued the next one
                if self._closed or await self.runner.run_due() == 0:
                    break
                await self.lease()
            return processed

    async def _drain_inbox(self) -> int:
        processed, renewed = 0, asyncio.get_running_loop().time()
        while not self._closed:
            rows = await self.bot.database.run(inbox.due, clock.utcnow(), BATCH)
            for row in rows:
                await self.process(row)
                processed += 1
                if asyncio.get_running_loop().time() - renewed > RENEW_EVERY:
                    if not await self.lease():
                        return processed  # lost it (a pause longer than its TTL)
                    renewed = asyncio.get_running_loop().time()
            if len(rows) < BATCH:
                break
        return processed

    async def process(self, row: InboxRow) -> decisions.Decision | None:
        """One inbox row, start to end (None: it was failed or put back for a retry)."""
        now = clock.utcnow()
        try:
            alert = payloads.parse_stored(row.resource, row.body, web_url=self.sentry.web_url)
        except ValueError as exc:  # PayloadError: what was stored does not parse (any more)
            log.error("alerts: inbox row %d (%s) cannot be parsed: %s; failed", row.id,
                      row.resource, exc)
            await self.bot.database.run(inbox.mark_failed, row.id, str(exc), now)
            return None
        if alert is None:
            await self.bot.database.run(inbox.mark_done, row.id, now)
            return None
        alert = await self.enrich(alert)
        try:
            decision = await self.bot.database.run(_decide_row, row.id, alert, self.settings,
                                                   clock.utcnow(), self.tickets)
        except Exception as exc:
            await self._retry(row, exc)
            return None
        if decision is None:
            log.warning("alerts: inbox row %d was decided by another process meanwhile (this "
                        "one's lease ran out); skipped", row.id)
            return None
        if decision.outcome == "unrouted":
            log.info("alerts: %s (%s) matches no route in alerts.routes: stored, not posted",
                     alert.subject, alert.project)
        return decision

    async def _retry(self, row: InboxRow, exc: Exception) -> None:
        error = masker.mask(f"{type(exc).__name__}: {exc}".splitlines()[0])
        attempts = row.attempts + 1
        now = clock.utcnow()
        try:
            if attempts >= MAX_ATTEMPTS:
                log.error("alerts: inbox row %d failed %d times; given up: %s", row.id,
                          attempts, error)
                await self.bot.database.run(inbox.mark_failed, row.id, error, now)
            else:
                log.warning("alerts: inbox row %d not processed (%s); retried", row.id, error)
                wait = timedelta(seconds=backoff(attempts))
                await self.bot.database.run(inbox.mark_retry, row.id, now + wait, error)
        except Exception as again:  # the database is down: the row stays due, tried later
            log.error("alerts: cannot record the retry of inbox row %d: %s", row.id,
                      type(again).__name__)

    async def enrich(self, alert: SentryAlert) -> SentryAlert:
        """An event alert with the issue's counts and the latest event's frames, from the
        Sentry API within :data:`ENRICH_SECONDS`; the alert as it is when that fails."""
        if self.api is None or alert.resource not in ENRICHED or alert.issue_id is None:
            return alert
        if alert.resource == Resource.ISSUE and alert.action != "created":
            return alert
        try:
            issue, event = await asyncio.wait_for(asyncio.gather(
                self.api.issue(alert.issue_id), self.api.latest_event(alert.issue_id),
                return_exceptions=True), ENRICH_SECONDS)
        except TimeoutError:
            log.warning("alerts: Sentry did not give issue %s within %g s; posted without its "
                        "counts", alert.issue_id, ENRICH_SECONDS)
            return alert
        if isinstance(issue, BaseException):
            log.warning("alerts: fetching issue %s from Sentry failed (%s); posted without its "
                        "counts", alert.issue_id, _short(issue))
            issue = None
        if isinstance(event, BaseException):
            event = None
        return payloads.enrich(alert, issue, event)

    # ------------------------------------------------------------------ commands

    async def set_status(self, subject: str, status: str) -> Any:
        """Record ``alerts resolve``/``ignore`` once Sentry accepted it; kicks the tasks."""
        row = await self.bot.database.run(decisions.set_local_status, subject, status,
                                          clock.utcnow(), self.settings, self.tickets)
        self.kick()
        return row


def _short(exc: BaseException) -> str:
    if isinstance(exc, SentryError):
        return str(exc)
    return type(exc).__name__


def _decide_row(conn: Any, row_id: int, alert: SentryAlert, settings: AlertsConfig,
                now: Any, tickets: Any) -> decisions.Decision | None:
    """Mark the row done and decide it, in one transaction; None when the row was no longer
    pending (decided by another process after this one's lease ran out: never twice)."""
    if not inbox.mark_done(conn, row_id, now):
        return None
    return decisions.decide(conn, alert, settings, now, tickets)
