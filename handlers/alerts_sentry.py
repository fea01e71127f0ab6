"""The ``sentry:`` section of the alerts feature (docs/alerts.md): the internal integration's
client secret (webhook signatures), the legacy plugin's URL secret, API access (token, org)
and polling. Declared by its own module because one module declares one section:
handlers/alerts.py declares ``alerts:``.
"""

from __future__ import annotations

from bot.alerts.config import SENTRY

CONFIG = SENTRY
