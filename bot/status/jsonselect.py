"""A small jq-like selector for values in JSON answers (the http check's ``extract``).

``.`` the whole document, ``.a.b`` keys, ``.a["odd key"]`` quoted keys, ``.items[0]`` and
``.items[-1]`` list positions, and an optional trailing ``| length`` (items of a list or
object, characters of a string). Nothing else: no filters, no evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*\]')
_MISSING = object()


class SelectError(LookupError):
    """The document has no value where the selector points."""


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    steps: tuple[str | int, ...]
    length: bool = False

    def apply(self, document: Any) -> Any:
        value = document
        where = ""
        for step in self.steps:
            value = _step(value, step)
            where += f"[{step}]" if isinstance(step, int) else f".{step}"
            if value is _MISSING:
                raise SelectError(f"no value at {where or '.'}")
        if self.length:
            if isinstance(value, (list, dict, str)):
                return len(value)
            raise SelectError(f"{where or '.'} is {_kind(value)}: it has no length")
        return value


def parse_selector(text: str) -> Selector:
    """Parse a selector; ValueError says where it goes wrong."""
    body, length = text.strip(), False
    if "|" in body:
        body, _, tail = body.partition("|")
        if tail.strip() != "length":
            raise ValueError(f"{text!r}: only '| length' may follow the path")
        body, length = body.strip(), True
    if not body.startswith("."):
        raise ValueError(f"{text!r}: a selector starts with '.' (e.g. .workers[0].name)")
    if body == ".":
        return Selector(text.strip(), (), length)
    steps: list[str | int] = []
    pos = 1 if body.startswith(".[") else 0  # .["key"] and .[0] as in jq
    while pos < len(body):
        if body[pos] == ".":
            match = _KEY.match(body, pos + 1)
            if match is None:
                raise ValueError(f"{text!r}: expected a key after '.' at {pos + 1}")
            steps.append(match.group())
        elif (match := _INDEX.match(body, pos)) is not None:
            steps.append(int(match.group(1)))
        elif (match := _QUOTED.match(body, pos)) is not None:
            steps.append(json.loads(match.group(1)))
        else:
            raise ValueError(f"{text!r}: unexpected {body[pos:pos + 10]!r} at {pos + 1}")
        pos = match.end()
    return Selector(text.strip(), tuple(steps), length)


def _step(value: Any, step: str | int) -> Any:
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            return value[step]
        return _MISSING
    if isinstance(value, dict):
        return value.get(step, _MISSING)
    return _MISSING


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, (int, float)) else type(value).__name__
