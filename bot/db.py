"""The database: SQLAlchemy 2 Core, SQLite (WAL) by default, PostgreSQL by URL.

Every query runs on a small thread pool (one thread for SQLite, whose writer is single anyway),
so the event loop never waits on disk. The schema is created and upgraded by numbered migration
steps recorded in ``schema_version``: a database newer than the code is refused rather than
silently used.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from bot import clock
from bot.dberrors import DatabaseError, SchemaError  # re-exported: db.DatabaseError

log = logging.getLogger(__name__)
T = TypeVar("T")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("person", String(100), nullable=True, index=True),  # None: unknown platform user
    Column("platform", String(20), nullable=False),
    Column("platform_user", String(100), nullable=False),
    Column("channel", String(200), nullable=True),
    Column("command", String(100), nullable=True, index=True),  # condor.rm; None: unparsable
    Column("arguments", Text, nullable=False, default=""),  # secrets redacted
    Column("decision", String(40), nullable=False),
    Column("outcome", String(20), nullable=True),  # ok | error | timeout | running
    Column("duration_ms", Float, nullable=True),
    Column("approver", String(100), nullable=True),
    Column("request_id", String(20), nullable=True),
    Column("detail", Text, nullable=True),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(20), primary_key=True),
    Column("kind", String(20), nullable=False),  # confirm | approval
    Column("status", String(20), nullable=False),  # pending | running | done | cancelled | ...
    Column("command", String(100), nullable=False),  # the permission key, condor.rm
    Column("text", Text, nullable=False),  # the normalised command line, re-parsed to run
    Column("platform", String(20), nullable=False),
    Column("platform_user", String(100), nullable=False),
    Column("person", String(100), nullable=False),
    Column("channel_id", String(200), nullable=True),
    Column("channel_alias", String(100), nullable=True),
    Column("thread_id", String(200), nullable=True),
    Column("approval_role", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(100), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("outcome", String(20), nullable=True),
    # JSON of the bot.commands.Plan the requester confirmed (destructive commands); migration 3.
    Column("plan", Text, nullable=True),
    # sha256 of Parsed.canonical (what is asked, however it was spelt); migration 6. NULL for
    # requests made before it, which are compared by text instead.
    Column("fingerprint", String(64), nullable=True),
    Index("ix_requests_status_expires", "status", "expires_at"),
)
# One pending request per person and request, enforced by the database: with a SELECT before
# the INSERT alone, two identical commands arriving together on PostgreSQL (four database
# threads, two replicas) both got through.
requests_one_pending = Index(
    "ux_requests_pending_fingerprint", requests.c.person, requests.c.fingerprint, unique=True,
    sqlite_where=requests.c.status == "pending", postgresql_where=requests.c.status == "pending",
)


# The chat messages that show a request (its buttons), so a decision taken anywhere (a typed
# `approve ID`, another platform, expiry) can update them.
request_messages = Table(
    "request_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(20), ForeignKey("requests.id"), nullable=False, index=True),
    Column("platform", String(20), nullable=False),
    Column("channel_id", String(200), nullable=False),
    Column("message_id", String(200), nullable=False),  # Slack ts, Mattermost post id
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# Replica-safe claims (bot/messaging/claims.py): whoever inserts a key first owns the work it
# names (an inbound delivery, a periodic job's instant, a notice delivery attempt).
claims = Table(
    "claims",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("owner", String(100), nullable=False),  # which process: host:pid:random
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Durable notices (bot/messaging/notices.py): the bot speaking first. A notice is stored before
# post() returns; each (notice, step, platform, channel) is one delivery row, retried from here.
notices = Table(
    "notices",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("targets", Text, nullable=False),  # JSON list of channel aliases
    Column("mention", Text, nullable=False, default="[]"),  # JSON list of people/groups/roles
    # The feature that owns the notice's thread (replies go to its @on_thread_reply hook).
    Column("owner", String(100), nullable=True),
)

notice_deliveries = Table(
    "notice_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_key", String(300), ForeignKey("notices.key"), nullable=False, index=True),
    Column("step", Integer, nullable=False),  # 0 the post; then updates and thread replies
    Column("kind", String(10), nullable=False),  # post | update | thread
    Column("platform", String(20), nullable=False),
    Column("channel_id", String(200), nullable=False),
    Column("reply", Text, nullable=False),  # JSON of the Reply to send
    Column("status", String(10), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),  # not before this
    Column("last_error", Text, nullable=True),
    Column("message_id", String(200), nullable=True),  # Slack ts, Mattermost post id
    Column("thread_id", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Index("ux_notice_delivery", "notice_key", "step", "platform", "channel_id", unique=True),
    Index("ix_notice_delivery_due", "status", "next_at"),
)

# Buttons that run commands: the command line is kept here; the button carries only the id.
actions = Table(
    "actions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("command", Text, nullable=False),  # the command line the click runs, as the clicker
    Column("label", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
)


# Schema versions of features (bot/features.py: Migrations), numbered per feature: a feature's
# step 1 never collides with the core's (schema_version) nor with another feature's.
feature_schema = Table(
    "feature_schema",
    metadata,
    Column("feature", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def _migration_1(conn: Connection) -> None:
    audit.create(conn)
    requests.create(conn)


def _migration_2(conn: Connection) -> None:
    request_messages.create(conn)


def _migration_3(conn: Connection) -> None:
    # Step 1 creates `requests` from the current table definition, which now has the column:
    # only databases made by an older shiftbot need it added.
    if "plan" not in {c["name"] for c in inspect(conn).get_columns("requests")}:
        conn.execute(text("ALTER TABLE requests ADD COLUMN plan TEXT"))



def _migration_4(conn: Connection) -> None:
    for table in (claims, notices, notice_deliveries, actions):
        table.create(conn, checkfirst=True)


def _migration_6(conn: Connection) -> None:
    # As in step 3: a database made by step 1 of this version already has both.
    if "fingerprint" not in {c["name"] for c in inspect(conn).get_columns("requests")}:
        conn.execute(text("ALTER TABLE requests ADD COLUMN fingerprint VARCHAR(64)"))
    requests_one_pending.create(conn, checkfirst=True)


# (version, description, step). Append only; never edit a released step.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "audit log and pending requests", _migration_1),
    (2, "messages that show a request", _migration_2),
    (3, "the plan a destructive request was confirmed with", _migration_3),
    (4, "claims, notices and their deliveries, button actions", _migration_4),
    (5, "schema versions of features", lambda conn: feature_schema.create(conn, checkfirst=True)),
    (6, "one pending request per person and fingerprint", _migration_6),
]
LATEST = MIGRATIONS[-1][0]


def utcnow() -> datetime:
    """The current time from the one clock (``bot.clock``), UTC."""
    return clock.utcnow()


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def make_engine(url: str, base_dir: Path | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            # SQLAlchemy's default driver is psycopg2; shiftbot[postgres] installs psycopg 3.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, future=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    path = _sqlite_path(parsed.database or "", base_dir)
    if path is None:
        kwargs["poolclass"] = StaticPool
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _sqlite_path(database: str, base_dir: Path | None) -> Path | None:
    if database in ("", ":memory:"):
        return None
    path = Path(database)
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def sqlite_file(url: str, base_dir: Path | None = None) -> Path | None:
    """The file a SQLite URL names (relative to ``base_dir``, the config's directory, as
    :func:`make_engine` opens it); None for other databases, in-memory ones and ``file:``
    URIs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database.startswith("file:"):
        return None
    return _sqlite_path(database, base_dir)


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(select(schema_version.c.version).order_by(
        schema_version.c.version.desc()).limit(1)).scalar() or 0


