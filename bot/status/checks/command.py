"""The ``command`` check: numbers read from a program's output by a regular expression.

The pattern's named groups whose text is a number become values. Without ``row``, the first
match gives them (``(?P<queued>\\d+) queued`` -> ``queued``). With ``row: NAME`` every match is
a row named by that group, and its other groups become ``ROW.group`` (pantasks' ``task
(?P<task>\\S+) Nfail (?P<nfail>\\d+)`` with ``row: task`` -> ``summit.nfail``, ...). The number
of matches is always the value ``matches`` (``manage status``: components shown as down).
Thresholds are keyed by value name or fnmatch glob (``*.nfail``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.status.checks.nagios import PLUGIN_DIRS, program_failure, run_command
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level
from bot.status.procs import OUTPUT_LIMIT, Argv, Environment, decode
from bot.status.ranges import parse_number
from bot.status.thresholds import Thresholds, assess, missing, number_text, summary_of

SHOWN_VALUES = 6  # values named in an OK summary


class CommandCheck(CheckSpec):
    type: Literal["command"]
    command: Argv  # [manage, status] -- never run by a shell
    environment: Environment = Field(default_factory=dict)
    pattern: str  # a regular expression with named groups, matched line by line (MULTILINE)
    row: str | None = None  # the named group naming each match's row
    thresholds: dict[str, Thresholds] = Field(default_factory=dict)
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0])  # else UNKNOWN
    stderr: bool = False  # match stderr too (after stdout)
    max_output_bytes: int = Field(OUTPUT_LIMIT, ge=1024, le=1024 * 1024)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _row_group(self) -> CommandCheck:
        groups = re.compile(self.pattern).groupindex
        if self.row is not None and self.row not in groups:
            raise ValueError(f"row: the pattern has no group named {self.row!r}")
        return self

    async def run(self, env: CheckEnv) -> CheckResult:
        output = await run_command(self.command, self.environment, PLUGIN_DIRS,
                                   self.max_output_bytes)
        if isinstance(output, CheckResult):
            return output
        text, is_text = decode(output.stdout)
        if output.signal is not None or not is_text:  # empty output is fine here
            failure = program_failure(output)
            assert failure is not None
            return failure
        if output.returncode not in self.ok_exit_codes:
            first = text.strip().splitlines()[0] if text.strip() else ""
            return CheckResult(Level.UNKNOWN, f"exited with {output.returncode}"
                               + (f": {first[:200]}" if first else ""), long_output=text[:4000])
        if self.stderr:
            text += "\n" + decode(output.stderr)[0]
        values = self.values(text)
        absent = missing(self.thresholds, values)
        if absent:
            return CheckResult(Level.UNKNOWN, "no value " + ", ".join(absent)
                               + " in the output", long_output=text[:4000], values=values)
        level, reasons = assess(values, self.thresholds)
        listing = ", ".join(f"{name}={number_text(value)}" for name, value in
                            list(values.items())[:SHOWN_VALUES])
        if len(values) > SHOWN_VALUES:
            listing += f", … ({len(values)} values)"
        return CheckResult(level, summary_of(reasons, listing), values=values,
                           long_output="" if level is Level.OK else text[:4000])

    def values(self, text: str) -> dict[str, float]:
        """The named numbers in ``text`` (see the module docstring)."""
        pattern = re.compile(self.pattern, re.MULTILINE)
        values: dict[str, float] = {}
        matches = 0
        for match in pattern.finditer(text):
            matches += 1
            if self.row is None and matches > 1:
                continue
            prefix = f"{match[self.row]}." if self.row is not None else ""
            for name, captured in match.groupdict().items():
                if name == self.row or captured is None:
                    continue
                try:
                    values[prefix + name] = parse_number(captured)
                except ValueError:
                    continue  # words are for the row name or the reader, not thresholds
        values["matches"] = float(matches)
        return values
