"""What alerts look like in chat: the Replies of the notice tasks (docs/alerts.md, "Posts").

One notice per Sentry issue (``alert:<subject>``), updated in place with its count, last seen
and state; a regression and an assignment answer in its thread; a storm summary lists many
issues in one post (``storm:...``); a metric alert has its own notice. Everything Sentry sends
(titles, culprits, tags, names) is user text: marked with ``user``/``code`` here or ``|user``
in the templates, so the renderer escapes it per platform. Links are shown only when they are
plain http(s) URLs (``bot.reply.link_url``), so a payload cannot smuggle markup through one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.alerts.issues import IGNORED, RESOLVED, UNRESOLVED, IssueRow
from bot.alerts.storm import Storm
from bot.markup import user
from bot.render import format_duration
from bot.reply import Action, Level, Reply, link_url
from bot.timefmt import format_clock

SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")  # what may go into a button's command line
STORM_SHOWN = 40  # issues a storm summary lists; the rest: "and N more (alerts list)"
LEVEL_OF = {"fatal": Level.ERROR, "error": Level.ERROR, "warning": Level.WARNING}


def safe_link(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) link (shown as trusted text), else None."""
    if not url:
        return None
    try:
        return link_url(url)
    except ValueError:
        return None


def reply_level(level: str | None, status: str) -> Level:
    if status in (RESOLVED, IGNORED):
        return Level.OK if status == RESOLVED else Level.INFO
    return LEVEL_OF.get((level or "error").lower(), Level.INFO)


def name_of(issue: IssueRow) -> str:
    """``GWCELERY-1Z`` (or the numeric id), marked as user text."""
    return user(issue.short_id or issue.issue_id or issue.subject)


def buttons(issue: IssueRow, *, ticket_url: str | None) -> list[Action]:
    """Open GitLab issue / Resolve / Ignore / Analyze job (each runs a command through the
    gate as whoever clicks), and a link to Sentry. Only ids that are plain words get into a
    command line."""
    actions: list[Action] = []
    ref = issue.issue_id
    if ref is not None and SAFE_ID.match(ref):
        if ticket_url is None:
            actions.append(Action.run("Open GitLab issue", f"alerts ticket {ref}"))
        if issue.status == UNRESOLVED:
            actions.append(Action.run("Resolve", f"alerts resolve {ref}", style="primary"))
            actions.append(Action.run("Ignore", f"alerts ignore {ref}"))
    job = issue.alert.condor_job
    if job is not None and issue.status == UNRESOLVED:
        actions.append(Action.run("Analyze job", f"condor analyze {job}"))
    url = safe_link(issue.alert.web_url)
    if url is not None:
        actions.append(Action.link("Open in Sentry", url))
    return actions


def _when(value: datetime | None, zone: str, now: datetime) -> str:
    if value is None:
        return "?"
    shown = format_clock(value, zone, now=now)
    if value > now:
        return shown
    return f"{shown} ({format_duration((now - value).total_seconds())} ago)"


def alert_data(issue: IssueRow, zone: str, now: datetime, *,
               ticket_url: str | None = None) -> dict[str, Any]:
    """Template data of one issue (the notice and ``alerts show``)."""
    alert = issue.alert
    return {
        "name": name_of(issue), "title": alert.title or issue.title, "culprit": alert.culprit,
        "level": (alert.level or "error").upper(), "status": issue.status,
        "project": alert.project or "?", "environment": alert.environment,
        "release": alert.release, "count": issue.count, "users": alert.user_count,
        "first_seen": _when(issue.first_seen, zone, now),
        "last_seen": _when(issue.last_seen, zone, now),
        "regressions": issue.regressions, "assignee": alert.assignee,
        "job": alert.condor_job, "rule": alert.triggered_rule,
        "url": safe_link(alert.web_url), "ticket": safe_link(ticket_url),
        "substatus": alert.substatus,
    }


def title_of(issue: IssueRow) -> str:
    state = f" ({issue.status})" if issue.status != UNRESOLVED else ""
    level = (issue.alert.level or "error").upper()
    return f"{level} {name_of(issue)}: {user(issue.alert.title or issue.title)}{state}"


def alert_reply(issue: IssueRow, zone: str, now: datetime, *,
                ticket_url: str | None = None) -> Reply:
    """The issue's notice: posted once, then updated in place."""
    return Reply(template="alerts_notice.j2", title=title_of(issue),
                 data=alert_data(issue, zone, now, ticket_url=ticket_url),
                 level=reply_level(issue.level, issue.status),
                 actions=buttons(issue, ticket_url=ticket_url))


def regression_reply(issue: IssueRow, was: str, zone: str, now: datetime) -> Reply:
    """A thread reply: the issue came back after it was resolved or ignored (the route's
    people are mentioned by the notice, as on the first post)."""
    data = {**alert_data(issue, zone, now), "was": was}
    return Reply(template="alerts_regression.j2", data=data,
                 title=f"Regression: {name_of(issue)} is back",
                 level=reply_level(issue.level, UNRESOLVED),
                 actions=[a for a in buttons(issue, ticket_url="-")
                          if a.command and a.command.startswith(("alerts resolve",
                                                                 "alerts ignore"))])


def assigned_reply(issue: IssueRow, assignee: str | None) -> Reply:
    who = user(assignee) if assignee else "nobody"
    return Reply(text=f"{name_of(issue)} assigned to {who} in Sentry.")


def metric_reply(issue: IssueRow, zone: str, now: datetime) -> Reply:
    """A metric alert's notice (keyed by its id): critical/warning, then resolved."""
    alert = issue.alert
    resolved = alert.action == "resolved" or issue.status == RESOLVED
    level = Level.OK if resolved else (Level.WARNING if alert.action == "warning"
                                       else Level.ERROR)
    data = {"title": alert.title, "description": alert.description,
            "action": alert.action, "resolved": resolved, "url": safe_link(alert.web_url),
            "project": alert.project, "since": _when(issue.created_at, zone, now)}
    url = safe_link(alert.web_url)
    return Reply(template="alerts_metric.j2", data=data, level=level,
                 title=f"Metric alert {user(alert.title or alert.metric_id or '?')}: "
                       f"{'resolved' if resolved else user(alert.action)}",
                 actions=[Action.link("Open in Sentry", url)] if url else [])


def span(seconds: float) -> str:
    """``5 min``, ``90 s``, ``3 h``: how long a storm's window reads in its title."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def storm_reply(storm: Storm, members: Sequence[IssueRow], window: float, zone: str,
                now: datetime) -> Reply:
    """The storm summary: how many new issues, since when, and the list."""
    shown = [{"level": (m.alert.level or "error").upper(), "name": name_of(m),
              "title": m.alert.title or m.title, "count": m.count, "status": m.status,
              "ref": m.ref, "regressions": m.regressions}
             for m in members[:STORM_SHOWN]]
    where = user(storm.project or "?") + (f"/{user(storm.environment)}"
                                           if storm.environment else "")
    total = len(members)
    data = {"count": total, "where": where, "since": format_clock(storm.started_at, zone,
                                                                   now=now),
            "window": format_duration(window), "issues": shown,
            "more": max(total - len(shown), 0),
            "span": span(max((storm.updated_at - storm.started_at).total_seconds(), window))}
    worst = min((reply_level(m.level, m.status) for m in members),
                key=[Level.ERROR, Level.WARNING, Level.INFO, Level.OK].index,
                default=Level.WARNING)
    return Reply(template="alerts_storm.j2", data=data, level=worst,
                 title=f"{total} new issue{'s' if total != 1 else ''} in {where} "
                       f"in the last {data['span']}")
