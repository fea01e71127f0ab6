"""Inbound deliveries claimed before they run: each chat message, slash command or click is
answered once, however many bot processes share the database and however often the platform
redelivers it (Slack retries, a Mattermost socket replay, two replicas on one websocket), and
answered at all when the process running it dies.

The claim (``inbound:<platform>:<delivery id>`` in ``bot.claims``) is a short *lease*
(:data:`LEASE`), not the whole dedupe window:

- the winner holds it while the task that claimed it runs (``first`` binds it to the current
  task; :meth:`InboundClaims.hold` to another one), renewing every lease/3 in one batched
  statement for all it holds (a ``condor`` or ``restart`` may run for minutes); when that task
  ends (answered, or a handled error: the handlers never raise) the claim is marked done and
  kept for the dedupe window (``ttl``), so a replay is still recognised. A cancelled task (the
  process stopping) leaves the lease to run out instead;
- a replica that finds the claim taken *stands back but keeps the delivery*: ``first`` waits.
  A background sweep (one query over every stood-back key: every :data:`POLL_SECONDS` while
  they are young, since most commands finish within a second, then every
  :data:`SWEEP_SECONDS`) ends the wait with False once the claim is done, and when the lease ran
  out without being done (its holder died) takes the claim over, conditionally: of several
  survivors one wins, the others keep waiting on the winner. ``first`` then returns True and
  the delivery runs here. A completed delivery is never taken over; a stood-back key is
  forgotten once done, taken over, or after the dedupe window, and at most
  :data:`MAX_WAITING` wait at once (beyond that a replica stands back without keeping).
  A claim that lapsed before this replica even saw the delivery (a late websocket, a replay)
  is a takeover too: :meth:`Claims.claim_delivery` tells it from a new delivery.

Every delivery ``first`` decides is told to the claims' observer once, when it is decided
(``shiftbot_inbound_claims_total``): claimed, duplicate (a repeat here, a claim done or held
elsewhere; a stood-back one when its wait ends), takeover, or error (not run, fail-closed).

Cost when nobody dies: no extra round trip per message to the database thread. A lost claim
reads the row in the same transaction (one more statement), so a replay of a finished delivery
is refused at once and only one still running elsewhere is kept; the done marks and renewals
are batched (one statement for all that finished or run meanwhile); the sweep is one query per
tick whatever the number of stood-back keys, the first :data:`FIRST_LOOK_SECONDS` after
standing back. The lease and ticks are constructor arguments (the defaults suit chat; a
config key would go in ``bot/config.py``).

What "done" means for a command that ran but whose answer never got out: the holder died after
the audit row was written and before the answer (or before the done mark). The takeover then
sets :data:`TAKEOVER` (when the delivery was first claimed) for the task that runs it, and the
core (``Bot._handle``, via :func:`took_over_reply`) first looks in the audit for the same
person's same command line since then: when it is there, the command is *not run again*; the
answer says "the replica handling this stopped; the command ran: <outcome>". Only when no row
is there (the replica died before the audit was written, or its batched row was lost with it)
does the command run again. Destructive commands never run from a message anyway: the message
only opens a confirmation request (audited as such), so the takeover answers with that request
instead of opening a second one; the confirmed run is a click, decided once by the request's
conditional status change. Clock skew between replicas shortens or lengthens the lease as
seen by the others: keep it well under a third of :data:`LEASE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from bot import clock, db
from bot.dedupe import RecentKeys
from bot.messaging.claims import CLAIMED, DUPLICATE, FAILED, TAKEN_OVER, Claims, Won
from bot.reply import Level, Reply, Visibility
from bot.secrets import masker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=20)  # a holder silent this long is taken for dead
FIRST_LOOK_SECONDS = 0.05  # a stood-back key's first look (those stood back meanwhile share it)
POLL_SECONDS = 0.2  # the sweep's tick while a stood-back key is young
YOUNG_SECONDS = 5.0  # ... and how long that is
SWEEP_SECONDS = 1.0  # the sweep's tick for older stood-back keys
MAX_WAITING = 10_000  # stood-back deliveries kept at once


@dataclass(frozen=True, slots=True)
class Takeover:
    """A delivery this process took over from a replica that stopped."""

    key: str
    since: datetime  # when that delivery was first claimed


# Set for the task that runs a taken-over delivery; read (once) by the core.
TAKEOVER: ContextVar[Takeover | None] = ContextVar("inbound_takeover", default=None)
# Set for the task that runs a delivery this process claimed. On a database replicas share,
# the core puts such a command on the audit trail before it runs: a replica that takes the
# delivery over finds it there and does not run it a second time (bot/core.py).
UNDER_CLAIM: ContextVar[bool] = ContextVar("inbound_under_claim", default=False)

# Claim key -> the task holding it, across every InboundClaims of this process: a task must
# never wait for a delivery it holds itself.
_HELD_HERE: dict[str, asyncio.Task[Any]] = {}


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[Takeover | None]
    since: datetime  # bot clock: the wait ends after the dedupe window
    born: float  # monotonic: young keys are looked at more often
    due: float  # monotonic: the next look


class InboundClaims:
    """``await first(key)``: True for exactly one delivery of ``key`` across processes, and
    again (in one survivor) when the process running it died before it finished."""

    def __init__(self, claims: Claims, platform: str, ttl: timedelta, *,
                 lease: timedelta = LEASE, poll: float = POLL_SECONDS,
                 sweep: float = SWEEP_SECONDS, max_waiting: int = MAX_WAITING) -> None:
        self.claims = claims
        self.platform = platform
        self.ttl = ttl
        self.lease = min(lease, ttl)
        self.poll, self.sweep, self.max_waiting = poll, sweep, max_waiting
        # A repeat in this process is recognised without a database round trip.
        self.local = RecentKeys(ttl.total_seconds(), max_items=20_000)
        self._held: dict[str, tuple[asyncio.Task[Any], datetime]] = {}  # key -> task, since
        self._finished: list[str] = []  # done, to be marked so in the next batch
        self._waiting: dict[str, _Waiter] = {}
        self._renewed = clock.utcnow()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def first(self, key: str | None, *, wait: bool = True) -> bool:
        """True: run the delivery ``key`` here. Without ``wait`` (an answer is due at once, a
        slash command's ack) a taken claim is False at once, never kept for a takeover."""
        if not key:
            return True  # nothing to recognise a repeat by
        if not self.local.first_time(key):
            self._count(DUPLICATE)
            return False  # this process saw it already (and claimed it, or lost the claim)
        full = self._full(key)
        try:
            won = await self.claims.claim_delivery(full, self.lease)
        except Exception as exc:
            # Fail closed: without the claim another replica may be running it too, and
            # without the database nothing could be audited. The person sees no answer, the
            # operators see this line (and /healthz shows the database down).
            self.local.forget(key)
            log.error("could not claim %s delivery %s (%s: %s); not running it", self.platform,
                      key, type(exc).__name__, exc)
            self._count(FAILED)
            return False
        taken = None
        if not isinstance(won, Won):  # held by another replica, or done already
            live = won is None or not won.done
            taken = await self._stand_back(full) if live and wait and self._may_wait(full) \
                else None
            if taken is None:
                self._count(DUPLICATE)
                return False
        elif won.taken_over:  # its holder's lease ran out before this replica even saw it
            taken = Takeover(full, won.since)
        self._count(CLAIMED if taken is None else TAKEN_OVER)
        if taken is not None:
            TAKEOVER.set(taken)
            log.warning("took over %s delivery %s: the replica handling it stopped (first "
                        "claimed %s)", self.platform, key, taken.since.isoformat())
        self._hold(full, asyncio.current_task())
        UNDER_CLAIM.set(True)
        return True

    def _count(self, result: str) -> None:
        """Tell the claims' observer (the bot's Metrics, when it serves /metrics)."""
        observer = self.claims.observer
        if observer is not None:
            observer.inbound_claim(self.platform, result)

    def hold(self, key: str, task: asyncio.Task[Any]) -> None:
        """The claim on ``key`` (won by ``first``) lasts while ``task`` runs, not the caller."""
        self._hold(self._full(key), task)

    def done(self, key: str) -> None:
        """The delivery ``key`` (won by ``first``) is answered: mark its claim done now."""
        self._done(self._full(key))

    def _done(self, full: str) -> None:
        self._let_go(full)
        self._finish(full)

    def _let_go(self, full: str) -> None:
        """Stop holding ``full``: no more renewals (its task may still run)."""
        entry = self._held.pop(full, None)
        if entry is not None and _HELD_HERE.get(full) is entry[0]:
            del _HELD_HERE[full]

    @property
    def waiting(self) -> int:
        """Stood-back deliveries kept for a possible takeover."""
        return len(self._waiting)

    @property
    def holding(self) -> int:
        """Deliveries running here under a renewed lease."""
        return len(self._held)

    def _full(self, key: str) -> str:
        return f"inbound:{self.platform}:{key}"

    # ------------------------------------------------------------------ holding

    def _hold(self, full: str, task: asyncio.Task[Any] | None) -> None:
        if task is None:  # nothing to tell when it ends: done now (dedupe only)
            self._finish(full)
            return
        if not self._held:
            self._renewed = clock.utcnow()
        self._held[full] = (task, clock.utcnow())
        _HELD_HERE[full] = task
        task.add_done_callback(functools.partial(self._ended, full))
        self._start()

    def _ended(self, full: str, task: asyncio.Task[Any]) -> None:
        entry = self._held.get(full)
        if entry is None or entry[0] is not task:
            return  # handed to another task, or marked done already
        del self._held[full]
        if _HELD_HERE.get(full) is task:
            del _HELD_HERE[full]
        if not task.cancelled():  # cancelled: stopped mid-way; the lease runs out
            self._finish(full)

    def _finish(self, full: str) -> None:
        self._finished.append(full)
        self._wake.set()
        self._start()

    # ------------------------------------------------------------------ standing back

    def _may_wait(self, full: str) -> bool:
        if _HELD_HERE.get(full) is asyncio.current_task() or full in self._waiting:
            return False
        if len(self._waiting) >= self.max_waiting:
            log.warning("%d stood-back %s deliveries kept already; not keeping %s for a "
                        "takeover", len(self._waiting), self.platform, full)
            return False
        return True

    async def _stand_back(self, full: str) -> Takeover | None:
        now = time.monotonic()
        waiter = _Waiter(asyncio.get_running_loop().create_future(), clock.utcnow(), now,
                         now + min(FIRST_LOOK_SECONDS, self.poll))
        self._waiting[full] = waiter
        self._wake.set()
        self._start()
        try:
            return await waiter.future
        finally:
            self._waiting.pop(full, None)

    # ------------------------------------------------------------------ the sweep

    def _start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"inbound-claims:{self.platform}")

    async def _work(self) -> None:
        while self._held or self._finished or self._waiting:
            self._wake.clear()
            for step in (self._flush_finished, self._renew, self._look_at_waiting):
                try:
                    await step()
                except Exception as exc:  # the database is away: the next tick tries again
                    log.warning("inbound claims (%s): %s failed (%s: %s)", self.platform,
                                step.__name__.strip("_"), type(exc).__name__, exc)
            if self._finished:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._until_next_look())

    def _until_next_look(self) -> float:
        first = min((w.due for w in self._waiting.values()), default=math.inf)
        return max(0.005, min(self.poll, first - time.monotonic()))

    async def _flush_finished(self) -> None:
        keys, self._finished = self._finished, []
        if keys:
            # On failure the marks are lost (not retried forever): those leases run out and
            # a takeover finds the command in the audit.
            await self.claims.finish(keys, self.ttl)

    async def _renew(self) -> None:
        now = clock.utcnow()
        if not self._held or now - self._renewed < self.lease / 3:
            return
        self._renewed = now
        limit = now - self.ttl
        for full in [k for k, (_task, started) in self._held.items() if started < limit]:
            self._done(full)  # held a whole dedupe window (a task that outlives its work)
        keys = list(self._held)
        kept = await self.claims.renew(keys, self.lease)
        for lost in set(keys) - kept:
            log.error("lost the claim on %s while running it (renewed too late?); another "
                      "replica may run it too", lost)
            self._let_go(lost)  # another's now: neither renewed nor marked done (nor counted)

    async def _look_at_waiting(self) -> None:
        mono = time.monotonic()
        due = [k for k, w in self._waiting.items() if w.due <= mono and not w.future.done()]
        if not due:
            return
        states = await self.claims.states(due)
        now = clock.utcnow()
        lapsed = []
        for key in due:
            state = states.get(key)
            if state is not None and state.done:
                self._resolve(key, None)
            elif state is None or state.expires_at <= now:
                lapsed.append(key)
            elif now - self._waiting[key].since > self.ttl:
                self._resolve(key, None)  # held and renewed a whole dedupe window: let it go
            else:
                self._next_look(key, mono)
        if lapsed:
            won = await self.claims.take_over(lapsed, self.lease)
            for key in lapsed:
                if key in won:
                    self._resolve(key, Takeover(key, won[key]))
                else:
                    self._next_look(key, mono)  # another survivor won it: wait on that one

    def _next_look(self, key: str, mono: float) -> None:
        waiter = self._waiting.get(key)
        if waiter is not None:
            young = mono - waiter.born < YOUNG_SECONDS
            waiter.due = mono + (self.poll if young else self.sweep)

    def _resolve(self, key: str, result: Takeover | None) -> None:
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(result)


