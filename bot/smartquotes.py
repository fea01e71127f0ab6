"""What phones and macOS do to a command line as it is typed, undone before it is parsed.

``condor hold 1.20 —reason “node drained”`` means ``condor hold 1.20 --reason "node drained"``:

- curly and prime quotes delimit like ASCII ones: ``“ ” „ ‟ ″`` like ``"``, ``‘ ’ ‚ ‛ ′`` like
  ``'``. A quote of the other family inside a quoted part is text (``"it’s"``), and so is ``’``
  between two letters or digits (``node’s`` is an apostrophe, not an unclosed quote);
- guillemets too: ``« »`` like ``"``, ``‹ ›`` like ``'``, in either direction (French and Swiss
  «…», German »…«). The spaces French typography puts inside them (``« node drained »``, often
  no-break ones) are dropped: nobody means a reason that starts or ends with a space;
- a dash-like run (``—``, ``–``, ``−``) starting an unquoted token before a letter is ``--``;
  a single one before a digit is a minus sign. Anywhere else a dash is text:
  ``--reason "a – b"`` keeps its en dash, and so does every token after ``--``;
- non-breaking and other Unicode spaces are spaces (macOS types one with Option-Space).

The scanner follows shlex's POSIX rules (quotes, backslash escapes) so that it knows which
characters are quoted; it only rewrites non-ASCII characters, so an ASCII line is left as it is.
"""

# This module is about look-alike characters: they are meant, not mistyped.
# ruff: noqa: RUF001, RUF002, RUF003
from __future__ import annotations

import shlex
import unicodedata

DOUBLE_QUOTES = frozenset('"“”„‟″«»')
SINGLE_QUOTES = frozenset("'‘’‚‛′‹›")
GUILLEMETS = frozenset("«»‹›")
SMART_QUOTES = (DOUBLE_QUOTES | SINGLE_QUOTES) - {'"', "'"}
DASHES = frozenset("—–−")  # em dash, en dash, minus sign
_APOSTROPHE = "’"
_SHLEX_SPACE = " \t\r\n"


class UnclosedQuote(ValueError):
    """A quote opened and never closed; the message says which and where."""


def normalise(line: str) -> str:
    """``line`` with smart quotes, dashes and spaces as shlex expects them."""
    if line.isascii():
        return line
    out: list[str] = []
    quote: str | None = None  # '"' or "'" while inside a quoted part
    opened = 0
    inner_at = 0  # where the quoted part's text starts in ``out`` (to trim guillemets' spaces)
    token_at = 0  # where the current token starts in ``out``
    options_ended = False  # after a bare "--" every token is an argument
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if quote is None:
            if char == "\\":  # shlex: the next character, whatever it is, is literal
                out.append(line[i:i + 2])
                i += 2
                continue
            if char in _SHLEX_SPACE or (not char.isascii() and _space(char) == " "):
                options_ended = options_ended or "".join(out[token_at:]) == "--"
                token_at = len(out) + 1
            elif char in DASHES and _token_start(out) and not options_ended:
                run, end = _dash_run(line, i)
                i = end
                out.append(run)
                continue
            if char in DOUBLE_QUOTES or (char in SINGLE_QUOTES and not _apostrophe(line, i)):
                quote, opened = ('"' if char in DOUBLE_QUOTES else "'"), i
                out.append(quote)
                inner_at = len(out)
                if char in GUILLEMETS:  # « node drained »: the inner spaces are typography
                    while i + 1 < n and _space(line[i + 1]) == " ":
                        i += 1
            else:
                out.append(_space(char))
        elif quote == '"':
            if char == "\\" and line[i + 1:i + 2] in ('"', "\\"):
                out.append(line[i:i + 2])
                i += 2
                continue
            if char in DOUBLE_QUOTES and _closes(line[opened], char):
                quote = None
                _trim_inner(out, inner_at, line[opened], char)
                out.append('"')
            elif char == '"':  # «say "hi"»: text inside a guillemet part
                out.append('\\"')
            else:
                out.append(_space(char))
        elif char in SINGLE_QUOTES and _closes(line[opened], char) and not _apostrophe(line, i):
            quote = None
            _trim_inner(out, inner_at, line[opened], char)
            out.append("'")
        elif char == "'":  # ‹it's›: text inside a guillemet part (close, escaped ', reopen)
            out.append("'\\''")
        else:
            out.append(_space(char))
        i += 1
    if quote is not None:
        raise UnclosedQuote(f"no closing quotation: the {line[opened]} at character "
                            f"{opened + 1} is never closed")
    return "".join(out)


def quote(token: str) -> str:
    """``token`` quoted so that :func:`normalise` and shlex give it back unchanged (for the
    normalised command line that a re-run after approval parses again)."""
    if not any(c in SMART_QUOTES for c in token):
        return shlex.quote(token)
    has_double = any(c in DOUBLE_QUOTES for c in token)
    has_single = any(c in SINGLE_QUOTES for c in token)
    if not has_double:  # inside "...", single quotes of any kind are text
        return '"' + token.replace("\\", "\\\\") + '"'
    if not has_single:  # inside '...', everything but a single quote is text
        return "'" + token + "'"
    # Both kinds: every quote character escaped, the rest quoted as usual.
    parts: list[str] = []
    run = ""
    for char in token:
        if char in DOUBLE_QUOTES or char in SINGLE_QUOTES:
            if run:
                parts.append(shlex.quote(run))
                run = ""
            parts.append("\\" + char)
        else:
            run += char
    if run:
        parts.append(shlex.quote(run))
    return "".join(parts)


def _closes(opening: str, char: str) -> bool:
    """A part opened by a guillemet ends at a guillemet, any other at any other quote of its
    family: "x «y» z" quotes guillemets as text, and so does «say "hi"»."""
    return (opening in GUILLEMETS) == (char in GUILLEMETS)


def _trim_inner(out: list[str], inner_at: int, opening: str, closing: str) -> None:
    """Drop the spaces before a closing guillemet (those after the opening one were skipped)."""
    if opening in GUILLEMETS and closing in GUILLEMETS:
        while len(out) > inner_at and out[-1] == " ":
            out.pop()


def _token_start(out: list[str]) -> bool:
    return not out or out[-1][-1:] in _SHLEX_SPACE


def _dash_run(line: str, start: int) -> tuple[str, int]:
    """What a dash-like run at a token's start stands for, and where it ends."""
    end = start
    while end < len(line) and (line[end] in DASHES or line[end] == "-"):
        end += 1
    following = line[end:end + 1]
    if following.isalpha():
        return "--", end  # —reason, –status, −−all
    if following.isdigit() and end - start == 1:
        return "-", end  # −5
    return line[start:end], end  # a lone dash is a word of its own


def _apostrophe(line: str, i: int) -> bool:
    """``’`` between two letters or digits: node’s, it’s."""
    return (line[i] == _APOSTROPHE and 0 < i < len(line) - 1
            and line[i - 1].isalnum() and line[i + 1].isalnum())


def _space(char: str) -> str:
    if char != " " and not char.isascii() and unicodedata.category(char) == "Zs":
        return " "
    return char
