"""Platform-neutral replies: what a handler returns and an adapter renders.

Handlers never build Slack blocks or Mattermost attachments; they return a :class:`Reply` and
the adapter turns it into its platform's format (see ``bot/render.py`` for the shared text
renderer used by every adapter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bot.secrets import masker


class Level(StrEnum):
    """How a reply should be marked: colour on chat platforms, a tag on the console."""

    INFO = "info"
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    DENIED = "denied"


class Visibility(StrEnum):
    """Where a reply goes."""

    EPHEMERAL = "ephemeral"  # only the caller sees it (errors, denials, private results)
    CHANNEL = "channel"  # posted in the channel (or the thread the command came from)
    THREAD = "thread"  # posted as a reply in the caller's thread (a new one when not in a thread)


# Slack's limit for a button's url; Mattermost's Markdown link and the console have none lower.
URL_LIMIT = 3000
# What a link button may point to: printable ASCII as RFC 3986 allows it (percent-encode the
# rest), so no space, quote, ``<>``, ``|`` or backtick can break the link out of its markup.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def link_url(url: str) -> str:
    """``url`` when a link button may open it: http(s), a host, at most :data:`URL_LIMIT`
    characters of RFC 3986; else ValueError (a ``javascript:`` or ``file:`` link, or text
    that would break out of a platform's link markup, is never offered as a button)."""
    if not isinstance(url, str) or not 0 < len(url) <= URL_LIMIT:
        raise ValueError(f"a link must be 1 to {URL_LIMIT} characters")
    if not _URL_CHARS.fullmatch(url):
        raise ValueError("a link may hold only URL characters (percent-encode the rest)")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a link must be an http(s) URL with a host, not {url[:40]!r}")
    return url


class Choice(StrEnum):
    """What a button (or the ``confirm``/``approve`` commands) decides about a pending request."""

    CONFIRM = "confirm"
    CANCEL = "cancel"
    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Action:
    """A button. It either decides a pending request (``choice`` + ``request_id``), runs a
    command line as the person who clicks (``command``; :meth:`run`), through the same gate,
    confirmation, approval and audit as if they had typed it, or opens a web page (``url``;
    :meth:`link`), which neither decides nor runs anything. A command button is stored
    server-side (``bot/messaging/actions.py``) and carries only its opaque ``action_id``."""

    label: str
    choice: Choice | None = None
    request_id: str | None = None
    style: str = "default"  # default | primary | danger
    confirm_text: str | None = None  # Slack shows a native confirm dialog with this text
    command: str | None = None  # the command line a click runs (as the clicker)
    action_id: str | None = None  # set once the command button is stored
    url: str | None = None  # a link button: the page it opens (nothing runs on the bot)

    def __post_init__(self) -> None:
        if self.url is None:
            return
        link_url(self.url)  # also when loaded back from a stored notice
        if self.command is not None or self.choice is not None:
            raise ValueError(f"link button {self.label!r} cannot also run or decide something")

    @classmethod
    def run(cls, label: str, command: str, *, style: str = "default") -> Action:
        """A button that runs ``command`` as whoever clicks it."""
        return cls(label, style=style, command=command)

    @classmethod
    def link(cls, label: str, url: str, *, style: str = "default") -> Action:
        """A button that opens ``url`` (http or https only, else ValueError) in the clicker's
        browser; the bot runs nothing when it is clicked."""
        return cls(label, style=style, url=link_url(url))

    @property
    def is_link(self) -> bool:
        return self.url is not None

    @property
    def decides(self) -> bool:
        return self.choice is not None and self.request_id is not None


@dataclass(slots=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    # Rows a handler chose not to include (e.g. the queue had 4,000 held jobs, 50 are shown).
    omitted: int = 0

    def truncated(self, max_rows: int) -> Table:
        """Keep the first ``max_rows`` rows and count the rest as omitted."""
        if len(self.rows) <= max_rows:
            return self
        return Table(self.columns, self.rows[:max_rows], self.omitted + len(self.rows) - max_rows)


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file that goes with a reply (a digest's chart): each platform attaches it its own
    way (Slack's external upload, Mattermost's ``POST /files``; the console prints the path).
    Only the path travels (a stored notice keeps the path, never the bytes): the file must be
    on this host's disk when the message is sent. ``alt`` is the screen-reader text."""

    name: str  # the file name people see: shift-chart.png
    path: str  # absolute path on the bot's host
    mime: str = "application/octet-stream"
    alt: str = ""

    def read(self) -> bytes:
        """The bytes (OSError when the file is gone: the message goes without it)."""
        with open(self.path, "rb") as handle:
            return handle.read()


@dataclass(slots=True)
class Reply:
    """A handler's answer.

    ``template`` names a Jinja2 template in ``config/templates/`` (or the configured override
    directory) rendered with ``data`` into ``text`` before the adapter sees the reply.
    """

    text: str = ""
    title: str | None = None
    level: Level = Level.INFO
    fields: list[tuple[str, str]] = field(default_factory=list)
    table: Table | None = None
    actions: list[Action] = field(default_factory=list)
    visibility: Visibility = Visibility.EPHEMERAL
    template: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Set by the notice deliverer only: how this platform names the people a notice mentions
    # (``Platform.mention``: ``<@U123>``, ``@alice``), put unescaped at the start of the text.
    mentions: list[str] = field(default_factory=list)
    # Attachments (a digest's chart). A platform that cannot attach one sends the text alone.
    files: list[FileRef] = field(default_factory=list)

    def with_visibility(self, visibility: Visibility) -> Reply:
        return replace(self, visibility=visibility)

    def masked(self) -> Reply:
        """This reply with every registered secret masked in what people see (text, title,
        fields, table, button labels and links): a ``${VAR}`` schedd address quoted by an
        error must not reach chat. Itself when nothing needs masking (one regex scan, or none
        at all)."""
        if not masker.active:
            return self
        table = self.table
        seen = [self.text, self.title or "", *(n + "\0" + v for n, v in self.fields),
                *(a.label + "\0" + (a.confirm_text or "") + "\0" + (a.url or "")
                  for a in self.actions)]
        if table is not None:
            seen += [*table.columns, *(str(cell) for row in table.rows for cell in row)]
        if not masker.contains("\0".join(seen)):
            return self
        mask = masker.mask
        if table is not None:
            table = Table([mask(c) for c in table.columns],
                          [[mask(str(cell)) for cell in row] for row in table.rows],
                          table.omitted)
        return replace(
            self, text=mask(self.text), title=mask(self.title) if self.title else self.title,
            fields=[(mask(n), mask(v)) for n, v in self.fields], table=table,
            actions=[m for m in map(_masked_action, self.actions) if m is not None])

    @classmethod
    def error(cls, text: str, *, title: str | None = None) -> Reply:
        # Every error has a title (what went wrong, in a few words); "Error" is only the last
        # resort for a caller that gave none: give one (tests/test_errors.py checks the code).
        return cls(text=text, title=title or "Error", level=Level.ERROR)

    @classmethod
    def denied(cls, text: str) -> Reply:
        return cls(text=text, title="Not allowed", level=Level.DENIED)


def _masked_action(action: Action) -> Action | None:
    """``action`` with secrets masked in its label, confirmation and link. A link with a
    secret in it (a token in a query string) keeps pointing at the page, without the token;
    one that is no link once masked (the secret was its scheme or all of it) is left out."""
    mask = masker.mask
    try:
        return replace(action, label=mask(action.label),
                       confirm_text=mask(action.confirm_text) if action.confirm_text else None,
                       url=mask(action.url) if action.url else None)
    except ValueError:
        return None
