"""Sentry's payloads -> :class:`~bot.alerts.model.SentryAlert`, trusting nothing in them.

Shapes (``docs/alerts.md``; samples in ``tests/data/sentry``): the Integration Platform's
``issue`` (``data.issue``), ``event_alert`` (``data.event``, ``data.triggered_rule``) and
``metric_alert`` (``data.metric_alert``, ``data.description_*``, ``data.web_url``); the legacy
WebHooks plugin (issue fields at the top, the event in ``event``); an issue of the issues API
(polling). A body that is not JSON, not an object, or lacks what identifies it (the issue,
event or metric alert id) is a :class:`PayloadError` with a short message. Every other field
is optional: a value of the wrong type is dropped, text is cut to a bounded length, so nothing
a sender writes can make this module raise anything else or store something unbounded.

Dedupe keys (one per distinct delivery; ``alerts_inbox.dedupe_key`` is unique):
``event:<event id>`` for event alerts and legacy posts (the same event by both paths is one),
``issue:<id>:<action>:<lastSeen>:<status>``, ``metric:<id>:<action>``,
``poll:<id>:<lastSeen>:<status>``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any

from bot.alerts import payload_fields as fields
from bot.alerts.model import Resource, SentryAlert
from bot.alerts.payload_fields import SHORT, TEXT, TITLE, PayloadError

__all__ = ["PayloadError", "enrich", "parse_legacy", "parse_polled", "parse_stored",
           "parse_webhook"]

if TYPE_CHECKING:
    from bot.http import RefusalLog

log = logging.getLogger(__name__)
_ignored: RefusalLog | None = None  # one line per ignored kind of delivery per minute


def _ignored_log() -> RefusalLog:
    """Made on first use: bot.http is the aiohttp server, which the console need not load."""
    global _ignored
    if _ignored is None:
        from bot.http import RefusalLog

        _ignored = RefusalLog(log)
    return _ignored

ISSUE_ACTIONS = frozenset({"created", "resolved", "assigned", "ignored", "unresolved"})
EVENT_ACTIONS = frozenset({"triggered"})
METRIC_ACTIONS = frozenset({"critical", "warning", "resolved", "open"})
ACTIONS = {"issue": ISSUE_ACTIONS, "event_alert": EVENT_ACTIONS, "metric_alert": METRIC_ACTIONS}
METRIC_LEVELS = {"critical": "fatal", "warning": "warning", "open": "warning",
                 "resolved": "info"}

_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/events/")


# ----------------------------------------------------------------------------- entry points


def parse_webhook(resource: str, body: bytes, *, web_url: str | None = None
                  ) -> SentryAlert | None:
    """An Integration Platform delivery (``Sentry-Hook-Resource`` and the raw body); None for
    what is acknowledged and ignored (other resources, unknown actions). ``web_url``
    (``sentry.web_url``) builds the issue link when the payload has none."""
    accepted = _accepted(resource, body)
    if accepted is None:
        return None
    payload, action = accepted
    data = fields.obj(payload.get("data"), "data")
    uuid = fields.text(fields.obj(payload.get("installation")).get("uuid"), SHORT)
    if resource == "issue":
        alert = _issue(data, action, web_url)
    elif resource == "event_alert":
        alert = _event_alert(data, web_url)
    else:
        alert = _metric_alert(data, action)
    return dataclasses.replace(alert, installation_uuid=uuid) if uuid else alert


def key_of(resource: str, body: bytes) -> SentryAlert | None:
    """Only what the inbox row needs (resource, action, dedupe key, subject): the work of the
    webhook's ack, a fraction of a full parse. The full parse runs when the row is processed
    (``parse_stored``); both read these fields with the same rules, so they agree
    (tests/test_alerts_payloads.py checks it on every sample and their fuzzed variants).
    ``resource`` is the ``Sentry-Hook-Resource``, or ``legacy``; None and PayloadError as for
    :func:`parse_webhook`."""
    if resource == Resource.LEGACY:
        payload = fields.load(body)
        event = fields.obj(payload.get("event"))
        event_id = fields.an_id(event.get("event_id") or event.get("id"), "event.event_id")
        return SentryAlert(Resource.LEGACY, "triggered", f"event:{event_id}",
                           issue_id=fields.maybe_id(payload.get("id")), event_id=event_id)
    accepted = _accepted(resource, body)
    if accepted is None:
        return None
    payload, action = accepted
    data = fields.obj(payload.get("data"), "data")
    if resource == "issue":
        issue = fields.obj(data.get("issue"), "data.issue")
        issue_id = fields.an_id(issue.get("id"), "issue.id")
        status = fields.text(issue.get("status"), 20)
        key = f"issue:{issue_id}:{action}:{fields.raw_time(issue.get('lastSeen'))}:{status or ''}"
        return SentryAlert(Resource.ISSUE, action, key, issue_id=issue_id)
    if resource == "event_alert":
        event = fields.obj(data.get("event"), "data.event")
        event_id = fields.an_id(event.get("event_id") or event.get("id"),
                                "data.event.event_id")
        issue_id = (fields.maybe_id(event.get("issue_id"))
                    or fields.issue_in(event.get("issue_url")))
        return SentryAlert(Resource.EVENT_ALERT, action, f"event:{event_id}",
                           issue_id=issue_id, event_id=event_id)
    metric = fields.obj(data.get("metric_alert"), "data.metric_alert")
    metric_id = fields.an_id(metric.get("id"), "data.metric_alert.id")
    return SentryAlert(Resource.METRIC_ALERT, action, f"metric:{metric_id}:{action}",
                       metric_id=metric_id)


def _accepted(resource: str, body: bytes) -> tuple[dict[str, Any], str] | None:
    """(payload, action) of a resource and action we handle; None (one line logged) for the
    rest; PayloadError for a body that is not a JSON object."""
    if resource not in ACTIONS:
        _ignore(f"Sentry {fields.clip(resource, 40) or 'unnamed'} delivery")
        return None
    payload = fields.load(body)
    action = payload.get("action")
    if not isinstance(action, str) or action not in ACTIONS[resource]:
        _ignore(f"Sentry {resource} delivery with action {fields.clip(action, 40)!r}")
        return None
    return payload, action


def parse_legacy(body: bytes, *, web_url: str | None = None) -> SentryAlert:
    """A post of the legacy WebHooks plugin (unsigned: its route checks the URL's secret)."""
    payload = fields.load(body)
    event = fields.obj(payload.get("event"))
    event_id = fields.an_id(event.get("event_id") or event.get("id"), "event.event_id")
    issue_id = fields.maybe_id(payload.get("id"))
    url = fields.url(payload.get("url"))
    if url:
        url = url.split("?", 1)[0]  # drop ?referrer=webhooks_plugin
    rules = payload.get("triggering_rules")
    rule = (", ".join(fields.text(r, TEXT) or "" for r in rules[:5])
            if isinstance(rules, list) else None)
    tags = fields.tags(event.get("tags"))
    return SentryAlert(
        resource=Resource.LEGACY, action="triggered", dedupe_key=f"event:{event_id}",
        issue_id=issue_id, event_id=event_id,
        title=fields.text(event.get("title") or payload.get("message"), TITLE) or "",
        culprit=fields.text(payload.get("culprit") or event.get("culprit"), TEXT),
        level=fields.level(payload.get("level") or event.get("level")),
        project=fields.text(payload.get("project_slug") or payload.get("project"), SHORT),
        project_name=fields.text(payload.get("project_name"), SHORT),
        environment=fields.environment(event, tags), release=fields.release_of(event, tags),
        last_seen=fields.time(event.get("timestamp")),
        web_url=url or fields.issue_link(web_url, issue_id),
        triggered_rule=rule or None, tags=tags, frames=fields.frames(event))


def parse_polled(issue: Any, *, web_url: str | None = None) -> SentryAlert:
    """An issue from the issues API (polling): resource POLL, action ``seen``."""
    issue = fields.obj(issue, "issue")
    alert = _issue_fields(issue, web_url)
    last_seen = fields.raw_time(issue.get("lastSeen"))
    key = f"poll:{alert.issue_id}:{last_seen}:{alert.status or ''}"
    return dataclasses.replace(alert, resource=Resource.POLL, action="seen", dedupe_key=key)


def parse_stored(resource: str, body: str, *, web_url: str | None = None
                 ) -> SentryAlert | None:
    """An inbox row parsed again (``alerts_inbox.resource`` and ``.body``)."""
    if resource == Resource.LEGACY:
        return parse_legacy(body.encode("utf-8"), web_url=web_url)
    if resource == Resource.POLL:
        return parse_polled(fields.load(body.encode("utf-8")), web_url=web_url)
    return parse_webhook(resource, body.encode("utf-8"), web_url=web_url)


def enrich(alert: SentryAlert, issue: Any, event: Any) -> SentryAlert:
    """``alert`` with what the Sentry API said (``issue``: issue details, ``event``: its latest
    event): counts, first/last seen, links, frames, tags, release, environment. The API's
    answers are trusted no more than payloads: a missing or odd field leaves the alert's."""
    changes: dict[str, Any] = {}
    if isinstance(issue, dict):
        fresh = _issue_fields(issue, None, strict=False)
        for name in ("count", "user_count", "first_seen", "last_seen", "short_id", "web_url",
                     "substatus", "project", "project_name", "level", "culprit", "title"):
            value = getattr(fresh, name)
            if value not in (None, "") and (name in _API_WINS or not getattr(alert, name)):
                changes[name] = value
    if isinstance(event, dict):
        frames = fields.frames(event)
        tags = fields.tags(event.get("tags"))
        if frames:
            changes["frames"] = frames
        if tags:
            # The delivery's own event wins (its htcondor.cluster_id is the job that failed
            # this time); the latest event only adds the tags the delivery lacks.
            own = {name for name, _ in alert.tags}
            changes["tags"] = tuple(alert.tags) + tuple(t for t in tags if t[0] not in own)
        release = fields.release_of(event, tags)
        environment = fields.environment(event, tags)
        if release and not alert.release:
            changes["release"] = release
        if environment and not alert.environment:
            changes["environment"] = environment
    return dataclasses.replace(alert, **changes) if changes else alert


_API_WINS = frozenset({"count", "user_count", "first_seen", "last_seen", "substatus"})

# ----------------------------------------------------------------------------- resources


def _issue(data: dict[str, Any], action: str, web_url: str | None) -> SentryAlert:
    issue = fields.obj(data.get("issue"), "data.issue")
    alert = _issue_fields(issue, web_url)
    key = (f"issue:{alert.issue_id}:{action}:{fields.raw_time(issue.get('lastSeen'))}:"
           f"{alert.status or ''}")
    assignee = None
    if action == "assigned":
        who = fields.obj(issue.get("assignedTo"))
        assignee = fields.text(who.get("name") or who.get("email") or who.get("id"), SHORT)
    extra = {}
    resolution = fields.text(data.get("resolution_type"), 40)
    if resolution:
        extra["resolution_type"] = resolution
    return dataclasses.replace(alert, resource=Resource.ISSUE, action=action, dedupe_key=key,
                               assignee=assignee, extra={**alert.extra, **extra})


def _issue_fields(issue: dict[str, Any], web_url: str | None, *,
                  strict: bool = True) -> SentryAlert:
    """The fields an issue has in webhooks, the API and polling alike."""
    issue_id = (fields.an_id(issue.get("id"), "issue.id") if strict
                else fields.maybe_id(issue.get("id")))
    project = fields.obj(issue.get("project"))
    metadata = fields.obj(issue.get("metadata"))
    extra = {name: text for name in ("type", "value")
             if (text := fields.text(metadata.get(name), TEXT))}
    return SentryAlert(
        resource=Resource.ISSUE, action="", dedupe_key="", issue_id=issue_id,
        short_id=fields.text(issue.get("shortId"), SHORT),
        title=fields.text(issue.get("title"), TITLE) or "",
        culprit=fields.text(issue.get("culprit"), TEXT),
        level=fields.level(issue.get("level")),
        status=fields.text(issue.get("status"), 20),
        substatus=fields.text(issue.get("substatus"), 20),
        project=fields.text(project.get("slug"), SHORT),
        project_name=fields.text(project.get("name"), SHORT),
        first_seen=fields.time(issue.get("firstSeen")),
        last_seen=fields.time(issue.get("lastSeen")),
        count=fields.count(issue.get("count")),
        user_count=fields.count(issue.get("userCount")),
        web_url=(fields.url(issue.get("web_url")) or fields.url(issue.get("permalink"))
                 or fields.issue_link(web_url, issue_id)),
        extra=extra)


def _event_alert(data: dict[str, Any], web_url: str | None) -> SentryAlert:
    event = fields.obj(data.get("event"), "data.event")
    event_id = fields.an_id(event.get("event_id") or event.get("id"), "data.event.event_id")
    issue_url = event.get("issue_url")
    issue_id = fields.maybe_id(event.get("issue_id")) or fields.issue_in(issue_url)
    event_url = fields.url(event.get("web_url"))
    issue_link = event_url.split("/events/", 1)[0] + "/" if event_url and \
        "/events/" in event_url else None
    api_url = event.get("url")
    found = _PROJECT_IN_URL.search(api_url) if isinstance(api_url, str) else None
    project = fields.text(found.group(1) if found else event.get("project"), SHORT)
    tags = fields.tags(event.get("tags"))
    return SentryAlert(
        resource=Resource.EVENT_ALERT, action="triggered", dedupe_key=f"event:{event_id}",
        issue_id=issue_id, event_id=event_id,
        title=fields.text(event.get("title") or event.get("message"), TITLE) or "",
        culprit=fields.text(event.get("culprit"), TEXT), level=fields.level(event.get("level")),
        project=project, environment=fields.environment(event, tags),
        release=fields.release_of(event, tags),
        last_seen=fields.time(event.get("datetime")) or fields.time(event.get("timestamp")),
        web_url=issue_link or fields.issue_link(web_url, issue_id), event_url=event_url,
        triggered_rule=fields.text(data.get("triggered_rule"), TEXT), tags=tags,
        frames=fields.frames(event))


def _metric_alert(data: dict[str, Any], action: str) -> SentryAlert:
    metric = fields.obj(data.get("metric_alert"), "data.metric_alert")
    metric_id = fields.an_id(metric.get("id"), "data.metric_alert.id")
    rule = fields.obj(metric.get("alert_rule"))
    projects = rule.get("projects") or metric.get("projects")
    project = (fields.text(projects[0], SHORT)
               if isinstance(projects, list) and projects else None)
    return SentryAlert(
        resource=Resource.METRIC_ALERT, action=action,
        dedupe_key=f"metric:{metric_id}:{action}", metric_id=metric_id,
        title=(fields.text(data.get("description_title"), TITLE)
               or fields.text(rule.get("name"), TITLE)
               or fields.text(metric.get("title"), TITLE) or f"metric alert {metric_id}"),
        level=METRIC_LEVELS[action], status="resolved" if action == "resolved" else
        "unresolved", project=project, environment=fields.text(rule.get("environment"), SHORT),
        first_seen=fields.time(metric.get("date_started")),
        web_url=fields.url(data.get("web_url")),
        triggered_rule=fields.text(rule.get("name"), TEXT),
        description=fields.text(data.get("description_text"), TITLE, lines=True))


def _ignore(what: str) -> None:
    _ignored_log().note(what, level=logging.INFO, prefix="ignored: ")