@contextmanager
def sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Two processes starting at once on one SQLite file take turns migrating (PostgreSQL uses
    an advisory lock instead). A sidecar lock file: SQLite's own locks are only taken at the
    first write, after both have looked at the schema."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    with open(f"{path}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> int:
    """Bring the schema to :data:`LATEST`; returns the version found before."""
    with sqlite_migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two replicas starting at once must not both run a step.
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        if not inspect(conn).has_table("schema_version"):
            schema_version.create(conn)
        found = current_version(conn)
        if found > LATEST:
            raise SchemaError(
                f"database schema version {found} is newer than this shiftbot "
                f"(knows up to {LATEST}): upgrade shiftbot, or point it at another database"
            )
        for version, description, step in MIGRATIONS:
            if version > found:
                log.info("migrating database to version %d: %s", version, description)
                step(conn)
                conn.execute(schema_version.insert().values(
                    version=version, description=description, applied_at=utcnow()))
        return found


class Database:
    """An engine plus the executor its calls run on."""

    def __init__(self, url: str, base_dir: Path | None = None) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, base_dir)
        except ImportError as exc:  # the dialect's driver is not installed
            raise DatabaseError(f"bot.database: the database driver is not installed ({exc}); "
                                "for PostgreSQL: pip install 'shiftbot[postgres]'") from None
        except (ArgumentError, NoSuchModuleError, OSError) as exc:
            raise DatabaseError(f"bot.database: cannot use it: {_first_line(exc)}") from None
        workers = 1 if self.engine.dialect.name == "sqlite" else 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> int:
        try:
            return migrate(self.engine)
        except SQLAlchemyError as exc:  # unreachable server, unwritable file, bad credentials
            raise DatabaseError(f"bot.database: cannot open the {self.dialect} database: "
                                f"{_first_line(exc.orig if isinstance(exc, DBAPIError) else exc)}"
                                ) from None

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(connection, *args)`` in a transaction, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self.call, func, *args, **kwargs)
        )

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The synchronous form of :meth:`run` (CLI tools, tests)."""
        with self.engine.begin() as conn:
            return func(conn, *args, **kwargs)

    async def ping(self) -> bool:
        await self.run(lambda conn: conn.execute(text("SELECT 1")).scalar())
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    """An error's first line (driver errors carry SQL and links on the next ones)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
