"""Two bot processes on one database, both on the same Mattermost websocket: each message once.

Real processes (``python -m bot.cli run``), each with its own socket to the fake Mattermost (the
server sends every ``posted`` event to both), on one SQLite file and on one PostgreSQL database.
200 commands are posted; every one must be answered exactly once (the fake's posts: one answer
in each command's thread) and run exactly once (the audit table: one row per command), and every
message must have been claimed by both processes, one of them standing back (so the test proves
the claim, not a lucky slow replica).

The command is ``sample echo N --public`` (tests/sample_handlers.py): what matters is the claim
in front of the dispatcher, which every command passes the same way, and a cheap command keeps
200 of them within seconds on two shared cores (``condor hold`` would add a condor worker per
process and a confirmation per job without testing anything more about the claim).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BASE, CORE_HANDLERS, deep_merge
from fakes.mattermost import FakeMattermost
from mattermost_harness import CHANNELS, FAST, PEOPLE, people_by_username
from postgres import temporary_postgres
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

REPO = Path(__file__).resolve().parent.parent
MESSAGES = 200


def write_config(tmp_path: Path, name: str, mm: FakeMattermost, database: str) -> Path:
    raw = deep_merge(BASE, {
        "bot": {"handlers": CORE_HANDLERS, "database": database,
                "http": {"host": "127.0.0.1", "port": 0}},
        "people": people_by_username(*PEOPLE),
        "mattermost": {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                       "channels": {"ops": "ops"}, **FAST,
                       "request_timeout_seconds": 5.0},
    })
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@contextlib.asynccontextmanager
async def replicas(tmp_path: Path, mm: FakeMattermost, database: str,
                   count: int = 2) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "NO_PROXY": "127.0.0.1,localhost"}
    processes = []
    for n in range(count):
        config = write_config(tmp_path, f"replica{n}", mm, database)
        log = (tmp_path / f"replica{n}.log").open("w")
        processes.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--config", str(config), cwd=REPO,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log))
    try:
        await mm.wait_for(lambda: mm.connection_count >= count
                          or any(p.returncode is not None for p in processes), timeout=60)
        assert all(p.returncode is None for p in processes), logs(tmp_path)
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)  # a clean stop flushes the audit
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("replica*.log")))


def audit_counts(database: str) -> collections.Counter[str]:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT arguments FROM audit WHERE command = 'sample.echo'"))
            return collections.Counter(row.arguments for row in rows)
    finally:
        engine.dispose()


async def two_replicas_answer_each_message_once(tmp_path: Path, database: str) -> None:
    async with FakeMattermost(users=PEOPLE, channels=CHANNELS, ping_interval=0.5) as mm:
        async with replicas(tmp_path, mm, database):
            sent = [await mm.post_as("alice", "ops", f"!sample echo m{i} --public")
                    for i in range(MESSAGES)]
            roots = {p["id"] for p in sent}

            def answers() -> list[dict[str, Any]]:
                return [p for p in mm.posts("ops")
                        if p["user_id"] == mm.bot.id and p["root_id"] in roots]

            await mm.wait_for(lambda: len(answers()) >= MESSAGES, timeout=90)
            await asyncio.sleep(1.0)  # a late duplicate would show up now
            per_root = collections.Counter(p["root_id"] for p in answers())
            assert set(per_root) == roots and set(per_root.values()) == {1}, logs(tmp_path)
        counts = audit_counts(database)
        assert sum(counts.values()) == MESSAGES and set(counts.values()) == {1}, counts
        # Every message reached both processes and one of them stood back: the claim decided,
        # not a replica that happened to be slow or disconnected.
        lost = [p.read_text().count("already taken") for p in tmp_path.glob("replica*.log")]
        assert sum(lost) == MESSAGES, (lost, logs(tmp_path))


# Two `shiftbot run` processes on one SQLite file are refused (bot/sqliteguard.py): SQLite
# stays one process; tests/test_replicas_startup.py proves the refusal with real processes.


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with temporary_postgres() as url:
        if url is None:
            print("PostgreSQL is not installed here (no initdb): skipping")
            pytest.skip("no PostgreSQL server can be started here")
        yield url


async def test_two_processes_on_one_postgresql_database(tmp_path: Path,
                                                        postgres_url: str) -> None:
    await two_replicas_answer_each_message_once(tmp_path, postgres_url)
