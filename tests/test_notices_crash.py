"""Notices survive a crash mid-send (#12): a real bot process (tests/notice_proc.py, the real
lifecycle and adapters) posting to the loopback Slack and Mattermost fakes is killed with
SIGKILL while a message is in flight, then started again on the same database (a SQLite file;
a PostgreSQL database too when the server package is installed). Afterwards every notice is
shown exactly once on each platform, in order, its update and thread reply on it.

Two windows, made by the fakes holding one request (``stall``) until the process is dead:

- before the send: the outbox row is written and its attempt claimed and counted, the request
  never reaches the platform; the restart must post it;
- after the send, before the record: the platform made the message but its answer never came
  back; the restart must find it (Slack ``conversations.history``/``replies`` with
  ``include_all_metadata``, Mattermost channel posts / the thread with the post's ``props``)
  and record it instead of posting it again. Once for the first post, once for a thread reply.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.mattermost import FakeMattermost, RecordedRequest
from fakes.slack import Call, FakeSlack
from notice_stack import SLACK_CHANNEL, config, fakes, mm_replies, mm_top, slack_replies, slack_top
from postgres import temporary_postgres
from sqlalchemy import create_engine, text

from bot.messaging.port import NOTICE_TAG

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

REPO = Path(__file__).resolve().parent.parent
PROC = REPO / "tests" / "notice_proc.py"
# An attempt may take 10 s: the kill always comes first, so the process is genuinely waiting.
CRASH_NOTICES = {"send_timeout_seconds": 10}
LEASE_PASSED = 600  # the restart's clock offset: the dead process's claims have run out
EXPECTED_TOP = [("k0 updated", "k0#0"), ("k1", "k1#0"), ("k2", "k2#0")]
EXPECTED_REPLIES = [("k0 reply", "k0#1")]


@dataclass(frozen=True)
class Crash:
    stored: bool  # the platform had made the message when the process died
    thread: bool  # the message in flight is k0's thread reply (else k0's first post)

    @property
    def tag(self) -> str:
        return "k0#1" if self.thread else "k0#0"


CRASHES = {"before-send": Crash(stored=False, thread=False),
           "after-send-post": Crash(stored=True, thread=False),
           "after-send-thread-reply": Crash(stored=True, thread=True)}


# ------------------------------------------------------------------------ databases


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str | None]:
    with temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    server = request.getfixturevalue("postgres_server")
    if server is None:
        print("PostgreSQL is not installed here (no initdb): skipping")
        pytest.skip("no PostgreSQL server can be started here (Debian package postgresql)")
    name = f"crash_{uuid.uuid4().hex[:10]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return f"{server.rsplit('/', 1)[0]}/{name}"


def deliveries(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT notice_key, step, kind, platform, status, attempts, message_id "
                "FROM notice_deliveries ORDER BY id")))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------ the process


async def start(config_path: Path, log: Path, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "NO_PROXY": "127.0.0.1,localhost"}
    with log.open("a") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(PROC), str(config_path), *args, cwd=REPO, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        await asyncio.sleep(0.02)


def in_flight(crash: Crash) -> tuple[Callable[[Call], bool], Callable[[RecordedRequest], bool]]:
    """Which request each fake holds: k0's first post, or its thread reply."""
    return (lambda call: bool(call.params.get("thread_ts")) == crash.thread,
            lambda rec: isinstance(rec.json, dict)
            and bool(rec.json.get("root_id")) == crash.thread)


def shown(slack: FakeSlack, mm: FakeMattermost, tag: str) -> tuple[int, int]:
    """How many messages carry ``tag`` on Slack and on Mattermost."""
    on_slack = [m for m in slack.messages(SLACK_CHANNEL["ops"])
                if (m.metadata or {}).get("event_payload", {}).get("tag") == tag]
    on_mm = [p for p in mm.posts("ops") if p["props"].get(NOTICE_TAG) == tag]
    return len(on_slack), len(on_mm)


