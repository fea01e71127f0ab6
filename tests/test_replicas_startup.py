"""Start-up guards for replicas (#16, "Replicas"), each with real ``python -m bot.cli``
processes:

- four replicas starting at once on a fresh PostgreSQL database: the schema ends at the latest
  version of the core and of every feature, each step applied by exactly one of them (the
  advisory lock in bot/db.py and bot/features.py), and all four run;
- a replica refuses to start against a schema newer than it knows, the core's or a feature's:
  one line saying so, exit status 1, nothing touched;
- SQLite: a second ``shiftbot run`` on the same file (its path spelt another way) is refused
  with a clear message naming the first (bot/sqliteguard.py); the console may still be used
  beside it; once the first is SIGKILLed, a new one starts (no stale lock).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BASE, CORE_HANDLERS, deep_merge
from postgres import _free_port
from replica_stack import PgCluster, postgres_cluster
from sqlalchemy import create_engine, select

from bot import db

REPO = Path(__file__).resolve().parent.parent
# Feature modules with migrations of their own whose sections may stay empty.
FEATURES = ["handlers.status", "handlers.restart", "handlers.schedule"]


def write_config(path: Path, database: str, handlers: list[str] | None = None) -> Path:
    raw = deep_merge(BASE, {"bot": {"handlers": handlers or CORE_HANDLERS,
                                    "database": database, "console_person": "alice",
                                    "http": {"host": "127.0.0.1", "port": _free_port()}}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "tests"), "NO_PROXY": "127.0.0.1,localhost"}


def start_run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--config", str(config)],
                                cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=_env(), timeout=60, stdin=subprocess.DEVNULL)


def wait_running(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "shiftbot running" not in log.read_text():
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """Exit status 1 with one ``shiftbot: ...`` line and no traceback; that line."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("shiftbot: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------ SQLite


def test_a_second_run_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    first_config = write_config(tmp_path / "a" / "bot.yaml", f"sqlite:///{tmp_path}/data/bot.db")
    # The same file, spelt relative to the other config's directory, through a detour.
    second_config = write_config(tmp_path / "b" / "bot.yaml", "sqlite:///../a/../data/./bot.db")
    first = start_run(first_config, tmp_path / "first.log")
    try:
        wait_running(first, tmp_path / "first.log")
        line = refused(cli("run", "--config", str(second_config)))
        data = os.path.realpath(tmp_path / "data" / "bot.db")
        assert f"the SQLite database {data} is used by another " \
               f"'shiftbot run' (pid {first.pid} on " in line, line
        assert "PostgreSQL" in line, line
        # The console is no replica (bot/sqliteguard.py): it may look at the same database.
        console = cli("console", "--config", str(second_config), "-c", "whoami")
        assert console.returncode == 0 and "alice" in console.stdout, console.stderr
        assert first.poll() is None  # the first one never noticed
    finally:
        assert stop(first, signal.SIGKILL) == -signal.SIGKILL
    # The kernel dropped the dead process's lock: a new replica starts on the file.
    again = start_run(second_config, tmp_path / "again.log")
    try:
        wait_running(again, tmp_path / "again.log")
    finally:
        assert stop(again) == 0, (tmp_path / "again.log").read_text()[-3000:]


# ------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with postgres_cluster() as found:
        if found is None:
            print("PostgreSQL is not installed here (no initdb): skipping")
            pytest.skip("no PostgreSQL server can be started here (Debian package postgresql)")
        yield found


def feature_steps() -> Counter[str]:
    """Each feature module of FEATURES: how many migration steps it declares."""
    import importlib

    found: Counter[str] = Counter()
    for name in FEATURES:
        migrations = importlib.import_module(name).MIGRATIONS
        found[migrations.feature] = len(migrations.steps)
    return found


def schema_rows(url: str) -> tuple[list[int], list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            core = list(conn.execute(select(db.schema_version.c.version)).scalars())
            features = [tuple(r) for r in conn.execute(select(
                db.feature_schema.c.feature, db.feature_schema.c.version))]
    finally:
        engine.dispose()
    return core, features


def test_replicas_starting_together_migrate_once(tmp_path: Path, cluster: PgCluster) -> None:
    url = cluster.new_database("startup")
    handlers = [*CORE_HANDLERS, *FEATURES]
    logs = [tmp_path / f"replica{n}.log" for n in range(4)]
    procs = [start_run(write_config(tmp_path / f"replica{n}.yaml", url, handlers), log)
             for n, log in enumerate(logs)]
    try:
        for proc, log in zip(procs, logs, strict=True):
            wait_running(proc, log)
    finally:
        codes = [stop(proc) for proc in procs]
    text = "".join(log.read_text() for log in logs)
    assert codes == [0] * 4, text[-4000:]
    core, features = schema_rows(url)
    assert sorted(core) == [version for version, _, _ in db.MIGRATIONS]
    assert Counter(feature for feature, _ in features) == feature_steps()
    # Each step was run by one replica: the others found it done.
    assert len(re.findall(r"migrating database to version \d+", text)) == db.LATEST
    assert Counter(re.findall(r"migrating feature (\w+) to version", text)) == feature_steps()


@pytest.mark.parametrize("newer", ["core", "feature"])
def test_a_replica_refuses_a_newer_schema(tmp_path: Path, cluster: PgCluster,
                                          newer: str) -> None:
    url = cluster.new_database("newer")
    config = write_config(tmp_path / "bot.yaml", url, [*CORE_HANDLERS, "handlers.status"])
    assert cli("console", "--config", str(config), "-c", "whoami").returncode == 0  # migrated
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if newer == "core":
                conn.execute(db.schema_version.insert().values(
                    version=db.LATEST + 1, description="from the future",
                    applied_at=db.utcnow()))
            else:
                conn.execute(db.feature_schema.insert().values(
                    feature="status", version=feature_steps()["status"] + 1,
                    description="from the future", applied_at=db.utcnow()))
    finally:
        engine.dispose()
    before = schema_rows(url)
    line = refused(cli("run", "--config", str(config)))
    expected = ("database schema version" if newer == "core"
                else "the database has schema version") + r".* newer than this shiftbot"
    assert re.search(expected, line) and "upgrade shiftbot" in line, line
    assert schema_rows(url) == before
