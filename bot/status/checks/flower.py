"""The ``flower`` check: Celery workers online/offline and their task counts through Flower.

Flower's HTTP API (flower 2.x, ``flower/api/workers.py``):

* ``GET /api/workers?status=1`` -> ``{"name@host": true|false}``: every worker Flower has heard
  of since it started, alive while its last event heartbeat (every 2 s by default) is younger
  than two heartbeat intervals (``celery.events.state.Worker.alive``). Flower keeps dead workers
  in this map until it restarts. This answers from memory: no broadcast, cheap.
* ``GET /api/workers?workername=NAME&refresh=1`` -> ``{"NAME": {"active": [...], "reserved":
  [...], "timestamp": ..., ...}}``: Flower inspects that one worker first (waits at most its
  ``--inspect_timeout``) and then answers from its cache, so a worker that did not answer
  comes back with its *old* lists; we tell by the entry's ``timestamp`` (see _fresh).
* The API wants credentials unless Flower runs with ``FLOWER_UNAUTHENTICATED_API=true``:
  ``--basic_auth`` (send ``Authorization: Basic ...`` in ``headers``) or OAuth (a token).

Expected workers are names or fnmatch globs. A name must be online; a glob must match at least
one online worker. Dead workers that match a satisfied glob are only listed, not alarmed on:
Flower remembers a retired host until it restarts, and would otherwise alarm forever. Without
expectations every worker Flower knows counts, and at least ``min_online`` (default 1) must be up.

Values: ``online`` (expected workers up), ``offline`` (expectations not met: the names and globs
the summary lists), ``active`` and ``reserved`` (task totals over the online workers; absent when
any of them gave no fresh lists, and then a configured threshold makes the result UNKNOWN).
"""

from __future__ import annotations

import asyncio
import email.utils
import fnmatch
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from bot.httpclient import ssl_context
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum, http_url, worst
from bot.status.ranges import NagiosRange
from bot.status.thresholds import Thresholds

if TYPE_CHECKING:  # httpx is imported by the first run, not by parsing the config
    import httpx

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 header field names
MAX_NAMES = 10  # offline workers named in the summary (all are in the long output)
MAX_LINES = 50  # workers listed in the long output
MAX_BODY_SHOWN = 200  # characters of a refusing Flower's answer shown in the long output


