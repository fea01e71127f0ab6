"""Restart parameters: ``PARAM=VALUE`` typed in chat, filling only the slots a target declares.

A target's templates (an argv element, a URL, a pipeline variable, a JSON string) name slots
as ``{name}``; ``{{`` and ``}}`` are literal braces. Every slot must be a declared parameter,
and a value only ever replaces its slot *inside* the one string it sits in: it never becomes a
second argv element, never reaches a shell, and is percent-encoded in a URL.

Each value is checked against its parameter's allowed list or regex (full match, ASCII
classes), refused when it starts with ``-`` unless the parameter allows it (``--component
{component}`` must not become ``--component --all``), refused when it holds anything but
printable ASCII (look-alikes such as a Cyrillic o, U+043E, are named), and bounded in length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from bot.commands import CommandError
from bot.markup import describe, visible

PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PRINTABLE = re.compile(r"[!-~]*")  # printable ASCII, no space


class ParamRule(Protocol):
    """What a declared parameter says (``bot.restart.config.ParamSpec``)."""

    choices: list[str] | None
    pattern: str | None
    default: str | None
    allow_leading_dash: bool
    max_length: int


def slots(template: str) -> list[str]:
    """The slot names in ``template``, in order; ValueError for a stray brace or a slot that is
    not a parameter name (``{}``, ``{0}``, ``{a.b}``)."""
    found = []
    for match in _TOKEN.finditer(template):
        token = match.group()
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(f"stray '{token}' in {template!r} (write {token * 2} for a "
                             "literal brace)")
        if not PARAM_NAME.fullmatch(name):
            raise ValueError(f"'{{{name}}}' in {template!r} is not a parameter slot "
                             "(lower-case letters, digits and _)")
        found.append(name)
    return found


def fill(template: str, values: Mapping[str, str],
         encode: Callable[[str], str] | None = None) -> str:
    """``template`` with each slot replaced by its value (``encode(value)`` first, if given:
    percent-encoding in URLs) and ``{{``/``}}`` by single braces."""

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token in ("{{", "}}"):
            return token[0]
        value = values[match.group(1)]
        return encode(value) if encode is not None else value

    return _TOKEN.sub(replace, template)


def shown(value: str, limit: int = 60) -> str:
    """A typed value as an error quotes it: on one line, nothing hidden, cut when long."""
    text = visible(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_value(name: str, rule: ParamRule, value: str) -> str | None:
    """Why ``value`` may not fill parameter ``name`` (None: it may)."""
    if len(value) > rule.max_length:
        return f"{name}: too long ({len(value)} characters, at most {rule.max_length})"
    if not value:
        return f"{name}: empty value"
    if not _PRINTABLE.fullmatch(value):
        odd = next(c for c in value if not "!" <= c <= "~")
        what = "a space" if odd == " " else describe(odd)
        return (f"{name}: '{shown(value)}' holds {what}; only printable ASCII without spaces is "
                "accepted (a look-alike letter? type it again)")
    if value.startswith("-") and not rule.allow_leading_dash:
        return f"{name}: '{shown(value)}' may not start with '-' (it would read as an option)"
    if rule.choices is not None:
        if value not in rule.choices:
            return f"{name}: '{shown(value)}' is not one of {', '.join(rule.choices)}"
    elif rule.pattern is not None and not re.fullmatch(rule.pattern, value, re.ASCII):
        return f"{name}: '{shown(value)}' is not allowed (it must match {rule.pattern})"
    return None


def resolve(target: str, rules: Mapping[str, ParamRule], given: Sequence[str]) -> dict[str, str]:
    """``["component=worker"]`` -> ``{"component": "worker"}`` with defaults filled in; a
    :class:`CommandError` saying what is wrong for anything else."""
    declared = ", ".join(rules) or "none"
    values: dict[str, str] = {}
    for item in given:
        name, eq, value = item.partition("=")
        if not eq:
            raise CommandError(f"'{shown(item)}' is not PARAM=VALUE (parameters of {target}: "
                               f"{declared})")
        if name not in rules:
            raise CommandError(f"'{shown(name)}' is not a parameter of restart target {target} "
                               f"(parameters: {declared})")
        if name in values:
            raise CommandError(f"{name} given twice")
        problem = check_value(name, rules[name], value)
        if problem is not None:
            raise CommandError(problem)
        values[name] = value
    for name, rule in rules.items():
        if name in values:
            continue
        if rule.default is None:
            allowed = f" (one of {', '.join(rule.choices)})" if rule.choices else ""
            raise CommandError(f"missing {name}=VALUE{allowed}")
        values[name] = rule.default
    return values
