"""Command lines -> (command, validated arguments). Never raises anything but :class:`ParseError`.

Syntax: ``family [sub] [positional ...] [--opt value | --opt=value | opt=value | --flag]``,
with shell-style quoting (``--reason "disk full"``) and ``--`` ending options. Every value is
checked against its slot's kind, bounds and pattern: user text only fills whitelisted slots.

What phones type is understood (``—reason “disk full”``, see ``bot/smartquotes.py``); what
cannot be seen is refused, never stripped: bidi overrides, zero-width and other format
characters, line separators, private-use, unassigned and surrogate code points. An approver
must see exactly the command that will run.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot import smartquotes
from bot.commands import WORD_PATTERN, Arg, CommandSpec, Opt
from bot.markup import describe, refusals

if TYPE_CHECKING:
    from bot.registry import Registry

MAX_LINE = 2000
_WORD = re.compile(WORD_PATTERN)
# [0-9], never \d: \d also matches Arabic-Indic, full-width and every other Unicode digit,
# which int() reads but the schedd, the audit and a reader of the card would not.
_INT = re.compile(r"-?[0-9]{1,12}")
_JOBID = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?")
_DURATION = re.compile(r"([0-9]{1,6})([smhdw])")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Default bounds: a count or id beyond a billion is a typo, and a duration beyond a year
# overflows datetime arithmetic (now - 999999w) long before it means anything.
INT_BOUNDS = (0, 1_000_000_000)
DURATION_BOUNDS = (1, 366 * 86400)
# --dry-run: the plan step's preview instead of the command (bot/core.py: Bot._dry_run).
GLOBAL_FLAGS = {"public", "private", "help", "dry-run"}
# Lines without quotes, backslashes or whitespace that str.split() and shlex disagree on split
# the same either way; shlex costs ten times more and most lines are like that.
_PLAIN = re.compile(r"[^\"'\\\x0b\x0c\x1c-\x1f]*")
# Between tokens a command line may hold tabs and line breaks; in a value nothing of the kind
# (newlines would forge log and audit lines).
_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VALUE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ParseError(Exception):
    """Bad input: ``message`` says what, ``spec`` (when known) gives the usage to show."""

    def __init__(self, message: str, spec: CommandSpec | None = None,
                 family: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.spec = spec
        self.family = family


class RefusedCharacter(ParseError):
    """A character that cannot be seen or shown safely (named by its code point)."""


@dataclass(slots=True)
class Parsed:
    spec: CommandSpec
    args: dict[str, Any]
    flags: set[str] = field(default_factory=set)  # global flags: public, private, help
    text: str = ""  # the normalised command line (for audit and re-runs after approval)

    def canonical(self, resolved: Mapping[str, Any] | None = None) -> str:
        """What the line asks for, whatever its spelling: the command's key, then its arguments
        in declaration order. Job id lists are sets (``rm 1.21 1.20`` is ``rm 1.20 1.21``);
        other lists and free text keep their order. An option left at its declared default, an
        unset flag and an absent value are left out (so naming the default is not a different
        request), and the global flags (``--public``) are how to answer, not what to do.
        ``resolved``: values the plan step settled that the parser cannot know (the config's
        default pool), put in place of the typed ones."""
        items: list[list[Any]] = []
        for slot in (*self.spec.args, *self.spec.options):
            key = slot.name.replace("-", "_")
            value = self.args.get(key)
            if resolved is not None and key in resolved:
                value = resolved[key]
            elif isinstance(slot, Opt) and value == slot.default:
                continue
            if value is None or value is False or value == []:
                continue
            if isinstance(value, list) and slot.kind == "jobid":
                value = sorted(set(value), key=_jobid_order)
            items.append([key, value])
        return json.dumps([self.spec.key, items], ensure_ascii=False, separators=(",", ":"))


def _jobid_order(job: str) -> tuple[int, int]:
    cluster, _, proc = job.partition(".")
    return int(cluster), int(proc) if proc else -1


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_LINE:
        raise ParseError(f"command line too long ({len(text)} characters, at most {MAX_LINE})")
    if "\x00" in text:
        raise ParseError("command line contains a NUL character")
    if text.isascii() and _PLAIN.fullmatch(text):
        return text.split()
    return _shlex_split(text)


def _shlex_split(text: str) -> list[str]:
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        lexer.commenters = ""
        return list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ParseError(f"cannot read the command line: {str(exc).lower()}") from None


def suggest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def refused(text: str, where: str, *, between_tokens: bool = False) -> str | None:
    """Why ``text`` cannot be accepted ("reason: invisible character U+202E (...) is not
    allowed"), or None. ``between_tokens``: a whole line, where tabs and newlines separate."""
    if text.isascii():
        control = (_LINE_CONTROL if between_tokens else _VALUE_CONTROL).search(text)
        if control is None:
            return None
        chars: str = control.group()
    else:
        chars = text
    for index, kind in refusals(chars):
        char = chars[index]
        if between_tokens and char in "\t\n\r":
            continue
        message = f"{where}: {kind} {describe(char)} is not allowed"
        if char == "\u200d":
            message += (" (emoji joined with it, such as families or professions, are "
                        "refused too: send them without the joiner)")
        if char in "\ufe0e\ufe0f":
            message += " (allowed only right after an emoji)"
        return message
    return None


def convert(slot: Arg | Opt, raw: str) -> Any:
    """Check and convert one value for its slot; raises ParseError with a clear message."""
    name = slot.name
    if len(raw) > slot.max_length:
        raise ParseError(f"{name}: too long ({len(raw)} characters, at most {slot.max_length})")
    problem = refused(raw, name)
    if problem is not None:
        raise RefusedCharacter(problem)
    kind = slot.kind
    value: Any
    if kind == "choice" or slot.choices:
        lowered = raw.lower()
        if lowered not in slot.choices:
            hint = suggest(lowered, list(slot.choices))
            extra = f" (did you mean '{hint}'?)" if hint else ""
            raise ParseError(
                f"{name}: '{raw}' is not one of {', '.join(slot.choices)}{extra}"
            )
        value = lowered
    elif kind == "int":
        if not _INT.fullmatch(raw):
            raise ParseError(f"{name}: expected a whole number, got '{raw}'")
        value = _bounded(slot, int(raw), INT_BOUNDS, str)
    elif kind == "jobid":
        match = _JOBID.fullmatch(raw)
        if not match:
            raise ParseError(f"{name}: expected a job id like 1234 or 1234.0, got '{raw}'")
        # Canonical digits (01.020 -> 1.20): the queue, the plan and the reply all compare
        # job ids as strings, so the typed spelling must not reach them.
        cluster, proc = match.groups()
        value = str(int(cluster)) + ("" if proc is None else f".{int(proc)}")
    elif kind == "duration":
        match = _DURATION.fullmatch(raw.lower())
        if not match:
            raise ParseError(f"{name}: expected a duration like 30m, 24h or 7d, got '{raw}'")
        value = int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        value = _bounded(slot, value, DURATION_BOUNDS, format_seconds)
    elif kind == "text":
        value = raw  # refused() has checked it
    else:  # word
        if not _WORD.fullmatch(raw):
            raise ParseError(
                f"{name}: '{raw}' has characters that are not allowed here "
                "(letters, digits and _ . @ : / + = , * - only)"
            )
        value = raw
    if slot.pattern is not None and not re.fullmatch(slot.pattern, raw):
        raise ParseError(f"{name}: '{raw}' is not a valid {name}")
    return value


def _bounded(slot: Arg | Opt, value: int, default: tuple[int, int],
             show: Callable[[int], str]) -> int:
    low = default[0] if slot.min_value is None else slot.min_value
    high = default[1] if slot.max_value is None else slot.max_value
    if value < low:
        raise ParseError(f"{slot.name}: must be at least {show(low)}, got {show(value)}")
    if value > high:
        raise ParseError(f"{slot.name}: must be at most {show(high)}, got {show(value)}")
    return value


def format_seconds(seconds: int) -> str:
    """A duration as it is typed: 86400 -> 1d, 90 -> 90s."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse(registry: Registry, text: str) -> Parsed:
    """``text`` -> the command and its checked arguments, or a :class:`ParseError`."""
    line = text.strip(" \t\r\n")  # not str.strip(): a trailing U+2028 is refused, not lost
    try:
        line = smartquotes.normalise(line)
    except smartquotes.UnclosedQuote as exc:
        raise ParseError(str(exc)) from None
    problem = refused(line, "command line", between_tokens=True)
    try:
        parsed = _parse(registry, line)
    except RefusedCharacter:
        raise  # names the argument it was found in
    except ParseError as exc:
        if problem is None:
            raise
        # The invisible character may well be why the line makes no sense: say so instead.
        raise RefusedCharacter(problem, exc.spec, exc.family) from None
    if problem is not None:
        raise RefusedCharacter(problem, parsed.spec)
    return parsed


def _parse(registry: Registry, line: str) -> Parsed:
    tokens = tokenize(line)
    if not tokens:
        raise ParseError("empty command")
    family_name = tokens[0].lower()
    family = registry.families.get(family_name)
    if family is None:
        hint = suggest(family_name, registry.command_words())
        msg = f"unknown command '{tokens[0]}'"
        msg += f" (did you mean '{hint}'?)" if hint else ""
        raise ParseError(msg + "; try 'help'")
    rest = tokens[1:]
    spec = family.commands.get("")
    if spec is not None and rest and rest[0].lower() in family.commands:
        # A family that is a command and has subcommands ("status NAME", "status ack NAME"):
        # a subcommand's name wins, so features keep those names out of their own (checks).
        spec = family.commands[rest[0].lower()]
        rest = rest[1:]
    elif spec is None:
        if not rest or rest[0].startswith("-"):
            if rest and rest[0] in ("--help", "-h"):
                raise ParseError("help", family=family_name)
            raise ParseError(f"'{family_name}' needs a subcommand", family=family_name)
        sub = rest[0].lower()
        spec = family.commands.get(sub)
        if spec is None:
            hint = suggest(sub, list(family.commands))
            msg = f"unknown subcommand '{family_name} {rest[0]}'"
            msg += f" (did you mean '{family_name} {hint}'?)" if hint else ""
            raise ParseError(msg, family=family_name)
        rest = rest[1:]
    return _bind(spec, rest)


def _bind(spec: CommandSpec, tokens: list[str]) -> Parsed:
    options = {o.name: o for o in spec.options}
    values: dict[str, Any] = {}
    flags: set[str] = set()
    positionals: list[str] = []
    i = 0
    only_positionals = False
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if only_positionals:
            positionals.append(token)
            continue
        if token == "--":
            only_positionals = True
            continue
        name: str | None = None
        value: str | None = None
        if token.startswith("--") and len(token) > 2:
            name, eq, inline = token[2:].partition("=")
            value = inline if eq else None
        elif token == "-h":
            name = "help"
        elif "=" in token and token.split("=", 1)[0] in options:
            name, _, value = token.partition("=")
        if name is None:
            positionals.append(token)
            continue
        name = name.lower().replace("_", "-")
        if name in GLOBAL_FLAGS and name not in options:
            if value is not None:
                raise ParseError(f"--{name} takes no value", spec)
            flags.add(name)
            continue
        opt = options.get(name)
        if opt is None:
            hint = suggest(name, list(options) + sorted(GLOBAL_FLAGS))
            msg = f"unknown option '--{name}'"
            msg += f" (did you mean '--{hint}'?)" if hint else ""
            raise ParseError(msg, spec)
        if name in values:
            raise ParseError(f"--{name} given twice", spec)
        if opt.kind == "flag":
            if value is not None:
                raise ParseError(f"--{name} takes no value", spec)
            values[name] = True
            continue
        if value is None:
            if i >= len(tokens):
                raise ParseError(f"--{name} needs a value", spec)
            value = tokens[i]
            i += 1
        values[name] = _checked(opt, value, spec)
    if "help" in flags:
        raise ParseError("help", spec)
    args = _bind_positionals(spec, positionals)
    for opt in spec.options:
        key = opt.name.replace("-", "_")
        args[key] = values.get(opt.name, False if opt.kind == "flag" else opt.default)
    if "public" in flags and "private" in flags:
        raise ParseError("--public and --private exclude each other", spec)
    if "dry-run" in flags and spec.plan is None:
        raise ParseError(f"--dry-run: '{spec.words}' has nothing to preview (commands that "
                         "change things show what they would do; this one runs as typed)", spec)
    return Parsed(spec, args, flags, _normalise(spec, tokens))


def _bind_positionals(spec: CommandSpec, positionals: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    remaining = list(positionals)
    for slot in spec.args:
        key = slot.name.replace("-", "_")
        if slot.many:
            if slot.required and not remaining:
                raise ParseError(f"missing {slot.metavar}", spec)
            args[key] = [_checked(slot, v, spec) for v in remaining]
            remaining = []
        elif remaining:
            args[key] = _checked(slot, remaining.pop(0), spec)
        elif slot.required:
            raise ParseError(f"missing {slot.metavar}", spec)
        else:
            args[key] = None
    if remaining:
        raise ParseError(f"unexpected argument '{remaining[0]}'", spec)
    return args


def _checked(slot: Arg | Opt, raw: str, spec: CommandSpec) -> Any:
    try:
        return convert(slot, raw)
    except ParseError as exc:
        raise type(exc)(exc.message, spec) from None


def _normalise(spec: CommandSpec, tokens: list[str]) -> str:
    return " ".join([spec.words, *(smartquotes.quote(t) for t in tokens)])
