"""alerts: Sentry alerts to chat and GitLab (docs/alerts.md).

Sentry's signed webhooks (``POST /webhooks/sentry``; the legacy plugin at
``/webhooks/sentry/legacy/<secret>``) go into a durable inbox before the 200; the processor
(bot/alerts/service.py) decides each delivery in one transaction: one notice per Sentry issue
(updated in place; regressions and assignments in its thread), storm summaries, GitLab issues
by rule or button, all retried from the database. Polling (``sentry.poll``) feeds the same
inbox. Commands: ``alerts list|show|pending|ticket|resolve|ignore|simulate``.
``sentry:`` is declared by handlers/alerts_sentry.py (one module, one section).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot import clock
from bot.alerts.config import ALERTS, POLL_TICK_SECONDS, SENTRY, AlertsConfig
from bot.commands import Arg, CommandError, Context, Family, Opt, command, every, route
from bot.config import Config, Problem
from bot.features import Migrations
from bot.lazy import lazy_module
from bot.markup import user
from bot.reply import Level, Reply, Visibility

if TYPE_CHECKING:  # the HTTP server's types: `console -c help` loads no aiohttp
    from aiohttp import web
    from sqlalchemy import Connection

    from bot.alerts.issues import IssueRow
    from bot.alerts.service import AlertsService

# The feature's implementation loads at first use: listing commands (help) imports this
# module and must not load SQLAlchemy or Jinja2 (bot/lazy.py).
inbox = lazy_module("bot.alerts.inbox")
issues = lazy_module("bot.alerts.issues")
poll = lazy_module("bot.alerts.poll")
posting = lazy_module("bot.alerts.posting")
alerts_service = lazy_module("bot.alerts.service")
simulation = lazy_module("bot.alerts.simulate")
tables = lazy_module("bot.alerts.tables")
alert_tasks = lazy_module("bot.alerts.tasks")
views = lazy_module("bot.alerts.views")

FAMILY = Family("alerts", "Sentry alerts: list, show, tickets, resolve", order=18)
CONFIG = ALERTS


def _create_tables(conn: Connection) -> None:  # a function: reading tables.* loads SQLAlchemy
    tables.create_tables(conn)


MIGRATIONS = Migrations("alerts", [(1, "alerts inbox, issues, tickets, tasks, storms",
                                    _create_tables)])

ID_PATTERN = r"[A-Za-z0-9_.:-]{1,120}"
LISTED = 30
PENDING_SHOWN = 50
SENTRY_CALL_TIMEOUT = 30.0


# ------------------------------------------------------------------------ lifecycle


def service_of(bot: Any) -> AlertsService:
    service: AlertsService | None = bot.services.get(alerts_service.AlertsService)
    if service is None:  # a bot built without the handlers' startup (one-shot tools)
        service = bot.services.add(alerts_service.AlertsService(bot))
    return service


async def startup(bot: Any) -> None:
    service_of(bot).start()


async def shutdown(bot: Any) -> None:
    service = bot.services.pop(alerts_service.AlertsService)
    if service is not None:
        await service.close()


@route("POST", "/webhooks/sentry")
async def sentry_webhook(bot: Any, request: web.Request) -> web.StreamResponse:
    from bot.alerts.webhooks import receive_signed  # the HTTP server's side (aiohttp)

    return await receive_signed(bot, request, on_accept=service_of(bot).kick)


@route("POST", "/webhooks/sentry/legacy/{secret}")
async def sentry_legacy_webhook(bot: Any, request: web.Request) -> web.StreamResponse:
    from bot.alerts.webhooks import receive_legacy

    return await receive_legacy(bot, request, on_accept=service_of(bot).kick)


@every(15, name="alerts.drain", jitter=0)
async def drain_backstop(bot: Any) -> None:
    """The loop is woken by every stored delivery; this wakes it anyway (retries coming due,
    a kick lost in another replica) and restarts it if it ever stopped."""
    service = service_of(bot)
    service.start()
    service.kick()


@every(POLL_TICK_SECONDS, name="alerts.poll", jitter=0.2)
async def poll_sentry(bot: Any) -> None:
    """Poll the projects of ``sentry.poll.projects`` whose interval came round."""
    service = service_of(bot)
    if await poll.poll_due(bot, service.sentry, service.api, clock.utcnow()):
        service.kick()


@every(3600, name="alerts.prune", jitter=0.1)
async def prune(bot: Any) -> None:
    """Forget processed inbox rows older than ``alerts.keep_days`` (pending ones never)."""
    keep = (ALERTS.of(bot.config) or AlertsConfig()).keep_days
    await bot.database.run(inbox.prune, clock.utcnow() - timedelta(days=keep))


def check_config(config: Config) -> list[Problem]:
    """Routes name known channels (and mentions known names: a warning), polling has API
    access, automatic tickets have a GitLab to go to."""
    section = ALERTS.of(config)
    sentry = SENTRY.of(config)
    problems: list[Problem] = []
    if section is not None:
        problems += _route_problems(section, config)
        if section.auto_ticket.enabled and not _gitlab_configured(config):
            problems.append(Problem("alerts.auto_ticket.enabled", "no GitLab to open issues in",
                                    "set gitlab.url, gitlab.token and gitlab.project",
                                    severity="warning"))
    if sentry is not None and sentry.poll.projects and (sentry.token is None or not sentry.org):
        problems.append(Problem("sentry.poll.projects", "polling needs the Sentry API",
                                "set sentry.token and sentry.org"))
    return problems


def _route_problems(section: AlertsConfig, config: Config) -> list[Problem]:
    known = set(config.people) | set(config.groups) | set(config.roles)
    problems = []
    for i, rule in enumerate(section.routes):
        for j, alias in enumerate(rule.channels):
            if alias not in config.channels:
                problems.append(Problem(f"alerts.routes[{i}].channels[{j}]",
                                        f"unknown channel alias '{alias}'",
                                        "add it under 'channels:'"))
        for j, name in enumerate(rule.mention):
            if name not in known:
                problems.append(Problem(
                    f"alerts.routes[{i}].mention[{j}]", f"'{name}' is not a person, group or "
                    "role in the config", "fine for a role a provider grants (on-shift); "
                    "otherwise nobody is mentioned", severity="warning"))
    return problems


def _gitlab_configured(config: Config) -> bool:
    gitlab = config.feature_sections.get("gitlab")
    return bool(gitlab is not None and getattr(gitlab, "url", None)
                and getattr(gitlab, "token", None) and getattr(gitlab, "project", None))


# ------------------------------------------------------------------------ helpers


async def _issue(ctx: Context) -> IssueRow:
    ref = ctx.args["id"]
    found = await ctx.bot.database.run(issues.find, ref)
    if found is None:
        raise CommandError(f"no alert '{user(ref)}' (`alerts list` shows the known ones; "
                           "an id is Sentry's number or its short id, e.g. GWCELERY-1Z)")
    return found


# ------------------------------------------------------------------------ commands


@command("alerts list", summary="Known Sentry issues and metric alerts, latest change first",
         permission="alerts",
         options=[Opt("open", kind="flag", help="only the unresolved ones"),
                  Opt("limit", kind="int", default=LISTED, min_value=1, max_value=500,
                      help="at most this many")],
         examples=["alerts list", "alerts list --open"])
async def listing(ctx: Context) -> Reply:
    rows, total = await ctx.bot.database.run(issues.listing, open_only=bool(ctx.args["open"]),
                                             limit=ctx.args["limit"])
    what = "open alert" if ctx.args["open"] else "alert"
    if not rows:
        return Reply(f"No {what}s yet.", title="alerts")
    return Reply(f"{total} {what}{'s' if total != 1 else ''}; `alerts show ID` for one.",
                 title="alerts",
                 table=views.list_table(rows, total, clock.utcnow()))


@command("alerts show", summary="One alert: its Sentry issue, counts, chat post and ticket",
         permission="alerts", args=[Arg("id", pattern=ID_PATTERN,
                                        help="Sentry's issue id or short id (GWCELERY-1Z)")],
         examples=["alerts show GWCELERY-1Z", "alerts show 4504"])
async def show(ctx: Context) -> Reply:
    issue = await _issue(ctx)
    ticket = await ctx.bot.database.run(service_of(ctx.bot).tickets.ticket_of, issue.subject)
    data = views.show_data(issue, ticket, ctx.bot.config.bot.timezone, clock.utcnow())
    return Reply(template="alerts_show.j2", data=data, title=posting.title_of(issue),
                 level=posting.reply_level(issue.level, issue.status),
                 actions=posting.buttons(issue, ticket_url=data["ticket"]))


@command("alerts pending", summary="Deliveries not processed yet and calls waiting for a retry",
         permission="alerts", examples=["alerts pending"])
async def pending(ctx: Context) -> Reply:
    rows = await ctx.bot.database.run(views.inbox_not_done, PENDING_SHOWN)
    waiting = await ctx.bot.database.run(alert_tasks.unfinished, PENDING_SHOWN)
    if not rows and not waiting:
        return Reply("Nothing pending: every delivery is processed and every call made.",
                     title="alerts pending", level=Level.OK)
    table = views.pending_table(rows, waiting, ctx.bot.config.bot.timezone, clock.utcnow())
    return Reply(f"{len(rows)} deliveries not processed (or failed), {len(waiting)} calls "
                 "waiting (or failed).",
                 title="alerts pending", table=table)


@command("alerts ticket", summary="Open the GitLab issue of a Sentry issue (or show it)",
         permission="alerts.ticket", args=[Arg("id", pattern=ID_PATTERN,
                                               help="Sentry's issue id or short id")],
         examples=["alerts ticket GWCELERY-1Z"])
async def ticket(ctx: Context) -> Reply:
    issue = await _issue(ctx)
    if issue.issue_id is None:
        raise CommandError("metric alerts have no Sentry issue to open a GitLab issue for")
    service = service_of(ctx.bot)
    problem = service.tickets.gitlab_ready(ctx.bot.config)
    if problem:
        raise CommandError(f"cannot open a GitLab issue: {problem}")
    mapped = await ctx.bot.database.run(service.tickets.ticket_of, issue.subject)
    if mapped is not None:
        return Reply(f"{_name(issue)} already has its GitLab issue: {mapped.web_url}",
                     title="alerts ticket")
    queued = await ctx.bot.database.run(_want_ticket, service, issue.subject, ctx.caller.label)
    service.kick()
    said = "is being opened" if queued else "was already asked for"
    return Reply(f"The GitLab issue of {_name(issue)} {said}; its link is posted in the "
                 "alert's thread.", title="alerts ticket", level=Level.OK,
                 visibility=Visibility.CHANNEL)


def _want_ticket(conn: Any, service: AlertsService, subject: str, who: str) -> bool:
    return bool(service.tickets.want_ticket(conn, subject, clock.utcnow(),
                                            reason=f"asked by {who}"))


def _name(issue: IssueRow) -> str:
    return user(issue.short_id or issue.ref)


async def _set_status(ctx: Context, status: str) -> Reply:
    issue = await _issue(ctx)
    if issue.issue_id is None:
        raise CommandError("metric alerts are resolved by their metric, not by hand")
    service = service_of(ctx.bot)
    if service.api is None:
        raise CommandError(f"alerts {ctx.spec.name} needs the Sentry API: set sentry.token "
                           "and sentry.org (docs/alerts.md)")
    from bot.alerts.sentry_api import SentryError

    try:
        await service.api.set_status(issue.issue_id, status)
    except SentryError as exc:
        raise CommandError(f"Sentry did not {ctx.spec.name} {_name(issue)}: {exc}") from None
    await service.set_status(issue.subject, status)
    return Reply(f"{_name(issue)} {status} in Sentry by {ctx.caller.label}.", level=Level.OK,
                 title=f"alerts {ctx.spec.name}", visibility=Visibility.CHANNEL)


@command("alerts resolve", summary="Resolve a Sentry issue (in Sentry and here)",
         permission="alerts.resolve", args=[Arg("id", pattern=ID_PATTERN,
                                                help="Sentry's issue id or short id")],
         examples=["alerts resolve GWCELERY-1Z"], slow=True, timeout=SENTRY_CALL_TIMEOUT)
async def resolve(ctx: Context) -> Reply:
    return await _set_status(ctx, issues.RESOLVED)


@command("alerts ignore", summary="Ignore a Sentry issue (in Sentry and here)",
         permission="alerts.ignore", args=[Arg("id", pattern=ID_PATTERN,
                                               help="Sentry's issue id or short id")],
         examples=["alerts ignore GWCELERY-1Z"], slow=True, timeout=SENTRY_CALL_TIMEOUT)
async def ignore(ctx: Context) -> Reply:
    return await _set_status(ctx, issues.IGNORED)


@command("alerts simulate",
         summary="Feed a signed sample Sentry delivery through the webhook's path (demo, tests)",
         permission="alerts.simulate",
         args=[Arg("sample", required=False, choices=("issue", "event", "metric", "repeat",
                                                      "resolve", "regress", "assign"),
                   help="issue (default), event, metric; or for an existing alert (--id): "
                        "repeat, resolve, regress, assign")],
         options=[Opt("level", choices=("debug", "info", "warning", "error", "fatal"),
                      default="error", help="the new issue's level"),
                  Opt("project", pattern=r"[a-z0-9][a-z0-9_-]{0,49}", default="gwcelery",
                      help="the Sentry project slug"),
                  Opt("environment", pattern=r"[A-Za-z0-9_.-]{1,50}", default="production"),
                  Opt("id", pattern=ID_PATTERN, help="the alert a follow-up is about "
                      "(default: the latest)")],
         help="Builds a Sentry payload with fresh ids, signs it with sentry.client_secret (or "
              "the demo secret) and stores it exactly as the webhook does; the processor then "
              "posts it. Try: alerts simulate; alerts simulate event --level fatal; "
              "alerts simulate resolve; alerts simulate regress.",
         examples=["alerts simulate", "alerts simulate event --level fatal",
                   "alerts simulate regress --id GWCELERY-1Z"])
async def simulate(ctx: Context) -> Reply:
    return await simulation.simulate_reply(ctx, service_of(ctx.bot))
