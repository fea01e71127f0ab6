"""The command check: named numbers read from a real program's output by a regex."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from status_env import DATA, StubEnv

from bot.status.checks.command import CommandCheck
from bot.status.model import Level
from bot.status.runner import run_check

PANTASKS = (r"^task\s+(?P<task>\S+)\s+Nrun\s+(?P<nrun>\d+)\s+Nfail\s+(?P<nfail>\d+)"
            r"\s+Nok\s+(?P<nok>\d+)")


def command(argv: list[str], pattern: str, **keys: Any) -> CommandCheck:
    return CommandCheck.model_validate({"type": "command", "name": "cmd", "command": argv,
                                        "pattern": pattern, **keys})


def cat(name: str) -> list[str]:
    return ["cat", str(DATA / name)]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_rows_per_task() -> None:
    check = command(cat("pantasks.txt"), PANTASKS, row="task",
                    thresholds={"*.nfail": {"warning": 0, "critical": 10}})
    result = await run_check(check, StubEnv())
    expected = {"summit.copy": 0, "stack.run": 4, "warp.chip": 12, "cleanup.old": 0}
    assert {k: v for k, v in result.values.items() if k.endswith(".nfail")} == {
        f"{task}.nfail": n for task, n in expected.items()}
    assert result.values["stack.run.nok"] == 98 and result.values["matches"] == 4
    assert result.level is Level.CRITICAL
    assert result.summary == ("warp.chip.nfail=12 (critical: > 10); "
                              "stack.run.nfail=4 (warning: > 0)")


async def test_rows_all_fine_lists_values() -> None:
    check = command(cat("pantasks.txt"), PANTASKS, row="task",
                    thresholds={"*.nfail": {"critical": 100}})
    result = await run_check(check, StubEnv())
    assert result.level is Level.OK
    assert result.summary.startswith("summit.copy.nrun=3, summit.copy.nfail=0, ")
    assert result.summary.endswith("(13 values)")  # 4 rows of 3, and matches


async def test_counting_matches_components_down() -> None:
    check = command(cat("manage_status.txt"), r"^(?P<component>\S+)\s+down$",
                    thresholds={"matches": {"critical": 0}})
    result = await run_check(check, StubEnv())
    assert result.level is Level.CRITICAL and result.values["matches"] == 2
    assert result.summary == "matches=2 (critical: > 0)"


async def test_first_match_without_rows() -> None:
    check = command(python("print('queued: 7 running: 3'); print('queued: 99 running: 1')"),
                    r"queued: (?P<queued>\d+) running: (?P<running>[\d.]+)",
                    thresholds={"queued": {"warning": 5}})
    result = await run_check(check, StubEnv())
    assert (result.values["queued"], result.values["running"]) == (7, 3)
    assert result.values["matches"] == 2 and result.level is Level.WARNING


async def test_missing_value_is_unknown() -> None:
    check = command(python("print('nothing here')"), r"queued: (?P<queued>\d+)",
                    thresholds={"queued": {"warning": 5}, "*.other": {"warning": 1}})
    result = await run_check(check, StubEnv())
    assert result.level is Level.UNKNOWN
    assert result.summary == "no value queued in the output"
    assert result.long_output == "nothing here\n"


async def test_words_are_not_values() -> None:
    check = command(python("print('state: degraded load: 1.5')"),
                    r"state: (?P<state>\w+) load: (?P<load>\S+)")
    result = await run_check(check, StubEnv())
    assert dict(result.values) == {"load": 1.5, "matches": 1}


@pytest.mark.parametrize(("code", "ok", "level"), [(1, [0], Level.UNKNOWN), (1, [0, 1], Level.OK),
                                                   (0, [0], Level.OK)])
async def test_exit_codes(code: int, ok: list[int], level: Level) -> None:
    check = command(python(f"print('n: 1'); raise SystemExit({code})"), r"n: (?P<n>\d+)",
                    ok_exit_codes=ok)
    result = await run_check(check, StubEnv())
    assert result.level is level
    if level is Level.UNKNOWN:
        assert result.summary == f"exited with {code}: n: 1"


async def test_stderr_optionally_matched() -> None:
    code = "import sys; print('a: 1'); print('b: 2', file=sys.stderr)"
    pattern = r"(?P<key>[ab]): (?P<n>\d+)"
    out = await run_check(command(python(code), pattern, row="key"), StubEnv())
    both = await run_check(command(python(code), pattern, row="key", stderr=True), StubEnv())
    assert "b.n" not in out.values and both.values["b.n"] == 2


async def test_signal_and_garbage_are_unknown() -> None:
    killed = command(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), "x")
    result = await run_check(killed, StubEnv())
    assert result.level is Level.UNKNOWN and result.summary.startswith("killed by signal")
    garbage = command([sys.executable, str(DATA / "garbage.py")], "x")
    assert (await run_check(garbage, StubEnv())).summary == "output is not text (exit 0)"


async def test_missing_program() -> None:
    result = await run_check(command(["no-such-program-xyz"], "x"), StubEnv())
    assert result.level is Level.UNKNOWN and result.summary.startswith("cannot run ")


@pytest.mark.parametrize("keys", [{"pattern": "("}, {"pattern": "(?P<a>x)", "row": "b"},
                                  {"command": []}, {"thresholds": {"a": {"warning": "z"}}}])
def test_bad_config(keys: dict) -> None:
    with pytest.raises(ValueError):
        CommandCheck.model_validate({"type": "command", "name": "c", "command": ["true"],
                                     "pattern": "x", **keys})