class FlowerUnreadable(Exception):
    """Flower did not answer usefully: the check is UNKNOWN with this message."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class FlowerCheck(CheckSpec):
    type: Literal["flower"]
    url: str  # Flower's base URL (with its --url_prefix), e.g. https://host/flower
    workers: list[str] = Field(default_factory=list)  # expected worker names (globs allowed)
    # Sent with every request, e.g. Authorization; secrets (masked, never logged).
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    # Fewer online (expected, or all when `workers` is empty) workers than this is an alarm;
    # default: 1 when `workers` is empty, else not checked.
    min_online: int | None = Field(None, ge=0)
    offline_level: Literal["warning", "critical"] = "critical"
    # Ask each online worker for its active/reserved tasks (one inspect per worker and run).
    task_counts: bool = True
    # {warning, critical} Nagios ranges on the totals of active/reserved tasks ({critical: 50}).
    active: Thresholds = Field(default_factory=Thresholds)
    reserved: Thresholds = Field(default_factory=Thresholds)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value, " (Authorization)")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"not an HTTP header name: {name!r}")
            if any(char in secret.get_secret_value() for char in "\r\n\0"):
                # The value is a secret: name the header, never show the value.
                raise ValueError(f"header {name}: the value holds a line break or NUL")
        return value

    async def run(self, env: CheckEnv) -> CheckResult:
        # Leave the runner a moment, so a slow Flower reads as our message, not a bare timeout.
        budget = max(self.timeout_seconds * 0.9, self.timeout_seconds - 1.0)
        deadline = asyncio.get_running_loop().time() + budget
        headers = {key: value.get_secret_value() for key, value in self.headers.items()}
        import httpx

        async with httpx.AsyncClient(headers=headers, timeout=budget, trust_env=False,
                                     verify=await ssl_context()) as client:
            try:
                async with asyncio.timeout_at(deadline):
                    alive = _parse_status(await _get_json(client, self._api(), {"status": "1"}))
            except TimeoutError:
                return _unknown(f"Flower did not answer within {budget:g} s", self.url)
            except FlowerUnreadable as exc:
                return _unknown(str(exc), self.url, exc.detail)
            view = judge(self.workers, alive)
            counts: dict[str, TaskCounts | None] = {}
            if self.task_counts and view.online:
                counts = await self._task_counts(client, view.online, deadline)
        return self._result(view, counts)

    def _api(self) -> str:
        return self.url.rstrip("/") + "/api/workers"

    async def _task_counts(self, client: httpx.AsyncClient, names: list[str],
                           deadline: float) -> dict[str, TaskCounts | None]:
        """Each online worker's tasks; what is not in by the deadline counts as unknown (the
        worker states are known by then and worth reporting)."""
        try:
            async with asyncio.timeout_at(deadline):
                found = await asyncio.gather(
                    *(_worker_tasks(client, self._api(), name) for name in names))
        except TimeoutError:
            return dict.fromkeys(names)
        return dict(zip(names, found, strict=True))

    def _result(self, view: WorkerView, counts: Mapping[str, TaskCounts | None]) -> CheckResult:
        floor = self.min_online if self.min_online is not None else (0 if self.workers else 1)
        bad = Level.CRITICAL if self.offline_level == "critical" else Level.WARNING
        levels = [bad if view.missing or len(view.online) < floor else Level.OK]
        problems = [f"offline: {_names(view.missing)}"] if view.missing else []
        if len(view.online) < floor:
            problems.append(f"{len(view.online)} online, fewer than {floor}")
        totals = _totals(counts) if self.task_counts else {}
        perf = [PerfDatum("online", float(len(view.online)), min=0),
                PerfDatum("offline", float(len(view.missing)), min=0)]
        for what, rule in (("active", self.active), ("reserved", self.reserved)):
            total = totals.get(what)
            level, reason = _assess(what, total, rule)
            levels.append(level)
            problems += [reason] if reason else []
            if self.task_counts:
                perf.append(PerfDatum(what, total, warn=_text(rule.warning),
                                      crit=_text(rule.critical), min=0))
        level = worst(levels)
        summary = f"FLOWER {level.name} - " + "; ".join(
            problems or [" ".join(f"{p.label}={p.value:g}" for p in perf if p.value is not None)])
        values = {p.label: float(p.value) for p in perf if p.value is not None}
        return CheckResult(level, summary, "\n".join(_lines(view, counts)), tuple(perf),
                           values)


def _assess(what: str, total: float | None, rule: Thresholds) -> tuple[Level, str | None]:
    if total is not None:
        return rule.level(total), rule.reason(what, total)
    if rule.warning is None and rule.critical is None:
        return Level.OK, None
    return Level.UNKNOWN, f"{what} tasks unknown"  # a threshold asked for and not evaluable


def _text(bound: NagiosRange | None) -> str | None:
    return None if bound is None else str(bound)


@dataclass(frozen=True, slots=True)
class TaskCounts:
    active: int
    reserved: int


@dataclass(slots=True)
class WorkerView:
    """Flower's workers seen through the expectations."""

    online: list[str] = field(default_factory=list)  # expected (or all) workers alive
    missing: list[str] = field(default_factory=list)  # names/globs not satisfied
    unseen: list[str] = field(default_factory=list)  # missing names Flower never heard of
    dead: list[str] = field(default_factory=list)  # known dead workers not alarmed on


def judge(expected: list[str], alive: Mapping[str, bool]) -> WorkerView:
    """Which expected workers are online and which are missing (see the module docstring)."""
    view = WorkerView()
    if not expected:
        view.online = sorted(name for name, up in alive.items() if up)
        view.dead = sorted(name for name, up in alive.items() if not up)
        return view
    online: set[str] = set()
    dead: set[str] = set()
    for pattern in expected:
        if not _is_glob(pattern):
            if alive.get(pattern):
                online.add(pattern)
            else:
                view.missing.append(pattern)
                if pattern not in alive:
                    view.unseen.append(pattern)
            continue
        matched = {name for name in alive if fnmatch.fnmatchcase(name, pattern)}
        up = {name for name in matched if alive[name]}
        online |= up
        if up:
            dead |= matched - up
        else:
            view.missing.append(pattern)
    view.online = sorted(online)
    view.dead = sorted(dead - online - set(view.missing))
    return view


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


