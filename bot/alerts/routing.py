"""Where an alert goes and whether it opens a GitLab issue on its own (``alerts.routes``,
``alerts.auto_ticket``; docs/alerts.md, "Routing").

Both are pure functions of the settings and the alert, so the decision transaction
(bot/alerts/service.py) can call them and tests can try every combination cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.alerts.config import AlertsConfig, AutoTicket, Route
from bot.alerts.model import SentryAlert, level_rank

NEW, REGRESSED = "new", "regressed"


def _within(value: str | None, allowed: Sequence[str]) -> bool:
    """An empty list allows anything; otherwise the value must be listed (case-insensitive:
    Sentry slugs are lower case, people type ``Production``)."""
    if not allowed:
        return True
    return value is not None and value.lower() in {a.lower() for a in allowed}


def matches(route: Route, alert: SentryAlert) -> bool:
    return (_within(alert.project, route.projects)
            and _within(alert.environment, route.environments)
            and level_rank(alert.level) >= level_rank(route.min_level))


def route_for(settings: AlertsConfig, alert: SentryAlert) -> Route | None:
    """The first rule matching ``alert`` (None: stored, listed, but posted nowhere)."""
    for route in settings.routes:
        if matches(route, alert):
            return route
    return None


def wants_auto_ticket(rule: AutoTicket, alert: SentryAlert, reason: str) -> bool:
    """Does ``alert.auto_ticket`` open a GitLab issue for this alert, ``new`` or
    ``regressed``, without anyone asking? Metric alerts never get one (no Sentry issue)."""
    if not rule.enabled or reason not in rule.on or alert.issue_id is None:
        return False
    return (_within(alert.project, rule.projects)
            and _within(alert.environment, rule.environments)
            and level_rank(alert.level) >= level_rank(rule.min_level))
