"""The database's errors, apart from bot/db.py: an entry point catches them without loading
SQLAlchemy first (the console answers ``help`` before the database opens)."""

from __future__ import annotations


class DatabaseError(Exception):
    """The database cannot be used; the message is one line for the operator."""


class SchemaError(DatabaseError):
    """The database's schema is newer than this shiftbot's."""
