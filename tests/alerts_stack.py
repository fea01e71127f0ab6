"""The alerts test stack (#14): a bot config with the alerts feature wired to loopback fakes
(Slack or Mattermost, GitLab, optionally the Sentry API), and readers of what each side holds
afterwards: the chat channel (top-level posts and thread replies, by notice key), the fake
GitLab's issues, and the feature's tables. Used in process (:class:`Rig`, :func:`start_rig`:
tests/test_alerts_e2e.py) and by a real bot process (tests/alerts_proc.py,
tests/test_alerts_crash.py, bench/bench_alerts.py).

What people see is compared through the notice tags the platforms carry (``<key>#<step>``): a
top-level post tagged ``alert:sentry:<id>#0`` is that Sentry issue's own post; one tagged with a
``storm:`` key is a storm summary."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import BASE, CORE_HANDLERS, console, deep_merge
from fakes.gitlab import FakeGitLab, GitLabState
from fakes.mattermost import FakeMattermost
from fakes.sentry import TOKEN, FakeSentry, SentrySender, SentryState
from fakes.slack import FakeSlack
from notice_stack import MM_USERS, NOTICES, SLACK_CHANNEL, SLACK_USERS, free_port, mm_replies
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Connection

from bot.adapters.console import format_reply
from bot.alerts import tables
from bot.clock import ManualClock
from bot.config import parse_config
from bot.core import Bot
from bot.lifecycle import Lifecycle
from bot.messaging.port import NOTICE_TAG
from bot.runtime import build_adapters

CLIENT_SECRET = "sentry-client-secret-0123456789abcdef"  # signs Sentry-Hook-Signature
LEGACY_SECRET = "legacy-url-secret-9f8e7d6c5b4a"  # /webhooks/sentry/legacy/<this>
SENTRY_ORG = "ligo"
GITLAB_TOKEN = "glpat-shiftbot-test-token"  # the fake GitLab's default token
GITLAB_PROJECT = "emfollow/gwcelery"
GITLAB_LABELS = ["sentry", "bot"]
ALERTS_HANDLERS = ["handlers.alerts", "handlers.alerts_sentry", "handlers.restart_gitlab"]
ALIAS = "alerts"  # the channel alias alerts are routed to
STORM_THRESHOLD = 5
# Storm window: long enough that a whole test (real or manual time) stays inside one window.
STORM_WINDOW = "1d"


def storm_bound(new_issues: int, threshold: int = STORM_THRESHOLD) -> int:
    """Top-level posts the storm rule allows for ``new_issues`` new issues of one project and
    environment within one window: the first ``threshold`` alone, then one summary."""
    return min(new_issues, threshold) + (1 if new_issues > threshold else 0)


def gitlab_state() -> GitLabState:
    state = GitLabState(tokens=(GITLAB_TOKEN,))
    state.add_project(GITLAB_PROJECT)
    return state


def alerts_config(database: str, *, http_port: int, gitlab_url: str, chat: dict[str, Any],
                  sentry_api: str | None = None, alerts: dict[str, Any] | None = None,
                  sentry: dict[str, Any] | None = None) -> dict[str, Any]:
    """A raw config: the chat platform ``chat`` (:func:`chat_section`), GitLab at
    ``gitlab_url``, the alerts feature routing everything to the ``alerts`` alias with the
    shifters mentioned and opening tickets automatically for level >= error. ``sentry_api``:
    the fake Sentry's API URL (token and org set: enrichment, link back, polling)."""
    raw = deep_merge(BASE, {
        "bot": {"handlers": [*CORE_HANDLERS, *ALERTS_HANDLERS], "database": database,
                "http": {"host": "127.0.0.1", "port": http_port,
                         "public_url": f"http://127.0.0.1:{http_port}"}},
        # Mattermost knows people by username (the fake's ids are random), Slack by BASE's ids.
        "people": {name: {"mattermost": None, "mattermost_username": name}
                   for name in MM_USERS},
        "roles": {"shifter": {"allow": ["sample.*", "audit", "alerts", "alerts.*"]}},
        "notices": dict(NOTICES),
        "gitlab": {"url": gitlab_url, "token": GITLAB_TOKEN, "project": GITLAB_PROJECT,
                   "labels": GITLAB_LABELS, "timeout_seconds": 5},
        "sentry": {"client_secret": CLIENT_SECRET, "legacy_secret": LEGACY_SECRET,
                   "timeout_seconds": 5},
        "alerts": {"routes": [{"channels": [ALIAS], "mention": ["shifters"]}],
                   "storm": {"window": STORM_WINDOW, "threshold": STORM_THRESHOLD},
                   "auto_ticket": {"enabled": True, "min_level": "error"},
                   "link_back": sentry_api is not None},
        **chat,
    })
    if sentry_api is not None:
        raw["sentry"].update({"api_url": sentry_api, "token": TOKEN, "org": SENTRY_ORG})
    return deep_merge(deep_merge(raw, {"sentry": sentry or {}}), {"alerts": alerts or {}})


