"""The alerts feature's tables (migration ``alerts`` 1). Query functions live next to their
users (inbox.py, tickets.py, service.py); all take a connection first and run in
``bot.database.run`` (one transaction each). Times are UTC (SQLite hands them back naive:
``db.as_utc``).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

PENDING, DONE, FAILED = "pending", "done", "failed"

# Every accepted delivery, written before the 200 (a crash after the ack loses nothing).
inbox = Table(
    "alerts_inbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(300), nullable=False, unique=True),  # a repeat is not stored
    Column("resource", String(20), nullable=False),  # model.Resource
    Column("action", String(40), nullable=False),
    Column("subject", String(120), nullable=False),  # SentryAlert.subject
    Column("body", Text, nullable=False),  # the raw JSON as received (poll: the issue JSON)
    Column("request_id", String(100), nullable=True),  # Sentry's Request-ID header
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("state", String(10), nullable=False, default=PENDING),  # pending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Column("error", String(500), nullable=True),
    Index("ix_alerts_inbox_due", "state", "next_at"),
    Index("ix_alerts_inbox_age", "received_at"),
)

# One row per Sentry issue (or metric alert): what chat shows and what tickets need.
issues = Table(
    "alerts_issues", metadata,
    Column("subject", String(120), primary_key=True),  # sentry:<id> | metric:<id>
    Column("issue_id", String(40), nullable=True),
    Column("short_id", String(100), nullable=True),
    Column("project", String(100), nullable=True),
    Column("environment", String(100), nullable=True),
    Column("level", String(20), nullable=True),
    Column("status", String(20), nullable=False, default="unresolved"),
    Column("title", String(500), nullable=False, default=""),
    Column("count", Integer, nullable=True),
    Column("first_seen", DateTime(timezone=True), nullable=True),
    Column("last_seen", DateTime(timezone=True), nullable=True),
    Column("deliveries", Integer, nullable=False, default=0),
    Column("regressions", Integer, nullable=False, default=0),
    Column("notice_key", String(300), nullable=True),  # its own notice, or its storm's
    Column("storm_key", String(300), nullable=True),  # set when it went into a summary
    Column("alert", Text, nullable=False),  # the latest SentryAlert as JSON (payloads.dump)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_alerts_issues_project", "project", "environment", "created_at"),
)

# The truth of "exactly one GitLab issue per Sentry issue".
tickets = Table(
    "alerts_tickets", metadata,
    Column("subject", String(120), primary_key=True),
    Column("gitlab_project", String(200), nullable=False),
    Column("iid", Integer, nullable=False),
    Column("web_url", String(500), nullable=False),
    Column("state", String(10), nullable=False, default="opened"),  # opened | closed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("commented_at", DateTime(timezone=True), nullable=True),
    Column("repeats_uncommented", Integer, nullable=False, default=0),
    Column("linked_back", Boolean, nullable=False, default=False),
)

# GitLab and Sentry calls still to make, retried with backoff across restarts.
tasks = Table(
    "alerts_tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(120), nullable=False),
    Column("kind", String(20), nullable=False),  # tickets.KINDS
    Column("payload", Text, nullable=False, default="{}"),
    # At most one pending task per (subject, kind) where that matters (one "create ticket").
    Column("once_key", String(200), nullable=True, unique=True),
    Column("state", String(10), nullable=False, default=PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("last_error", String(500), nullable=True),
    Column("said_in_thread", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Index("ix_alerts_tasks_due", "state", "next_at"),
)

# Storm summaries: one per project/environment and window that overflowed.
storms = Table(
    "alerts_storms", metadata,
    Column("key", String(300), primary_key=True),  # storm:<project>:<env>:<window start>
    Column("project", String(100), nullable=True),
    Column("environment", String(100), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("subjects", Text, nullable=False, default="[]"),  # JSON list, in arrival order
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def create_tables(conn: Connection) -> None:
    metadata.create_all(conn)
