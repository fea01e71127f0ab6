"""Reading one field of a Sentry payload without trusting it (``bot/alerts/payloads.py``).

Each reader returns a clean value or None (an optional field of the wrong type is dropped);
only :func:`load`, :func:`obj` with ``what`` and :func:`an_id` raise :class:`PayloadError`,
for what a payload cannot do without. Text is cut to a bounded length, control characters
become blanks, times are UTC.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from bot.alerts.model import Frame

MAX_BODY = 1024 * 1024  # what bot.http accepts
MAX_DEPTH = 64  # Sentry events nest deeper than chat payloads (frame vars, _meta)
TITLE, TEXT, SHORT, URL, TAG = 500, 300, 100, 500, 200  # characters kept of each kind of field
MAX_TAGS, MAX_FRAMES = 50, 40
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")  # issue, event and metric alert ids
_ISSUE_IN_URL = re.compile(r"/issues/(\d{1,20})(?:/|$|\?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class PayloadError(ValueError):
    """Not a payload we can use (the message is short and safe to log)."""


def load(body: bytes) -> dict[str, Any]:
    if not isinstance(body, bytes | bytearray):
        raise PayloadError("the body is not bytes")
    if len(body) > MAX_BODY:
        raise PayloadError(f"larger than {MAX_BODY} bytes")
    try:
        decoded = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8 (byte {exc.start})") from None
    from bot.http import json_depth_ok  # bot.http is the aiohttp server: loaded when needed

    if not json_depth_ok(decoded, MAX_DEPTH):
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}")
    try:
        payload = json.loads(decoded)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON ({clip(str(exc), 60)})") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"a JSON {type(payload).__name__}, not an object")
    return payload


def obj(value: Any, what: str | None = None) -> dict[str, Any]:
    """``value`` when it is an object; else {} (optional parts) or PayloadError (``what``)."""
    if isinstance(value, dict):
        return value
    if what is not None:
        raise PayloadError(f"{what} is missing or not an object")
    return {}


def text(value: Any, size: int, *, lines: bool = False, indent: bool = False) -> str | None:
    """A string (or number) as one line (``lines``: several) without control characters, at
    most ``size`` characters (``indent``: leading blanks kept, as in source lines); else None.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = (_CONTROL if lines else _BREAKS).sub(" ", str(value))
    text = text.rstrip() if indent else text.strip()
    if not text:
        return None
    return text if len(text) <= size else text[:size - 1] + "…"


def clip(value: Any, size: int) -> str:
    return text(value, size) or ""


def maybe_id(value: Any) -> str | None:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if _ID.match(text) else None


def an_id(value: Any, what: str) -> str:
    found = maybe_id(value)
    if found is None:
        raise PayloadError(f"{what} is missing or not an id")
    return found


def issue_in(url: Any) -> str | None:
    found = _ISSUE_IN_URL.search(url) if isinstance(url, str) else None
    return found.group(1) if found else None


def url(value: Any) -> str | None:
    found = text(value, URL)
    return found if found and found.startswith(("https://", "http://")) \
        and " " not in found and not found.endswith("…") else None


def issue_link(web_url: str | None, issue_id: str | None) -> str | None:
    if not web_url or not issue_id:
        return None
    return f"{web_url.rstrip('/')}/issues/{issue_id}/"


def level(value: Any) -> str | None:
    found = text(value, 20)
    return found.lower() if found else None


def count(value: Any) -> int | None:
    """Sentry sends counts as strings ("1"); negative or absurd values are dropped."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 <= value < 2**53 else None


def raw_time(value: Any) -> str:
    """lastSeen as it came (part of a dedupe key: exactly what Sentry sent), bounded."""
    return clip(value, 40)


def time(value: Any) -> datetime | None:
    """An ISO 8601 time (``...Z``) or a Unix timestamp; UTC. Anything else: None."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and 10 <= len(value) <= 40:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None \
                else moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def release(value: Any) -> str | None:
    """A release is a string in payloads, ``{"version": ...}`` in the API's events."""
    if isinstance(value, dict):
        value = value.get("version") or value.get("shortVersion")
    return text(value, SHORT)


def tags(value: Any) -> tuple[tuple[str, str], ...]:
    """``[[key, value], ...]`` (payloads) or ``[{"key", "value"}, ...]`` (the API)."""
    if isinstance(value, dict):
        value = list(value.items())
    if not isinstance(value, list):
        return ()
    pairs: list[tuple[str, str]] = []
    for item in value[:MAX_TAGS * 2]:
        if isinstance(item, dict):
            key, value_text = text(item.get("key"), TAG), text(item.get("value"), TAG)
        elif isinstance(item, list | tuple) and len(item) == 2:
            key, value_text = text(item[0], TAG), text(item[1], TAG)
        else:
            continue
        if key and value_text is not None:
            pairs.append((key, value_text))
    return tuple(pairs[:MAX_TAGS])


def environment(event: dict[str, Any], tags: tuple[tuple[str, str], ...]) -> str | None:
    """The event's ``environment``, else its ``environment`` tag."""
    return text(event.get("environment"), SHORT) or tag(tags, "environment")


def release_of(event: dict[str, Any], tags: tuple[tuple[str, str], ...]) -> str | None:
    """The event's ``release``, else its ``release`` tag."""
    return release(event.get("release")) or tag(tags, "release")


def tag(tags: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((value[:SHORT] for key, value in tags if key == name), None)


def frames(event: dict[str, Any]) -> tuple[Frame, ...]:
    """The stack of the last exception (the one raised), innermost frames kept: from
    ``exception.values`` (payloads) or the ``exception`` entry (the API's events)."""
    exception = obj(event.get("exception"))
    entries = event.get("entries")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("type") == "exception":
            exception = obj(entry.get("data"))
    values = exception.get("values")
    if not isinstance(values, list) or not values:
        return ()
    raw = obj(obj(values[-1]).get("stacktrace")).get("frames")
    if not isinstance(raw, list):
        return ()
    frames = [frame(item) for item in raw[-MAX_FRAMES:]]
    return tuple(frame for frame in frames if frame is not None)


def frame(item: Any) -> Frame | None:
    """A frame as payloads have it (``lineno``, ``in_app``, ``context_line``) or as the API's
    events have it (``lineNo``, ``inApp``, ``context``: ``[[lineno, line], ...]``)."""
    if not isinstance(item, dict):
        return None
    filename = text(item.get("filename") or item.get("abs_path") or item.get("absPath")
                     or item.get("module"), TEXT)
    function = text(item.get("function"), TEXT)
    if not filename and not function:
        return None
    lineno = item.get("lineno", item.get("lineNo"))
    if isinstance(lineno, bool) or not isinstance(lineno, int) or not 0 <= lineno < 10**9:
        lineno = None
    line = item.get("context_line")
    context = item.get("context")
    if line is None and lineno is not None and isinstance(context, list):
        line = next((pair[1] for pair in context if isinstance(pair, list)
                     and len(pair) == 2 and pair[0] == lineno), None)
    return Frame(filename=filename or "?", function=function or "?", lineno=lineno,
                 in_app=item.get("in_app", item.get("inApp")) is True,
                 context_line=text(line, TEXT, indent=True))
