"""status: the pipeline's health from configured checks (Nagios-style levels), docs/status.md.

``status`` runs every check now, concurrently, and answers within the longest timeout plus a
small margin even when a check hangs (it is UNKNOWN then); ``status NAME`` shows one check in
detail. Periodic runs (one tick every few seconds runs the checks whose interval is due, each
claimed so replicas run it once) store results, count changes of level with flap suppression and
post them as notices; ``status ack`` and ``status silence`` quiet them. ``/healthz`` stays about
the bot itself.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.commands import Arg, CommandError, Context, Family, Opt, command, every
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.lazy import lazy_module
from bot.markup import user
from bot.reply import Level as ReplyLevel
from bot.reply import Reply, Table, Visibility
from bot.status.config import StatusConfig
from bot.status.model import CheckSpec, Level
from bot.timefmt import format_clock

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.status.service import StatusService

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
notify = lazy_module("bot.status.notify")
status_service = lazy_module("bot.status.service")
store = lazy_module("bot.status.store")
views = lazy_module("bot.status.views")

FAMILY = Family("status", "Pipeline health: status checks", order=15)
CONFIG = ConfigSection("status", StatusConfig)


def _create_tables(conn: Connection) -> None:  # a function: reading store.* loads SQLAlchemy
    store.create_tables(conn)


MIGRATIONS = Migrations("status", [(1, "status results, states and changes", _create_tables)])

TICK_SECONDS = 5  # checks' intervals are honoured to within a tick
SHOWN = 10  # results and changes `status NAME` lists
HISTORY = 30  # entries `status history` lists by default
MAX_SILENCE = 7 * 86400
SUBCOMMANDS = ("history", "ack", "silence", "unsilence")
# The handler's own deadline: the runner answers within the longest check timeout (at most
# 600 s) plus the margin; this is only the backstop.
COMMAND_TIMEOUT = 660.0


# ------------------------------------------------------------------------ lifecycle


def settings_of(config: Config) -> StatusConfig:
    return CONFIG.of(config) or StatusConfig()


async def startup(bot: Any) -> None:
    bot.services.add(status_service.StatusService(bot, settings_of(bot.config)))


async def shutdown(bot: Any) -> None:
    # Kept in bot.services (closed): a tick still scheduled must not make a new one.
    service = bot.services.get(status_service.StatusService)
    if service is not None:
        await service.close()


def service_of(bot: Any) -> StatusService:
    service: StatusService | None = bot.services.get(status_service.StatusService)
    if service is None:  # a bot built without the handlers' startup (one-shot tools)
        service = bot.services.add(status_service.StatusService(bot, settings_of(bot.config)))
    return service


@every(TICK_SECONDS, name="status.tick", jitter=0)
async def tick(bot: Any) -> None:
    """Start the checks whose interval has a new instant (they run in the background)."""
    await service_of(bot).tick()


@every(3600, name="status.prune", jitter=0.1)
async def prune(bot: Any) -> None:
    """Forget results (and history) older than ``status.keep_days``."""
    await service_of(bot).prune()


def check_config(config: Config) -> list[Problem]:
    """Channels exist, names are not subcommands, mentions are known (a warning: a role
    provider such as the rota may grant a role at run time), timeouts fit the intervals."""
    section = CONFIG.of(config)
    if section is None:
        return []
    problems = []
    if section.channel is not None and section.channel not in config.channels:
        problems.append(Problem("status.channel", f"unknown channel alias '{section.channel}'",
                                "add it under 'channels:'"))
    problems += _mention_problems("status.mention", section.mention, config)
    for i, spec in enumerate(section.checks):
        path = f"status.checks[{i}]"
        if spec.channel is not None and spec.channel not in config.channels:
            problems.append(Problem(f"{path}.channel", f"unknown channel alias '{spec.channel}'",
                                    "add it under 'channels:'"))
        if (spec.channel or section.channel) is None:
            problems.append(Problem(f"{path}.channel", "no channel for its notices",
                                    "set status.channel or this check's channel"))
        if spec.name in SUBCOMMANDS:
            problems.append(Problem(f"{path}.name", f"'{spec.name}' is a status subcommand",
                                    "choose another name"))
        if spec.timeout_seconds > spec.interval_seconds:
            problems.append(Problem(f"{path}.timeout_seconds", "longer than the interval: "
                                    "runs are skipped while the previous one goes on",
                                    severity="warning"))
        problems += _mention_problems(f"{path}.mention", spec.mention or [], config)
    return problems


def _mention_problems(path: str, names: list[str], config: Config) -> list[Problem]:
    known = set(config.people) | set(config.groups) | set(config.roles)
    return [Problem(f"{path}[{i}]", f"'{name}' is not a person, group or role in the config",
                    "fine for a role a provider grants (on-shift); otherwise nobody is "
                    "mentioned", severity="warning")
            for i, name in enumerate(names) if name not in known]


# ------------------------------------------------------------------------ helpers


def _spec(service: StatusService, name: str) -> CheckSpec:
    try:
        return service.spec(name)
    except KeyError:
        known = ", ".join(sorted(service.specs)) or "none configured (status.checks)"
        raise CommandError(f"no status check '{user(name)}' (known: {known})") from None


def _who(ctx: Context) -> str:
    return ctx.caller.label


def _reason(ctx: Context) -> str | None:
    words = ctx.args.get("reason") or []
    return " ".join(words) or None


# ------------------------------------------------------------------------ commands


@command(
    "status", summary="Run the status checks now: overall level, then each check, worst first",
    permission="status",
    args=[Arg("name", required=False, help="one check's name: its details and history")],
    help="Every check runs now, concurrently, each within its timeout (a check that hangs is "
         "UNKNOWN). Periodic results, alerts and silences are shown with each check.",
    examples=["status", "status disk"], slow=True, timeout=COMMAND_TIMEOUT,
)
async def status(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    if ctx.args["name"]:
        return await _details(ctx, service, _spec(service, ctx.args["name"]))
    if not service.specs:
        return Reply("No status checks are configured (status.checks).", title="status")
    started = time.monotonic()
    results = await service.run(list(service.specs.values()))
    states = await service.states()
    last = await ctx.bot.database.run(store.latest_results, store.PERIODIC)
    now, zone = clock.utcnow(), ctx.bot.config.bot.timezone
    lines = [views.check_line(spec, results[name], states.get(name), last.get(name), now, zone,
                              service.notify_after(spec))
             for name, spec in service.specs.items() if name in results]
    data = views.overview(lines, time.monotonic() - started)
    level = notify.REPLY_LEVEL[Level[data["overall"]]]
    return Reply(title=f"status: {data['overall']}", template="status_overview.j2", data=data,
                 level=level)


async def _details(ctx: Context, service: StatusService, spec: CheckSpec) -> Reply:
    results = await service.run([spec])
    state = (await service.states()).get(spec.name)
    recent = await ctx.bot.database.run(store.recent_results, spec.name, SHOWN)
    changes = await ctx.bot.database.run(store.history, spec.name, SHOWN)
    settings = {**status_service.describe(spec), "channel": service.channel(spec),
                "notify_after": service.notify_after(spec),
                "renotify": service.renotify(spec)}
    now, zone = clock.utcnow(), ctx.bot.config.bot.timezone
    data = views.details(spec, results[spec.name], state, recent, changes, settings, now, zone)
    return Reply(title=f"status {spec.name}: {data['level']}", template="status_check.j2",
                 data=data, table=views.perf_table(results[spec.name].perfdata),
                 level=notify.REPLY_LEVEL[Level[data["level"]]])


@command(
    "status history", summary="A check's changes of level, acknowledgements and silences",
    permission="status",
    args=[Arg("name", help="the check's name")],
    options=[Opt("limit", kind="int", default=HISTORY, min_value=1, max_value=500,
                 help="at most this many entries, newest first")],
    examples=["status history disk"],
)
async def history(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    spec = _spec(service, ctx.args["name"])
    limit = ctx.args["limit"]
    shown = await ctx.bot.database.run(store.history, spec.name, limit)
    total = await ctx.bot.database.run(store.count_history, spec.name)
    zone = ctx.bot.config.bot.timezone
    table = Table(["when", "what", "detail"], [views.history_line(e, zone) for e in shown],
                  omitted=total - len(shown))
    return Reply(title=f"status history {spec.name}", template="status_history.j2",
                 data={"name": spec.name, "count": len(shown), "total": total},
                 table=table if shown else None)


@command(
    "status ack", summary="Acknowledge a check's alert: no reminders until its level changes",
    permission="status.ack",
    args=[Arg("name", help="the check's name"),
          Arg("reason", kind="text", many=True, required=False, help="shown with the alert")],
    examples=["status ack disk cleaning /var now"],
)
async def ack(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    spec = _spec(service, ctx.args["name"])
    try:
        state = await service.acknowledge(spec, _who(ctx), _reason(ctx))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return Reply(template="status_ack.j2", level=ReplyLevel.OK, visibility=Visibility.CHANNEL,
                 data={"name": spec.name, "who": _who(ctx), "reason": _reason(ctx) or "",
                       "level": state.hard.name if state.hard is not None else "",
                       "reminders": service.renotify(spec) is not None})


@command(
    "status silence", summary="Mute a check's notices for a while (maintenance)",
    permission="status.silence",
    args=[Arg("name", help="the check's name"),
          Arg("duration", kind="duration", max_value=MAX_SILENCE, help="30m, 2h, 1d (at most 7d)"),
          Arg("reason", kind="text", many=True, required=False, help="shown with the check")],
    examples=["status silence condor-held 2h pool maintenance"],
)
async def silence(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    spec = _spec(service, ctx.args["name"])
    until = clock.utcnow() + timedelta(seconds=ctx.args["duration"])
    await service.silence(spec, until, _who(ctx), _reason(ctx))
    zone = ctx.bot.config.bot.timezone
    return Reply(template="status_silence.j2", level=ReplyLevel.OK, visibility=Visibility.CHANNEL,
                 data={"name": spec.name, "who": _who(ctx), "reason": _reason(ctx) or "",
                       "until": format_clock(until, zone, now=clock.utcnow()),
                       "lifted": False})


@command(
    "status unsilence", summary="Lift a check's silence: its notices go out again",
    permission="status.silence",
    args=[Arg("name", help="the check's name")],
    examples=["status unsilence condor-held"],
)
async def unsilence(ctx: Context) -> Reply:
    service = service_of(ctx.bot)
    spec = _spec(service, ctx.args["name"])
    state = (await service.states()).get(spec.name)
    if state is None or not state.silenced(clock.utcnow()):
        raise CommandError(f"{spec.name} is not silenced")
    await service.silence(spec, None, _who(ctx), None)
    return Reply(template="status_silence.j2", level=ReplyLevel.OK, visibility=Visibility.CHANNEL,
                 data={"name": spec.name, "who": _who(ctx), "reason": "", "until": "",
                       "lifted": True})
