"""The status feature's engine room: runs checks (on demand and on their intervals), stores the
results, advances each check's state and performs the notices it calls for.

Periodic runs: one ``@every`` tick (handlers/status.py) calls :meth:`StatusService.tick`, which
claims ``status:<check>:<instant>`` for every check whose interval has a new instant (instants
are ``k * interval`` seconds since the epoch, as for jobs) and runs the claimed ones in one
background batch, so the tick itself stays short and two replicas run each check once per
interval. A check whose previous run is still going here is not claimed again until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection

from bot import clock
from bot.jobs import CLAIM_MARGIN
from bot.status import notify, store
from bot.status import states as st
from bot.status.env import StatusEnv
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level
from bot.tasks import BackgroundTasks

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

Runner = Callable[..., Awaitable[dict[str, CheckResult]]]


class StatusSettings(Protocol):
    """The ``status:`` section (bot/status/config.py: StatusConfig) as this module reads it."""

    checks: Sequence[CheckSpec]
    channel: str | None
    mention: list[str]
    notify_after: int
    keep_days: int
    margin_seconds: float
    history_limit: int  # results kept per check at most


def default_runner() -> Runner:
    from bot.status.runner import run_checks

    return run_checks


@dataclass(frozen=True, slots=True)
class Evaluated:
    """A result as the state machine took it."""

    state: st.CheckState
    change: st.Change | None
    counted: Level


class StatusService:
    def __init__(self, bot: Bot, settings: StatusSettings, runner: Runner | None = None) -> None:
        self.bot = bot
        self.settings = settings
        self.specs: dict[str, CheckSpec] = {spec.name: spec for spec in settings.checks}
        self._runner = runner
        self.tasks = BackgroundTasks("status checks")
        self._running: set[str] = set()  # checks with a run in progress in this process
        self._claimed: dict[str, datetime] = {}  # check -> the last instant claimed here
        self._closed = False  # shutting down: ticks start nothing more

    # ------------------------------------------------------------------ settings per check

    def notify_after(self, spec: CheckSpec) -> int:
        return spec.notify_after or self.settings.notify_after

    def channel(self, spec: CheckSpec) -> str | None:
        """The alias its notices go to (None: nowhere; check-config reports it)."""
        return spec.channel or self.settings.channel

    def mention(self, spec: CheckSpec) -> list[str]:
        return list(spec.mention if spec.mention is not None else self.settings.mention)

    def renotify(self, spec: CheckSpec) -> timedelta | None:
        """How often an unacknowledged alert is repeated (None: never): ``renotify_minutes``
        of the check, else of the section (0 turns it off)."""
        minutes = spec.renotify_minutes
        if minutes is None:
            minutes = getattr(self.settings, "renotify_minutes", None)  # test settings lack it
        return timedelta(minutes=minutes) if minutes else None

    def spec(self, name: str) -> CheckSpec:
        """KeyError naming the known checks for an unknown name."""
        spec = self.specs.get(name.lower())
        if spec is None:
            raise KeyError(name)
        return spec

    # ------------------------------------------------------------------ running checks

    async def run(self, specs: Sequence[CheckSpec], *, source: str = store.ON_DEMAND
                  ) -> dict[str, CheckResult]:
        """Run ``specs`` concurrently (each under its timeout; the runner answers within the
        longest timeout plus the margin) and store the results. On demand, results are stored
        for ``status NAME`` and other checks' values but do not count towards the state."""
        if not specs:
            return {}
        latest = await self.bot.database.run(store.latest_results)
        periodic = await self.bot.database.run(store.latest_results, store.PERIODIC)
        values = {name: item.result.values for name, item in latest.items()}

        def env_for(spec: CheckSpec) -> CheckEnv:
            previous = periodic.get(spec.name)
            return StatusEnv(self.bot, previous.result if previous else None, values)

        runner = self._runner or default_runner()
        results = await runner(list(specs), env_for, margin=self.settings.margin_seconds)
        now = clock.utcnow()
        results = {name: r if r.checked_at else replace(r, checked_at=now)
                   for name, r in results.items()}
        for name, result in results.items():
            self.bot.metrics.check_seconds.labels(name, result.level.name).observe(
                result.duration_seconds)
        if source == store.ON_DEMAND:
            await self.bot.database.run(_store_all, results, source)
        return results

    async def tick(self, now: datetime | None = None) -> asyncio.Task[None] | None:
        """Claim the checks whose interval has a new instant and run them in the background;
        returns the batch's task (None when nothing is due)."""
        if self._closed:
            return None
        now = now or clock.utcnow()
        due: list[tuple[CheckSpec, datetime]] = []
        for spec in self.specs.values():
            instant = current_instant(now, spec.interval_seconds)
            if spec.name in self._running or self._claimed.get(spec.name) == instant:
                continue
            ttl = timedelta(seconds=spec.interval_seconds) + CLAIM_MARGIN
            if await self.bot.claims.claim(claim_key(spec.name, instant), ttl):
                due.append((spec, instant))
            self._claimed[spec.name] = instant
        if not due:
            return None
        self._running.update(spec.name for spec, _ in due)
        return self.tasks.spawn(self._batch(due), name="status batch")

    async def _batch(self, due: list[tuple[CheckSpec, datetime]]) -> None:
        try:
            results = await self.run([spec for spec, _ in due], source=store.PERIODIC)
            for spec, instant in due:
                result = results.get(spec.name)
                if result is None:  # the runner promises one per check; be safe anyway
                    result = CheckResult(Level.UNKNOWN, "no result from the runner")
                try:
                    await self.record(spec, result, instant)
                except Exception:
                    log.exception("status %s: recording its result failed", spec.name)
        finally:
            self._running.difference_update(spec.name for spec, _ in due)

    async def record(self, spec: CheckSpec, result: CheckResult,
                     instant: datetime | None = None) -> Evaluated:
        """Store a periodic result, count it, and perform the notices it calls for."""
        if result.checked_at is None:
            result = replace(result, checked_at=clock.utcnow())
        evaluated = await self.bot.database.run(
            _evaluate, spec, result, instant, self.notify_after(spec), self.renotify(spec))
        await self.flush(spec, evaluated.state)
        return evaluated

    async def flush(self, spec: CheckSpec, state: st.CheckState) -> None:
        """Perform a state's pending notice operations and forget the ones done."""
        if not state.pending:
            return
        done = await notify.perform(
            self.bot, spec, state.pending, channel=self.channel(spec),
            mention=self.mention(spec), now=clock.utcnow(),
            reminders=self.renotify(spec) is not None)
        if done:
            await self.bot.database.run(store.drop_pending, spec.name, done)

    # ------------------------------------------------------------------ commands

    async def acknowledge(self, spec: CheckSpec, who: str, reason: str | None) -> st.CheckState:
        """ValueError when the check has no alert."""
        state = await self.bot.database.run(_acknowledge, spec.name, who, reason)
        await self.flush(spec, state)
        return state

    async def silence(self, spec: CheckSpec, until: datetime | None, who: str,
                      reason: str | None) -> st.CheckState:
        """Mute the check's notices until ``until`` (None: lift the silence)."""
        state = await self.bot.database.run(_silence, spec.name, until, who, reason,
                                            self.renotify(spec))
        await self.flush(spec, state)
        return state

    async def states(self) -> dict[str, st.CheckState]:
        return await self.bot.database.run(store.all_states)

    async def prune(self, now: datetime | None = None) -> int:
        before = (now or clock.utcnow()) - timedelta(days=self.settings.keep_days)
        return await self.bot.database.run(store.prune, before, self.settings.history_limit)

    async def silences(self, now: datetime | None = None) -> list[st.CheckState]:
        """The checks silenced now (for ``status`` and the handover digest)."""
        now = now or clock.utcnow()
        return [s for s in (await self.states()).values() if s.silenced(now)]

    async def changes_since(self, since: datetime, limit: int = 500) -> list[store.HistoryEntry]:
        """Every check's changes, acknowledgements and silences since ``since``, newest first
        (for the handover digest)."""
        return await self.bot.database.run(store.history, None, limit, since)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop starting runs; let running batches finish for ``timeout`` s, then cancel them
        (a cancelled batch's checks run again at their next instant)."""
        self._closed = True
        await self.tasks.close(timeout)


def current_instant(now: datetime, interval: float) -> datetime:
    """The latest grid instant at or before ``now`` (the same in every process)."""
    return datetime.fromtimestamp(math.floor(now.timestamp() / interval) * interval, UTC)


def claim_key(check: str, instant: datetime) -> str:
    return f"status:{check}:{instant.isoformat()}"


# ---------------------------------------------------------------------- transactions


def _store_all(conn: Connection, results: Mapping[str, CheckResult], source: str) -> None:
    for name, result in results.items():
        store.insert_result(conn, name, result, source)


def _evaluate(conn: Connection, spec: CheckSpec, result: CheckResult, instant: datetime | None,
              notify_after: int, renotify: timedelta | None) -> Evaluated:
    """One transaction: the result stored, counted, the change recorded, notices decided."""
    store.insert_result(conn, spec.name, result, store.PERIODIC)
    state = store.load_state(conn, spec.name, lock=True)
    counted = result.level  # after the check's severity remap (the runner applied it)
    assert result.checked_at is not None
    if instant is not None and state.last_instant is not None and instant <= state.last_instant:
        # An older instant finishing after a newer one (a slow replica): stored, not counted.
        return Evaluated(state, None, counted)
    state, change = st.advance(state, counted, summary=result.summary, at=result.checked_at,
                               instant=instant, notify_after=notify_after)
    if change is not None:
        change_id = store.insert_change(conn, spec.name, result.checked_at, "level",
                                        old=change.old, new=change.new, summary=result.summary)
        state = replace(state, change_id=change_id)
    state = st.notices(state, change, result.checked_at, renotify)
    store.save_state(conn, state)
    return Evaluated(state, change, counted)


def _acknowledge(conn: Connection, check: str, who: str, reason: str | None) -> st.CheckState:
    state = st.acknowledge(store.load_state(conn, check, lock=True), who, reason,
                           clock.utcnow())
    store.insert_change(conn, check, clock.utcnow(), "ack", new=state.hard, who=who,
                        reason=reason, summary=state.summary)
    store.save_state(conn, state)
    return state


def _silence(conn: Connection, check: str, until: datetime | None, who: str,
             reason: str | None, renotify: timedelta | None) -> st.CheckState:
    now = clock.utcnow()
    state = st.silence(store.load_state(conn, check, lock=True), until, who, reason)
    store.insert_change(conn, check, now, "silence" if until else "unsilence",
                        who=who, reason=reason, until=until)
    if until is None:  # lifted: an alert muted meanwhile goes out now, not at the next result
        state = st.notices(state, None, now, renotify)
    store.save_state(conn, state)
    return state


def describe(spec: CheckSpec) -> dict[str, Any]:
    """A check's own settings, for ``status NAME``."""
    return {"interval": spec.interval_seconds, "timeout": spec.timeout_seconds,
            "type": getattr(spec, "type", type(spec).__name__), "runbook": spec.runbook,
            "description": spec.description}
