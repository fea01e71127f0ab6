"""Shared by the alerts pipeline tests: a bot with the alerts feature on the console platform,
a manual clock, deliveries stored through the webhook's accept path, and a recorder standing
in for the GitLab tickets module (bot/alerts/tickets.py has its own tests), so what the
decision asks of tickets is visible.

The console prints what chat would show: ``[#ops 3] text`` for a post (message 3),
``[#ops 3 updated] text`` for an update of it, ``[#ops > 3] text`` for a reply in its thread.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import CORE_HANDLERS, deep_merge
from fakes.sentry_sender import sample, variant

from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.alerts.sentry_api import SentryApi
from bot.alerts.service import AlertsService
from bot.alerts.webhooks import accept_body
from bot.clock import ManualClock, use_clock, utcnow
from bot.core import Bot

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
SECRET = "test-client-secret"
HANDLERS = [*CORE_HANDLERS, "handlers.alerts", "handlers.alerts_sentry",
            "handlers.restart_gitlab"]

ALERTS_CONFIG: dict[str, Any] = {
    "bot": {"handlers": HANDLERS},
    "roles": {"viewer": {"allow": ["help", "whoami", "why", "who-can", "alerts"]},
              "shifter": {"allow": ["audit", "alerts.*"]}},
    "notices": {"poll_seconds": 0.05},
    "sentry": {"client_secret": SECRET},
    "alerts": {
        "routes": [{"projects": ["gwcelery"], "min_level": "warning", "channels": ["ops"],
                    "mention": ["shifters"]},
                   {"projects": ["other"], "channels": ["alerts"]}],
        "storm": {"window": 300, "threshold": 3},
    },
}

POST = re.compile(r"^\[#(?P<channel>[\w-]+) (?P<id>\d+)\] (?P<text>.*)$")
UPDATE = re.compile(r"^\[#(?P<channel>[\w-]+) (?P<id>\S+) updated\] (?P<text>.*)$")
THREAD = re.compile(r"^\[#(?P<channel>[\w-]+) > (?P<id>\S+)\] (?P<text>.*)$")


@dataclass
class TicketRecorder:
    """What the decision asks of the tickets module, in order; a ticket is "queued" once."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (function, subject)
    reasons: list[str] = field(default_factory=list)
    queued: set[str] = field(default_factory=set)
    mapped: dict[str, Any] = field(default_factory=dict)  # subject -> a ticket row stand-in
    problem: str | None = None  # gitlab_ready's answer
    HANDLERS: dict[str, Any] = field(default_factory=dict)

    def want_ticket(self, conn: Any, subject: str, now: datetime, *, reason: str) -> bool:
        self.calls.append(("want_ticket", subject))
        self.reasons.append(reason)
        if subject in self.queued or subject in self.mapped:
            return False
        self.queued.add(subject)
        return True

    def note_repeat(self, conn: Any, subject: str, now: datetime, comment_every: float) -> None:
        self.calls.append(("note_repeat", subject))

    def note_regression(self, conn: Any, subject: str, now: datetime) -> None:
        self.calls.append(("note_regression", subject))

    def note_resolved(self, conn: Any, subject: str, now: datetime) -> None:
        self.calls.append(("note_resolved", subject))

    def gitlab_ready(self, config: Any) -> str | None:
        return self.problem

    def ticket_of(self, conn: Any, subject: str) -> Any:
        return self.mapped.get(subject)

    def of(self, subject: str) -> list[str]:
        return [name for name, s in self.calls if s == subject]


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(T0)
    with use_clock(manual):
        yield manual


_ids = iter(range(5_000_000_001, 6_000_000_000))


def next_id() -> str:
    return str(next(_ids))


def stamp() -> str:
    """Now on the test's clock, as Sentry writes times (events happen now)."""
    return utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z")


def issue_payload(issue_id: str, *, action: str = "created", **changes: Any) -> dict[str, Any]:
    """issue.<action> for ``issue_id`` (project gwcelery, level error unless changed)."""
    base = {"project": "gwcelery", "level": "error", "short_id": f"GWCELERY-{issue_id[-4:]}"}
    return variant(sample("issue_created"), issue_id=issue_id, action=action,
                   **{**base, **changes})


def event_payload(issue_id: str, **changes: Any) -> dict[str, Any]:
    """event_alert.triggered: a new event (fresh event id) of ``issue_id``."""
    base = {"project": "gwcelery", "level": "error", "environment": "production",
            "event_id": f"{next_id()}{'0' * 22}", "last_seen": stamp()}
    return variant(sample("event_alert_triggered_python"), issue_id=issue_id,
                   **{**base, **changes})


@dataclass
class Rig:
    bot: Bot
    console: ConsoleAdapter
    out: io.StringIO
    service: AlertsService
    tickets: TicketRecorder

    async def send(self, resource: str, payload: dict[str, Any]) -> bool | None:
        """Store a delivery as the webhook does once the signature checked out."""
        body = json.dumps(payload).encode()
        return await accept_body(self.bot, resource, body, None)

    async def drain(self) -> int:
        processed = await self.service.drain()
        assert await self.bot.notices.idle(5)
        return processed

    async def deliver(self, resource: str, payload: dict[str, Any]) -> None:
        await self.send(resource, payload)
        await self.drain()

    async def run(self, line: str, person: str = "alice") -> str:
        self.console.session.person = person
        start = len(self.out.getvalue())
        await self.console.run_once(line)
        await self.drain()
        return self.out.getvalue()[start:]

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def messages(self, pattern: re.Pattern[str]) -> list[dict[str, str]]:
        """The chat messages of one kind, each with its whole text (the lines after its
        first one, up to the next message)."""
        found: list[dict[str, str]] = []
        current: dict[str, str] | None = None
        for line in self.lines():
            starts = any(p.match(line) for p in (POST, UPDATE, THREAD))
            if starts:
                match = pattern.match(line)
                current = {**match.groupdict(), "text": match["text"]} if match else None
                if current is not None:
                    found.append(current)
            elif current is not None:
                current["text"] += "\n" + line
        return found

    def posts(self, channel: str | None = None) -> list[str]:
        return [m["text"] for m in self.messages(POST)
                if channel is None or m["channel"] == channel]

    def updates(self) -> list[dict[str, str]]:
        return self.messages(UPDATE)

    def threads(self) -> list[dict[str, str]]:
        return self.messages(THREAD)


async def alerts_rig(make_bot: Any, overrides: dict[str, Any] | None = None, *,
                     api: SentryApi | None = None, person: str = "alice") -> Rig:
    bot = await make_bot(deep_merge(ALERTS_CONFIG, overrides or {}), start_handlers=False)
    tickets = TicketRecorder()
    service = bot.services.add(AlertsService(bot, tickets=tickets, api=api, background=False))
    await bot.start_handlers()
    out = io.StringIO()
    console = ConsoleAdapter(bot, ConsoleSession(person), out=out)
    await console.start()
    return Rig(bot, console, out, service, tickets)
