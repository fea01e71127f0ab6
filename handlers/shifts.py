"""shift: who is on shift, the rota, swaps, overrides and the handover's acknowledgement,
docs/shifts.md.

The rota (``shifts.rota``) or explicit ranges (``shifts.ranges``), with the overrides and swaps
stored in the database on top (latest wins), give the computed rota (bot/shifts/rota.py). Its
shifter holds the dynamic role ``on-shift`` (a role provider in the gate); with
``shifts.channel`` set, the schedule source (bot/shifts/source.py) posts a heads-up, the
handover (with an Acknowledge button) and, unacknowledged, an escalation.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.commands import Arg, CommandError, Context, Family, Opt, command, every
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.lazy import lazy_module
from bot.markup import user
from bot.reply import Reply
from bot.shifts.config import ShiftsConfig
from bot.shifts.roles import ROLE

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.shifts.service import ShiftService

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
dates = lazy_module("bot.shifts.dates")
schedule_service = lazy_module("bot.schedule.service")
shift_service = lazy_module("bot.shifts.service")
shift_source = lazy_module("bot.shifts.source")
store = lazy_module("bot.shifts.store")
views = lazy_module("bot.shifts.views")

FAMILY = Family("shift", "Shifts: who is on shift, the rota, swaps and overrides", order=19)
CONFIG = ConfigSection("shifts", ShiftsConfig)


def _create_tables(conn: Connection) -> None:
    store.create_tables(conn)


MIGRATIONS = Migrations("shifts", [(1, "shift overrides, swaps and acknowledged handovers",
                                    _create_tables)])

PROVIDER = "shifts"
# the roles this module's role provider may grant (bot/registry.py collects them: help
# answered before the database opens must know which commands a dynamic role could change)
PROVIDES_ROLES = (ROLE,)
MAX_WEEKS = 52


# ------------------------------------------------------------------------ lifecycle


def settings_of(config: Config) -> ShiftsConfig:
    return CONFIG.of(config) or ShiftsConfig()


async def startup(bot: Any) -> None:
    settings = settings_of(bot.config)
    service = bot.services.add(shift_service.ShiftService(bot, settings))
    await service.refresh()
    if not service.configured:
        return  # no rota, no ranges: no role provider (it would make any name mentionable)
    bot.gate.add_role_provider(PROVIDER, service.roles_for)
    if settings.channel is not None:
        schedule_service.service_of(bot).register(
            shift_source.ShiftSource(service, settings.channel))


async def shutdown(bot: Any) -> None:
    bot.gate.providers.pop(PROVIDER, None)


@every(60, name="shifts.refresh", jitter=0.1)
async def refresh(bot: Any) -> None:
    """Re-read the overrides: one made by another bot process counts here within a minute."""
    service = bot.services.get(shift_service.ShiftService)
    if service is not None:
        await service.refresh()


def check_config(config: Config) -> list[Problem]:
    """People are configured, the channel exists, the fallback names people or groups, and
    the notices have a scheduler to send them."""
    section = CONFIG.of(config)
    if section is None:
        return []
    problems = [Problem(path, f"unknown person '{key}'", "add it under 'people:'")
                for path, key in section.people() if key not in config.people]
    if section.channel is not None and section.channel not in config.channels:
        problems.append(Problem("shifts.channel", f"unknown channel alias '{section.channel}'",
                                "add it under 'channels:'"))
    known = set(config.people) | set(config.groups) | set(config.roles)
    problems += [Problem(f"shifts.fallback[{i}]", f"'{name}' is not a person, group or role",
                         "the escalation would mention nobody for it")
                 for i, name in enumerate(section.fallback) if name not in known]
    loaded = config.bot.handlers  # None: every handlers.* module, the scheduler included
    if section.channel and loaded is not None and "handlers.schedule" not in loaded:
        problems.append(Problem("shifts.channel", "heads-up, handover and escalation notices "
                                "need the scheduler", "add handlers.schedule to bot.handlers",
                                severity="warning"))
    if section.channel and section.ack_minutes and not section.fallback:
        problems.append(Problem("shifts.fallback", "no fallback: an unacknowledged handover "
                                "escalates to the incoming shifter only", severity="warning"))
    return problems


# ------------------------------------------------------------------------ helpers


def service_of(ctx: Context) -> ShiftService:
    service = ctx.bot.services.get(shift_service.ShiftService)
    if service is None or not service.configured:
        raise CommandError("no shifts are configured (shifts.rota or shifts.ranges)")
    return service


def _person(ctx: Context, name: str) -> str:
    """A person key (``me``: the caller), or a usage error listing the known ones."""
    if name.lower() == "me" and ctx.caller.person is not None:
        return ctx.caller.person.key
    if name not in ctx.bot.config.people:
        known = ", ".join(sorted(ctx.bot.config.people)) or "none configured"
        raise CommandError(f"no person '{user(name)}' (people: {known})")
    return name


def _dated(parse: Any, *args: Any) -> Any:
    try:
        return parse(*args)
    except dates.BadDate as exc:
        raise CommandError(str(exc)) from None


async def _fresh(ctx: Context) -> ShiftService:
    service = service_of(ctx)
    await service.refresh()
    return service


# ------------------------------------------------------------------------ commands


@command(
    "shift who", summary="Who is on shift now, or on a date", permission="shift",
    args=[Arg("date", required=False, help="YYYY-MM-DD (that whole day), YYYY-MM-DDTHH:MM, "
                                           "today, tomorrow; default now")],
    help="Dates are in the team's zone (shifts.zone). A day shows everyone on shift that day.",
    examples=["shift who", "shift who 2026-03-30", "shift who 2026-03-30T08:30"],
)
async def who(ctx: Context) -> Reply:
    service = await _fresh(ctx)
    plan, now = service.plan, clock.utcnow()
    text = ctx.args["date"]
    day = _dated(dates.parse_day, text, plan, now) if text else None
    if day is not None:
        slots, label = plan.timeline(*day), f"on {plan.local(day[0]):%a %Y-%m-%d}"
        after = day[1]
    else:
        at = _dated(dates.parse_instant, text, plan, now) if text else now
        slot = plan.slot_at(at)
        slots, label, after = [slot] if slot else [], "at " + views.when(at, plan.zone), at
    upcoming = plan.next_slot(slots[-1].start if slots else after)
    return views.who(slots, upcoming, label, plan.zone, now)


@command(
    "shift next", summary="The next shift: who and from when", permission="shift",
    examples=["shift next"],
)
async def next_(ctx: Context) -> Reply:
    service = await _fresh(ctx)
    now = clock.utcnow()
    upcoming = service.plan.next_slot(now)
    if upcoming is None:
        return Reply("No shift is planned after now.", title="next shift")
    after = service.plan.next_slot(upcoming.start)
    return views.who([upcoming], after, "next", service.zone, now)


@command(
    "shift list", summary="The rota for the next weeks, overrides and swaps included",
    permission="shift",
    options=[Opt("weeks", kind="int", default=4, min_value=1, max_value=MAX_WEEKS,
                 help="look this many weeks ahead")],
    examples=["shift list", "shift list --weeks 8"],
)
async def list_(ctx: Context) -> Reply:
    service = await _fresh(ctx)
    now = clock.utcnow()
    weeks = ctx.args["weeks"]
    slots = service.plan.timeline(now, now + timedelta(weeks=weeks))
    return views.listing(slots, weeks, service.zone, now, service.configured)


@command(
    "shift swap", summary="Two people trade shifts (both are notified)",
    permission="shift.swap",
    args=[Arg("person_a", help="a person key (or me)"),
          Arg("person_b", help="the other person"),
          Arg("week", required=False, help="PERSON_A's shift in this week: 2026-W14 or a date "
                                           "in it; default PERSON_A's next shift")],
    help="PERSON_B takes PERSON_A's shift, and PERSON_A takes PERSON_B's shift nearest to it. "
         "Only shifts that have not started can be swapped (`shift override` for the rest).",
    examples=["shift swap alice bob", "shift swap me carol 2026-W14"],
)
async def swap(ctx: Context) -> Reply:
    service = service_of(ctx)
    first, second = _person(ctx, ctx.args["person_a"]), _person(ctx, ctx.args["person_b"])
    week = _dated(dates.parse_week, ctx.args["week"], service.plan) if ctx.args["week"] else None
    try:
        done = await service.swap(first, second, week, ctx.caller.label)
    except shift_service.ShiftError as exc:
        raise CommandError(str(exc)) from None
    reply = views.swap(ctx.caller.label, done.first, done.second, service.zone)
    channel = service.settings.channel
    if channel is None:
        return reply
    await ctx.bot.notices.post(channel, reply, key=f"shift-swap:{done.swap_id}",
                               mention=[first, second])
    return Reply(f"Swapped; {first} and {second} are notified in the channel.",
                 title=f"swap #{done.swap_id}")


@command(
    "shift override", summary="Put someone on shift from FROM until TO, whatever the rota says",
    permission="shift.override",
    args=[Arg("person", help="a person key (or me)"),
          Arg("from", help="YYYY-MM-DD (at the handover time), YYYY-MM-DDTHH:MM, now, today"),
          Arg("to", help="when the shift goes back to the rota (same forms)")],
    help="The latest override wins where several overlap. Times are in the team's zone.",
    examples=["shift override bob 2026-03-30 2026-04-02", "shift override me now tomorrow"],
)
async def override(ctx: Context) -> Reply:
    service = await _fresh(ctx)
    person = _person(ctx, ctx.args["person"])
    now = clock.utcnow()
    start: datetime = _dated(dates.parse_instant, ctx.args["from"], service.plan, now)
    end: datetime = _dated(dates.parse_instant, ctx.args["to"], service.plan, now)
    replaced = service.plan.timeline(start, end)
    try:
        ident = await service.override(person, start, end, ctx.caller.label)
    except shift_service.ShiftError as exc:
        raise CommandError(str(exc)) from None
    return views.override(ctx.caller.label, person, start, end, ident, replaced, service.zone)


@command(
    "shift ack", summary="Acknowledge the handover: you have taken over the shift",
    permission="shift.ack",
    help="The incoming shifter acknowledges (from the heads-up on), or someone allowed "
         "shift.override does it for them. Stops the escalation.",
    examples=["shift ack"],
)
async def ack(ctx: Context) -> Reply:
    service = service_of(ctx)
    try:
        done = await service.acknowledge(ctx.caller)
    except shift_service.ShiftError as exc:
        raise CommandError(str(exc)) from None
    notice = views.handover(done.handover, service.zone, done.ack, service.settings.ack_minutes,
                            clock.utcnow())
    # No notice yet (acknowledged ahead, or no channel): the handover shows it when posted.
    with contextlib.suppress(KeyError):
        await ctx.bot.notices.update(shift_service.handover_key(done.handover), notice)
    return views.acknowledged(ctx.caller.label, done.handover, service.zone, done.ahead)


__all__ = ["ROLE"]
