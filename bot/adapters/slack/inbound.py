"""Turning Slack payloads into command lines: mention stripping, unescaping, dedupe."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable

# <@U123>, <@U123|name>, <#C123|name>, <!here>, <https://x|label>, <mailto:a@b|a@b>
_ANGLE = re.compile(r"<([^<>]*)>")


def unescape(text: str) -> str:
    """Undo Slack's ``&amp; &lt; &gt;`` escaping."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"<{inner}>"  # user mentions stay (the mention stripper looks for them)
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        return "@" + (label or target[1:].split("^")[0])
    if label:
        return label  # an auto-linked host name or URL: what the user typed
    return target.removeprefix("mailto:")


def clean_text(text: str, bot_user_id: str | None = None) -> str:
    """The command line a user typed: bot mention removed, links unwrapped, unescaped."""
    text = _ANGLE.sub(_plain, text or "").strip()
    if bot_user_id:
        mention = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[:,]?")
        found = list(mention.finditer(text))
        if found:
            # "@shiftbot condor q" and "hey @shiftbot condor q": the command follows the mention
            text = text[found[-1].end():] if found[0].start() > 0 else mention.sub(" ", text)
    return unescape(" ".join(text.split()))


class Seen:
    """A small TTL set: has this delivery (event id, trigger id) been handled already?

    Slack retries events it thinks were not acknowledged (``X-Slack-Retry-Num`` / envelope
    ``retry_attempt``); the retry carries the same ids, so the command must not run twice.
    """

    def __init__(self, ttl: float = 600.0, max_size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, key: str | None) -> bool:
        """True when ``key`` was seen within the TTL; records it otherwise (None: never seen)."""
        if not key:
            return False
        now = self.clock()
        while self._seen:
            _oldest, at = next(iter(self._seen.items()))
            if now - at <= self.ttl and len(self._seen) < self.max_size:
                break
            self._seen.popitem(last=False)
        if key in self._seen:
            return True
        self._seen[key] = now
        return False
