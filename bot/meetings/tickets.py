"""Action items -> tracker issues (GitLab or GitHub), each exactly once.

``meeting_tickets`` (primary key: the item) is the truth. Before creating, the tracker is
searched for the body marker ``<!-- shiftbot-action:<item id> -->``: a crash between the
tracker's answer and our write, or a 5xx/timeout after the tracker created it, leaves an issue
the next try finds instead of opening a second. Two processes racing both record; the first
mapping holds (``record_ticket``), and the loser's issue is reported as a duplicate (rare:
``report ticket`` is a person's command).

GitLab goes through ``bot/integrations/gitlab.py`` (the ``gitlab:`` section: load
``handlers.restart_gitlab``); GitHub through ``bot/integrations/github.py``
(``meetings.github``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot import clock
from bot.integrations.github import GitHubClient, GitHubError
from bot.integrations.gitlab import GITLAB, GitLabClient, GitLabError
from bot.meetings import store
from bot.meetings.config import SeriesSpec, TrackerSpec
from bot.meetings.reports import settings_of
from bot.timefmt import format_local

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

TrackerError = (GitLabError, GitHubError)
STATE_TIMEOUT = 8.0  # refreshing tickets' states before a reminder, at most


def marker_for(item_id: int) -> str:
    return f"<!-- shiftbot-action:{int(item_id)} -->"


@dataclass(frozen=True, slots=True)
class Issue:
    number: int
    url: str
    state: str  # open | closed


class Tracker(Protocol):
    kind: str
    project: str

    async def find(self, marker: str, since: datetime) -> Issue | None: ...

    async def create(self, title: str, body: str, labels: list[str]) -> Issue: ...

    async def state(self, ticket: store.Ticket) -> str: ...


class GitLabTracker:
    kind = "gitlab"

    def __init__(self, client: GitLabClient, project: str) -> None:
        self.client, self.project = client, project

    @staticmethod
    def _issue(found: object) -> Issue:
        state = "closed" if getattr(found, "state", "") == "closed" else "open"
        return Issue(found.iid, found.web_url, state)  # type: ignore[attr-defined]

    async def find(self, marker: str, since: datetime) -> Issue | None:
        found = await self.client.find_issue_with(self.project, marker)
        return None if found is None else self._issue(found)

    async def create(self, title: str, body: str, labels: list[str]) -> Issue:
        return self._issue(await self.client.create_issue(self.project, title, body, labels))

    async def state(self, ticket: store.Ticket) -> str:
        found = await self.find(marker_for(ticket.item_id), clock.utcnow())
        return found.state if found is not None else ticket.state


class GitHubTracker:
    kind = "github"

    def __init__(self, client: GitHubClient, repo: str) -> None:
        self.client, self.project = client, repo

    async def find(self, marker: str, since: datetime) -> Issue | None:
        found = await self.client.find_issue_with(self.project, marker, since)
        return None if found is None else Issue(found.number, found.html_url, found.state)

    async def create(self, title: str, body: str, labels: list[str]) -> Issue:
        made = await self.client.create_issue(self.project, title, body, labels)
        return Issue(made.number, made.html_url, made.state)

    async def state(self, ticket: store.Ticket) -> str:
        return (await self.client.issue(self.project, ticket.number)).state


def tracker_for(bot: Bot, spec: TrackerSpec) -> Tracker:
    """The series' tracker client; ValueError saying what configuration is missing."""
    if spec.type == "github":
        settings = settings_of(bot).github
        if settings.token is None:
            raise ValueError("GitHub is not configured: set meetings.github.token")
        assert spec.repo is not None
        return GitHubTracker(GitHubClient.from_config(settings), spec.repo)
    gitlab = GITLAB.of(bot.config)
    if gitlab is None or not gitlab.url or not gitlab.token:
        raise ValueError("GitLab is not configured: load handlers.restart_gitlab and set "
                         "gitlab.url and gitlab.token")
    project = spec.project or gitlab.project
    if not project:
        raise ValueError("no GitLab project: set the tracker's project or gitlab.project")
    return GitLabTracker(GitLabClient.from_config(gitlab), project)


