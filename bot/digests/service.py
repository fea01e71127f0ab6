"""``DigestService`` (``bot.services``): builds a digest for a period, posts it as a notice,
and records the HTCondor queue snapshots the digests compare.

A digest covers the time since the previous digest's instant (``digests_sent``); the first
one covers the outgoing shift (a handover digest) or ``digests.default_hours``. Posting is a
notice keyed by the digest's key (the occurrence key for scheduled ones), so a retried fire
posts nothing twice; the sent digest is recorded after the notice is stored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.digests import chart, content, store, views
from bot.digests.config import DigestsConfig
from bot.reply import FileRef, Reply, Visibility
from bot.shifts.api import shifter_at

if TYPE_CHECKING:
    from bot.condor.service import CondorService
    from bot.core import Bot

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 60.0  # one pool's counts within this
EPSILON = timedelta(microseconds=1)
CHART_MIME = "image/png"


class DigestService:
    def __init__(self, bot: Bot, settings: DigestsConfig) -> None:
        self.bot = bot
        self.settings = settings
        self.made_condor = False  # this service made the condor service (and closes it)
        self._chart_failed = False  # the first chart failure is logged in full, then briefly
        self._snapshot_failed: set[str] = set()

    @property
    def zone(self) -> str:
        return self.bot.config.bot.timezone

    def chart_dir(self) -> Path:
        """``digests.chart_dir`` (relative to the config file), else the SQLite database's
        directory (the bot's state dir: var/ in the demo), else var/ next to the config."""
        base = Path(self.bot.config.source_dir)
        if self.settings.chart_dir:
            path = Path(self.settings.chart_dir)
            return path if path.is_absolute() else base / path
        engine = getattr(self.bot.database, "engine", None)
        database = engine.url.database if engine is not None else None
        if engine is not None and engine.url.get_backend_name() == "sqlite" and \
                database not in (None, "", ":memory:"):
            return Path(str(database)).parent
        return base / "var"

    # ------------------------------------------------------------------ building

    async def period(self, at: datetime, *, key: str | None = None,
                     handover: bool = False) -> tuple[datetime, bool]:
        """Where a digest at ``at`` starts, and whether that is the previous digest."""
        previous = await self.bot.database.run(store.previous_end, at, key=key)
        if previous is not None:
            return previous, True
        if handover:
            outgoing = shifter_at(self.bot, at - EPSILON)
            if outgoing is not None and outgoing.start < at:
                return outgoing.start, False
        return at - timedelta(hours=self.settings.default_hours), False

    async def build(self, start: datetime, end: datetime, *, title: str, chart_name: str,
                    since_last: bool, visibility: Visibility = Visibility.CHANNEL,
                    shifter_time: datetime | None = None) -> Reply:
        """The digest of [start, end) as a reply (its chart attached when one was drawn)."""
        sections = await self.bot.database.run(content.gather, start, end,
                                               self.settings.max_items)
        slot = shifter_at(self.bot, shifter_time or end)
        data = views.template_data(sections, start, end, self.zone,
                                   shifter=slot.person if slot else None, since_last=since_last)
        files = await self._chart(sections, start, end, title, chart_name)
        return views.digest_reply(sections, data, title, files, visibility)

    async def _chart(self, sections: dict[str, Any], start: datetime, end: datetime,
                     title: str, name: str) -> list[FileRef]:
        if not self.settings.chart:
            return []
        data = chart.chart_data(sections, start, end, title, self.zone)
        try:
            png = await chart.render(data, self.settings.chart_timeout_seconds)
            if png is None:
                return []
            path = await asyncio.to_thread(chart.save, png, self.chart_dir(), name)
        except Exception as exc:
            if self._chart_failed:
                log.warning("digest chart failed again: %s: %s", type(exc).__name__, exc)
            else:
                self._chart_failed = True
                log.error("digest chart failed; the digest goes out without it", exc_info=exc)
            return []
        self._chart_failed = False
        alt = (f"{title}: HTCondor queue by state, alerts per day and status check levels "
               f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        return [FileRef("shift-chart.png", str(path), CHART_MIME, alt)]

    # ------------------------------------------------------------------ sending

    async def send(self, key: str, kind: str, at: datetime, *, by: str | None = None) -> Reply:
        """Post the digest of the period ending at ``at`` to ``digests.channel`` as the
        notice ``key`` and record it."""
        channel = self.settings.channel
        if channel is None:
            raise LookupError("digests.channel is not set: digests are not posted")
        handover = kind == "handover"
        start, since_last = await self.period(at, key=key, handover=handover)
        title = {"handover": "Shift handover digest", "daily": "Daily shift digest"}.get(
            kind, "Shift digest")
        reply = await self.build(start, at, title=title, chart_name=chart_file(key),
                                 since_last=since_last,
                                 shifter_time=at - EPSILON if handover else at)
        await self.bot.notices.post(channel, reply, key=key)
        await self.bot.database.run(store.record_sent, key, kind, start, at, clock.utcnow(), by)
        return reply

    # ------------------------------------------------------------------ snapshots

    def pools(self) -> list[str]:
        configured = list(self.bot.config.condor.pools)
        wanted = self.settings.pools
        return configured if wanted is None else [p for p in wanted if p in configured]

    async def snapshot_due(self, now: datetime) -> bool:
        minutes = self.settings.snapshot_minutes
        if not minutes or not self.pools():
            return False
        last = await self.bot.database.run(store.last_taken)
        # A little early is fine: the job runs every minute with jitter.
        return last is None or now - last >= timedelta(minutes=minutes) - timedelta(seconds=30)

    async def snapshot(self) -> int:
        """Counts by state of every snapshotted pool, stored; how many pools answered."""
        now, taken = clock.utcnow(), 0
        for pool in self.pools():
            try:
                async with asyncio.timeout(SNAPSHOT_TIMEOUT):
                    counts = await pool_counts(self._condor(), pool)
            except Exception as exc:
                if pool not in self._snapshot_failed:
                    log.warning("digests: no queue snapshot of pool %s: %s", pool, exc)
                self._snapshot_failed.add(pool)
                continue
            self._snapshot_failed.discard(pool)
            await self.bot.database.run(store.add_snapshot, pool, now, counts)
            taken += 1
        return taken

    def _condor(self) -> CondorService:
        from bot.condor.service import CondorService

        service = self.bot.services.get(CondorService)
        if service is None:
            self.made_condor = True
            service = self.bot.services.add(CondorService.from_config(self.bot.config))
        return service

    async def prune(self) -> int:
        before = clock.utcnow() - timedelta(days=self.settings.keep_days)
        gone = await self.bot.database.run(store.prune, before)
        await asyncio.to_thread(_prune_charts, self.chart_dir(), before)
        return gone


async def pool_counts(service: CondorService, pool: str) -> dict[str, int]:
    """Jobs by state name in ``pool`` (its scope applied) plus ``total``: the totals of one
    projected query in the pool's isolated worker (no rows fetched)."""
    from bot.condor import states

    summary = await service.q(pool, include_running=True, max_rows=0)
    counts: dict[str, int] = {}
    for letter, count in summary.totals.items():
        name = states.NAMES.get(letter, letter).replace(" ", "_")
        counts[name] = counts.get(name, 0) + int(count)
    counts["total"] = int(summary.total)
    return counts


def chart_file(key: str) -> str:
    """A stable file name per digest (``digest:handover/2026-03-30T07:00:00Z`` ->
    ``digest-handover-20260330T070000Z.png``): a retry rewrites the same file."""
    kind, _, instant = key.partition(":")[2].partition("/")
    stamp = re.sub(r"[^0-9TZ]", "", instant)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", kind) or "digest"
    return f"digest-{name}-{stamp}.png" if stamp else f"digest-{name}.png"


def _prune_charts(directory: Path, before: datetime) -> None:
    if not directory.is_dir():
        return
    for path in directory.glob("digest-*.png"):
        try:
            if path.stat().st_mtime < before.timestamp():
                path.unlink()
        except OSError:
            continue
