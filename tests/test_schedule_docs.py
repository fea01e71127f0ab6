"""docs/schedule.md documents every key (issue #15): its index lists every field of the
``schedule:``, ``meetings:``, ``shifts:`` and ``digests:`` models, nested models too (as
tests/test_config.py does for the example config), each with its current default."""

from __future__ import annotations

import json
import re
from datetime import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.configbase import _unwrap
from bot.digests.config import DigestsConfig
from bot.meetings.config import MeetingsConfig
from bot.schedule.config import ScheduleConfig
from bot.shifts.config import ShiftsConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "schedule.md"
INDEX_HEADING = "## Every key of the scheduler's sections"
SECTIONS: dict[str, type[BaseModel]] = {"schedule": ScheduleConfig, "meetings": MeetingsConfig,
                                        "shifts": ShiftsConfig, "digests": DigestsConfig}
NO_DEFAULT = object()  # a nested section's default (a model): the row says "(section)"


def documented_default(field: FieldInfo) -> object:
    """The default as the index writes it: ``required``, ``none``, ``true``, ``7``, ``09:00``,
    ``["10m"]`` (lists as JSON), a string as is; NO_DEFAULT for a nested model."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return NO_DEFAULT
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def keys(model: type[BaseModel], path: str) -> list[tuple[str, object]]:
    """(dotted key as the YAML spells it, its documented default) for every field, nested
    models included; a list of models is ``key[]``."""
    found = []
    for name, field in model.model_fields.items():
        inner = _unwrap(field.annotation)
        nested = inner is not None and inner is not model
        many = nested and "list[" in str(field.annotation)
        key = f"{path}{field.alias or name}{'[]' if many else ''}"
        found.append((key, documented_default(field)))
        if nested:
            found += keys(inner, f"{key}.")
    return found


def index_rows(text: str) -> dict[str, str]:
    """The index's rows: key -> its default cell (backticks dropped)."""
    start = text.index(INDEX_HEADING)
    following = text.find("\n## ", start + 1)
    section = text[start:following if following != -1 else len(text)]
    rows = {}
    for match in re.finditer(r"^\| `([^`]+)` \| ([^|]*) \|", section, re.MULTILINE):
        rows[match.group(1)] = match.group(2).strip().replace("`", "")
    return rows


def problems(text: str) -> list[str]:
    rows = index_rows(text)
    out = []
    for root, model in SECTIONS.items():
        for key, default in keys(model, f"{root}."):
            if key not in rows:
                out.append(f"{key}: missing")
            elif default is not NO_DEFAULT and not rows[key].startswith(str(default)):
                out.append(f"{key}: documented default {rows[key]!r}, the model's {default!r}")
    return out


def test_the_index_documents_every_key_with_its_default() -> None:
    assert problems(DOC.read_text()) == []


def test_the_walk_reaches_nested_models_and_aliases() -> None:
    found = dict(keys(MeetingsConfig, "meetings."))
    assert found["meetings.series[].report.tracker.repo"] == "none"
    assert found["meetings.series[].reminders"] == '["10m"]'
    assert found["meetings.github.timeout_seconds"] == "10"
    assert found["meetings.series[]"] == "[]"
    shifts = dict(keys(ShiftsConfig, "shifts."))
    assert shifts["shifts.ranges[].from"] == "required"  # the YAML name, not the field's
    assert shifts["shifts.handover_time"] == "09:00"


@pytest.mark.parametrize("key", ["shifts.ranges[].to", "digests.keep_days",
                                 "meetings.series[].ical.token", "schedule.horizon_days"])
def test_a_missing_or_stale_row_is_reported(key: str) -> None:
    text = DOC.read_text()
    row = re.search(rf"^\| `{re.escape(key)}` \|.*\n", text, re.MULTILINE)
    assert row is not None
    assert problems(text.replace(row.group(0), "")) == [f"{key}: missing"]
    stale = row.group(0).replace(f"`{key}` | ", f"`{key}` | 12345 ", 1)
    assert [p.split(":")[0] for p in problems(text.replace(row.group(0), stale))] == [key]
