"""The runner: concurrent checks, each under its timeout; hangs, crashes and junk become
UNKNOWN; the round's wall time is bounded whatever the checks do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import pytest
from status_env import DATA, StubEnv

from bot.secrets import masker
from bot.status.checks.nagios import NagiosCheck
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum
from bot.status.runner import run_check, run_checks, waves


class ScriptedCheck(CheckSpec):
    """A check whose behaviour the test names."""

    type: Literal["scripted"] = "scripted"
    behaviour: str = "ok"
    refs: list[str] = []
    delay: float = 0.0

    async def run(self, env: CheckEnv) -> CheckResult:
        await asyncio.sleep(self.delay)
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "stubborn":  # swallows cancellation and keeps going
            for _ in range(20):
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.1)
        if self.behaviour == "raise":
            raise RuntimeError("the backend said no\nsecond line")
        if self.behaviour == "junk":
            return "OK"  # type: ignore[return-value]
        if self.behaviour == "secret":
            return CheckResult(Level.CRITICAL, "token s3cr3t-value-123 leaked",
                               long_output="again: s3cr3t-value-123")
        if self.behaviour == "sum":
            total = 0.0
            for ref in self.refs:
                total += (env.values_of(ref) or {}).get("n", float("nan"))
            return CheckResult(Level.OK, f"sum {total}", values={"n": total})
        if self.behaviour == "perf":
            return CheckResult(Level.WARNING, "perf", perfdata=(
                PerfDatum("time", 0.5, "s"), PerfDatum("size", None, "B"),
                PerfDatum("n", 3.0)), values={"n": 4.0}, state={"k": 1})
        return CheckResult(Level.OK, f"{self.name} fine", values={"n": 1.0})

    def references(self) -> frozenset[str]:
        return frozenset(self.refs)


def checks(*specs: dict) -> list[ScriptedCheck]:
    return [ScriptedCheck.model_validate({"name": f"c{i}", **spec})
            for i, spec in enumerate(specs)]


async def test_twenty_checks_one_hangs_forever_bounded_wall_time() -> None:
    specs = [{"timeout_seconds": 1.0, "delay": 0.05 * (i % 5)} for i in range(20)]
    specs[7] = {"behaviour": "hang", "timeout_seconds": 1.5}
    specs[13] = {"behaviour": "stubborn", "timeout_seconds": 1.0}
    started = time.monotonic()
    results = await run_checks(checks(*specs), lambda check: StubEnv(), margin=2)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5, elapsed  # the longest timeout, not the margin, bounds it
    assert len(results) == 20
    assert results["c7"].level is Level.UNKNOWN
    assert results["c7"].summary == "timed out after 1.5 s"
    assert results["c13"].summary == "timed out after 1 s"
    healthy = [r for name, r in results.items() if name not in ("c7", "c13")]
    assert all(r.level is Level.OK for r in healthy)


async def test_real_hanging_plugins_do_not_hold_a_round() -> None:
    hang = [NagiosCheck(type="nagios", name=f"hang{i}", timeout_seconds=1,
                        command=["/bin/sh", str(DATA / "hang.sh")]) for i in range(3)]
    quick = NagiosCheck(type="nagios", name="quick", timeout_seconds=5,
                        command=["/bin/sh", str(DATA / "exit_code.sh"), "0", "QUICK OK"])
    started = time.monotonic()
    results = await run_checks([*hang, quick], lambda check: StubEnv(), margin=1)
    assert time.monotonic() - started < 2.5
    assert results["quick"].level is Level.OK and results["quick"].summary == "QUICK OK"
    for i in range(3):
        assert results[f"hang{i}"].summary == "timed out after 1 s"


@pytest.mark.parametrize(("behaviour", "summary"), [
    ("raise", "check failed: RuntimeError: the backend said no second line"),
    ("junk", "the check returned no result (str)"),
])
async def test_failures_are_unknown_with_a_reason(behaviour: str, summary: str) -> None:
    (check,) = checks({"behaviour": behaviour})
    result = await run_check(check, StubEnv())
    assert (result.level, result.summary) == (Level.UNKNOWN, summary)
    assert result.checked_at is not None


async def test_secrets_masked_in_results() -> None:
    masker.add("s3cr3t-value-123")
    try:
        (check,) = checks({"behaviour": "secret"})
        result = await run_check(check, StubEnv())
    finally:
        masker.clear()
    assert "s3cr3t" not in result.summary and "s3cr3t" not in result.long_output
    assert "***" in result.summary


async def test_values_from_perfdata_explicit_values_win() -> None:
    (check,) = checks({"behaviour": "perf"})
    result = await run_check(check, StubEnv())
    assert dict(result.values) == {"time": 0.5, "n": 4.0}
    assert result.state == {"k": 1}
    assert result.duration_seconds >= 0


@pytest.mark.parametrize(("severity", "raw", "level"), [
    ({"warning": "critical"}, Level.WARNING, Level.CRITICAL),
    ({"WARNING": "ok"}, Level.WARNING, Level.OK),
    ({"unknown": "warning"}, None, Level.WARNING),  # "perf" is WARNING: the map is not used
])
async def test_severity_remap(severity: dict, raw: Level | None, level: Level) -> None:
    (check,) = checks({"behaviour": "perf", "severity": severity})
    result = await run_check(check, StubEnv())
    if raw is None:
        assert result.level is Level.WARNING and result.raw_level is None
    else:
        assert (result.level, result.raw_level) == (level, raw)


async def test_unknown_remapped_when_the_check_times_out() -> None:
    (check,) = checks({"behaviour": "hang", "timeout_seconds": 0.2,
                       "severity": {"unknown": "critical"}})
    result = await run_check(check, StubEnv())
    assert (result.level, result.raw_level) == (Level.CRITICAL, Level.UNKNOWN)


async def test_failed_run_keeps_the_previous_state() -> None:
    (check,) = checks({"behaviour": "raise"})
    previous = CheckResult(Level.OK, "fine", state={"true_since": "2025-01-01T00:00:00+00:00"})
    result = await run_check(check, StubEnv(previous_result=previous))
    assert result.state == previous.state


async def test_dependent_checks_see_this_rounds_values() -> None:
    base = StubEnv(values={"c0": {"n": 100.0}, "c1": {"n": 100.0}})
    specs = checks({"delay": 0.1}, {}, {"behaviour": "sum", "refs": ["c0", "c1"]},
                   {"behaviour": "sum", "refs": ["c2", "outside"]})
    base.values["outside"] = {"n": 5.0}
    results = await run_checks(specs, lambda check: base)
    assert results["c2"].values["n"] == 2.0  # fresh, not the stored 100s
    assert results["c3"].values["n"] == 7.0  # fresh c2 + stored "outside"
    assert [[c.name for c in wave] for wave in waves(specs)] == [["c0", "c1"], ["c2"], ["c3"]]


def test_waves_with_a_cycle_still_run_everything() -> None:
    specs = checks({"refs": ["c1"]}, {"refs": ["c0"]}, {})
    assert sorted(c.name for wave in waves(specs) for c in wave) == ["c0", "c1", "c2"]


async def test_every_check_gets_its_own_env() -> None:
    asked: list[str] = []

    def env_for(check: CheckSpec) -> StubEnv:
        asked.append(check.name)
        return StubEnv()

    await run_checks(checks({}, {}, {}), env_for)
    assert sorted(asked) == ["c0", "c1", "c2"]

