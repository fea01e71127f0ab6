"""The dynamic role the shifts feature grants, in a module that loads nothing: the handler
declares it at import time (``PROVIDES_ROLES``), before the database and its store load."""

from __future__ import annotations

ROLE = "on-shift"  # held by whoever the computed rota has on shift now