def _body(bot: Bot, series: SeriesSpec, report: store.Report, item: store.Item,
          topic: str) -> str:
    template = bot.renderer.env.get_template("meeting_ticket.md.j2")
    return template.render(title=report.title, when=format_local(report.starts_at, series.zone),
                           owner=item.owner or "", text=item.text, topic=topic,
                           author=item.author, id=item.id, marker=marker_for(item.id)).strip()


async def open_tickets(bot: Bot, series: SeriesSpec, report: store.Report) -> list[str]:
    """One issue per open action item of ``report`` without one; a line per item saying what
    happened. Stops at the first transient failure (rate limit, outage): the rest wait for
    the next ``report ticket``."""
    if series.report.tracker is None:
        raise ValueError(f"meeting series {series.name} has no report.tracker")
    tracker = tracker_for(bot, series.report.tracker)
    labels = list(series.report.tracker.labels)

    def read(conn: object) -> tuple[list[store.Item], dict[int, store.Ticket]]:
        return store.items_of(conn, report.id), store.tickets_of(conn, report.id)  # type: ignore[arg-type]

    items, known = await bot.database.run(read)
    topics = {i.id: i.text for i in items if i.kind == "topic"}
    lines = []
    for item in [i for i in items if i.kind == "action" and i.done_at is None]:
        if item.id in known:
            lines.append(f"#{item.id}: {known[item.id].url} (opened before)")
            continue
        try:
            ticket, verb = await _one(bot, tracker, series, report, item,
                                      topics.get(item.topic_id or -1, ""), labels)
        except TrackerError as exc:
            lines.append(f"#{item.id}: not opened: {exc}")
            if exc.transient:
                break
            continue
        lines.append(f"#{item.id}: {ticket.url} ({verb})")
    return lines


async def _one(bot: Bot, tracker: Tracker, series: SeriesSpec, report: store.Report,
               item: store.Item, topic: str, labels: list[str]) -> tuple[store.Ticket, str]:
    marker = marker_for(item.id)
    issue = await tracker.find(marker, item.created_at - timedelta(days=1))
    verb = "found"
    if issue is None:
        title = f"{report.title}: {item.text}"
        if item.owner:
            title += f" ({item.owner})"
        issue = await tracker.create(title, _body(bot, series, report, item, topic), labels)
        verb = "opened"
    wanted = store.Ticket(item.id, tracker.kind, tracker.project, issue.number, issue.url,
                          issue.state)
    held = await bot.database.run(store.record_ticket, wanted, clock.utcnow())
    if held.number != issue.number:
        log.warning("meetings: action #%s got two issues (%s kept, %s a duplicate)", item.id,
                    held.url, issue.url)
        verb = f"already {held.url}; {issue.url} is a duplicate"
    log.info("meetings: action #%s -> %s (%s)", item.id, held.url, verb)
    return held, verb


async def refresh_states(bot: Bot, spec: SeriesSpec,
                         open_items: list[tuple[store.Item, store.Ticket | None]]) -> set[int]:
    """Ask the tracker whether the open items' tickets were closed meanwhile (within
    STATE_TIMEOUT; failures keep the stored state). The ids whose ticket is closed now."""
    if spec.report.tracker is None or not any(t for _, t in open_items):
        return set()
    try:
        tracker = tracker_for(bot, spec.report.tracker)
    except ValueError:
        return set()
    closed: set[int] = set()

    async def check(ticket: store.Ticket) -> None:
        try:
            state = await tracker.state(ticket)
        except TrackerError as exc:
            log.info("meetings: state of %s unknown (%s)", ticket.url, exc)
            return
        if state != ticket.state:
            await bot.database.run(store.set_ticket_state, ticket.item_id, state,
                                   clock.utcnow())
        if state == store.CLOSED:
            closed.add(ticket.item_id)

    checks = [check(t) for _, t in open_items if t is not None]
    try:
        async with asyncio.timeout(STATE_TIMEOUT):
            await asyncio.gather(*checks)
    except TimeoutError:
        log.info("meetings: the trackers' states did not all come within %ss", STATE_TIMEOUT)
    return closed