def slack_section(api_url: str, bot_token: str, signing_secret: str) -> dict[str, Any]:
    return {"slack": {"mode": "http", "bot_token": bot_token, "signing_secret": signing_secret,
                      "api_url": api_url, "request_timeout_seconds": 10,
                      "channels": {"ops": "#shifters", ALIAS: SLACK_CHANNEL[ALIAS]}}}


def chat_section(chat: FakeSlack | FakeMattermost) -> dict[str, Any]:
    """The config section of a started fake chat platform (the ``alerts`` alias on it)."""
    if isinstance(chat, FakeSlack):
        return slack_section(chat.api_url, chat.bot_token, chat.signing_secret)
    from mattermost_harness import FAST

    return {"mattermost": {"url": chat.url, "token": chat.bot_token, "team": chat.team.name,
                           "channels": {"ops": "ops", ALIAS: ALIAS}, **FAST,
                           "request_timeout_seconds": 10}}


def chat_fake(platform: str) -> FakeSlack | FakeMattermost:
    """The fake chat platform, not started yet (``async with`` it)."""
    if platform == "slack":
        return FakeSlack(users=SLACK_USERS)
    return FakeMattermost(users=MM_USERS, channels=(("town-square", "O"), ("ops", "O"),
                                                    (ALIAS, "O")), ping_interval=0.5)


# ------------------------------------------------------------------------ what people see


@dataclass(frozen=True)
class Post:
    text: str
    key: str | None  # the notice key (tag without its step)
    message_id: str


def top_posts(chat: FakeSlack | FakeMattermost) -> list[Post]:
    """The bot's top-level posts in the alerts channel, oldest first."""
    if isinstance(chat, FakeSlack):
        return [Post(_slack_text(m), _key(_tag_of(m.metadata)), m.ts)
                for m in chat.messages(SLACK_CHANNEL[ALIAS], ephemeral=False)
                if not m.thread_ts or m.thread_ts == m.ts]
    return [Post(p["message"], _key(p["props"].get(NOTICE_TAG)), p["id"])
            for p in chat.posts(ALIAS) if p["user_id"] == chat.bot.id and not p["root_id"]]


def replies(chat: FakeSlack | FakeMattermost, root: Post) -> list[str]:
    """Texts of the thread replies under ``root``, oldest first."""
    if isinstance(chat, FakeSlack):
        return [_slack_text(m) for m in chat.messages(SLACK_CHANNEL[ALIAS],
                                                      thread_ts=root.message_id,
                                                      ephemeral=False)
                if m.ts != root.message_id]
    return [text for text, _tag in mm_replies(chat, root.message_id)]


def own_post(chat: FakeSlack | FakeMattermost, subject: str) -> Post | None:
    """The top-level post of ``subject`` (``sentry:<id>``, its notice ``alert:sentry:<id>``);
    AssertionError if several."""
    posts = [p for p in top_posts(chat) if p.key == f"alert:{subject}"]
    assert len(posts) <= 1, f"{len(posts)} top-level posts for {subject}"
    return posts[0] if posts else None


