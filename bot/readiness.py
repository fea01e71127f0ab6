"""``/readyz``: may this replica take work now? (``/healthz`` only says the process lives.)

Ready when every component is:

* ``database``: a cheap query (the schema versions, below) answers within
  ``database_deadline`` seconds, run on the database's executor, never on the event loop. One
  query at a time: while one hangs (a replica cut off from PostgreSQL), later calls wait for
  the same one instead of piling up threads behind it;
* ``migrations``: the core schema version and every loaded feature's are the ones this code
  knows. Newer means another replica upgraded the database: this one must be upgraded too;
  older means the database was replaced (a restore) after this process migrated it;
* one component per enabled platform (``slack``, ``mattermost``): the adapter's own liveness
  (its watchdog's grace included), as ``/healthz`` shows it; missing until the adapter started.
  ``/metrics`` shows the same verdicts (``shiftbot_platform_connected``);
* ``outbox``: the notices probe (``notices.unhealthy_after_seconds``); not asked when the
  database is not ready (it would only queue behind the hanging query).

The answer is JSON, each component with ``ready`` and a ``reason``: 200 ready, 503 not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, inspect, select

from bot import db
from bot.secrets import masker

if TYPE_CHECKING:
    from bot.core import Bot
    from bot.http import HttpServer

DATABASE_DEADLINE = 1.5  # seconds; a load balancer's probe usually gives up after 2 to 5
COMPONENT_DEADLINE = 2.0  # a platform's or the outbox's probe


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Versions:
    """Schema versions found in the database: the core's and each feature's."""

    core: int
    features: dict[str, int]


@dataclass(frozen=True, slots=True)
class Report:
    components: dict[str, Verdict]

    @property
    def ready(self) -> bool:
        return all(v.ready for v in self.components.values())

    def body(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not ready",
                "components": {name: {"ready": v.ready, "reason": masker.mask(v.reason)}
                               for name, v in sorted(self.components.items())}}


def read_versions(conn: Connection) -> Versions:
    """The schema versions (the readiness query: two tiny tables, one round trip each)."""
    if not inspect(conn).has_table("schema_version"):
        return Versions(0, {})
    core = conn.execute(select(func.max(db.schema_version.c.version))).scalar() or 0
    table = db.feature_schema
    rows = conn.execute(select(table.c.feature, func.max(table.c.version))
                        .group_by(table.c.feature)).all() if core >= 5 else []
    return Versions(int(core), {str(name): int(version) for name, version in rows})


def migrations_verdict(found: Versions, core_known: int, features_known: dict[str, int]
                       ) -> Verdict:
    """Whether the database's schema is the one this code knows, and if not what to do."""
    problems = []
    for name, database, known in [("core", found.core, core_known),
                                  *((f"feature {f}", found.features.get(f, 0), v)
                                    for f, v in sorted(features_known.items()))]:
        if database > known:
            problems.append(f"{name}: database at version {database}, newer than this "
                            f"shiftbot's {known} (another replica upgraded it: upgrade this one)")
        elif database < known:
            problems.append(f"{name}: database at version {database}, older than this "
                            f"shiftbot's {known} (replaced or restored since start-up: restart)")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"core at {found.core}, {len(features_known)} feature(s) current")


class SingleFlight:
    """At most one call of ``make`` running; callers give up after their deadline, the call
    itself goes on (a thread blocked in a driver cannot be cancelled) and later callers share
    it until it ends."""

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self.make = make
        self._task: asyncio.Future[Any] | None = None
        self._started = 0.0

    @property
    def pending_for(self) -> float:
        return time.monotonic() - self._started if self.busy else 0.0

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __call__(self, deadline: float) -> Any:
        if not self.busy:
            self._started = time.monotonic()
            self._task = asyncio.ensure_future(self.make())
            self._task.add_done_callback(_consume)
        assert self._task is not None
        return await asyncio.wait_for(asyncio.shield(self._task), deadline)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failure nobody awaited any more is not "never retrieved"


class Readiness:
    def __init__(self, bot: Bot, *, database_deadline: float = DATABASE_DEADLINE,
                 component_deadline: float = COMPONENT_DEADLINE) -> None:
        self.bot = bot
        self.database_deadline = database_deadline
        self.component_deadline = component_deadline
        self._versions = SingleFlight(lambda: bot.database.run(read_versions))

    def platforms(self) -> list[str]:
        """The platforms the config enables (each must be connected)."""
        config = self.bot.config
        return [name for name, section in (("slack", config.slack),
                                           ("mattermost", config.mattermost))
                if section is not None and section.enabled]

    async def report(self) -> Report:
        database_and_after, platforms = await asyncio.gather(
            self._database_and_after(), self.platform_verdicts())
        return Report({**database_and_after, **platforms})

    async def platform_verdicts(self) -> dict[str, Verdict]:
        """Each enabled platform's verdict; ``shiftbot_platform_connected`` is set from it
        (here and nowhere else: /metrics says what /readyz says)."""
        names = self.platforms()
        verdicts = await asyncio.gather(*(self._component(name, name) for name in names))
        found = dict(zip(names, verdicts, strict=True))
        self.bot.metrics.set_connected({name: v.ready for name, v in found.items()})
        return found

    async def _database_and_after(self) -> dict[str, Verdict]:
        database, versions = await self._database()
        if versions is None:
            skipped = Verdict(False, "not checked: the database is not ready")
            return {"database": database, "migrations": skipped, "outbox": skipped}
        known = {m.feature: m.latest for m in self.bot.registry.migrations}
        return {"database": database,
                "migrations": migrations_verdict(versions, db.LATEST, known),
                "outbox": await self._component("notices", "outbox")}

    async def _database(self) -> tuple[Verdict, Versions | None]:
        dialect = self.bot.database.dialect
        if self._versions.busy and self._versions.pending_for > self.database_deadline:
            return Verdict(False, f"{dialect}: the previous query has had no answer for "
                                  f"{self._versions.pending_for:.0f} s"), None
        started = time.perf_counter()
        try:
            versions = await self._versions(self.database_deadline)
        except TimeoutError:
            return Verdict(False, f"{dialect}: no answer within "
                                  f"{self.database_deadline:g} s"), None
        except Exception as exc:
            return Verdict(False, f"{dialect} unreachable: {_first_line(exc)}"), None
        took = (time.perf_counter() - started) * 1000
        return Verdict(True, f"{dialect} answered in {took:.0f} ms"), versions

    async def _component(self, component: str, label: str) -> Verdict:
        """A component of bot.health (an adapter's liveness, the notices probe)."""
        if not self.bot.health.has(component):
            return Verdict(False, f"{label}: not started")
        try:
            state = await asyncio.wait_for(self.bot.health.state(component),
                                           self.component_deadline)
        except TimeoutError:
            return Verdict(False, f"no answer within {self.component_deadline:g} s")
        except Exception as exc:
            return Verdict(False, f"probe failed: {_first_line(exc)}")
        if state is None:
            return Verdict(False, f"{label}: not started")
        return Verdict(state.ok, state.detail)


def attach_readiness(bot: Bot, http: HttpServer) -> Readiness:
    """Give ``http``'s ``/readyz`` the bot to look at, and ``/metrics`` its sampled gauges
    (the runtime calls this with the server it attaches; /readyz answers 503 until then)."""
    from bot.metrics import watch_operations

    readiness = Readiness(bot)
    http.readiness = readiness
    # the /metrics gauges that need the bot (alerts inbox, scheduler, platforms' connections)
    watch_operations(bot, readiness=readiness)
    return readiness


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200] or type(exc).__name__
