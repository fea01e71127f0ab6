"""digest: shift digests (docs/digests.md).

A digest says what happened since the previous one: Sentry alerts with their GitLab tickets,
status-check changes, commands run through the bot, the HTCondor queue against the previous
digest, meetings held with their open action items, missed schedules; with one chart of the
shift attached. Scheduled at each handover of the rota and/or daily (the ``digests`` schedule
source, bot/digests/source.py); ``digest preview`` shows it now to the caller only, ``digest
now`` posts it. The queue snapshots are taken by the ``digests.snapshot`` job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot import clock
from bot.commands import CommandError, Context, Family, command, every
from bot.config import Config, Problem
from bot.digests.config import DigestsConfig
from bot.features import ConfigSection, Migrations
from bot.lazy import lazy_module
from bot.reply import Level, Reply, Visibility
from bot.schedule.model import instant_text

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.digests.service import DigestService

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
digest_service = lazy_module("bot.digests.service")
digest_source = lazy_module("bot.digests.source")
schedule_service = lazy_module("bot.schedule.service")
store = lazy_module("bot.digests.store")

FAMILY = Family("digest", "Shift digests: what happened since the last one", order=21)
CONFIG = ConfigSection("digests", DigestsConfig)


def _create_tables(conn: Connection) -> None:
    store.create_tables(conn)


MIGRATIONS = Migrations("digests", [(1, "sent digests and HTCondor queue snapshots",
                                     _create_tables)])
PREVIEW_CHART = "digest-preview.png"


def settings_of(config: Config) -> DigestsConfig:
    return CONFIG.of(config) or DigestsConfig()


def service_of(bot: Any) -> DigestService:
    return bot.services.ensure(digest_service.DigestService,
                               lambda: digest_service.DigestService(bot, settings_of(bot.config)))


# ------------------------------------------------------------------------ lifecycle


async def startup(bot: Any) -> None:
    service = service_of(bot)
    if service.settings.channel is None:
        return  # preview only: nothing is scheduled
    source = digest_source.DigestSource(service)
    if source.series():
        schedule_service.service_of(bot).register(source)


async def shutdown(bot: Any) -> None:
    service = bot.services.get(digest_service.DigestService)
    if service is not None and service.made_condor:
        from bot.condor.service import CondorService

        condor = bot.services.pop(CondorService)
        if condor is not None:
            await condor.close()


@every(60, name="digests.snapshot", jitter=0.1, deadline=300)
async def snapshot(bot: Any) -> None:
    """An HTCondor queue snapshot every ``digests.snapshot_minutes`` (the digests compare
    them; the chart draws them)."""
    service = service_of(bot)
    if await service.snapshot_due(clock.utcnow()):
        await service.snapshot()


@every(3600, name="digests.prune", jitter=0.1)
async def prune(bot: Any) -> None:
    """Forget snapshots, sent digests and chart files older than ``digests.keep_days``."""
    await service_of(bot).prune()


def check_config(config: Config) -> list[Problem]:
    section = CONFIG.of(config)
    if section is None:
        return []
    problems = []
    if section.channel is not None and section.channel not in config.channels:
        problems.append(Problem("digests.channel", f"unknown channel alias '{section.channel}'",
                                "add it under 'channels:'"))
    problems += [Problem(f"digests.pools[{i}]", f"unknown HTCondor pool '{pool}'",
                         "name a pool of condor.pools")
                 for i, pool in enumerate(section.pools or []) if pool not in config.condor.pools]
    loaded = config.bot.handlers  # None: every handlers.* module
    scheduled = section.channel is not None and (section.at_handover or section.daily)
    if scheduled and loaded is not None and "handlers.schedule" not in loaded:
        problems.append(Problem("digests", "scheduled digests need the scheduler",
                                "add handlers.schedule to bot.handlers", severity="warning"))
    shifts = config.feature_sections.get("shifts")
    if section.channel and section.at_handover and getattr(shifts, "rota", None) is None \
            and not getattr(shifts, "ranges", None):
        problems.append(Problem("digests.at_handover", "no rota (shifts.rota or shifts.ranges): "
                                "no digest at handovers", severity="warning"))
    return problems


# ------------------------------------------------------------------------ commands


@command(
    "digest preview", summary="The shift digest as it would be posted now (only you see it)",
    permission="digest",
    help="Covers the time since the last digest (or the last digests.default_hours). Nothing "
         "is posted or recorded. The console prints where the chart was saved.",
    examples=["digest preview"],
)
async def preview(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    now = clock.utcnow()
    start, since_last = await service.period(now)
    return await service.build(start, now, title="Shift digest (preview)",
                               chart_name=PREVIEW_CHART, since_last=since_last,
                               visibility=Visibility.EPHEMERAL)


@command(
    "digest now", summary="Post the shift digest to the digests channel now",
    permission="digest.now",
    help="Covers the time since the last digest; the next digest starts from this one.",
    examples=["digest now"],
)
async def now_(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    channel = service.settings.channel
    if channel is None:
        raise CommandError("digests.channel is not set: 'digest preview' shows the digest")
    at = clock.utcnow().replace(microsecond=0)
    key = f"digest:now/{instant_text(at)}"
    if await ctx.bot.database.run(store.get_sent, key) is not None:
        raise CommandError("a digest was posted this very second; try again in a moment")
    await service.send(key, "now", at, by=ctx.caller.label)
    return Reply(f"The shift digest is posted to #{channel}.", title="digest posted",
                 level=Level.OK)
