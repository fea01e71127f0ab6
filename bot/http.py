"""The bot's HTTP server (aiohttp): ``/healthz``, ``/metrics``, and what adapters mount.

Adapters add routes before :meth:`HttpServer.start` (``/slack/events``,
``/mattermost/command``, ...). ``/healthz`` answers 200 when every component is healthy and 503
otherwise, with the per-component state as JSON.

Anyone who can reach the port can send anything, so no request may cost a traceback, an ERROR
line (Sentry turns those into events) or a 500. Every route is wrapped by :meth:`HttpServer._guard`:

* a handler raises :class:`Refused` for a request it will not serve (bad signature, body not
  UTF-8, ...): the client gets that status, the log one rate-limited line at INFO/WARNING;
* aiohttp's own 4xx (no such route, wrong method, body too large) are logged the same way;
* errors raised while *decoding* a request (unknown charset, broken multipart, ...) become 400;
* anything else is a genuine bug: 500 with a reference but no traceback for the client, one
  rate-limited ERROR line with the traceback (and so one Sentry event) for us.

Slow clients are cut (slowloris: each held connection costs a file descriptor and a task):
a connection has ``header_timeout`` seconds, from its start or its previous answer, to deliver
a complete request head (aiohttp's keep-alive timer, which also closes idle connections), and a
request ``body_timeout`` seconds from its head to its last body byte; a body a route did not
read is drained for at most ``body_timeout`` seconds (aiohttp's lingering time).

Malformed HTTP that never reaches a route (bad header bytes, broken chunking) is logged by
aiohttp with a traceback at ERROR; a filter on the server's own logger turns that into the same
rate-limited line. Adapters read bodies with :func:`read_body`, :func:`parse_json` and
:func:`parse_form`: strict UTF-8, bounded size, fields and JSON nesting, failures as
:class:`Refused`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from bot.health import READINESS_ONLY, alive

if TYPE_CHECKING:
    from bot.health import Health
    from bot.metrics import Metrics
    from bot.readiness import Readiness

log = logging.getLogger(__name__)

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY = 1024 * 1024  # aiohttp refuses larger bodies with 413
MAX_JSON_DEPTH = 32  # Slack and Mattermost payloads nest fewer than 10 levels
MAX_FORM_FIELDS = 100  # a Mattermost slash command has about 15
HEADER_TIMEOUT = 15.0  # defaults of bot.http.header_timeout_seconds / body_timeout_seconds
BODY_TIMEOUT = 30.0
REFUSAL_LOG_INTERVAL = 60.0  # at most one log line per reason per this many seconds
# aiohttp modules that parse requests: what they raise inside a handler is a bad request.
_PARSING_MODULES = frozenset({"web_request.py", "multipart.py", "helpers.py", "streams.py",
                              "http_parser.py", "formdata.py", "payload.py"})
# A JSON string (escapes included) or a bracket: enough to measure nesting without parsing.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class Refused(Exception):
    """A request the bot will not serve, raised before anything ran.

    The guard answers ``status`` (``body`` as text, or ``json_body``), logs ``reason`` (a fixed
    phrase: the rate-limit key, never request data) with ``detail``, and counts a 401 in
    ``shiftbot_auth_failures_total{source=auth_source}``.
    """

    def __init__(self, status: int, reason: str, detail: str = "", *, body: str | None = None,
                 json_body: dict[str, Any] | None = None, auth_source: str | None = None,
                 level: int = logging.WARNING) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.body = body
        self.json_body = json_body
        self.auth_source = auth_source
        self.level = level

    def response(self) -> web.Response:
        if self.json_body is not None:
            return web.json_response(self.json_body, status=self.status)
        text = self.body or HTTPStatus(self.status).phrase.lower()
        return web.Response(status=self.status, text=text + "\n")


class RefusalLog:
    """One log line per reason per ``interval`` seconds, saying how many were not logged."""

    def __init__(self, logger: logging.Logger, interval: float = REFUSAL_LOG_INTERVAL, *,
                 clock: Callable[[], float] = time.monotonic, max_reasons: int = 256) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.max_reasons = max_reasons
        self._seen: dict[str, list[float]] = {}  # reason -> [last logged, suppressed since]

    def note(self, reason: str, detail: str = "", *, level: int = logging.WARNING,
             exc_info: BaseException | None = None, prefix: str = "refused: ") -> bool:
        """Log ``reason`` unless it was logged within the interval; True when logged."""
        now = self.clock()
        seen = self._seen.get(reason)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return False
        suppressed = int(seen[1]) if seen is not None else 0
        if seen is None and len(self._seen) >= self.max_reasons:
            self._seen.pop(next(iter(self._seen)))  # reasons are fixed phrases: rarely needed
        self._seen[reason] = [now, 0]
        more = (f" [{suppressed} more since the last such line]" if suppressed else "")
        self.logger.log(level, "%s%s%s%s", prefix, reason, f" ({detail})" if detail else "",
                        more, exc_info=exc_info)
        return True


def clip(value: object, size: int = 120) -> str:
    """Request data for a log line: printable (``repr``), never longer than ``size``."""
    text = repr(value)
    return text if len(text) <= size else text[:size] + "…"


def is_request_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from decoding the request (a 400), not from the bot's code."""
    if isinstance(exc, UnicodeError | json.JSONDecodeError
                  | RequestPayloadError):  # the body's framing or compression is broken
        return True
    if isinstance(exc, HttpProcessingError):
        return 400 <= (exc.code or 400) < 500
    if type(exc) is LookupError:  # codecs.lookup(): an unknown charset
        return True
    if not isinstance(exc, ValueError | RuntimeError | LookupError | AssertionError | OSError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    # Raised by a parser (aiohttp's, or json's on deep nesting: a RecursionError), not by us.
    where = Path(tb.tb_frame.f_code.co_filename)
    return ((where.parent.name == "aiohttp" and where.name in _PARSING_MODULES)
            or where.parent.name == "json")


async def read_body(request: web.Request, *, what: str, limit: int = MAX_BODY) -> bytes:
    """The raw body, at most ``limit`` bytes (else :class:`Refused` 413). A body that does not
    arrive within the server's ``body_timeout`` is cut by :meth:`HttpServer._guard`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Refused(413, f"{what} larger than {limit} bytes", f"Content-Length {declared}")
    body = await request.read()  # over the server's client_max_size: aiohttp's own 413
    if len(body) > limit:
        raise Refused(413, f"{what} larger than {limit} bytes", f"{len(body)} bytes")
    return body


def utf8(raw: bytes, *, what: str) -> str:
    """``raw`` decoded as UTF-8, whatever charset the Content-Type claims (Slack and Mattermost
    send UTF-8 only; other charsets are refused by the decoder, not looked up)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"{what} that is not UTF-8", f"byte {exc.start}") from None