def _slack_text(message: Any) -> str:
    """All a Slack message shows: its blocks' texts (the top-level ``text`` is only the
    notification fallback, cut short), else its text."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.blocks or [])
    return "\n".join(found) if found else (message.text or "")


def _tag_of(metadata: dict[str, Any] | None) -> str | None:
    if not metadata or metadata.get("event_type") != NOTICE_TAG:
        return None
    return str((metadata.get("event_payload") or {}).get("tag"))


def _key(tag: str | None) -> str | None:
    return tag.rpartition("#")[0] if tag and "#" in tag else tag


def mention_of(chat: FakeSlack | FakeMattermost) -> str:
    """How the shifter alice is mentioned on ``chat``."""
    if isinstance(chat, FakeSlack):
        return "<@U0ALICE01>"
    return "@alice"


# ------------------------------------------------------------------------ GitLab


def issues_by_marker(state: GitLabState) -> Counter[str]:
    """How many GitLab issues carry each ``<!-- sentry-issue:ID -->`` marker."""
    found: Counter[str] = Counter()
    for issue in state.issues:
        for part in issue.description.split("<!-- sentry-issue:")[1:]:
            found[part.split(" ", 1)[0].split("-->", 1)[0].strip()] += 1
    return found


def creates(state: GitLabState) -> int:
    """POST /issues requests the fake answered 201 (failed attempts left out)."""
    return sum(1 for r in state.requests
               if r.method == "POST" and r.path.endswith("/issues") and r.status == 201)


# ------------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class Tables:
    """What the feature's tables hold (a snapshot read in one transaction)."""

    inbox: list[Any]
    issues: list[Any]
    tickets: list[Any]
    tasks: list[Any]
    storms: list[Any]

    @property
    def pending_inbox(self) -> int:
        return sum(1 for r in self.inbox if r.state == tables.PENDING)

    @property
    def pending_tasks(self) -> list[Any]:
        return [t for t in self.tasks if t.state == tables.PENDING]


def read_tables(conn: Connection) -> Tables:
    def rows(table: Any, order: Any) -> list[Any]:
        return list(conn.execute(select(table).order_by(order)))

    return Tables(rows(tables.inbox, tables.inbox.c.id),
                  rows(tables.issues, tables.issues.c.subject),
                  rows(tables.tickets, tables.tickets.c.subject),
                  rows(tables.tasks, tables.tasks.c.id),
                  rows(tables.storms, tables.storms.c.key))


def read_tables_at(url: str) -> Tables:
    """:func:`read_tables` from outside the bot's process (the crash tests)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return read_tables(conn)
    finally:
        engine.dispose()


def busy(conn: Connection, now: Any) -> int:
    """Inbox rows still pending plus tasks pending and due by ``now``: 0 when the pipeline
    has nothing left to do right now."""
    inbox = conn.execute(select(func.count()).select_from(tables.inbox).where(
        tables.inbox.c.state == tables.PENDING)).scalar_one()
    due = conn.execute(select(func.count()).select_from(tables.tasks).where(
        tables.tasks.c.state == tables.PENDING, tables.tasks.c.next_at <= now)).scalar_one()
    return int(inbox) + int(due)


def pending_later(conn: Connection) -> int:
    """Tasks still pending (waiting for their retry): what a settle leaves for later."""
    return int(conn.execute(select(func.count()).select_from(tables.tasks).where(
        tables.tasks.c.state == tables.PENDING)).scalar_one())


def kick(bot: Any) -> None:
    """Wake the alerts service's drain loop (it wakes by itself too: this only saves time)."""
    from bot.alerts.service import AlertsService

    service = bot.services.get(AlertsService)
    if service is not None:
        service.kick()


async def settle(bot: Any, timeout: float) -> int | None:
    """Wake the pipeline until nothing is left to do now (no pending inbox row, no due task,
    every notice delivered), twice in a row since one step may enqueue the next. Returns the
    tasks still pending for later (waiting for a retry), or None on timeout."""
    from bot import clock

    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        kick(bot)
        left = await bot.database.run(busy, clock.utcnow())
        idle = await bot.notices.idle(max(0.1, min(5.0, deadline - time.monotonic())))
        quiet = quiet + 1 if left == 0 and idle else 0
        if quiet >= 2:
            return int(await bot.database.run(pending_later))
        await asyncio.sleep(0.05)
    return None


