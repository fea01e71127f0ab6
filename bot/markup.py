"""User text in replies: marked where a reply is written, escaped per dialect where it is sent.

Templates are rendered once, in the core, before anyone knows which platform the reply goes to;
what a person typed (or a job ad holds) must be escaped differently for Mattermost (CommonMark),
Slack (mrkdwn) and the console. So templates and handlers *mark* such text: the Jinja filters
``user`` and ``code`` (and the functions of the same names, for f-strings in Python) wrap a value
in private-use sentinel characters, and :func:`resolve` turns each marked span into its dialect's
safe form when an adapter renders the reply (``bot.render.render_text``).

The spans cannot be forged or closed from inside: the wrappers drop every sentinel found in the
value, and the parser refuses private-use characters in commands.

``user``: inline text, shown as typed and inert. Mattermost: markdown punctuation backslash-
escaped, every ``@name`` given a zero-width joiner after the ``@`` (the server's mention parser
splits words there, so nobody is notified), no links, images, headings or tables. Slack: ``&``,
``<``, ``>`` as entities (no ``<!here>``, links or user mentions), backticks replaced by the
look-alike U+02CB (mrkdwn has no escape for them; ``*_~`` stay: they can only change emphasis).
Everywhere: line breaks shown as ``↵``, invisible and control characters as ``⟨U+202E⟩``.

``code``: the text as an inline code span that cannot be closed early. Mattermost: a backtick
fence longer than any run of backticks inside (CommonMark); Slack: backticks replaced by
U+02CB; console: between backticks, unescaped.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Dialect = Literal["console", "slack", "mattermost"]
Unmarked = Literal["trusted", "user"]

USER = "\ue000"  # starts a user-text span
CODE = "\ue001"  # starts a code span
END = "\ue002"  # ends either
_SENTINEL = re.compile("[\ue000-\ue002]")
_SPLIT = re.compile("([\ue000-\ue002])")

ZWJ = "\u200d"  # after "@": Mattermost's mention parser splits the word there
NEWLINE_MARK = "↵"
SLACK_BACKTICK = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks like a backtick, is not one

# Characters that change how text reads without being seen: bidi overrides and isolates,
# zero-width characters, other format characters (all refused by category, below); plus the
# rest of Unicode's Default_Ignorable_Code_Point set, which is not Cf or Cn: "letters" and
# combining marks that render as nothing (Hangul fillers, U+034F, Khmer U+17B4/5, Mongolian
# free variation selectors, the variation selectors U+FE00-FE0F and U+E0100-E01EF, which can
# smuggle a whole hidden text: one selector per byte), and the blank Braille pattern.
_INVISIBLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u2800\u3164"
                        "\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]")
# Text/emoji presentation selectors: phones put U+FE0F after many emoji ("👍️", "❤️", "1️⃣"),
# so they are allowed right after a symbol that can be an emoji, and nowhere else.
_PRESENTATION = "\ufe0e\ufe0f"
_EMOJI_PUNCTUATION = frozenset("\u203c\u2049")  # ‼ ⁉ (category Po)
_KEYCAP = "\u20e3"  # COMBINING ENCLOSING KEYCAP: 1 U+FE0F U+20E3 is the keycap emoji 1️⃣
_REFUSED_CATEGORIES = {
    "Cc": "control character",
    "Cf": "invisible character",
    "Co": "private-use character",
    "Cn": "unassigned code point",
    "Cs": "surrogate code point",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
_CONTROL_NAMES = {0x00: "NULL", 0x09: "TAB", 0x0A: "LINE FEED", 0x0B: "VERTICAL TAB",
                  0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE",
                  0x85: "NEXT LINE"}
# Unassigned in this Python's Unicode tables but inside the emoji blocks: newer emoji, visible.
_EMOJI_BLOCKS = (0x1F000, 0x1FAFF)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def refused_kind(char: str, before: str = "", after: str = "") -> str | None:
    """What makes ``char`` unfit for a command or a chat message ("invisible character"), or
    None when it may be shown as it is. ``before``/``after``: its neighbours, which decide
    whether a presentation selector belongs to an emoji."""
    if " " <= char <= "~":
        return None
    if char in _PRESENTATION and _emoji_base(before, after):
        return None
    if _INVISIBLE.match(char):
        return "invisible character"
    category = unicodedata.category(char)
    kind = _REFUSED_CATEGORIES.get(category)
    if kind is None:
        return None
    if category == "Cn" and _EMOJI_BLOCKS[0] <= ord(char) <= _EMOJI_BLOCKS[1]:
        return None
    return kind


def _emoji_base(before: str, after: str) -> bool:
    if not before:
        return False
    if before in "0123456789#*":
        return after == _KEYCAP
    if before in _EMOJI_PUNCTUATION or _EMOJI_BLOCKS[0] <= ord(before) <= _EMOJI_BLOCKS[1]:
        return True
    return unicodedata.category(before) in ("So", "Sm")  # ❤ ☺ ™ © ↔ ▶ ...


def refusals(text: str) -> list[tuple[int, str]]:
    """(index, kind) of every character of ``text`` that :func:`refused_kind` refuses there."""
    found = []
    for index, char in enumerate(text):
        if " " <= char <= "~":
            continue
        kind = refused_kind(char, text[index - 1] if index else "", text[index + 1:index + 2])
        if kind is not None:
            found.append((index, kind))
    return found


def describe(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: a character named so a person can find it."""
    point = ord(char)
    name = _CONTROL_NAMES.get(point) or unicodedata.name(char, "")
    return f"U+{point:04X} ({name})" if name else f"U+{point:04X}"


