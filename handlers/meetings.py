"""meetings: meeting series with reminders and MeetBot-style report threads, docs/meetings.md.

Series (weekly rules in an IANA zone, iCal/Indico feeds) plug into the scheduler as the
``meetings`` source (``bot/meetings/source.py``): reminders before each meeting, a report thread
when it ends, an auto-close later. Replies in a report thread are recorded by the hook below
(``#topic``, ``#info``, ``#decision``, ``#action @person``, ``#undo``, ``#done N``, ``#edit N``,
``report close``); the ``report`` commands close, show, edit, tick off and file the action items
as tickets.
A command typed in the thread does not know the thread (commands carry no thread context), so
the commands take the series and the meeting's date; a plain ``report close`` typed in the
thread is a marker the hook handles.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.commands import Arg, CommandError, Context, Family, command, every
from bot.config import Config, Problem
from bot.features import ConfigSection, Migrations
from bot.hooks import ThreadContext, on_thread_reply
from bot.lazy import lazy_module
from bot.markup import user
from bot.meetings.config import MeetingsConfig, SeriesSpec
from bot.reply import Level, Reply, Visibility
from bot.schedule.local import to_utc

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from bot.meetings.ical import Feeds
    from bot.meetings.store import Report

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy (bot/lazy.py).
ical = lazy_module("bot.meetings.ical")
meetings_source = lazy_module("bot.meetings.source")
reports = lazy_module("bot.meetings.reports")
schedule_service = lazy_module("bot.schedule.service")
store = lazy_module("bot.meetings.store")
tickets = lazy_module("bot.meetings.tickets")

FAMILY = Family("report", "Meeting reports: close, show, action items, tickets", order=19)
CONFIG = ConfigSection("meetings", MeetingsConfig)


def _create_tables(conn: Connection) -> None:
    store.create_tables(conn)


def _add_edit_columns(conn: Connection) -> None:
    store.add_edit_columns(conn)


MIGRATIONS = Migrations("meetings", [(1, "meeting reports, items, tickets, feeds",
                                      _create_tables),
                                     (2, "who edited a report item, and its text before",
                                      _add_edit_columns)])

DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"
MEETING_ARGS = [Arg("meeting", help="the meeting series (meetings.series[].name)"),
                Arg("date", required=False, pattern=DATE_PATTERN,
                    help="the meeting's local date, YYYY-MM-DD (default: the latest)")]


# ------------------------------------------------------------------------ lifecycle


def settings_of(bot: Any) -> MeetingsConfig:
    return CONFIG.of(bot.config) or MeetingsConfig()


def feeds_of(bot: Any) -> Feeds:
    settings = settings_of(bot)
    return bot.services.ensure(ical.Feeds, lambda: ical.Feeds(
        bot, timedelta(minutes=settings.feed_refresh_minutes), settings.feed_timeout_seconds))


async def startup(bot: Any) -> None:
    settings = settings_of(bot)
    if settings.series:
        source = meetings_source.MeetingsSource(settings, clock.utcnow(), feeds_of(bot))
        schedule_service.service_of(bot).register(source)


@every(60, name="meetings.feeds", jitter=0.2)
async def refresh_feeds(bot: Any) -> None:
    """Fetch the iCal feeds whose copy is older than ``meetings.feed_refresh_minutes``."""
    feeds, now = feeds_of(bot), clock.utcnow()
    for spec in settings_of(bot).series:
        if spec.ical is not None and feeds.due(spec, now):
            await feeds.fetch(spec)


@on_thread_reply("meetings")
async def on_reply(ctx: ThreadContext) -> Reply | None:
    """A reply in a meeting-report thread: a marker, or discussion."""
    return await reports.on_reply(ctx)


def check_config(config: Config) -> list[Problem]:
    section = CONFIG.of(config)
    if section is None:
        return []
    problems = []
    known = set(config.people) | set(config.groups) | set(config.roles)
    gitlab = config.feature_sections.get("gitlab")
    for i, spec in enumerate(section.series):
        path = f"meetings.series[{i}]"
        if spec.channel not in config.channels:
            problems.append(Problem(f"{path}.channel", f"unknown channel alias '{spec.channel}'",
                                    "add it under 'channels:'"))
        for j, name in enumerate([*spec.mention, *spec.report.mention]):
            if name not in known:
                problems.append(Problem(f"{path}.mention[{j}]", f"'{name}' is not a person, "
                                        "group or role in the config", "fine for a role a "
                                        "provider grants (on-shift)", severity="warning"))
        tracker = spec.report.tracker
        if tracker is not None and tracker.type == "github" and section.github.token is None:
            problems.append(Problem(f"{path}.report.tracker", "a github tracker needs "
                                    "meetings.github.token", "set it (e.g. ${GITHUB_TOKEN})"))
        if tracker is not None and tracker.type == "gitlab" and (
                gitlab is None or not getattr(gitlab, "url", None)):
            problems.append(Problem(f"{path}.report.tracker", "a gitlab tracker needs the "
                                    "gitlab: section", "load handlers.restart_gitlab and set "
                                    "gitlab.url and gitlab.token"))
        if spec.weekly is not None and spec.weekly.every_weeks > 1 and not spec.weekly.start_date:
            problems.append(Problem(f"{path}.weekly.start_date", "every_weeks > 1 without a "
                                    "start_date: weeks are counted from 1970-01-05",
                                    "set start_date to a date of a week it meets in",
                                    severity="warning"))
    return problems


# ------------------------------------------------------------------------ helpers


def _series(ctx: Context) -> SeriesSpec:
    settings = settings_of(ctx.bot)
    spec = settings.get(ctx.args["meeting"])
    if spec is None:
        names = ", ".join(s.name for s in settings.series) or "none configured"
        raise CommandError(f"no meeting series '{user(ctx.args['meeting'])}' (known: {names})")
    return spec


async def _report(ctx: Context) -> tuple[SeriesSpec, Report]:
    """The report of MEETING [DATE] (default: its latest)."""
    spec = _series(ctx)
    start = end = None
    if ctx.args.get("date"):
        try:
            day = date.fromisoformat(ctx.args["date"])
        except ValueError:
            raise CommandError(f"'{user(ctx.args['date'])}' is not a date (YYYY-MM-DD)") from None
        start = to_utc(datetime.combine(day, datetime.min.time()), spec.zone)
        end = to_utc(datetime.combine(day + timedelta(days=1), datetime.min.time()), spec.zone)
    found = await ctx.bot.database.run(
        lambda c: store.reports_of(c, spec.name, start=start, end=end, limit=1))
    if not found:
        when = f" on {ctx.args['date']}" if ctx.args.get("date") else ""
        raise CommandError(f"no report of {spec.name}{when} yet (a report thread opens when "
                           "the meeting ends)")
    return spec, found[0]


# ------------------------------------------------------------------------ commands


@command("report show", summary="Show a meeting's report (re-rendered from its items)",
         permission="report", args=MEETING_ARGS,
         examples=["report show wmcore", "report show wmcore 2026-03-30"])
async def show(ctx: Context) -> Reply:
    _spec, report = await _report(ctx)
    return await reports.render(ctx.bot, report)


@command("report close", summary="Close a meeting's report and post it in its thread",
         permission="report.close", args=MEETING_ARGS,
         help="In the report thread itself, reply 'report close' (or #endmeeting) instead.",
         examples=["report close wmcore", "report close wmcore 2026-03-30"])
async def close(ctx: Context) -> Reply:
    _spec, report = await _report(ctx)
    if not await reports.close(ctx.bot, report, ctx.caller.label):
        raise CommandError(f"the report of {report.title} was closed already by "
                           f"{user(report.closed_by or '?')}")
    return Reply(text=f"Closed the report of {user(report.title)}; it is posted in its thread.",
                 level=Level.OK)


@command("report done", summary="Mark an action item done (it leaves the reminders)",
         permission="report.done",
         args=[Arg("item", kind="int", min_value=1, help="the action item's number (#12)")],
         examples=["report done 12"])
async def done(ctx: Context) -> Reply:
    item = await ctx.bot.database.run(store.mark_done, ctx.args["item"], ctx.caller.label,
                                      clock.utcnow())
    if item is None:
        raise CommandError(f"no action item #{ctx.args['item']} (report show MEETING lists them)")
    return Reply(text=f"Action item #{item.id} is done: {user(item.text)}", level=Level.OK,
                 visibility=Visibility.CHANNEL)


@command("report edit", summary="Replace a report item's text (an action item's owner too)",
         permission="report.edit",
         args=[Arg("item", kind="int", min_value=1, help="the item's number (#12)"),
               Arg("text", kind="text", many=True, max_length=2000,
                   help="the new text; an action item: [@person] [TEXT]")],
         help="Allowed for the item's author and for holders of report.close. In the report "
              "thread, reply #edit N TEXT instead.",
         examples=["report edit 12 order 40 disks", "report edit 12 @carol order 40 disks"])
async def edit(ctx: Context) -> Reply:
    try:
        answer = await reports.edit(ctx.bot, ctx.caller, ctx.args["item"],
                                    " ".join(ctx.args["text"]))
    except reports.EditRefused as exc:
        if exc.denied:
            return Reply.denied(str(exc))
        raise CommandError(str(exc)) from None
    return Reply(text=answer, level=Level.OK, visibility=Visibility.CHANNEL)


@command("report ticket", summary="Open one tracker issue per open action item (once each)",
         permission="report.ticket", args=MEETING_ARGS, slow=True, timeout=120,
         help="GitLab or GitHub, as the series' report.tracker says. Items that have an issue "
              "keep it; an issue opened before (found by its marker) is linked, not doubled.",
         examples=["report ticket wmcore", "report ticket wmcore 2026-03-30"])
async def ticket(ctx: Context) -> Reply:
    spec, report = await _report(ctx)
    try:
        lines = await tickets.open_tickets(ctx.bot, spec, report)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not lines:
        return Reply(text=f"No open action items in the report of {user(report.title)}.")
    failed = any(": not opened:" in line for line in lines)
    return Reply(title=f"Tickets: {report.title}", text="\n".join(user(x) for x in lines),
                 level=Level.WARNING if failed else Level.OK, visibility=Visibility.CHANNEL)
