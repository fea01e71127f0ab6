"""The condor check: job counts by state from the pool, thresholds per state."""

from __future__ import annotations

from typing import Any

import pytest
from status_env import StubEnv

from bot.status.checks.condor import CondorCheck
from bot.status.model import Level
from bot.status.runner import run_check


def condor(**keys: Any) -> CondorCheck:
    return CondorCheck.model_validate({"type": "condor", "name": "jobs", **keys})


@pytest.mark.parametrize(("counts", "level"), [
    ({"idle": 5, "running": 20, "held": 0}, Level.OK),
    ({"idle": 5, "running": 20, "held": 1}, Level.WARNING),
    ({"idle": 5, "running": 20}, Level.OK),  # nobody held: 0, not "missing"
])
async def test_default_held_warns(counts: dict, level: Level) -> None:
    env = StubEnv(counts={None: counts})
    result = await run_check(condor(), env)
    assert result.level is level
    assert result.values["held"] == counts.get("held", 0)
    assert result.values["total"] == sum(counts.values())
    assert env.pools_asked == [None]
    if level is Level.OK:
        assert result.summary.startswith(f"{counts['idle']} idle, {counts['running']} running")
    else:
        assert result.summary == "held=1 (warning: > 0)"


async def test_thresholds_per_state_and_pool() -> None:
    env = StubEnv(counts={"gwcelery": {"idle": 300, "running": 2, "held": 12}})
    check = condor(pool="gwcelery", thresholds={
        "idle": {"warning": 100, "critical": 250}, "running": {"critical": "5:"},
        "held": {"warning": 0, "critical": 10}, "total": {"warning": 100}})
    result = await run_check(check, env)
    assert result.level is Level.CRITICAL
    assert result.summary.startswith("pool gwcelery: ")
    assert "idle=300 (critical: > 250)" in result.summary
    assert "running=2 (critical: < 5)" in result.summary
    assert "held=12 (critical: > 10)" in result.summary
    assert result.summary.endswith("(+1 more)")  # total's warning: criticals first
    assert {d.label: d.crit for d in result.perfdata}["idle"] == "250"


async def test_unreadable_pool_is_unknown() -> None:
    result = await run_check(condor(pool="nope"), StubEnv())
    assert result.level is Level.UNKNOWN
    assert result.summary == "cannot read pool nope: pool 'nope' cannot be read"


async def test_total_and_glob_thresholds() -> None:
    env = StubEnv(counts={None: {"idle": 3, "running": 4, "transferring_output": 9}})
    check = condor(thresholds={"total": {"warning": 10}, "trans*": {"critical": 5}})
    result = await run_check(check, env)
    assert result.level is Level.CRITICAL
    assert result.summary == "transferring_output=9 (critical: > 5); total=16 (warning: > 10)"


def test_bad_thresholds() -> None:
    with pytest.raises(ValueError):
        condor(thresholds={"held": {"warning": "a:b"}})
