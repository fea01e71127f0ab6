"""What a service's error answer says, as one short masked line (GitLab, GitHub, Sentry).

Each service puts its reason somewhere else in its JSON (``message``, ``error``, ``detail``,
``errors``): the caller's ``pick`` finds it; the rest (not JSON, one line, capped, secrets
masked, the HTTP reason phrase when empty) is the same for all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.secrets import masker

if TYPE_CHECKING:  # the console's paths do not load httpx (tests/test_import_cost.py)
    import httpx

MAX_REASON = 200  # characters of a service's own error message quoted back


def reason(response: httpx.Response, pick: Callable[[dict[str, Any]], str]) -> str:
    """The reason in ``response``: ``pick(body)`` for a JSON object, the JSON or the text
    otherwise."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        text = pick(data) if isinstance(data, dict) else str(data)
    text = " ".join(text.split())
    return masker.mask(text[:MAX_REASON]) or response.reason_phrase
