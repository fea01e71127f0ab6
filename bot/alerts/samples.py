"""Sentry payloads for ``alerts simulate`` and the documented curl (docs/alerts.md, "Trying
it"): shaped like the real captures in tests/data/sentry (trimmed to what shiftbot reads),
with fresh ids each time so the demo shows new alerts. The demo must not depend on tests/, so
the shapes live here.

Samples: ``issue`` (issue.created), ``event`` (event_alert.triggered with a GWCelery-like
HTCondor job tag and a stack trace), ``metric`` (metric_alert.critical); and, for an existing
issue, ``repeat`` (a new event), ``resolve`` (issue.resolved), ``regress`` (issue.unresolved
after a resolve) and ``assign`` (issue.assigned).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.alerts.model import SentryAlert

NEW_SAMPLES = ("issue", "event", "metric")
FOLLOW_UPS = ("repeat", "resolve", "regress", "assign")
SAMPLES = NEW_SAMPLES + FOLLOW_UPS
ORG = "demo-org"
TITLES = (
    ("KeyError: 'superevent_id'", "gwcelery.tasks.orchestrator in handle_superevent"),
    ("TimeoutError: GraceDB did not answer within 60 s", "gwcelery.tasks.gracedb in upload"),
    ("CalledProcessError: bayestar-localize-coincs exited with 1",
     "gwcelery.tasks.bayestar in localize"),
    ("ConnectionResetError: [Errno 104] Connection reset by peer",
     "gwcelery.igwn_alert.bootsteps in on_message"),
)


@dataclass(frozen=True, slots=True)
class Sample:
    resource: str  # the Sentry-Hook-Resource header
    payload: dict[str, Any]
    issue_id: str | None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _issue(issue_id: str, short_id: str, title: str, culprit: str, level: str, project: str,
           status: str, now: datetime, count: int, first_seen: datetime | None = None,
           last_seen: datetime | None = None) -> dict[str, Any]:
    return {
        "id": issue_id, "shortId": short_id, "title": title, "culprit": culprit,
        "level": level, "status": status, "substatus": "new" if status == "unresolved"
        else None, "platform": "python", "type": "error", "count": str(count), "userCount": 0,
        "firstSeen": _stamp(first_seen or now), "lastSeen": _stamp(last_seen or now),
        "metadata": {"type": title.split(":")[0], "value": title.partition(": ")[2]},
        "project": {"slug": project, "name": project.title(), "id": "4242"},
        "web_url": f"https://sentry.example.org/organizations/{ORG}/issues/{issue_id}/",
        "assignedTo": None, "statusDetails": {},
    }


def _envelope(action: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"action": action, "data": data, "installation": {"uuid": "demo-installation"},
            "actor": {"type": "application", "id": "sentry", "name": "Sentry"}}


def short_id_of(project: str, issue_id: str) -> str:
    """A Sentry-like short id (``GWCELERY-1A2``) for a simulated issue."""
    return f"{project.upper()[:20]}-{int(issue_id) % 36 ** 3:X}"


def new_issue_id() -> str:
    return str(4_000_000_000 + secrets.randbelow(999_999_999))


def new_sample(name: str, now: datetime, *, level: str = "error", project: str = "gwcelery",
               environment: str = "production") -> Sample:
    """A brand-new Sentry issue (``issue``, ``event``) or metric alert (``metric``)."""
    issue_id = new_issue_id()
    short_id = short_id_of(project, issue_id)
    title, culprit = TITLES[int(issue_id) % len(TITLES)]
    if name == "metric":
        metric_id = str(secrets.randbelow(99_999) + 1)
        return Sample("metric_alert", _envelope("critical", {
            "description_title": "Too many errors in GWCelery",
            "description_text": "1000 events in the last 10 minutes\nFilter: level:error",
            "web_url": f"https://sentry.example.org/organizations/{ORG}/alerts/{metric_id}/",
            "metric_alert": {"id": metric_id, "identifier": metric_id, "title": "Sacred Marmot",
                             "status": 2, "date_started": _stamp(now),
                             "alert_rule": {"id": "7", "name": "Too many errors",
                                            "projects": [project], "environment": environment}},
        }), None)
    if name == "event":
        return Sample("event_alert", _envelope("triggered", {
            "event": _event(issue_id, title, culprit, level, project, environment, now),
            "triggered_rule": "GWCelery errors to the ops channel"}), issue_id)
    return Sample("issue", _envelope("created", {"issue": _issue(
        issue_id, short_id, title, culprit, level, project, "unresolved", now, 1)}), issue_id)


def _event(issue_id: str, title: str, culprit: str, level: str, project: str,
           environment: str, now: datetime) -> dict[str, Any]:
    event_id = secrets.token_hex(16)
    job = f"{secrets.randbelow(900_000) + 100_000}.0"
    return {
        "event_id": event_id, "issue_id": issue_id, "title": title, "culprit": culprit,
        "level": level, "environment": environment, "release": "gwcelery@2.5.1",
        "datetime": _stamp(now), "platform": "python",
        "url": f"https://sentry.example.org/api/0/projects/{ORG}/{project}/events/{event_id}/",
        "web_url": f"https://sentry.example.org/organizations/{ORG}/issues/{issue_id}/events/"
                   f"{event_id}/",
        "issue_url": f"https://sentry.example.org/api/0/issues/{issue_id}/",
        "tags": [["level", level], ["environment", environment], ["release", "gwcelery@2.5.1"],
                 ["server_name", "emfollow.ligo.caltech.edu"], ["htcondor.cluster_id", job]],
        "exception": {"values": [{"type": title.split(":")[0],
                                  "value": title.partition(": ")[2], "stacktrace": {"frames": [
            {"filename": "celery/app/trace.py", "function": "trace_task", "lineno": 451,
             "in_app": False},
            {"filename": f"{culprit.split(' in ')[0].replace('.', '/')}.py",
             "function": culprit.rpartition(" in ")[2], "lineno": 212, "in_app": True,
             "context_line": "    superevent_id = alert['superevent_id']"}]}}]},
    }


def follow_up(name: str, alert: SentryAlert, now: datetime) -> Sample:
    """A later delivery for an issue the bot knows (``repeat``, ``resolve``, ``regress``,
    ``assign``)."""
    if alert.issue_id is None:
        raise ValueError(f"{alert.subject} is not a Sentry issue")
    project = alert.project or "gwcelery"
    if name == "repeat":
        event = _event(alert.issue_id, alert.title, alert.culprit or "", alert.level or "error",
                       project, alert.environment or "production", now)
        return Sample("event_alert", _envelope("triggered", {
            "event": event, "triggered_rule": alert.triggered_rule or "simulated"}),
            alert.issue_id)
    status = {"resolve": "resolved", "regress": "unresolved", "assign": "unresolved"}[name]
    action = {"resolve": "resolved", "regress": "unresolved", "assign": "assigned"}[name]
    issue = _issue(alert.issue_id, alert.short_id or short_id_of(project, alert.issue_id),
                   alert.title,
                   alert.culprit or "", alert.level or "error", project, status, now,
                   (alert.count or 1) + (1 if name == "regress" else 0), alert.first_seen,
                   now if name == "regress" else alert.last_seen)
    if name == "regress":
        issue["substatus"] = "regressed"
    if name == "assign":
        issue["assignedTo"] = {"type": "user", "id": "1", "name": "Carol",
                               "email": "carol@example.org"}
    data: dict[str, Any] = {"issue": issue}
    if name == "resolve":
        data["resolution_type"] = "now"
    return Sample("issue", _envelope(action, data), alert.issue_id)
