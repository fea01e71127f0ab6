"""What the alerts pipeline knows about one Sentry delivery, whatever its shape.

Every accepted input (an Integration Platform webhook of resource ``issue``, ``event_alert`` or
``metric_alert``, a legacy WebHooks plugin post, an issue found by polling) is parsed into one
:class:`SentryAlert` (``bot/alerts/payloads.py``); everything downstream (routing, posting,
tickets) reads only this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Resource(StrEnum):
    ISSUE = "issue"  # created, resolved, assigned, ignored, unresolved
    EVENT_ALERT = "event_alert"  # triggered
    METRIC_ALERT = "metric_alert"  # critical, warning, resolved, open
    LEGACY = "legacy"  # the WebHooks plugin (unsigned; a secret in the URL)
    POLL = "poll"  # found by polling the issues API (action "seen")


# Sentry's levels, lowest first (routing and auto-ticket rules compare them).
LEVELS = ("debug", "info", "warning", "error", "fatal")
CONDOR_JOB = re.compile(r"^\d{1,12}(\.\d{1,9})?$")  # the htcondor.cluster_id tag's value


def level_rank(level: str | None) -> int:
    """Position in LEVELS; an unknown or missing level counts as ``error`` (alert, not hide)."""
    try:
        return LEVELS.index((level or "error").lower())
    except ValueError:
        return LEVELS.index("error")


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame of the latest event (in-app frames go to the GitLab description)."""

    filename: str
    function: str
    lineno: int | None = None
    in_app: bool = False
    context_line: str | None = None


@dataclass(frozen=True, slots=True)
class SentryAlert:
    resource: Resource
    action: str  # as Sentry said it ("created", "triggered", "critical", ...; poll: "seen")
    dedupe_key: str  # one per distinct delivery (see payloads.dedupe_key)
    issue_id: str | None = None  # Sentry issue id; None for metric alerts
    metric_id: str | None = None  # metric alert (incident) id
    short_id: str | None = None  # GWCELERY-1Z
    title: str = ""
    culprit: str | None = None
    level: str | None = None  # debug .. fatal
    status: str | None = None  # unresolved, resolved, ignored
    substatus: str | None = None  # new, ongoing, regressed, escalating, ...
    project: str | None = None  # project slug
    project_name: str | None = None
    environment: str | None = None
    release: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int | None = None  # events (Sentry sends a string)
    user_count: int | None = None
    web_url: str | None = None  # the issue (or metric alert) in Sentry
    event_id: str | None = None
    event_url: str | None = None
    triggered_rule: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    frames: tuple[Frame, ...] = ()
    description: str | None = None  # metric alerts: description_text
    assignee: str | None = None  # issue.assigned: who
    installation_uuid: str | None = None  # for the external-issues link back
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """What notices and tickets are keyed by: ``sentry:<issue id>`` or ``metric:<id>``."""
        if self.issue_id:
            return f"sentry:{self.issue_id}"
        return f"metric:{self.metric_id or self.dedupe_key}"

    def tag(self, name: str) -> str | None:
        for key, value in self.tags:
            if key == name:
                return value
        return None

    @property
    def condor_job(self) -> str | None:
        """GWCelery's ``htcondor.cluster_id`` tag when it looks like a job id (it fills a
        command line: nothing else gets through)."""
        value = (self.tag("htcondor.cluster_id") or "").strip()
        return value if CONDOR_JOB.match(value) else None


def dump(alert: SentryAlert) -> str:
    """The alert as JSON (``alerts_issues.alert``); :func:`load` gives it back."""
    data = {name: getattr(alert, name) for name in alert.__dataclass_fields__}
    data["tags"] = [list(pair) for pair in alert.tags]
    data["frames"] = [{name: getattr(frame, name) for name in frame.__dataclass_fields__}
                      for frame in alert.frames]
    for name in ("first_seen", "last_seen"):
        value = data[name]
        data[name] = value.isoformat() if value is not None else None
    return json.dumps(data, separators=(",", ":"))


def load(text: str) -> SentryAlert:
    data = json.loads(text)
    known = SentryAlert.__dataclass_fields__
    data = {key: value for key, value in data.items() if key in known}
    data["resource"] = Resource(data["resource"])
    data["tags"] = tuple((str(k), str(v)) for k, v in data.get("tags") or ())
    data["frames"] = tuple(Frame(**frame) for frame in data.get("frames") or ())
    for name in ("first_seen", "last_seen"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    return SentryAlert(**data)
