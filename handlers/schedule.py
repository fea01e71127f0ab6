"""schedule: the scheduler's occurrences (announcements now; meetings, shifts and digests plug
in as sources), docs/schedule.md.

``schedule list`` shows what comes next (in the bot's timezone and UTC), ``schedule missed``
what nobody received as planned (missed during downtime, failed, skipped while paused),
``schedule pause NAME`` / ``schedule resume NAME`` stop and restart one series. The planner
and its wake-ups run in :class:`bot.schedule.service.ScheduleService`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.commands import Arg, CommandError, Context, Family, Opt, command, every
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.lazy import lazy_module
from bot.markup import user
from bot.reply import Level, Reply, Table, Visibility
from bot.schedule.config import ScheduleConfig
from bot.timefmt import format_local

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.schedule.model import Occurrence
    from bot.schedule.service import ScheduleService

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
announcements = lazy_module("bot.schedule.announcements")
schedule_service = lazy_module("bot.schedule.service")
store = lazy_module("bot.schedule.store")

FAMILY = Family("schedule", "Scheduled announcements, reminders and digests", order=18)
CONFIG = ConfigSection("schedule", ScheduleConfig)


def _create_tables(conn: Connection) -> None:
    store.create_tables(conn)


MIGRATIONS = Migrations("schedule", [(1, "scheduled occurrences, pauses, the planner's mark",
                                      _create_tables)])

LISTED = 30  # occurrences `schedule list` shows at most
MISSED_LISTED = 50


# ------------------------------------------------------------------------ lifecycle


async def startup(bot: Any) -> None:
    service = schedule_service.service_of(bot)
    settings = CONFIG.of(bot.config) or ScheduleConfig()
    if settings.announcements:
        service.register(announcements.Announcements(
            settings.announcements, bot.config.bot.timezone, clock.utcnow()))
    await service.start()


async def shutdown(bot: Any) -> None:
    # Kept in bot.services (closed): nothing wakes up any more.
    service = bot.services.get(schedule_service.ScheduleService)
    if service is not None:
        await service.close()


@every(3600, name="schedule.prune", jitter=0.1)
async def prune(bot: Any) -> None:
    """Forget recorded occurrences older than ``schedule.keep_days``."""
    await schedule_service.service_of(bot).prune()


def check_config(config: Config) -> list[Problem]:
    """Announcements go to known channels and mention known names (a warning: a role
    provider such as the rota grants roles at run time)."""
    section = CONFIG.of(config)
    if section is None:
        return []
    known = set(config.people) | set(config.groups) | set(config.roles)
    problems = []
    for i, spec in enumerate(section.announcements):
        path = f"schedule.announcements[{i}]"
        if spec.channel not in config.channels:
            problems.append(Problem(f"{path}.channel", f"unknown channel alias '{spec.channel}'",
                                    "add it under 'channels:'"))
        problems += [Problem(f"{path}.mention[{j}]", f"'{name}' is not a person, group or role "
                             "in the config", "fine for a role a provider grants (on-shift)",
                             severity="warning")
                     for j, name in enumerate(spec.mention) if name not in known]
        if spec.weekly is not None and spec.weekly.every_weeks > 1 and not spec.weekly.start_date:
            problems.append(Problem(f"{path}.weekly.start_date", "every_weeks > 1 without a "
                                    "start_date: weeks are counted from 1970-01-05",
                                    "set start_date to a date of a week it should fire in",
                                    severity="warning"))
    return problems


# ------------------------------------------------------------------------ helpers


def _series(service: ScheduleService, name: str) -> str:
    known = service.series()
    if name not in known:
        names = ", ".join(sorted(known)) or "none configured"
        raise CommandError(f"no scheduled series '{user(name)}' (known: {names})")
    return name


def _when(occ_at: Any, zone: str) -> list[str]:
    return [format_local(occ_at, zone), f"{occ_at:%Y-%m-%d %H:%M} UTC"]


def _reason(ctx: Context) -> str | None:
    return " ".join(ctx.args.get("reason") or []) or None


def _list_row(occ: Occurrence, zone: str, paused: set[str]) -> list[str]:
    note = "paused" if occ.series in paused else ""
    return [*_when(occ.at, zone), occ.series, occ.kind, occ.title, note]


# ------------------------------------------------------------------------ commands


@command(
    "schedule list", summary="What is scheduled next: announcements, reminders, digests",
    permission="schedule",
    options=[Opt("days", kind="int", default=7, min_value=1, max_value=60,
                 help="look this many days ahead"),
             Opt("series", help="only this series")],
    help="Times in the bot's timezone and in UTC. Paused series are marked; their occurrences "
         "are recorded as skipped instead of sent.",
    examples=["schedule list", "schedule list --days 14 --series shift-report"],
)
async def list_(ctx: Context) -> Reply:
    service = schedule_service.service_of(ctx.bot)
    series = _series(service, ctx.args["series"]) if ctx.args["series"] else None
    until = clock.utcnow() + timedelta(days=ctx.args["days"])
    occs = [o for o in await service.upcoming(until) if series in (None, o.series)]
    paused = await ctx.bot.database.run(store.pauses)
    zone = ctx.bot.config.bot.timezone
    rows = [_list_row(o, zone, set(paused)) for o in occs[:LISTED]]
    last = service.last
    data = {"count": len(occs), "days": ctx.args["days"], "series": series or "",
            "sources": sorted(service.sources), "zone": zone,
            "paused": [{"series": p.series, "by": p.by, "reason": p.reason or "",
                        "since": format_local(p.at, zone)} for p in paused.values()],
            "last": {"at": format_local(last.at, zone, seconds=True), "jobs": len(service.jobs),
                     "failed": last.failed_sources} if last else None}
    table = Table(["local time", "UTC", "series", "kind", "what", "state"], rows,
                  omitted=len(occs) - len(rows))
    return Reply(title="schedule", template="schedule_list.j2", data=data,
                 table=table if rows else None)


@command(
    "schedule missed", summary="Occurrences nobody received: missed, failed, skipped",
    permission="schedule",
    options=[Opt("days", kind="int", default=7, min_value=1, max_value=3650,
                 help="look this many days back"),
             Opt("series", help="only this series")],
    help="Missed: the bot was not running within the occurrence's grace window. Failed: "
         "sending raised an error (retried while inside its grace). Skipped: its series was "
         "paused.",
    examples=["schedule missed", "schedule missed --days 30"],
)
async def missed(ctx: Context) -> Reply:
    series = ctx.args["series"] or None
    since = clock.utcnow() - timedelta(days=ctx.args["days"])
    rows, total = await ctx.bot.database.run(store.unsent, since, MISSED_LISTED, series)
    zone = ctx.bot.config.bot.timezone
    table = Table(["local time", "UTC", "series", "kind", "state", "detail"],
                  [[*_when(r.at, zone), r.series, r.kind, r.state, user(r.error or "")]
                   for r in rows], omitted=total - len(rows))
    return Reply(title="schedule missed", template="schedule_missed.j2",
                 data={"total": total, "days": ctx.args["days"], "series": series or ""},
                 table=table if rows else None, level=Level.WARNING if total else Level.OK)


@command(
    "schedule pause", summary="Pause a series: its occurrences are skipped until resumed",
    permission="schedule.pause",
    args=[Arg("name", help="the series (schedule list shows them)"),
          Arg("reason", kind="text", many=True, required=False, help="shown with the series")],
    examples=["schedule pause shift-report christmas break"],
)
async def pause(ctx: Context) -> Reply:
    service = schedule_service.service_of(ctx.bot)
    name = _series(service, ctx.args["name"])
    who, reason = ctx.caller.label, _reason(ctx)
    if not await ctx.bot.database.run(store.pause, name, who, clock.utcnow(), reason):
        raise CommandError(f"{name} is paused already ('schedule resume {name}' ends it)")
    return Reply(template="schedule_pause.j2", level=Level.OK, visibility=Visibility.CHANNEL,
                 data={"name": name, "who": who, "reason": reason or "", "resumed": False})


@command(
    "schedule resume", summary="Resume a paused series: its next occurrences are sent again",
    permission="schedule.resume",
    args=[Arg("name", help="the series")],
    examples=["schedule resume shift-report"],
)
async def resume(ctx: Context) -> Reply:
    service = schedule_service.service_of(ctx.bot)
    name = _series(service, ctx.args["name"])
    lifted = await ctx.bot.database.run(store.resume, name)
    if lifted is None:
        raise CommandError(f"{name} is not paused")
    return Reply(template="schedule_pause.j2", level=Level.OK, visibility=Visibility.CHANNEL,
                 data={"name": name, "who": ctx.caller.label, "reason": lifted.reason or "",
                       "resumed": True, "paused_by": lifted.by})