def visible(text: str) -> str:
    """``text`` on one line with nothing hidden: line breaks as ``↵``, tabs as spaces, other
    refused characters as ``⟨U+202E⟩``. Sentinels are dropped."""
    if _PRINTABLE_ASCII.fullmatch(text):
        return text
    text = text.replace("\r\n", "\n")
    out = []
    hidden = {index for index, _ in refusals(text)}
    for index, char in enumerate(text):
        if char in "\n\r":
            out.append(NEWLINE_MARK)
        elif char == "\t":
            out.append(" ")
        elif "\ue000" <= char <= "\ue002":
            continue
        elif index in hidden:
            out.append(f"⟨U+{ord(char):04X}⟩")
        else:
            out.append(char)
    return "".join(out)


def user(value: object) -> str:
    """Mark ``value`` as user text (the Jinja filter ``user``)."""
    return USER + _SENTINEL.sub("", str(value)) + END


def code(value: object) -> str:
    """Mark ``value`` as user text shown as an inline code span (the Jinja filter ``code``).
    An empty value stays empty: there is nothing to show."""
    text = _SENTINEL.sub("", str(value))
    return CODE + text + END if text else ""


def user_unless_marked(text: str) -> str:
    """An error message whose author is not known to have marked it (a ``CommandError``, a
    plan step's refusal): such messages quote what was typed ("no job of batch '@channel'"),
    so unmarked they are user text as a whole; marked, their author took care of the parts."""
    return text if _SENTINEL.search(text) else user(text)


def is_marked(text: str) -> bool:
    """Whether ``text`` holds marks (so must go through :func:`resolve` before it is shown)."""
    return _SENTINEL.search(text) is not None


def plain(text: str) -> str:
    """``text`` without its marks: for logs, the audit trail and tests."""
    return _SENTINEL.sub("", text)


def resolve(text: str, dialect: Dialect, *, unmarked: Unmarked = "trusted") -> str:
    """Replace every marked span of ``text`` by its ``dialect`` form.

    Unmarked parts are the bot's own words (``trusted``: templates, handler messages; only
    Slack's ``&<>`` are escaped and, on Mattermost, mass mentions neutralised) or, for values
    such as reply fields, ``user`` text. A span left open runs to the end: escaping too much
    is the safe way to be wrong.
    """
    if not _SENTINEL.search(text):
        return _user(text, dialect) if unmarked == "user" else _trusted(text, dialect)
    out: list[str] = []
    kind: str | None = None  # the span being read: USER, CODE or None
    for piece in _SPLIT.split(text):
        if piece in (USER, CODE):
            kind = kind or piece  # a start inside a span is dropped
        elif piece == END:
            kind = None
        elif piece:
            if kind == USER or (kind is None and unmarked == "user"):
                out.append(_user(piece, dialect))
            elif kind == CODE:
                out.append(_code(piece, dialect))
            else:
                out.append(_trusted(piece, dialect))
    return "".join(out)


def code_block(lines: list[str], dialect: Dialect) -> str:
    """Monospace lines (a table) as a block nothing inside can close (see :func:`visible`
    for what the lines may hold: call it on each cell first)."""
    block = "\n".join(lines)
    if dialect == "console":
        return block
    if dialect == "slack":
        return f"```\n{slack_escape(block.replace('`', SLACK_BACKTICK))}\n```"
    fence = "`" * max(3, _longest_backtick_run(block) + 1)
    return f"{fence}\n{block}\n{fence}"


def slack_escape(text: str) -> str:
    """The three characters mrkdwn parses (links, mentions, ``<!here>``) as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------ per dialect

# CommonMark punctuation that can start or shape a construct: emphasis, code, links and images
# ([]()!), headings (#), setext underlines (= -), lists (+ - . )), quotes (>), tables (|), HTML
# and entities (< &), strike (~), emoji and URL schemes (:), LaTeX ($), and the escape itself.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&~:=$])")
# Mattermost notifies for @all/@channel/@here wherever its word splitting isolates them (after
# "." or "-", before ".:-_"): neutralise every one not followed by a letter or digit.
_MASS_MENTION = re.compile(r"@(?=(?:all|channel|here)(?![^\W_]))", re.IGNORECASE)
# In user text any @name: a person or a group (groups notify all their members).
_ANY_MENTION = re.compile(r"(?:(?<![A-Za-z0-9])@(?=\w)|@(?=(?:all|channel|here)))",
                          re.IGNORECASE)


def _trusted(text: str, dialect: Dialect) -> str:
    if dialect == "slack":
        return slack_escape(text)
    if dialect == "mattermost" and "@" in text:
        return _MASS_MENTION.sub("@" + ZWJ, text)  # the bot never notifies a whole channel
    return text


def _user(text: str, dialect: Dialect) -> str:
    text = visible(text)
    if dialect == "slack":
        return slack_escape(text.replace("`", SLACK_BACKTICK))
    if dialect == "mattermost":
        text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
        return _ANY_MENTION.sub("@" + ZWJ, text) if "@" in text else text
    return text


def _code(text: str, dialect: Dialect) -> str:
    text = visible(text)
    if not text:
        return ""
    if dialect == "slack":
        return f"`{slack_escape(text.replace('`', SLACK_BACKTICK))}`"
    if dialect == "console":
        return f"`{text}`"
    # CommonMark: a span closes at the first run of exactly as many backticks as opened it, and
    # one space is stripped from each end when both have one: pad so neither eats content.
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if (text[0] == "`" or text[-1] == "`"
                  or (text[0] == " " and text[-1] == " " and text.strip())) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _longest_backtick_run(text: str) -> int:
    if "`" not in text:
        return 0
    return max(len(run) for run in re.findall(r"`+", text))
