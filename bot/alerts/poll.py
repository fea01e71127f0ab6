"""Polling mode (``sentry.poll``; docs/alerts.md, "Polling"): for sites Sentry cannot reach.

Every ``sentry.poll.interval`` each project of ``sentry.poll.projects`` is asked for its
unresolved issues (``SentryApi.unresolved_issues``); each issue becomes a ``poll`` alert
(``payloads.parse_polled``) stored through ``inbox.accept``, with the same dedupe as webhooks:
``poll:<id>:<lastSeen>:<status>``, so an issue unchanged since the last poll is not stored
again, and the processor's decision sees a new issue (new), a newer ``lastSeen`` (repeat) or an
issue resolved here that is unresolved again (regression).

Each poll is claimed (``alerts:poll:<project>:<instant>``, instants on the grid of the
interval as for jobs) so replicas poll each project once per interval.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from bot.alerts import inbox, payloads
from bot.alerts.config import POLL_TICK_SECONDS, SentryConfig
from bot.alerts.model import SentryAlert
from bot.alerts.sentry_api import SentryApi, SentryError
from bot.jobs import CLAIM_MARGIN

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

TICK_SECONDS = POLL_TICK_SECONDS  # the job's period (declared in config.py: read at import)


def instant(now: datetime, interval: float) -> datetime:
    """The latest grid instant at or before ``now`` (the same in every process)."""
    return datetime.fromtimestamp(math.floor(now.timestamp() / interval) * interval, UTC)


def claim_key(project: str, at: datetime) -> str:
    return f"alerts:poll:{project}:{at.isoformat()}"


def _accept_all(conn: Connection, found: Sequence[tuple[SentryAlert, str]],
                now: datetime) -> int:
    return sum(inbox.accept(conn, alert, body, None, now) for alert, body in found)


def parse_all(answer: Sequence[Any], web_url: str | None) -> list[tuple[SentryAlert, str]]:
    """The API's issues as alerts (with the JSON stored for re-parsing); an issue that does
    not parse is left out with one log line."""
    found = []
    for issue in answer:
        try:
            found.append((payloads.parse_polled(issue, web_url=web_url),
                          json.dumps(issue, separators=(",", ":"))))
        except ValueError as exc:
            log.warning("alerts poll: an issue Sentry listed cannot be used: %s", exc)
    return found


async def poll_project(bot: Bot, api: SentryApi, project: str, web_url: str | None,
                       now: datetime) -> int:
    """Poll one project now; returns how many new deliveries were stored."""
    try:
        answer = await api.unresolved_issues(project)
    except SentryError as exc:
        log.warning("alerts poll: project %s: %s; tried again next interval", project, exc)
        return 0
    found = parse_all(answer, web_url)
    if not found:
        return 0
    return await bot.database.run(_accept_all, found, now)


async def poll_due(bot: Bot, settings: SentryConfig, api: SentryApi | None,
                   now: datetime) -> int:
    """Poll each configured project whose interval has a new instant and that this process
    claimed; returns the new deliveries stored (the caller wakes the processor)."""
    if api is None or not settings.poll.projects:
        return 0
    interval = settings.poll.interval
    at = instant(now, interval)
    ttl = timedelta(seconds=interval) + CLAIM_MARGIN
    stored = 0
    for project in settings.poll.projects:
        if await bot.claims.claim(claim_key(project, at), ttl):
            stored += await poll_project(bot, api, project, settings.web_url, now)
    return stored
