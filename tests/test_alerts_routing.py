"""Routing rules and the auto-ticket rule: pure functions of the settings and the alert, tried
over the whole grid of levels, projects and environments against an independent oracle."""

from __future__ import annotations

import itertools

import pytest

from bot.alerts.config import AlertsConfig, AutoTicket, Route
from bot.alerts.model import LEVELS, Resource, SentryAlert
from bot.alerts.routing import route_for, wants_auto_ticket

PROJECTS = ("gwcelery", "GWCelery", "gracedb", None)
ENVIRONMENTS = ("production", "Production", "playground", None)


def alert(project: str | None = "gwcelery", environment: str | None = "production",
          level: str | None = "error", issue_id: str | None = "42") -> SentryAlert:
    resource = Resource.ISSUE if issue_id else Resource.METRIC_ALERT
    return SentryAlert(resource, "created", f"k:{issue_id}", issue_id=issue_id,
                       metric_id=None if issue_id else "7", project=project,
                       environment=environment, level=level)


def rank(level: str | None) -> int:
    """The oracle's own ranking: unknown or missing counts as error."""
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("error")


def oracle(rules: list[dict], a: SentryAlert) -> int | None:
    for i, rule in enumerate(rules):
        projects = [p.lower() for p in rule.get("projects", [])]
        environments = [e.lower() for e in rule.get("environments", [])]
        if projects and (a.project is None or a.project.lower() not in projects):
            continue
        if environments and (a.environment is None
                             or a.environment.lower() not in environments):
            continue
        if rank(a.level) < LEVELS.index(rule.get("min_level", "debug")):
            continue
        return i
    return None


RULES = [
    {"projects": ["gwcelery"], "environments": ["production"], "min_level": "error",
     "channels": ["pager"]},
    {"projects": ["gwcelery"], "min_level": "warning", "channels": ["ops"]},
    {"environments": ["playground"], "channels": ["sandbox"]},
    {"min_level": "fatal", "channels": ["everyone"]},
]


@pytest.mark.parametrize(("project", "environment"),
                         list(itertools.product(PROJECTS, ENVIRONMENTS)))
def test_the_first_matching_rule_wins(project: str | None, environment: str | None) -> None:
    settings = AlertsConfig(routes=[Route(**rule) for rule in RULES])
    for level in (*LEVELS, None, "bogus"):
        a = alert(project, environment, level)
        expected = oracle(RULES, a)
        found = route_for(settings, a)
        assert (settings.routes.index(found) if found else None) == expected, (level, a)


def test_no_routes_means_nowhere() -> None:
    assert route_for(AlertsConfig(), alert()) is None


def test_an_empty_rule_takes_everything() -> None:
    settings = AlertsConfig(routes=[Route(channels=["ops"])])
    for level, project in itertools.product(LEVELS, PROJECTS):
        assert route_for(settings, alert(project, None, level)) is settings.routes[0]


@pytest.mark.parametrize("reason", ["new", "regressed"])
def test_auto_ticket_rule(reason: str) -> None:
    rule = AutoTicket(enabled=True, min_level="error", environments=["production"],
                      projects=["gwcelery"], on=[reason])
    for project, environment, level in itertools.product(PROJECTS, ENVIRONMENTS, LEVELS):
        a = alert(project, environment, level)
        expected = (project is not None and project.lower() == "gwcelery"
                    and environment is not None and environment.lower() == "production"
                    and rank(level) >= rank("error"))
        assert wants_auto_ticket(rule, a, reason) == expected, a
        other = "new" if reason == "regressed" else "regressed"
        assert not wants_auto_ticket(rule, a, other)


def test_auto_ticket_off_or_metric_never() -> None:
    assert not wants_auto_ticket(AutoTicket(enabled=False), alert(level="fatal"), "new")
    assert not wants_auto_ticket(AutoTicket(enabled=True), alert(issue_id=None, level="fatal"),
                                 "new")
    assert wants_auto_ticket(AutoTicket(enabled=True), alert(level="fatal"), "new")
