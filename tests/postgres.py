"""A throwaway PostgreSQL server (Debian's package) for the tests that need the real thing."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@contextmanager
def temporary_postgres() -> Iterator[str | None]:
    """Yield a SQLAlchemy URL of a fresh server on 127.0.0.1, or None when none can start."""
    bindir = _bindir()
    if bindir is None:
        yield None
        return
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            yield None
            return
        as_user = ["runuser", "-u", "postgres", "--"]
    data = tempfile.mkdtemp(prefix="shiftbot-pg-")
    if as_user:
        shutil.chown(data, "postgres")
    port = _free_port()
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "30", "-l",
                        f"{data}/log", "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                        "start"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(data, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
