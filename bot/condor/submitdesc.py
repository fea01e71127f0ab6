"""Submit descriptions with several ``queue`` statements (gwcelery.sub has nine).

``htcondor2.Submit(text)`` keeps only what precedes the first ``queue`` and silently drops the
rest, so :func:`split` cuts a description into one self-contained description per ``queue``
statement, carrying the commands set so far (later assignments override earlier ones, as in
condor_submit). Pure Python: no bindings needed.
"""

from __future__ import annotations

import re

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
