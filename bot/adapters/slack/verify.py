"""Slack request signatures (HTTP mode), checked over the raw bytes before anything is parsed.

bolt checks signatures too, but only after it has decoded the body (as text, with the charset
the request claims) and parsed it (JSON, forms, the ``payload`` field), and a non-numeric
``X-Slack-Request-Timestamp`` makes its check raise instead of refuse. Here the headers are
validated first and the HMAC is computed over the bytes as received, so an unsigned request
never reaches a decoder: it is a 401 (:class:`~bot.http.Refused`, counted as an auth failure).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.http import Refused, clip, read_body, utf8

MAX_AGE_SECONDS = 300  # Slack's (and bolt's) replay window
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # unix seconds; no sign, no exponent
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class SlackSignature:
    """``X-Slack-Signature`` = ``v0=`` + HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the Slack signing secret must not be empty")
        self._key = secret.encode()
        self.clock = clock

    async def bolt_request(self, request: web.Request) -> AsyncBoltRequest:
        """Verify the headers, read the body, verify its signature, then decode (UTF-8) and
        parse ``request`` for bolt. An unsigned request is refused before its body is read,
        so it cannot hold the connection by sending its body slowly."""
        self.check_headers(request.headers)
        body = await read_body(request, what="Slack request")
        self.check(request.headers, body)
        try:
            return AsyncBoltRequest(body=utf8(body, what="signed Slack request"),
                                    query=request.query_string,
                                    headers=request.headers)  # type: ignore[arg-type]
        except Refused:
            raise
        except Exception as exc:  # signed by Slack, yet not what bolt can parse
            raise Refused(400, "signed Slack request bolt cannot parse",
                          type(exc).__name__) from None

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return when ``body`` was signed by Slack recently; else raise ``Refused(401)``."""
        timestamp, signature = self.check_headers(headers)
        expected = hmac.new(self._key, b"v0:" + timestamp.encode() + b":" + body,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest("v0=" + expected, signature):
            raise _refused("Slack request with a wrong signature")

    def check_headers(self, headers: Mapping[str, str]) -> tuple[str, str]:
        """The timestamp and signature headers, present, well-formed and recent; else
        ``Refused(401)``."""
        timestamp = headers.get("X-Slack-Request-Timestamp")
        signature = headers.get("X-Slack-Signature")
        if not timestamp or not signature:
            raise _refused("unsigned Slack request")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise _refused("Slack request with a malformed timestamp", clip(timestamp, 40))
        age = self.clock() - int(timestamp)
        if abs(age) > MAX_AGE_SECONDS:
            raise _refused("Slack request outside the 5 minute window", f"age {age:.0f} s")
        if not _SIGNATURE.fullmatch(signature):
            raise _refused("Slack request with a malformed signature", clip(signature, 40))
        return timestamp, signature


def _refused(reason: str, detail: str = "") -> Refused:
    return Refused(401, reason, detail, body="invalid request signature", auth_source="slack")
