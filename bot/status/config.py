"""The ``status:`` config section: the checks and how their state changes are announced.

Each check is one of the check types, chosen by its ``type`` key. Problems carry their key
path without pydantic's union tag (``status.checks[2].url``, not ``status.checks[2].http.url``).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.configbase import Strict, hint_for
from bot.status.checks.command import CommandCheck
from bot.status.checks.condor import CondorCheck
from bot.status.checks.disk import DiskCheck
from bot.status.checks.expression import ExpressionCheck
from bot.status.checks.flower import FlowerCheck
from bot.status.checks.http import HttpCheck
from bot.status.checks.nagios import NagiosCheck
from bot.status.checks.tcp import TcpCheck
from bot.status.model import CheckSpec

CHECK_TYPES: tuple[type[CheckSpec], ...] = (NagiosCheck, HttpCheck, DiskCheck, TcpCheck,
                                            CondorCheck, CommandCheck, ExpressionCheck,
                                            FlowerCheck)
_BY_TYPE: dict[str, type[CheckSpec]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in CHECK_TYPES
}

AnyCheck = Annotated[NagiosCheck | HttpCheck | DiskCheck | TcpCheck | CondorCheck | CommandCheck
                     | ExpressionCheck | FlowerCheck, Field(discriminator="type")]


class StatusConfig(Strict):
    checks: list[AnyCheck] = Field(default_factory=list)
    channel: str | None = None  # default notice channel alias of the checks
    mention: list[str] = Field(default_factory=list)  # default people/groups/roles to notify
    notify_after: int = Field(2, ge=1, le=20)  # consecutive results before a change counts
    keep_days: int = Field(14, ge=1, le=3650)  # results kept this long
    history_limit: int = Field(1000, ge=10, le=1_000_000)  # results kept per check at most
    margin_seconds: float = Field(2.0, gt=0, le=60)  # a round's bound: longest timeout + this
    # An unacknowledged alert is posted again this often while the check is not OK (0: never).
    renotify_minutes: float = Field(60, ge=0, le=7 * 24 * 60)

    @model_validator(mode="wrap")
    @classmethod
    def _clean_paths(cls, data: Any, handler: Any) -> StatusConfig:
        try:
            config = handler(data)
        except ValidationError as exc:
            raise ValidationError.from_exception_data(cls.__name__, [
                _clean(error) for error in exc.errors()]) from None
        errors = _cross_errors(config)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return config

    def check(self, name: str) -> CheckSpec | None:
        return next((check for check in self.checks if check.name == name), None)


def _cross_errors(config: StatusConfig) -> list[InitErrorDetails]:
    """Unique names; references to checks that exist, no cycles."""
    errors: list[InitErrorDetails] = []
    first: dict[str, int] = {}
    for index, check in enumerate(config.checks):
        if check.name in first:
            errors.append(_error(("checks", index, "name"), check.name,
                                 f"duplicate check name '{check.name}' (also "
                                 f"checks[{first[check.name]}])"))
        first.setdefault(check.name, index)
    for index, check in enumerate(config.checks):
        for name in sorted(check.references()):
            if name == check.name:
                message = "refers to itself"
            elif name not in first:
                close = difflib.get_close_matches(name, list(first), n=1)
                message = f"no check named '{name}'" + (
                    f" (did you mean '{close[0]}'?)" if close else "")
            else:
                continue
            errors.append(_error(("checks", index, _reference_key(check)), name, message))
    errors += _cycles(config)
    return errors


def _cycles(config: StatusConfig) -> list[InitErrorDetails]:
    refs: dict[str, frozenset[str]] = {}
    for check in config.checks:  # a duplicate name is reported above; the first one counts
        refs.setdefault(check.name, check.references())
    errors: list[InitErrorDetails] = []
    seen: set[str] = set()
    for index, check in enumerate(config.checks):
        if check.name in seen:
            continue
        seen.add(check.name)
        cycle = _cycle_from(check.name, refs)
        if cycle is not None and len(cycle) > 2:  # a self-reference is reported above
            errors.append(_error(("checks", index, _reference_key(check)), check.name,
                                 "circular references: " + " -> ".join(cycle)))
    return errors


def _cycle_from(start: str, refs: dict[str, frozenset[str]]) -> list[str] | None:
    """A path of references from ``start`` back to it, or None."""
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        for name in sorted(refs.get(node, ())):
            if name == start:
                return [*path, start]
            if name in refs and name not in seen:
                seen.add(name)
                stack.append((name, [*path, name]))
    return None


def _reference_key(check: CheckSpec) -> str:
    return "expression" if "expression" in type(check).model_fields else "name"


def _error(loc: tuple[Any, ...], value: Any, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("status_config", "{message}",
                                                     {"message": message}),
                            loc=loc, input=value)


def _clean(error: Any) -> InitErrorDetails:
    """Drop the union tag from ``('checks', 2, 'http', 'url')``; say what a bad ``type`` or
    unknown key should be."""
    loc = tuple(error["loc"])
    kind, message = error["type"], error["msg"]
    if len(loc) >= 3 and loc[0] == "checks" and isinstance(loc[1], int) and loc[2] in _BY_TYPE:
        model = _BY_TYPE[loc[2]]
        loc = (*loc[:2], *loc[3:])
        if kind == "extra_forbidden":  # the hint from the check's own model, at any depth
            hint = hint_for(error, model, tuple(p for p in loc[2:] if not isinstance(p, int)))
            kind, message = "unknown_key", f"unknown key '{loc[-1]}'" + (
                f" ({hint})" if hint else "")
    elif kind == "union_tag_invalid":
        kind, message = "unknown_type", (
            f"unknown check type {error['ctx']['tag']!r} (one of: {', '.join(_BY_TYPE)})")
        loc = (*loc, "type")
    elif kind == "union_tag_not_found":
        kind, message = "missing_type", f"every check needs a 'type': one of {', '.join(_BY_TYPE)}"
    if kind == "extra_forbidden":  # keep pydantic's type: the loader words it and hints
        return InitErrorDetails(type=kind, loc=loc, input=error.get("input"))
    return InitErrorDetails(type=PydanticCustomError(kind, "{message}", {"message": message}),
                            loc=loc, input=error.get("input"))


def check_types() -> dict[str, type[BaseModel]]:
    """``{type name: model}`` of every check type (docs, check-config hints)."""
    return dict(_BY_TYPE)