# ------------------------------------------------------------------ after a takeover


async def took_over_reply(database: db.Database, platform: str, user_id: str,
                          command: str, arguments: str) -> Reply | None:
    """In a taken-over delivery (:data:`TAKEOVER`): the answer when the audit shows this
    person's command line already ran (or opened a request) since the delivery was first
    claimed; None otherwise (then it runs). Asked once per takeover."""
    taken = TAKEOVER.get()
    if taken is None:
        return None
    TAKEOVER.set(None)
    row = await database.run(_audited_since, platform, user_id, command,
                             masker.mask(arguments), taken.since)
    if row is None:
        log.info("%s: not in the audit since %s; running it", taken.key, taken.since)
        return None
    log.warning("%s: already ran (audit %s, %s); not running it again", taken.key, row.id,
                row.outcome or row.decision)
    return _ran_reply(row)


def _audited_since(conn: Connection, platform: str, user_id: str, command: str,
                   arguments: str, since: datetime) -> Any:
    audit = db.audit.c
    return conn.execute(select(db.audit).where(
        audit.platform == platform, audit.platform_user == user_id, audit.command == command,
        audit.arguments == arguments, audit.ts >= since).order_by(audit.id.desc()).limit(1)
    ).first()


def _ran_reply(row: Any) -> Reply:
    if row.request_id and not row.outcome:  # a confirmation or approval was asked for
        text = (f"The replica handling this stopped; the command was not run again: it is "
                f"request {row.request_id} ({row.decision}). Answer that request.")
    elif row.outcome == "running":  # it started, and its replica stopped before it ended
        text = ("The replica handling this stopped while the command was running; it was not "
                "run again and may or may not have finished ('audit' shows the record). "
                "Check, then run it again if it is still needed.")
    else:
        detail = f" ({row.detail})" if row.detail else ""
        text = (f"The replica handling this stopped; the command ran: "
                f"{row.outcome or row.decision}{detail}. It was not run again; its answer was "
                "lost ('audit' shows the record).")
    return Reply(text=text, title="Answered by another replica", level=Level.WARNING,
                 visibility=Visibility.THREAD)
