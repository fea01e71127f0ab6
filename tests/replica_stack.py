"""Several bot processes on one PostgreSQL (#16, "Replicas"): a server that can be stopped and
started again on the same port, a fresh database per test, the replicas' configs (the alerts
stack of tests/alerts_stack.py, one HTTP port each) and readers of who holds what.

The replicas are tests/alerts_proc.py processes (``AlertsProc``): the ``shiftbot run`` lifecycle
with every adapter the config enables, their own clock offset (``advance``) and ``settle``.
Used by tests/test_replicas_faults.py and tests/test_replicas_startup.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from alerts_proc import AlertsProc
from alerts_stack import alerts_config
from postgres import _bindir, _free_port
from sqlalchemy import create_engine, select, text

from bot import db
from bot.alerts.service import LEASE


class PgCluster:
    """A throwaway PostgreSQL server on 127.0.0.1 that :meth:`stop` and :meth:`start` take
    down and bring back on the same port (a restart under load)."""

    def __init__(self, bindir: str, data: str, port: int, as_user: list[str]) -> None:
        self.bindir, self.data, self.port, self.as_user = bindir, data, port, as_user
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, f"{self.bindir}/pg_ctl", "-D", self.data, *args],
                       check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("-w", "-t", "30", "-l", f"{self.data}/log", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: every session is ended (what a restart for an upgrade does)."""
        self._ctl("-w", "-m", mode, "stop")

    def new_database(self, prefix: str = "replicas") -> str:
        """A fresh database on this server; its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
        finally:
            engine.dispose()
        return f"{self.url.rsplit('/', 1)[0]}/{name}"


@contextmanager
def postgres_cluster() -> Iterator[PgCluster | None]:
    """A started :class:`PgCluster`, or None when no server can start here."""
    bindir = _bindir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if bindir is None or (as_user and shutil.which("runuser") is None):
        yield None
        return
    data = tempfile.mkdtemp(prefix="shiftbot-pg-")
    if as_user:
        shutil.chown(data, "postgres")
    cluster = PgCluster(bindir, data, _free_port(), as_user)
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        cluster.start()
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(data, ignore_errors=True)
        yield None
        return
    try:
        yield cluster
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


# ------------------------------------------------------------------------ the replicas


def write_configs(tmp_path: Path, count: int, **settings: Any) -> list[tuple[Path, int]]:
    """``count`` configs alike but for their HTTP port (``alerts_config(**settings)``)."""
    out = []
    for n in range(count):
        port = _free_port()
        path = tmp_path / f"replica{n}.yaml"
        path.write_text(yaml.safe_dump(alerts_config(http_port=port, **settings)))
        out.append((path, port))
    return out


async def start_replicas(tmp_path: Path, configs: list[tuple[Path, int]]) -> list[AlertsProc]:
    """One tests/alerts_proc.py process per config, started together (each pinned to a core
    of its own where there are two: they run side by side, as on two hosts)."""
    procs = [AlertsProc(path, tmp_path / f"replica{n}.log")
             for n, (path, _port) in enumerate(configs)]
    return list(await asyncio.gather(*(p.start(60, core=n) for n, p in enumerate(procs))))


def replica_logs(tmp_path: Path, chars: int = 3000) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}"
                     for p in sorted(tmp_path.glob("replica*.log")))


def claim_owner_pid(url: str, key: str = LEASE) -> int | None:
    """The pid of the process holding the claim ``key`` (``host:pid:random``), or None."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            owner = conn.execute(select(db.claims.c.owner).where(db.claims.c.key == key)
                                 ).scalar()
    finally:
        engine.dispose()
    return int(owner.split(":")[-2]) if owner else None


def by_pid(procs: list[AlertsProc], pid: int | None) -> AlertsProc:
    found = [p for p in procs if p.pid == pid]
    assert found, f"no replica has pid {pid} ({[p.pid for p in procs]})"
    return found[0]