def json_depth_ok(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON ``text`` nests at most ``max_depth`` arrays/objects (without parsing)."""
    if text.count("[") + text.count("{") <= max_depth:
        return True  # cheap for the usual small payload
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > max_depth:
                return False
        elif token == "]" or token == "}":
            depth -= 1
    return True


def parse_json(raw: bytes, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON body: UTF-8, nested at most ``max_depth`` deep; else :class:`Refused` 400."""
    text = utf8(raw, what=what)
    if not json_depth_ok(text, max_depth):
        raise Refused(400, f"{what} nested deeper than {max_depth}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"{what} that is not JSON", clip(str(exc), 80)) from None


def parse_form(raw: bytes, *, what: str, max_fields: int = MAX_FORM_FIELDS) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (or query): UTF-8 before and after
    percent-decoding, at most ``max_fields`` fields; else :class:`Refused` 400."""
    text = utf8(raw, what=what)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields,
                          errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, f"{what} whose fields are not UTF-8") from None
    except ValueError as exc:  # too many fields
        raise Refused(400, f"{what} that is not a valid form", clip(str(exc), 80)) from None
    return dict(pairs)


def route_of(request: web.Request) -> str:
    """The route's path pattern (``/mattermost/command``), or the request's path, clipped."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else clip(request.path, 80)


class _ProtocolErrors(logging.Filter):
    """On the aiohttp server's logger: malformed HTTP is a rate-limited line, not a traceback."""

    def __init__(self, refusals: RefusalLog) -> None:
        super().__init__()
        self.refusals = refusals

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # Parse errors, and a broken body aiohttp drains after the answer (bad gzip, chunks).
        if not isinstance(exc, HttpProcessingError | RequestPayloadError) \
                or not is_request_error(exc):
            return True  # anything else is aiohttp's (or our) bug: keep it as it is
        self.refusals.note("malformed HTTP request",
                           f"{type(exc).__name__}: {clip(str(exc), 80)}", level=logging.INFO)
        return False


# aiohttp's request handlers log here (instead of "aiohttp.server"), through the filter,
# which counts against the refusals of the latest server (there is one per process).
_server_log = logging.getLogger("bot.http.server")
_protocol_errors = _ProtocolErrors(RefusalLog(log))
_server_log.addFilter(_protocol_errors)


class HttpServer:
    def __init__(self, health: Health, metrics: Metrics, host: str, port: int,
                 health_timeout: float = 2.0, *, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT) -> None:
        self.health = health
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.metrics = metrics
        self.host = host
        self.port = port
        self.health_timeout = health_timeout
        self.refusals = RefusalLog(log)
        _protocol_errors.refusals = self.refusals
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.readiness: Readiness | None = None  # bot.readiness.attach_readiness sets it
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: RouteHandler) -> None:
        self.app.router.add_route(method, path, handler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     logger=_server_log,
                                     # Armed at connect and after each answer, it closes a
                                     # connection still without a complete request head.
                                     keepalive_timeout=self.header_timeout,
                                     lingering_time=self.body_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("HTTP server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request: web.Request, handler: RouteHandler) -> web.StreamResponse:
        """Every route: refusals and bad requests -> 4xx and one rate-limited line; a bug ->
        500 without a traceback for the client (see the module docstring); a body still
        incomplete after ``body_timeout`` seconds closes the connection."""
        cut: list[bool] = []
        if request.content.is_eof():  # no body (GET), or all of it came with the head
            return await self._answer(request, handler, cut)
        timer = asyncio.get_running_loop().call_later(
            self.body_timeout, self._body_overdue, request, cut)
        try:
            return await self._answer(request, handler, cut)
        finally:
            timer.cancel()

    def _body_overdue(self, request: web.Request, cut: list[bool]) -> None:
        if request.content.is_eof() or request.transport is None:
            return  # the body is all here (read or not), or the client is gone already
        cut.append(True)
        self.refusals.note(f"request body not received within {self.body_timeout:g} s",
                           self._origin(request), level=logging.INFO)
        request.protocol.force_close()  # the handler's pending read fails at once

    async def _answer(self, request: web.Request, handler: RouteHandler,
                      cut: list[bool]) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as exc:
            return self._refuse(request, exc)
        except web.HTTPException as exc:
            if exc.status >= 500:
                return self._failed(request, exc)
            if exc.status >= 400:  # no such route, wrong method, too large: aiohttp answers
                self.refusals.note(f"HTTP {exc.status} {exc.reason}",
                                   self._origin(request), level=logging.INFO)
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if cut:  # the handler's read failed because the connection was closed under it
                return web.Response(status=408, text="request timeout\n")  # nobody reads it
            if is_request_error(exc):
                return self._refuse(request, Refused(
                    400, "request that cannot be decoded",
                    f"{type(exc).__name__}: {clip(str(exc), 80)}"))
            return self._failed(request, exc)

    def _origin(self, request: web.Request) -> str:
        return f"{request.method[:20]} {route_of(request)} from {request.remote}"

    def _refuse(self, request: web.Request, exc: Refused) -> web.Response:
        if exc.auth_source is not None:
            self.metrics.auth_failures.labels(source=exc.auth_source).inc()
        detail = self._origin(request) + (f": {exc.detail}" if exc.detail else "")
        self.refusals.note(exc.reason, detail, level=exc.level)
        return exc.response()

    def _failed(self, request: web.Request, exc: BaseException) -> web.Response:
        reference = secrets.token_hex(4)
        self.refusals.note(f"{route_of(request)} failed with {type(exc).__name__}",
                           f"{self._origin(request)}; reference {reference}",
                           level=logging.ERROR, exc_info=exc, prefix="")
        return web.Response(status=500, text=f"internal error (reference {reference})\n")

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            states = await asyncio.wait_for(self.health.snapshot(), self.health_timeout)
        except TimeoutError:
            return web.json_response({"status": "unhealthy", "error": "health probes timed out"},
                                     status=503)
        healthy = alive(states)  # the database and the outbox are /readyz's to judge
        for name, state in states.items():
            self.metrics.component_up.labels(component=name).set(1 if state.ok else 0)
        body = {
            "status": "ok" if healthy else "unhealthy",
            "components": {n: {"ok": s.ok, "detail": s.detail, "since": s.since,
                               **({"readiness_only": True} if n in READINESS_ONLY else {})}
                           for n, s in sorted(states.items())},
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        """Readiness (bot/readiness.py): 200 when this replica may take work, else 503."""
        if self.readiness is None:
            return web.json_response({"status": "not ready", "components": {"readiness": {
                "ready": False, "reason": "not wired to the bot (attach_readiness)"}}},
                status=503)
        report = await self.readiness.report()
        return web.json_response(report.body(), status=200 if report.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=await self.metrics.scrape(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