# ------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("crash", list(CRASHES.values()), ids=list(CRASHES))
async def test_killed_mid_send_each_notice_is_shown_once_after_restart(
        tmp_path: Path, database: str, crash: Crash) -> None:
    slack, mm = fakes()
    async with slack, mm:
        path = tmp_path / "bot.yaml"
        path.write_text(yaml.safe_dump(config(slack, mm, database, notices=CRASH_NOTICES)))
        log = tmp_path / "bot.log"
        on_slack, on_mm = in_flight(crash)
        slack.stall("chat.postMessage", stored=crash.stored, match=on_slack)
        mm.stall("POST /api/v4/posts", stored=crash.stored, match=on_mm)

        first = await start(path, log)
        try:
            # every notice queued in the outbox, and a message in flight on each platform
            await until(lambda: ("posted" in log.read_text() and slack.stalled and mm.stalled)
                        or first.returncode is not None, 25, "both platforms hold a request")
            assert first.returncode is None, log.read_text()[-3000:]
        finally:
            if first.returncode is None:
                first.send_signal(signal.SIGKILL)
            await first.wait()
        assert first.returncode == -signal.SIGKILL

        # The crash window: counted as attempted in the outbox, not recorded as sent, and on
        # the platform (after the send) or not (before it).
        held = [r for r in await asyncio.to_thread(deliveries, database)
                if f"{r.notice_key}#{r.step}" == crash.tag]
        assert sorted((r.platform, r.status, r.attempts) for r in held) == [
            ("mattermost", "pending", 1), ("slack", "pending", 1)]
        assert shown(slack, mm, crash.tag) == ((1, 1) if crash.stored else (0, 0))
        lookups = len(slack.calls("conversations.history") + slack.calls(
            "conversations.replies")), len(mm.find_requests("GET /api/v4/channels/*/posts")
                                           + mm.find_requests("GET /api/v4/posts/*/thread"))

        second = await start(path, log, "--restart", "--clock-offset", str(LEASE_PASSED))
        try:
            code = await asyncio.wait_for(second.wait(), 25)
        finally:
            if second.returncode is None:
                second.send_signal(signal.SIGKILL)
                await second.wait()
        assert code == 0, log.read_text()[-3000:]
        await check_each_notice_once(slack, mm, database)
        # The restart asked each platform for the message before sending it again.
        assert len(slack.calls("conversations.history") + slack.calls(
            "conversations.replies")) > lookups[0]
        assert len(mm.find_requests("GET /api/v4/channels/*/posts")
                   + mm.find_requests("GET /api/v4/posts/*/thread")) > lookups[1]


async def check_each_notice_once(slack: FakeSlack, mm: FakeMattermost, database: str) -> None:
    assert slack_top(slack, "ops") == EXPECTED_TOP and mm_top(mm, "ops") == EXPECTED_TOP
    for tag in ("k0#0", "k0#1", "k1#0", "k2#0"):
        assert shown(slack, mm, tag) == (1, 1), tag
    rows = await asyncio.to_thread(deliveries, database)
    assert {r.status for r in rows} == {"sent"} and len(rows) == 10  # 5 steps x 2 platforms
    ids = {(r.platform, f"{r.notice_key}#{r.step}"): r.message_id for r in rows}
    root_ts, root_id = ids["slack", "k0#0"], ids["mattermost", "k0#0"]
    assert slack_replies(slack, "ops", root_ts) == EXPECTED_REPLIES
    assert mm_replies(mm, root_id) == EXPECTED_REPLIES
    # the outbox recorded the messages people see (a found one included)
    for (platform, tag), message_id in ids.items():
        if tag.endswith("#2"):
            continue  # the update keeps the first post's message
        if platform == "slack":
            message = slack.message(SLACK_CHANNEL["ops"], message_id)
            assert message is not None and message.metadata["event_payload"]["tag"] == tag
        else:
            assert mm.post(message_id)["props"][NOTICE_TAG] == tag
