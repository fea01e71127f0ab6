"""The ``expression`` check: a verdict computed from other checks' latest values.

``expression: openstack.workers - nomad.workers > 0 for 15m`` with ``level: warning``: WARNING
once the condition has held for 15 minutes (bot/status/expr.py has the language). "True since"
is kept in the result's state and read back from ``env.previous``; a gap in the results longer
than a few intervals starts the count again, since nobody saw the condition in between.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator

from bot.status.expr import EvaluationError, Expression, evaluate, parse
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level
from bot.status.thresholds import number_text

GAP_INTERVALS = 3  # results further apart than this many intervals break "for DURATION"


class ExpressionCheck(CheckSpec):
    type: Literal["expression"]
    expression: str = Field(min_length=1)
    level: Literal["warning", "critical", "unknown"] = "critical"  # when the condition holds
    summary: str | None = None  # shown when it holds (default: the expression)
    ok_summary: str | None = None  # shown when it does not (default: "condition false")

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse(value)  # ExpressionError is a ValueError: a config problem at this key
        return value

    def references(self) -> frozenset[str]:
        return parse(self.expression).references()

    async def run(self, env: CheckEnv) -> CheckResult:
        expression = parse(self.expression)
        try:
            truth, used = _evaluate(expression, env)
        except EvaluationError as exc:
            previous = env.previous.state if env.previous is not None else {}
            return CheckResult(Level.UNKNOWN, str(exc), state=previous)
        shown = ", ".join(f"{name}={number_text(value)}" for name, value in used.items())
        values = {"value": float(truth)}
        if expression.duration is None:
            if truth:
                return CheckResult(Level.parse(self.level), self._true_text(shown),
                                   values=values)
            return CheckResult(Level.OK, self._false_text(shown), values=values)
        now = env.now()
        since = _since(env, now, self.interval_seconds) if truth else None
        state = {"true_since": since.isoformat() if since else None}
        if since is None:
            return CheckResult(Level.OK, self._false_text(shown), values=values, state=state)
        held = (now - since).total_seconds()
        values["held_seconds"] = held
        if held >= expression.duration:
            return CheckResult(Level.parse(self.level), self._true_text(shown) +
                               f" for {_span(held)}", values=values, state=state)
        return CheckResult(Level.OK, f"true for {_span(held)} of {_span(expression.duration)}"
                           f" ({shown})", values=values, state=state)

    def _true_text(self, shown: str) -> str:
        return f"{self.summary or self.expression} ({shown})"

    def _false_text(self, shown: str) -> str:
        return f"{self.ok_summary or 'condition false'} ({shown})"


def _evaluate(expression: Expression, env: CheckEnv) -> tuple[bool, dict[str, float]]:
    cache: dict[str, Mapping[str, float] | None] = {}

    def lookup(check: str, key: str) -> float:
        if check not in cache:
            cache[check] = env.values_of(check)
        values = cache[check]
        if values is None:
            raise EvaluationError(f"no result yet for check {check} (needed for "
                                  f"{check}.{key})")
        if key not in values:
            known = ", ".join(sorted(values)[:8]) or "none"
            raise EvaluationError(f"check {check} has no value {key!r} (it has: {known})")
        value = float(values[key])
        if math.isnan(value):
            raise EvaluationError(f"{check}.{key} is not a number")
        return value

    return evaluate(expression, lookup)


def _since(env: CheckEnv, now: datetime, interval: float) -> datetime:
    """When the condition became true: carried over from the previous result unless that one
    is too old to vouch for the time in between."""
    previous = env.previous
    if previous is None:
        return now
    text = previous.state.get("true_since")
    if not isinstance(text, str):
        return now
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        return now
    checked = previous.checked_at
    if checked is not None and now - checked > timedelta(seconds=GAP_INTERVALS * interval):
        return now
    return min(since, now)


def _span(seconds: float) -> str:
    """15m, 1h 5m, 42s."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs and not hours else ""]
    return " ".join(p for p in parts if p) or "0s"
