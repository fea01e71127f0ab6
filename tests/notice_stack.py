"""A bot config with Slack and Mattermost both pointing at the loopback fakes, for the notice
end-to-end tests (in process: tests/test_notices_e2e.py) and the crash tests (a real process:
tests/notice_proc.py, tests/test_notices_crash.py); plus readers of what each fake shows in a
channel, so the tests compare what people would see."""

from __future__ import annotations

import socket
from typing import Any

from conftest import BASE, CORE_HANDLERS, deep_merge
from fakes.mattermost import FakeMattermost
from fakes.slack import FakeSlack, User
from mattermost_harness import FAST

from bot.messaging.port import NOTICE_TAG

ALICE, BOB, DAVE = "U0ALICE01", "U0BOB0001", "U0DAVE001"
GENERAL, SHIFTERS = "C00000001", "C00000002"  # Slack: alerts (by id), ops (by #name)
SLACK_USERS = [User(ALICE, "alice"), User(BOB, "bob"), User("U0CAROL01", "carol"),
               User(DAVE, "dave")]
MM_USERS = ("alice", "bob", "carol", "dave")
MM_CHANNELS = (("town-square", "O"), ("ops", "O"), ("alerts", "O"))
SLACK_CHANNEL = {"ops": SHIFTERS, "alerts": GENERAL}  # alias -> Slack channel id
# Small constants: retries and claims move with the test's clock, not with real minutes.
NOTICES: dict[str, Any] = {"retry_min_seconds": 1, "retry_max_seconds": 60,
                           "poll_seconds": 0.05, "send_timeout_seconds": 5,
                           "fail_after_hours": 1, "flush_timeout_seconds": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(slack: FakeSlack, mm: FakeMattermost, database: str, *, http_port: int = 0,
           notices: dict[str, Any] | None = None) -> dict[str, Any]:
    """A raw config: both adapters on the fakes, the aliases ops and alerts on each."""
    public = f"http://127.0.0.1:{http_port}" if http_port else None
    return deep_merge(BASE, {
        "bot": {"handlers": CORE_HANDLERS, "database": database,
                "http": {"host": "127.0.0.1", "port": http_port, "public_url": public}},
        "people": {name: {"mattermost": None, "mattermost_username": name}
                   for name in MM_USERS},
        "slack": {"mode": "http", "bot_token": slack.bot_token,
                  "signing_secret": slack.signing_secret, "api_url": slack.api_url,
                  "channels": {"ops": "#shifters", "alerts": GENERAL},
                  "request_timeout_seconds": 20},
        "mattermost": {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                       "channels": {"ops": "ops", "alerts": "alerts"}, **FAST,
                       "request_timeout_seconds": 20},
        "notices": {**NOTICES, **(notices or {})},
    })


def fakes() -> tuple[FakeSlack, FakeMattermost]:
    """Both fakes, not started yet (``async with`` each)."""
    return (FakeSlack(users=SLACK_USERS),
            FakeMattermost(users=MM_USERS, channels=MM_CHANNELS, ping_interval=0.5))


# ------------------------------------------------------------------------ what people see


def slack_top(slack: FakeSlack, alias: str) -> list[tuple[str, str | None]]:
    """(text, notice tag) of the bot's top-level messages in the alias's channel, oldest
    first (thread replies and ephemeral messages left out)."""
    return [(m.text or "", _slack_tag(m.metadata))
            for m in slack.messages(SLACK_CHANNEL[alias], ephemeral=False)
            if not m.thread_ts or m.thread_ts == m.ts]


def slack_replies(slack: FakeSlack, alias: str, root_ts: str) -> list[tuple[str, str | None]]:
    return [(m.text or "", _slack_tag(m.metadata))
            for m in slack.messages(SLACK_CHANNEL[alias], thread_ts=root_ts, ephemeral=False)
            if m.ts != root_ts]


def mm_top(mm: FakeMattermost, alias: str) -> list[tuple[str, str | None]]:
    """(message, notice tag) of the bot's root posts in the alias's channel, oldest first."""
    return [(p["message"], p["props"].get(NOTICE_TAG)) for p in mm.posts(alias)
            if p["user_id"] == mm.bot.id and not p["root_id"]]


def mm_replies(mm: FakeMattermost, root_id: str) -> list[tuple[str, str | None]]:
    return [(p["message"], p["props"].get(NOTICE_TAG)) for p in mm.thread(root_id)
            if p["id"] != root_id]


def _slack_tag(metadata: dict[str, Any] | None) -> str | None:
    if not metadata or metadata.get("event_type") != NOTICE_TAG:
        return None
    return str((metadata.get("event_payload") or {}).get("tag"))
