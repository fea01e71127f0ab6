"""Turning Slack payloads into command lines: mention stripping, unescaping, dedupe."""

from __future__ import annotations

import re

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