async def until(condition: Callable[[], object], timeout: float, what: str,
                step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        await asyncio.sleep(step)


# ------------------------------------------------------------------------ in process (e2e)

PROJECT = "gwcelery"  # the Sentry project of the e2e tests' issues
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@dataclass
class Rig:
    chat: FakeSlack
    gitlab: GitLabState
    sentry: SentryState
    send_to: SentrySender
    bot: Bot
    clock: ManualClock

    async def send(self, resource: str, payload: dict[str, Any] | None = None,
                   **options: Any) -> int:
        status, _body = await self.send_to.send(resource, payload, **options)
        return status

    async def settle(self, timeout: float = 20) -> int:
        """Until the pipeline has nothing due; the tasks left waiting for a retry."""
        later = await settle(self.bot, timeout)
        assert later is not None, f"still busy after {timeout} s: {await self.tables()}"
        return later

    async def advance(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return await self.settle()

    async def tables(self) -> Tables:
        return await self.bot.database.run(read_tables)

    async def command(self, line: str, person: str = "alice") -> str:
        outcome = await self.bot.handle(console(person, line))
        return format_reply(outcome.reply)

    def known(self, *issue_ids: str) -> None:
        """The issues exist in Sentry too (the API enriches their event alerts)."""
        for issue_id in issue_ids:
            self.sentry.add_issue(issue_id, project=PROJECT, short_id=f"GWCELERY-{issue_id}",
                                  title=f"TimeoutError: task {issue_id} took too long",
                                  first_seen=T0, last_seen=self.clock.now)

    def post_of(self, issue_id: str) -> Post:
        post = own_post(self.chat, f"sentry:{issue_id}")
        assert post is not None, f"no post for {issue_id}: {top_posts(self.chat)}"
        return post


async def start_rig(tmp_path: Path, clock: ManualClock, **overrides: Any
                    ) -> AsyncIterator[Rig]:
    sentry_state = SentryState(tokens={TOKEN})
    async with FakeSlack(users=SLACK_USERS) as chat, FakeGitLab(gitlab_state()) as gitlab, \
            FakeSentry(sentry_state) as sentry:
        port = free_port()
        raw = alerts_config(f"sqlite:///{tmp_path / 'bot.db'}", http_port=port,
                            gitlab_url=gitlab.url, chat=chat_section(chat),
                            sentry_api=sentry.api_url, **overrides)
        lifecycle = Lifecycle(parse_config(raw, tmp_path), adapters=build_adapters)
        bot = await lifecycle.start()
        try:
            async with SentrySender(f"http://127.0.0.1:{port}", CLIENT_SECRET) as sender:
                yield Rig(chat, gitlab.state, sentry_state, sender, bot, clock)
        finally:
            await lifecycle.stop()


def issue(sender: SentrySender, issue_id: str, action: str = "created",
          minute: int | None = None, **changes: Any) -> dict[str, Any]:
    """An ``issue`` webhook (``action``) for Sentry issue ``issue_id`` of PROJECT, last seen
    at 09:``minute`` (its status follows the action)."""
    if minute is not None:
        changes["last_seen"] = f"2026-12-03T09:{minute:02d}:00Z"
    status = action if action in ("resolved", "ignored") else "unresolved"
    return sender.variant(sender.sample("issue_created"), action=action, issue_id=issue_id,
                          project=PROJECT, title=f"TimeoutError: task {issue_id} took too long",
                          short_id=f"GWCELERY-{issue_id}", status=status, **changes)


def event(sender: SentrySender, issue_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
    return sender.variant(sender.sample("event_alert_triggered_python"), issue_id=issue_id,
                          event_id=event_id, project=PROJECT, level="error",
                          environment="production", **changes)
