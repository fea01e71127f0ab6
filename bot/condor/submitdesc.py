"""Submit descriptions: split per ``queue`` statement, and ``getenv`` restricted.

``htcondor2.Submit(text)`` keeps only what precedes the first ``queue`` and silently drops the
rest, so :func:`split` cuts a description into one self-contained description per ``queue``
statement, carrying the commands set so far (later assignments override earlier ones, as in
condor_submit).

``getenv = true`` makes the submitting process (the worker) copy its whole environment into the
job ad's ``Environment``, which every pool user can read with ``condor_q -l`` and the running
job inherits. :func:`restrict_description` rewrites every ``getenv`` (in the text and in the
configured ``attributes``) into an explicit list of the pool's ``getenv_allow`` names.
Pure Python: no bindings needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.condor.errors import CondorConfigError

_QUEUE = re.compile(r"^\s*queue\b(.*)$", re.IGNORECASE)
ATTRIBUTE_KEY = re.compile(r"\+?[A-Za-z_][A-Za-z0-9_.]{0,99}")


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def split(text: str, name: str = "submit description") -> list[str]:
    """One description per queue statement, each ending with its own ``queue`` line."""
    commands: list[str] = []
    parts: list[str] = []
    for line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _QUEUE.match(stripped)
        if match:
            args = match.group(1).strip()
            if "(" in args or re.search(r"\bfrom\b|\bin\b|\bmatching\b", args, re.IGNORECASE):
                raise CondorConfigError(f"{name}: only 'queue' and 'queue N' are supported "
                                        f"(got 'queue {args}')")
            parts.append("\n".join([*commands, f"queue {args}".rstrip()]) + "\n")
            continue
        if "=" not in stripped:
            raise CondorConfigError(f"{name}: cannot read line {stripped[:60]!r}")
        commands.append(stripped)
    if not parts:
        raise CondorConfigError(f"{name} has no queue statement: nothing would be submitted")
    return parts


def check_attributes(attributes: dict[str, str], name: str = "submit description") -> None:
    """Extra submit commands from the config: plain names and one-line values only."""
    for key, value in attributes.items():
        if not ATTRIBUTE_KEY.fullmatch(key) or key.lower() == "queue":
            raise CondorConfigError(f"{name}: invalid submit command name {key!r}")
        if "\n" in value or "\r" in value:
            raise CondorConfigError(f"{name}: the value of {key} must be one line")


def check_initialdir(text: str, attributes: dict[str, str],
                     name: str = "submit description") -> None:
    """Refuse a description without ``initialdir``.

    condor_submit takes the job's working directory (Iwd) from the directory it runs in; the
    bindings take the worker's, which is shiftbot's own. GWCelery scopes its jobs by Iwd and
    writes its logs there, so the directory must be explicit.
    """
    keys = {k.lower() for k in attributes}
    for line in _logical_lines(text):
        key = line.split("=", 1)[0].strip().lower()
        if "=" in line:
            keys.add(key)
    if not keys & {"initialdir", "initial_dir", "iwd"}:
        raise CondorConfigError(f"{name} has no initialdir: set it (attributes: initialdir: "
                                "/path/to/deployment), or the jobs would run in shiftbot's "
                                "own directory")


# ------------------------------------------------------------------------- getenv policy

# condor_submit's spellings of the command (keys are case-insensitive).
GETENV_KEYS = frozenset({"getenv", "get_env"})
# What an operator may mean by "copy everything". HTCondor itself reads only true/1 (any case)
# as true and would take "yes" as the name of a variable; either way the intent is "the whole
# environment", which is exactly what must not reach a job ad readable by every pool user.
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})
# condor_submit splits a getenv list on commas, semicolons and whitespace; '!' excludes.
_ITEM_SEPARATORS = re.compile(r"[,;\s]+")
_ITEM = re.compile(r"!?[A-Za-z0-9_*]+")


@dataclass(frozen=True, slots=True)
class GetenvRewrite:
    """What :func:`restrict_getenv` made of one ``getenv`` value."""

    original: str
    value: str  # what is submitted instead
    everything: bool = False  # the original asked for the whole environment (true, or only !X)
    dropped: tuple[str, ...] = ()  # requested names (or globs, or unreadable text) not allowed

    @property
    def changed(self) -> bool:
        return self.value.strip() != self.original.strip()

    @property
    def worth_a_warning(self) -> bool:
        """The submitted value differs from what was asked, not just in spelling."""
        return self.everything or bool(self.dropped)


def restrict_getenv(value: str, allowed: Sequence[str]) -> GetenvRewrite:
    """Turn a ``getenv`` value into an explicit list of ``allowed`` names (or ``false``).

    HTCondor 10+ accepts ``true``, ``false`` or a list of names where ``*`` is a wildcard and
    ``!NAME`` excludes (a list of exclusions only means "everything else"). Matching is
    case-insensitive. Only exact names of the allow-list survive: a glob such as ``*TOKEN*``
    is dropped even if it would match an allowed name, and anything that is not a plain list
    (a macro, an expression) is dropped too, i.e. the rewrite fails closed.
    """
    text = value.split("#", 1)[0].strip()  # a trailing comment is not part of the value
    lowered = text.lower()
    if not text or (lowered in ("false", "0") and text == value.strip()):
        return GetenvRewrite(value, value)  # what HTCondor itself reads as false
    if lowered in _FALSE:
        # HTCondor would read "no" or "false # comment" as a list of variable names.
        return GetenvRewrite(value, "false")
    by_lower = {name.lower(): name for name in allowed}
    if lowered in _TRUE:
        return GetenvRewrite(value, ", ".join(allowed) or "false", everything=True)
    items = [item for item in _ITEM_SEPARATORS.split(text) if item]
    if not all(_ITEM.fullmatch(item) for item in items):
        return GetenvRewrite(value, "false", dropped=(text,))
    wanted = [item for item in items if not item.startswith("!")]
    excluded = [item[1:].lower() for item in items if item.startswith("!")]
    everything = not wanted
    kept: list[str] = list(allowed) if everything else []
    dropped: list[str] = []
    for item in wanted:
        name = by_lower.get(item.lower())
        if name is None:
            dropped.append(item)
        elif name not in kept:
            kept.append(name)
    kept = [name for name in kept
            if not any(fnmatchcase(name.lower(), pattern) for pattern in excluded)]
    return GetenvRewrite(value, ", ".join(kept) or "false", everything, tuple(dropped))


def _rewrite_part(part: str, allowed: Sequence[str]) -> tuple[str, list[GetenvRewrite]]:
    lines, rewrites = [], []
    for line in part.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in GETENV_KEYS:
            rewrite = restrict_getenv(value, allowed)
            if rewrite.changed:
                rewrites.append(rewrite)
                line = f"{key.strip()} = {rewrite.value}"
        lines.append(line)
    return "\n".join(lines) + "\n", rewrites


def restrict_description(parts: list[str], attributes: dict[str, str],
                         allowed: Sequence[str]) -> tuple[list[str], dict[str, str],
                                                          list[GetenvRewrite]]:
    """Apply :func:`restrict_getenv` to every split part and to the extra ``attributes``.

    Every part carries the commands set before its ``queue``, so a ``getenv`` line appears in
    each part after it and is rewritten in each.
    """
    rewrites: list[GetenvRewrite] = []
    out_parts = []
    for part in parts:
        text, found = _rewrite_part(part, allowed)
        out_parts.append(text)
        rewrites += found
    out_attributes = dict(attributes)
    for key, value in attributes.items():
        if key.lower() in GETENV_KEYS:
            rewrite = restrict_getenv(value, allowed)
            if rewrite.changed:
                rewrites.append(rewrite)
                out_attributes[key] = rewrite.value
    return out_parts, out_attributes, rewrites


def getenv_values(text: str, attributes: dict[str, str]) -> list[tuple[str, str]]:
    """Every ``getenv`` command of a description as ``(where, value)``; where is ``text`` or
    ``attributes.<key>`` (check-config names the key path with it)."""
    found = []
    for line in _logical_lines(text):
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in GETENV_KEYS:
            found.append(("text", value))
    found += [(f"attributes.{key}", value) for key, value in attributes.items()
              if key.lower() in GETENV_KEYS]
    return found
