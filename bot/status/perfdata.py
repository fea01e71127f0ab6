"""Nagios plugin output: the summary line, long output and performance data.

The plugin API (Nagios plugin development guidelines, "Plugin Output"; monitoring-plugins):

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

The first line is the summary, with perfdata after its ``|``. Later lines are long output up to
the first ``|`` among them; everything after that ``|`` (the rest of that line and all further
lines) is more perfdata. Perfdata is space-separated ``'label'=value[UOM];[warn];[crit];[min];
[max]``: labels with spaces are single-quoted (a quote inside written ``''``), value ``U`` when
the plugin could not tell, UOMs ``s ms us % B KB MB GB TB c`` (others seen in the wild, such as
``KiB`` or ``B/s``, are kept as written). Items that do not parse are skipped: one broken item
must not hide the others, nor the plugin's verdict.
"""

from __future__ import annotations

import re

from bot.status.model import PerfDatum

_VALUE = re.compile(r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|U)"
                    r"(?P<uom>[A-Za-z%/]*)")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_RANGE = re.compile(r"@?(?:~|[-+]?[\d.]+(?:[eE][-+]?\d+)?)?(?::(?:[-+]?[\d.]+(?:[eE][-+]?\d+)?)?)?")


def split_output(text: str) -> tuple[str, str, list[PerfDatum]]:
    """``(summary, long_output, perfdata)`` of a plugin's whole output."""
    lines = text.replace("\r\n", "\n").split("\n")
    summary, _, perf = lines[0].partition("|")
    rest = "\n".join(lines[1:])
    long_output, _, more = rest.partition("|")
    data = parse_perfdata(perf) + parse_perfdata(more)
    return summary.strip(), long_output.strip("\n").rstrip(), data


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Every well-formed item of a perfdata string (whitespace, newlines included, separates)."""
    out: list[PerfDatum] = []
    pos, size = 0, len(text)
    while pos < size:
        while pos < size and text[pos].isspace():
            pos += 1
        if pos >= size:
            break
        label, pos = _label(text, pos)
        end = pos
        while end < size and not text[end].isspace():
            end += 1
        if label is not None and text.startswith("=", pos):
            datum = _datum(label, text[pos + 1:end])
            if datum is not None:
                out.append(datum)
        pos = max(end, pos + 1)
    return out


def _label(text: str, pos: int) -> tuple[str | None, int]:
    """The label at ``pos`` and where its ``=`` should be; None when malformed."""
    if text[pos] == "'":
        chars, i = [], pos + 1
        while i < len(text):
            if text[i] == "'":
                if text.startswith("''", i):
                    chars.append("'")
                    i += 2
                    continue
                return ("".join(chars) or None), i + 1
            chars.append(text[i])
            i += 1
        return None, len(text)  # no closing quote: nothing more can be read safely
    i = pos
    while i < len(text) and text[i] != "=" and not text[i].isspace():
        i += 1
    return (text[pos:i] or None), i


def _datum(label: str, spec: str) -> PerfDatum | None:
    fields = spec.split(";")
    if len(fields) > 5:
        return None
    fields += [""] * (5 - len(fields))
    match = _VALUE.fullmatch(fields[0])
    if not match:
        return None
    value = None if match["value"] == "U" else float(match["value"])
    warn, crit = (_range(field) for field in fields[1:3])
    return PerfDatum(label=label, value=value, uom=match["uom"], warn=warn, crit=crit,
                     min=_number(fields[3]), max=_number(fields[4]))


def _range(text: str) -> str | None:
    text = text.strip()
    return text if text and _RANGE.fullmatch(text) else None


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def quote_label(label: str) -> str:
    """A label as written in perfdata (quoted when it holds spaces, ``=`` or quotes)."""
    if re.search(r"[\s='|;]", label):
        return "'" + label.replace("'", "''") + "'"
    return label


def format_datum(datum: PerfDatum) -> str:
    """One item back in the plugin syntax, trailing empty fields dropped."""
    value = "U" if datum.value is None else _num(datum.value)
    fields = [f"{value}{datum.uom}", datum.warn or "", datum.crit or "",
              "" if datum.min is None else _num(datum.min),
              "" if datum.max is None else _num(datum.max)]
    while len(fields) > 1 and not fields[-1]:
        fields.pop()
    return f"{quote_label(datum.label)}={';'.join(fields)}"


def format_perfdata(data: tuple[PerfDatum, ...] | list[PerfDatum]) -> str:
    return " ".join(format_datum(datum) for datum in data)


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)
