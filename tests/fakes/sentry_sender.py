"""Sentry's side of the webhooks: real captured payloads (``tests/data/sentry``), variants of
them, signed as Sentry signs them (hex HMAC-SHA256 of the exact body bytes) and posted.

    sender = SentrySender(server.url, secret="…")
    payload = sender.variant(sender.sample("issue_created"), issue_id="42", level="fatal")
    status, body = await sender.send("issue", payload)
    status, body = await sender.send("issue", payload, signature="bad")   # or None: no header
    status, body = await sender.send_legacy(sender.sample("legacy_webhooks_plugin_python"),
                                            "url-secret")
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

import aiohttp

DATA = Path(__file__).resolve().parent.parent / "data" / "sentry"
SIGN = "sign"  # send(signature=SIGN): the right signature (the default)
BAD = "bad"  # send(signature=BAD): a well-formed signature under another secret


def sample(name: str) -> dict[str, Any]:
    """A captured payload: ``issue_created`` or ``sentry_issue_created.json`` alike."""
    stem = name.removesuffix(".json").removeprefix("sentry_")
    return json.loads((DATA / f"sentry_{stem}.json").read_text(encoding="utf-8"))


def samples() -> dict[str, dict[str, Any]]:
    """Every captured payload by short name (``issue_created``, ``metric_alert_...``)."""
    return {path.stem.removeprefix("sentry_"): sample(path.stem)
            for path in sorted(DATA.glob("sentry_*.json"))}


def resource_of(payload: dict[str, Any]) -> str:
    """The ``Sentry-Hook-Resource`` a payload of this shape is sent with (``legacy``: the
    plugin's, sent with :meth:`SentrySender.send_legacy`)."""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    for key, resource in (("issue", "issue"), ("event", "event_alert"),
                          ("metric_alert", "metric_alert")):
        if key in data:
            return resource
    return "legacy" if "event" in payload else "unknown"