async def _get_json(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> Any:
    response = await _get(client, url, params)
    if response.status_code in (401, 403):
        raise FlowerUnreadable(f"Flower refused the credentials (HTTP {response.status_code})",
                               _snippet(response))
    if response.status_code != 200:
        raise FlowerUnreadable(f"Flower answered HTTP {response.status_code}", _snippet(response))
    try:
        return response.json()
    except (ValueError, RecursionError):  # JSON and charset errors are ValueErrors
        raise FlowerUnreadable("Flower's answer is not JSON", _snippet(response)) from None


async def _get(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> httpx.Response:
    import httpx

    try:
        return await client.get(url, params=params)
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as exc:
        # The message names the host and the failure, never the request headers.
        raise FlowerUnreadable(f"Flower unreachable: {type(exc).__name__}: {exc}") from None


def _parse_status(body: Any) -> dict[str, bool]:
    if not isinstance(body, dict) or not all(
            isinstance(name, str) and isinstance(up, bool) for name, up in body.items()):
        raise FlowerUnreadable("Flower's worker status is not a {name: true/false} map",
                               _short(json.dumps(body)))
    return body


async def _worker_tasks(client: httpx.AsyncClient, url: str, name: str) -> TaskCounts | None:
    """One worker's active/reserved tasks, None when Flower has no fresh lists for it."""
    started = time.monotonic()
    try:
        response = await _get(client, url, {"workername": name, "refresh": "1"})
    except (FlowerUnreadable, TimeoutError):
        return None
    if response.status_code != 200:
        return None
    try:
        entry = response.json().get(name)
        active, reserved = entry["active"], entry["reserved"]
    except (ValueError, RecursionError, AttributeError, KeyError, TypeError):
        return None
    if not isinstance(active, list) or not isinstance(reserved, list):
        return None
    if not _fresh(entry.get("timestamp"), response, time.monotonic() - started):
        return None
    return TaskCounts(len(active), len(reserved))


def _fresh(timestamp: Any, response: httpx.Response, took: float) -> bool:
    """Whether the lists came from this refresh. Flower stamps a worker's entry when it stores
    an inspect reply; its Date header (Tornado: the request's start, a proxy: up to its end,
    whole seconds) bounds when this request began. Without either, trust the lists."""
    date = response.headers.get("date")
    if not isinstance(timestamp, int | float) or not date:
        return True
    try:
        began = email.utils.parsedate_to_datetime(date).timestamp() - took
    except (TypeError, ValueError):
        return True
    return timestamp >= began - 1.0


def _totals(counts: Mapping[str, TaskCounts | None]) -> dict[str, float | None]:
    if any(found is None for found in counts.values()):
        return {"active": None, "reserved": None}
    known = [found for found in counts.values() if found is not None]
    return {"active": float(sum(c.active for c in known)),
            "reserved": float(sum(c.reserved for c in known))}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _lines(view: WorkerView, counts: Mapping[str, TaskCounts | None]) -> list[str]:
    lines = []
    for name in view.online:
        found = counts.get(name)
        if name not in counts:
            lines.append(f"{name}: online")
        elif found is None:
            lines.append(f"{name}: online, no fresh task lists from Flower")
        else:
            lines.append(f"{name}: online, active {found.active}, reserved {found.reserved}")
    lines += [f"{name}: {_why_missing(name, view)}" for name in view.missing]
    lines += [f"{name}: offline (known to Flower, not expected)" for name in view.dead]
    if len(lines) > MAX_LINES:  # Flower keeps up to 5000 workers; a chat message does not
        lines[MAX_LINES:] = [f"... and {len(lines) - MAX_LINES} more"]
    return lines


def _why_missing(name: str, view: WorkerView) -> str:
    if _is_glob(name):
        return "no online worker matches"
    if name in view.unseen:
        return "offline (Flower has not heard of it since it started: a typo?)"
    return "offline"


def _snippet(response: httpx.Response) -> str:
    return _short(response.text)


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_BODY_SHOWN else line[:MAX_BODY_SHOWN] + "..."


def _unknown(message: str, url: str, detail: str = "") -> CheckResult:
    lines = [f"Flower: {url}"] + ([f"answer: {detail}"] if detail else [])
    return CheckResult(Level.UNKNOWN, f"FLOWER UNKNOWN - {message}", "\n".join(lines))
