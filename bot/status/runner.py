"""Running checks: concurrently, each under its own timeout, never longer than the longest.

A check that hangs, raises or returns something that is not a result becomes UNKNOWN with a
one-line reason ("timed out after 10 s"); the others are not held up. A timed-out check's task
is cancelled and left to finish its cleanup (a subprocess check kills its process group in its
``finally``), but nobody waits for it: a check that ignores cancellation cannot stretch a round.

Checks that read other checks' values (expression checks, ``CheckSpec.references``) run after
those checks, in a later wave, and see this round's values first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.clock import utcnow
from bot.secrets import masker
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level

log = logging.getLogger(__name__)

EnvFor = Callable[[CheckSpec], CheckEnv]
MARGIN_SECONDS = 2.0
# Checks cancelled at their timeout and still cleaning up: kept so they are not collected
# mid-cleanup, and so what they raise at the end is retrieved (never "exception never
# retrieved" noise).
_abandoned: set[asyncio.Task[Any]] = set()


async def run_checks(checks: Sequence[CheckSpec], env_for: EnvFor,
                     margin: float = MARGIN_SECONDS) -> dict[str, CheckResult]:
    """Run every check; return ``{name: result}`` for all of them, within the longest
    timeout (per wave) plus ``margin`` seconds whatever the checks do."""
    results: dict[str, CheckResult] = {}
    for wave in waves(checks):
        envs = {check.name: _Overlay(env_for(check), results) for check in wave}
        tasks = {check.name: asyncio.create_task(run_check(check, envs[check.name]),
                                                 name=f"status-check:{check.name}")
                 for check in wave}
        bound = max(check.timeout_seconds for check in wave) + margin
        done, _ = await asyncio.wait(tasks.values(), timeout=bound)
        for check in wave:
            task = tasks[check.name]
            if task in done and not task.cancelled() and task.exception() is None:
                results[check.name] = task.result()
            else:  # run_check itself never raises nor overruns; this is the last guard
                _abandon(task)
                results[check.name] = _finish(check, envs[check.name], CheckResult(
                    Level.UNKNOWN, f"did not finish within {_seconds(bound)} s"), 0.0, utcnow())
    return results


async def run_check(check: CheckSpec, env: CheckEnv) -> CheckResult:
    """One check under its timeout; every failure is an UNKNOWN result, never an exception."""
    started, at = time.monotonic(), env.now()
    task = asyncio.create_task(check.run(env), name=f"status-run:{check.name}")
    done, _ = await asyncio.wait({task}, timeout=check.timeout_seconds)
    elapsed = time.monotonic() - started
    if not done:
        _abandon(task)
        result = CheckResult(Level.UNKNOWN,
                             f"timed out after {_seconds(check.timeout_seconds)} s")
    elif task.cancelled():
        result = CheckResult(Level.UNKNOWN, "the check was cancelled")
    elif (exc := task.exception()) is not None:
        log.warning("status check %s failed", check.name, exc_info=exc)
        result = CheckResult(Level.UNKNOWN, _one_line(f"check failed: {type(exc).__name__}: "
                                                      f"{exc}"))
    elif not isinstance(task.result(), CheckResult):
        result = CheckResult(Level.UNKNOWN, "the check returned no result "
                                            f"({type(task.result()).__name__})")
    else:
        return _finish(check, env, task.result(), elapsed, at)
    return _finish(check, env, result, elapsed, at)


def _finish(check: CheckSpec, env: CheckEnv, result: CheckResult, elapsed: float,
            at: datetime) -> CheckResult:
    """Masked text, values from perfdata, the severity remap, timing; a failed run keeps the
    previous state (an expression's "true since" survives one bad round)."""
    values = {datum.label: datum.value for datum in result.perfdata
              if datum.value is not None}
    values.update(result.values)
    state = result.state
    if result.level is Level.UNKNOWN and not state and env.previous is not None:
        state = env.previous.state
    level = check.remap(result.level)
    return replace(result, level=level, raw_level=result.level if level != result.level
                   else None, summary=masker.mask(result.summary),
                   long_output=masker.mask(result.long_output), values=values, state=state,
                   duration_seconds=round(elapsed, 3), checked_at=at)


def waves(checks: Sequence[CheckSpec]) -> list[list[CheckSpec]]:
    """Checks in dependency order: each wave reads only values of earlier waves. References
    to checks not in ``checks`` are read from the environment (their last results)."""
    names = {check.name for check in checks}
    remaining = list(checks)
    done: set[str] = set()
    out: list[list[CheckSpec]] = []
    while remaining:
        ready = [c for c in remaining if (c.references() & names) <= done | {c.name}]
        if not ready:  # a cycle (the config refuses them): run the rest together
            ready = remaining
        out.append(ready)
        done |= {c.name for c in ready}
        remaining = [c for c in remaining if c.name not in done]
    return out


class _Overlay:
    """A check's environment whose ``values_of`` sees this round's results first."""

    def __init__(self, base: CheckEnv, fresh: Mapping[str, CheckResult]) -> None:
        self._base = base
        self._fresh = fresh

    def now(self) -> datetime:
        return self._base.now()

    @property
    def previous(self) -> CheckResult | None:
        return self._base.previous

    def values_of(self, check: str) -> Mapping[str, float] | None:
        result = self._fresh.get(check)
        return result.values if result is not None else self._base.values_of(check)

    async def condor_counts(self, pool: str | None) -> Mapping[str, int]:
        return await self._base.condor_counts(pool)


def _abandon(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("a timed-out status check ended with %r", task.exception())


def _seconds(value: float) -> str:
    return f"{value:g}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"
