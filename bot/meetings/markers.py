"""Meeting-report markers, MeetBot style (Debian/Fedora IRC meetings), in thread replies.

``#topic TEXT``, ``#info TEXT``, ``#idea TEXT``, ``#link TEXT``, ``#decision TEXT`` (also
``#agreed``/``#agree``), ``#action @person TEXT`` (MeetBot's ``#action NICK TEXT`` too, when
NICK is a configured person), ``#undo`` (the author's last item goes), ``#done N`` (action item N
is done), ``#edit N TEXT`` (item N says TEXT now; ``#edit N @person [TEXT]`` also gives an
action item to another person), ``#endmeeting`` or a plain ``report close`` (close and
render the report). Anything else is discussion. Markers are case-insensitive; a marker
without its text is an error the thread is told about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ITEM_KINDS = {"topic": "topic", "info": "info", "idea": "idea", "link": "link",
              "decision": "decision", "agreed": "decision", "agree": "decision",
              "action": "action"}
CLOSE_WORDS = ("endmeeting", "endmeeting.", "close")
_MARKER = re.compile(r"^#([A-Za-z]+)\b[:]?\s*(.*)$", re.DOTALL)
_CLOSE_LINE = re.compile(r"^[!/]?report\s+close\s*$", re.IGNORECASE)
_ITEM_NUMBER = re.compile(r"^#?(\d{1,9})\b\s*(.*)$", re.DOTALL)
# <@U0BOB0001>, <@U0BOB0001|bob> (Slack), @bob (Mattermost, console)
_OWNER = re.compile(r"^(<@[A-Z0-9]+(?:\|[^>]*)?>|@[A-Za-z0-9._-]+)[:,]?\s*(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Marker:
    kind: str  # an ITEM_KINDS value, "undo", "done", "edit", "close", "discussion" or "error"
    text: str = ""
    owner: str | None = None  # an action's raw owner token (@bob, <@U123>, bob)
    item_id: int | None = None  # done N, edit N
    word: str = ""  # the marker as typed (for messages)


def parse(line: str, known_people: frozenset[str] = frozenset()) -> Marker:
    """What one reply says (see the module's docstring). ``known_people``: names a bare
    ``#action NAME text`` may give its owner by."""
    text = line.strip()
    if _CLOSE_LINE.match(text):
        return Marker("close", word="report close")
    match = _MARKER.match(text)
    if match is None:
        return Marker("discussion", text)
    word, rest = match.group(1).lower(), " ".join(match.group(2).split())
    if word in ITEM_KINDS:
        kind = ITEM_KINDS[word]
        if not rest:
            return Marker("error", f"#{word} needs a text: #{word} TEXT", word=word)
        if kind == "action":
            return _action(rest, known_people, word)
        return Marker(kind, rest, word=word)
    if word == "undo":
        return Marker("undo", word=word)
    if word == "done":
        number = _ITEM_NUMBER.match(rest)
        if number is None:
            return Marker("error", "#done needs the action item's number: #done 12", word=word)
        return Marker("done", number.group(2), item_id=int(number.group(1)), word=word)
    if word == "edit":
        return _edit(rest)
    if word in ("endmeeting", "close"):
        return Marker("close", word=word)
    return Marker("discussion", text)


def split_owner(rest: str, known_people: frozenset[str] = frozenset()
                ) -> tuple[str | None, str]:
    """``@bob TEXT`` / ``<@U123> TEXT`` (or ``bob TEXT`` when bob is in ``known_people``) as
    (owner token, TEXT); (None, rest) when it does not start with a person."""
    owner_match = _OWNER.match(rest)
    if owner_match is not None:
        return owner_match.group(1), owner_match.group(2).strip()
    first, _, tail = rest.partition(" ")
    bare = first.rstrip(":,")
    return (bare, tail.strip()) if bare in known_people else (None, rest)


def _edit(rest: str) -> Marker:
    """``#edit N TEXT``: ``text`` is everything after N as typed; whether a leading ``@person``
    names a new owner depends on the item's kind, which only the store knows
    (``split_owner``). A bare name is text here: ``#edit 6 alice will call`` keeps the owner."""
    number = _ITEM_NUMBER.match(rest)
    what = "" if number is None else number.group(2).lstrip(":,").strip()
    if number is None or not what:
        return Marker("error", "#edit needs the item's number and its new text: "
                               "#edit 12 TEXT (an action item: #edit 12 @person TEXT)",
                      word="edit")
    return Marker("edit", what, item_id=int(number.group(1)), word="edit")


def _action(rest: str, known_people: frozenset[str], word: str) -> Marker:
    owner, what = split_owner(rest, known_people)
    if not what:
        return Marker("error", "#action needs a text: #action @person TEXT", word=word)
    return Marker("action", what, owner=owner, word=word)