def variant(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``payload`` with ``changes`` put where this shape keeps them: ``issue_id``,
    ``event_id``, ``level``, ``project``, ``environment``, ``tags`` (dict, added), ``last_seen``,
    ``count``, ``status``, ``title``, ``short_id``, ``action``, ``metric_id``, ``release``."""
    out = copy.deepcopy(payload)
    if "action" in changes:
        out["action"] = changes.pop("action")
    shape = resource_of(out)
    place = {"issue": _issue, "event_alert": _event, "metric_alert": _metric,
             "legacy": _legacy}.get(shape)
    if place is None:
        raise ValueError(f"no variants of a {shape} payload")
    place(out, changes)
    if changes:
        raise ValueError(f"{shape} payloads have no {', '.join(sorted(changes))}")
    return out


def _issue(out: dict[str, Any], changes: dict[str, Any]) -> None:
    issue = out["data"]["issue"]
    for name, key in (("issue_id", "id"), ("level", "level"), ("last_seen", "lastSeen"),
                      ("status", "status"), ("title", "title"), ("short_id", "shortId"),
                      ("first_seen", "firstSeen"), ("substatus", "substatus")):
        if name in changes:
            issue[key] = changes.pop(name)
    if "count" in changes:
        issue["count"] = str(changes.pop("count"))
    if "project" in changes:
        issue["project"] = {**issue.get("project", {}), "slug": changes["project"],
                            "name": changes.pop("project")}


def _event(out: dict[str, Any], changes: dict[str, Any]) -> None:
    event = out["data"]["event"]
    if "event_id" in changes:
        event["event_id"] = event["id"] = changes.pop("event_id")
    if "issue_id" in changes:
        issue_id = str(changes.pop("issue_id"))
        event["issue_id"] = issue_id
        event["issue_url"] = f"https://sentry.io/api/0/issues/{issue_id}/"
        event["web_url"] = (f"https://sentry.io/organizations/ligo/issues/{issue_id}/events/"
                            f"{event['event_id']}/")
    if "project" in changes:
        project = changes.pop("project")
        event["url"] = (f"https://sentry.io/api/0/projects/ligo/{project}/events/"
                        f"{event['event_id']}/")
    for name in ("level", "environment", "title", "release"):
        if name in changes:
            event[name] = changes.pop(name)
    if "last_seen" in changes:
        event["datetime"] = changes.pop("last_seen")
    _add_tags(event, changes.pop("tags", None))


def _metric(out: dict[str, Any], changes: dict[str, Any]) -> None:
    metric = out["data"]["metric_alert"]
    if "metric_id" in changes:
        metric["id"] = str(changes.pop("metric_id"))
    if "title" in changes:
        out["data"]["description_title"] = changes.pop("title")
    if "project" in changes:
        metric["alert_rule"]["projects"] = metric["projects"] = [changes.pop("project")]
    if "environment" in changes:
        metric["alert_rule"]["environment"] = changes.pop("environment")


def _legacy(out: dict[str, Any], changes: dict[str, Any]) -> None:
    event = out["event"]
    if "issue_id" in changes:
        out["id"] = str(changes.pop("issue_id"))
        out["url"] = f"https://ligo.sentry.io/issues/{out['id']}/?referrer=webhooks_plugin"
    if "event_id" in changes:
        event["event_id"] = event["id"] = changes.pop("event_id")
    if "project" in changes:
        out["project"] = out["project_slug"] = out["project_name"] = changes.pop("project")
    for name in ("level", "title"):
        if name in changes:
            out[name if name == "level" else "message"] = event[name] = changes.pop(name)
    for name in ("environment", "release"):
        if name in changes:
            event[name] = changes.pop(name)
    _add_tags(event, changes.pop("tags", None))


def _add_tags(event: dict[str, Any], tags: dict[str, str] | None) -> None:
    if tags:
        kept = [pair for pair in event.get("tags", []) if pair[0] not in tags]
        event["tags"] = kept + [[key, value] for key, value in tags.items()]


def sign(secret: str, body: bytes) -> str:
    """Computed here, not with bot.alerts.signature: the test must not trust the code under
    test to agree with Sentry."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class SentrySender:
    """Posts to ``{url}/webhooks/sentry`` (and ``/webhooks/sentry/legacy/<secret>``) as Sentry
    does. Use ``async with`` to reuse one connection pool (many sends); otherwise each send
    opens and closes its own session."""

    def __init__(self, url: str, secret: str, *, path: str = "/webhooks/sentry") -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.path = path
        self._session: aiohttp.ClientSession | None = None
        self.sample = sample
        self.variant = variant

    async def __aenter__(self) -> SentrySender:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def body(self, payload: dict[str, Any]) -> bytes:
        """Bytes as Sentry sends them (its serializer: compact separators)."""
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")

    async def send(self, resource: str, payload: dict[str, Any] | None = None, *,
                   signature: str | None = SIGN, raw: bytes | None = None,
                   request_id: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST a delivery; ``raw`` replaces the body (signed all the same), ``signature`` is
        SIGN, BAD, None (no header) or the literal header value. Returns (status, body: JSON
        when it is, else text)."""
        body = raw if raw is not None else self.body(payload or {})
        sent = {"Content-Type": "application/json", "Sentry-Hook-Resource": resource,
                "Sentry-Hook-Timestamp": "1700000000",
                "Request-ID": request_id or secrets.token_hex(16)}
        if signature == SIGN:
            sent["Sentry-Hook-Signature"] = sign(self.secret, body)
        elif signature == BAD:
            sent["Sentry-Hook-Signature"] = sign(self.secret + "-not", body)
        elif signature is not None:
            sent["Sentry-Hook-Signature"] = signature
        sent.update(headers or {})
        return await self._post(self.url + self.path, body, sent)

    async def send_legacy(self, payload: dict[str, Any] | None, secret: str, *,
                          raw: bytes | None = None,
                          request_id: str | None = None) -> tuple[int, Any]:
        """POST as the legacy WebHooks plugin does: unsigned, the secret in the URL (the
        plugin sends no Request-ID; ``request_id`` adds one)."""
        body = raw if raw is not None else self.body(payload or {})
        headers = {"Content-Type": "application/json", "User-Agent": "sentry-plugins/webhooks"}
        if request_id is not None:
            headers["Request-ID"] = request_id
        return await self._post(f"{self.url}{self.path}/legacy/{secret}", body, headers)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except ValueError:
                    return response.status, text
        finally:
            if session is not self._session:
                await session.close()
