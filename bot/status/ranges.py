"""Nagios threshold ranges (Nagios plugin development guidelines, "Threshold and ranges").

``[@]start:end``, alerting when the value is *outside* start..end (inclusive), or inside it with
a leading ``@``:

=========  =======================================
``10``     outside 0..10 (below 0 or above 10)
``10:``    below 10 (end is +infinity)
``~:10``   above 10 (start is -infinity)
``10:20``  outside 10..20
``@10:20`` inside 10..20 (10 and 20 included)
=========  =======================================

Parsing follows monitoring-plugins' ``parse_range_string`` (a missing start is 0, ``:10`` is
``0:10``, start must not exceed end) but is stricter about numbers: what ``strtod`` would read as
0 or as a prefix (``abc``, ``10x``) is an error here, so a typo never silently means "0".

In a config a range is written as a string or a plain number (``warning: 90``). Byte sizes may
carry a unit where the check says so (``free_bytes: {critical: "2GB:"}``, :func:`parse_size`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_SIZE = re.compile(r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[A-Za-z]*)")
# Decimal units as in the Nagios perfdata UOMs (KB, MB, ...), binary ones spelt KiB, MiB, ...
SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}


def parse_number(text: str) -> float:
    """A plain finite number (no ``inf``/``nan``, no trailing junk)."""
    if not _NUMBER.fullmatch(text.strip()):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def parse_size(text: str) -> float:
    """A byte count with an optional unit: ``512``, ``10GB``, ``1.5 GiB``, ``200M``."""
    match = _SIZE.fullmatch(text.strip())
    if not match or match["unit"].lower() not in SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 500MB, 10GB, 2GiB)")
    return float(match["number"]) * SIZE_UNITS[match["unit"].lower()]


@dataclass(frozen=True, slots=True)
class NagiosRange:
    start: float = 0.0  # -inf for "~"
    end: float = math.inf
    inside: bool = False  # "@": alert when inside start..end
    text: str = ""  # as written, for messages and perfdata
    start_text: str = ""  # each bound as written ("2GB"), for messages
    end_text: str = ""

    @classmethod
    def parse(cls, text: str | float, number: Callable[[str], float] = parse_number
              ) -> NagiosRange:
        """Parse a range; ``number`` reads each bound (:func:`parse_size` for byte counts).
        Raises ValueError naming the problem."""
        if isinstance(text, bool):
            raise ValueError(f"not a Nagios range: {text!r}")
        written = str(text).strip() if not isinstance(text, float) else _compact(text)
        body = written
        inside = body.startswith("@")
        if inside:
            body = body[1:]
        if not body or body == ":":
            raise ValueError(f"not a Nagios range: {written!r} (e.g. 10, 10:, ~:10, 10:20, "
                             "@10:20)")
        if body.count(":") > 1:
            raise ValueError(f"not a Nagios range: {written!r} (more than one ':')")
        start, end, head = 0.0, math.inf, ""
        if ":" in body:
            head, tail = (part.strip() for part in body.split(":"))
            if head == "~":
                start = -math.inf
            elif head:
                start = _bound(head, number, written)
        else:
            tail = body.strip()
        if tail:
            end = _bound(tail, number, written)
        if start > end:
            raise ValueError(f"not a Nagios range: {written!r} (start {_compact(start)} is "
                             f"above end {_compact(end)})")
        return cls(start, end, inside, written, head, tail)

    def alerts(self, value: float) -> bool:
        """Whether ``value`` raises the alert this range stands for."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def describe(self) -> str:
        """In words, for summaries: ``> 10``, ``< 5``, ``outside 10..20``, ``inside 10..20``."""
        start = self.start_text or _compact(self.start)
        end = self.end_text or _compact(self.end)
        if self.inside:
            if self.start == -math.inf:
                return f"<= {end}"
            return f">= {start}" if self.end == math.inf else f"inside {start}..{end}"
        if self.start == -math.inf:
            return "never" if self.end == math.inf else f"> {end}"
        if self.end == math.inf:
            return f"< {start}"
        if ":" not in self.text:  # the plain form "10": 0..10, in practice "above 10"
            return f"> {end}"
        return f"outside {start}..{end}"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        return _schema(cls.parse)


def _bound(text: str, number: Callable[[str], float], written: str) -> float:
    try:
        value = number(text.strip())
    except ValueError as exc:
        raise ValueError(f"not a Nagios range: {written!r} ({exc})") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"not a Nagios range: {written!r} (bounds must be finite)")
    return value


def _compact(value: float) -> str:
    if math.isinf(value):
        return "~" if value < 0 else "inf"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def _schema(parse: Callable[[Any], NagiosRange]) -> core_schema.CoreSchema:
    def validate(value: Any) -> NagiosRange:
        if isinstance(value, NagiosRange):
            return value
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError("expected a Nagios range such as 10, 10:, ~:10, 10:20, @10:20")
        return parse(value)

    return core_schema.no_info_plain_validator_function(
        validate, serialization=core_schema.plain_serializer_function_ser_schema(str))


class _SizeRange:
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        return _schema(lambda value: NagiosRange.parse(value, parse_size))


# A range of byte counts whose bounds may carry units: "10GB:", "~:500MiB".
SizeRange = Annotated[NagiosRange, _SizeRange]
