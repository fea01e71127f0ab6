"""Reading the requests Mattermost sends the bot: slash commands and button clicks.

Both routes are open to anyone who can reach the bot. A slash command is verified before its
body is parsed whenever the token comes in the ``Authorization: Token`` header (Mattermost always
sends it); only without one is the form read to find the ``token`` field. A click's proof is the
HMAC inside its JSON ``context``, so its body is parsed first, but bounded: at most
:data:`ACTION_BODY_LIMIT` bytes of strict UTF-8, nested at most ``MAX_JSON_DEPTH`` deep.
Whatever is wrong is raised as :class:`~bot.http.Refused` (401, 400, 413, 415), which
``bot.http``'s guard answers and logs (rate-limited, never at ERROR).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from bot.http import Refused, parse_form, parse_json, read_body

COMMAND_BODY_LIMIT = 64 * 1024  # a command's text is at most 4000 characters
ACTION_BODY_LIMIT = 64 * 1024  # a click carries ids and the button's context
FORM_TYPES = ("", "application/x-www-form-urlencoded")
UNREADABLE_CLICK = {"ephemeral_text": "Unreadable button request."}


def token_ok(tokens: Sequence[bytes], given: str) -> bool:
    """``given`` is one of ``tokens``, compared in constant time (no early exit)."""
    raw = given.encode("utf-8", "surrogatepass")
    ok = False
    for expected in tokens:
        ok |= hmac.compare_digest(expected, raw)
    return ok and bool(raw)


def _refused_token(which: str) -> Refused:
    return Refused(401, f"Mattermost slash command with a {which} token",
                   body="invalid or missing command token", auth_source="mattermost")


async def command_form(request: web.Request, tokens: Sequence[bytes]) -> dict[str, str]:
    """The fields of a slash command (POST form or GET query), once its token is verified."""
    header = request.headers.get("Authorization", "")
    token = header[6:].strip() if header[:6].lower() == "token " else ""
    if token and not token_ok(tokens, token):
        raise _refused_token("wrong")  # nothing of the body was read
    form = await _fields(request)
    if not token:
        token = form.get("token", "")
        if not token_ok(tokens, token):
            raise _refused_token("wrong" if token else "missing")
    return form


async def _fields(request: web.Request) -> dict[str, str]:
    what = "Mattermost slash command"
    if request.method == "GET":
        query = request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
        return parse_form(query, what=what)
    media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media not in FORM_TYPES:  # Mattermost posts forms only; no multipart parser runs
        raise Refused(415, f"{what} that is not a form", repr(media[:60]))
    return parse_form(await read_body(request, what=what, limit=COMMAND_BODY_LIMIT), what=what)


async def click_body(request: web.Request) -> dict[str, Any]:
    """A button click's JSON object (its ``context`` is verified by the caller)."""
    what = "Mattermost button click"
    raw = await read_body(request, what=what, limit=ACTION_BODY_LIMIT)
    try:
        body = parse_json(raw, what=what)
    except Refused as exc:
        exc.json_body = UNREADABLE_CLICK  # Mattermost shows ephemeral_text to the clicker
        raise
    if not isinstance(body, dict):
        raise Refused(400, f"{what} that is not a JSON object", json_body=UNREADABLE_CLICK)
    return body
