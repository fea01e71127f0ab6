"""Receiving Sentry's webhooks: verify, parse, store in the inbox, answer 200.

Sentry waits 1 s for the answer and internal integrations get no retries, so the only work
before the 200 is the database write (``inbox.accept``, off the event loop, deliveries arriving
together in one transaction: bot/alerts/writer.py); everything else
happens later, from the inbox (``bot/alerts/service.py``). Answers:

- 404 when ``sentry.client_secret`` (legacy: ``sentry.legacy_secret``) is not configured;
- 401 for a bad or missing ``Sentry-Hook-Signature`` or a wrong legacy URL secret, checked
  before the body is parsed at all (nothing stored);
- 400 for a verified body that is not a payload we understand;
- 503 when the database cannot store it (Sentry's published apps retry 5xx; the integration's
  delivery log shows it);
- 200 ``{"ok": true}`` otherwise: stored, a duplicate, or a resource we acknowledge and ignore.

Refusals are :class:`bot.http.Refused`: the server's guard answers them and logs one
rate-limited line, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts import inbox
from bot.alerts.config import SENTRY, SentryConfig
from bot.alerts.model import Resource, SentryAlert
from bot.alerts.payloads import PayloadError, key_of, parse_legacy, parse_webhook
from bot.alerts.signature import verify
from bot.alerts.writer import Delivery, InboxWriter
from bot.db import DatabaseError
from bot.http import Refused, read_body

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Sentry-Hook-Signature"
RESOURCE_HEADER = "Sentry-Hook-Resource"
REQUEST_ID_HEADER = "Request-ID"
WHAT = "Sentry webhook"
_OK = {"ok": True}


async def receive_signed(bot: Bot, request: web.Request, *,
                         on_accept: Callable[[], None]) -> web.Response:
    """``POST /webhooks/sentry``: an Integration Platform delivery, signed with the client
    secret. ``on_accept`` is called once a new delivery is stored (wake the processor)."""
    settings = _settings(bot)
    if settings.client_secret is None or not settings.client_secret.get_secret_value():
        raise Refused(404, "Sentry webhook but sentry.client_secret is not configured",
                      level=logging.INFO)
    body = await read_body(request, what=WHAT)
    if not verify(settings.client_secret.get_secret_value(), body,
                  request.headers.get(SIGNATURE_HEADER)):
        missing = SIGNATURE_HEADER not in request.headers
        raise Refused(401, f"{WHAT} with {'no' if missing else 'a bad'} signature",
                      body="invalid or missing signature", auth_source="sentry")
    resource = request.headers.get(RESOURCE_HEADER, "").strip()[:40]
    if resource in (Resource.LEGACY, Resource.POLL):
        resource = ""  # the Integration Platform's resources only: these are unknown here
    # Only the inbox row's fields now (payloads.key_of); the full parse when it is processed.
    return await _store(bot, lambda: key_of(resource, body), body,
                        _request_id(request), on_accept, what=resource)


async def receive_legacy(bot: Bot, request: web.Request, *,
                         on_accept: Callable[[], None]) -> web.Response:
    """``POST /webhooks/sentry/legacy/{secret}``: the legacy WebHooks plugin, which signs
    nothing; only a URL carrying ``sentry.legacy_secret`` is accepted."""
    settings = _settings(bot)
    if settings.legacy_secret is None or not settings.legacy_secret.get_secret_value():
        raise Refused(404, "legacy Sentry webhook but sentry.legacy_secret is not configured",
                      level=logging.INFO)
    given = request.match_info.get("secret", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given,
                               settings.legacy_secret.get_secret_value().encode("utf-8")):
        raise Refused(401, "legacy Sentry webhook with a wrong URL secret",
                      body="unknown webhook", auth_source="sentry")
    body = await read_body(request, what=WHAT)
    return await _store(bot, lambda: key_of(Resource.LEGACY, body), body,
                        _request_id(request), on_accept, what="legacy")


async def accept_body(bot: Bot, resource: str, body: bytes,
                      request_id: str | None) -> bool | None:
    """Parse ``body`` (``resource``: the ``Sentry-Hook-Resource``, or ``legacy``) and store it:
    True stored, False a duplicate, None a resource acknowledged and ignored. Raises
    :class:`PayloadError` for junk; a database failure propagates. (``alerts simulate`` and
    tests use it; the routes go through the same steps.)"""
    alert = parse_delivery(resource, body, web_url=_settings(bot).web_url)
    if alert is None:
        return None
    return await _insert(bot, alert, body, request_id)


async def _insert(bot: Bot, alert: SentryAlert, body: bytes, request_id: str | None) -> bool:
    # The parser accepted the body: it is UTF-8. Deliveries arriving together share one
    # transaction (bot/alerts/writer.py); each is answered after its commit.
    writer = bot.services.ensure(InboxWriter, lambda: InboxWriter(bot.database))
    return await writer.store(Delivery(alert, body.decode("utf-8"), request_id))


def parse_delivery(resource: str, body: bytes, *, web_url: str | None = None
                   ) -> SentryAlert | None:
    """A delivery of ``resource`` (``legacy`` for the plugin) parsed; None when ignored."""
    if resource == Resource.LEGACY:
        return parse_legacy(body, web_url=web_url)
    return parse_webhook(resource, body, web_url=web_url)


async def _store(bot: Bot, parse: Callable[[], SentryAlert | None], body: bytes,
                 request_id: str | None, on_accept: Callable[[], None], *,
                 what: str) -> web.Response:
    try:
        alert = parse()
    except PayloadError as exc:
        raise Refused(400, f"{WHAT} that cannot be used", str(exc),
                      body=f"not a Sentry {what or 'webhook'} payload",
                      level=logging.INFO) from None
    if alert is None:  # acknowledged and ignored (payloads logged it)
        return web.json_response(_OK)
    try:
        stored = await _insert(bot, alert, body, request_id)
    except (SQLAlchemyError, DatabaseError, OSError, RuntimeError) as exc:
        # RuntimeError: the database's executor is shut down (the bot is stopping).
        raise Refused(503, f"{WHAT} not stored: the database failed", type(exc).__name__,
                      body="cannot store the delivery now") from None
    if stored:
        on_accept()
    return web.json_response(_OK)


def _settings(bot: Bot) -> SentryConfig:
    """The ``sentry:`` section (its defaults when the config has none)."""
    return SENTRY.of(bot.config) or SentryConfig()


def _request_id(request: web.Request) -> str | None:
    """Sentry's ``Request-ID`` (new on every try): kept for tracing, printable and short."""
    value = request.headers.get(REQUEST_ID_HEADER, "")[:inbox.REQUEST_ID_MAX]
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value or None
