"""One ``shiftbot run`` per SQLite database: a second one is refused at start with a message.

Several replicas need PostgreSQL (docs/operations.md). On SQLite they are not made safe: the
Python driver starts a transaction only at the first write, so a read followed by a write in one
``Database.run`` (pick due rows, then mark them) is atomic within one process, whose single
database thread runs them in turn, but not across two processes; and SQLite's file locks are
unreliable on the network file systems two hosts would share. So instead of a second process
quietly doubling work now and then, ``shiftbot run`` holds an exclusive lock on a file next to
the database (``<database>.run-lock``, ``flock``) for its whole life, taken before the
migrations, and a second ``shiftbot run`` on the same file (however its path is spelt: the
path is resolved) stops at once with the holder's pid, host and start time and what to do.

The kernel drops the lock when its holder exits, SIGKILL included: a crash never leaves a stale
lock behind, and the file's content (who held it last) is only information.

Decided: the console and the one-shot commands (``console -c``, ``check-config``, ``doctor``)
do not take the lock. They are how an operator looks at a running bot's database (``audit``,
``status``) on the same host, they do not connect to the chat platforms, so they receive no
delivery a replica would also receive, and what they write goes through the same claims. A
console REPL left running beside ``shiftbot run`` shares the periodic jobs through their
per-instant claims (bot/jobs.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bot.db import DatabaseError, sqlite_file

SUFFIX = ".run-lock"


class SqliteInUse(DatabaseError):
    """Another ``shiftbot run`` holds the database's run lock."""


class RunLock:
    """The held lock; :meth:`release` (or the process's exit) gives it back."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def hold_run_lock(url: str, base_dir: Path | None = None) -> RunLock | None:
    """Take the run lock of the SQLite database ``url`` (None: not a SQLite file, nothing to
    hold). Raises :class:`SqliteInUse` when another process holds it."""
    database = sqlite_file(url, base_dir)
    if database is None:
        return None
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        database = Path(os.path.realpath(database))  # one file, however its path is spelt
        handle = database.with_name(database.name + SUFFIX).open("a+", encoding="utf-8")
    except OSError as exc:  # as bot/db.py says it when it cannot open the file itself
        raise DatabaseError(f"bot.database: cannot use it: {exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SqliteInUse(
            f"bot.database: the SQLite database {database} is used by another 'shiftbot run' "
            f"({holder}); SQLite serves one replica: stop that one first, or point every "
            "replica at one PostgreSQL database (bot.database: postgresql://...) to run "
            "several") from None
    handle.seek(0)
    handle.truncate()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n")
    handle.flush()
    return RunLock(Path(handle.name), handle)
