"""The ``http`` check: an HTTP answer's status, latency, body and values inside its JSON.

Header values are secrets (``${TOKEN}`` or ``*_file`` in the config, masked everywhere): they
are sent and never shown, logged or put in a result. The client ignores the bot's proxy
variables (``trust_env=False``): checks talk to the services as configured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bot.httpclient import shared_session, ssl_context
from bot.status.jsonselect import SelectError, parse_selector
from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum, http_url, worst
from bot.status.ranges import NagiosRange
from bot.status.thresholds import Thresholds, number_text, perf_range

EXCERPT = 200  # characters of an unexpected answer shown in the long output


class Extract(BaseModel):
    """A value inside the JSON answer: compared with ``expect`` or held to thresholds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("value", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # the value's name
    select: str  # .workers[0].state, .queue | length
    expect: Any = None  # the value must equal this (JSON equality); None: not compared
    level: Literal["warning", "critical"] = "critical"  # when `expect` does not hold
    warning: NagiosRange | None = None
    critical: NagiosRange | None = None

    @field_validator("select")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value


class HttpCheck(CheckSpec):
    type: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # values never shown
    body: str | None = None  # sent as is (set Content-Type in headers)
    expect_status: list[int] = Field(default_factory=lambda: [200])  # one code or a list
    latency: Thresholds = Thresholds()  # seconds for the whole answer, e.g. {warning: 2}
    body_regex: str | None = None  # the body must match this (re.search)
    extract: list[Extract] = Field(default_factory=list)
    verify_tls: bool = True
    follow_redirects: bool = False
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        codes = [value] if isinstance(value, int) else value
        if isinstance(codes, list) and not all(isinstance(c, int) and 100 <= c <= 599
                                               for c in codes):
            raise ValueError("HTTP status codes are 100 to 599")
        return codes

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    async def run(self, env: CheckEnv) -> CheckResult:
        # A little under the check's timeout, so a silent server is reported as such (a
        # CRITICAL naming the URL) before the runner gives up on the check (UNKNOWN). One
        # deadline for the whole exchange, whatever the server trickles.
        budget = self.timeout_seconds - min(1.0, 0.2 * self.timeout_seconds)
        import aiohttp  # here, not at the top: a config that only names the check loads none

        try:
            async with asyncio.timeout(budget):
                status, body, seconds, truncated = await self._fetch(budget)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return CheckResult(Level.CRITICAL, f"no answer within {self.timeout_seconds:g} s "
                                               f"from {self._where()}")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return CheckResult(Level.CRITICAL, f"{self._where()}: {_error_text(exc)}")
        perfdata = (PerfDatum("time", round(seconds, 6), "s", perf_range(self.latency.warning),
                              perf_range(self.latency.critical), 0),
                    PerfDatum("size", float(len(body)), "B", min=0))
        values = {"status": float(status)}  # and time, size from the perfdata
        if status not in self.expect_status:
            return CheckResult(Level.CRITICAL, f"HTTP {status} from {self._where()} (expected "
                               f"{' or '.join(map(str, self.expect_status))})",
                               long_output=_excerpt(body), perfdata=perfdata, values=values)
        levels = [self.latency.level(seconds)]
        notes = [r for r in [self.latency.reason("time", seconds, lambda v: f"{v:.3f} s")] if r]
        text = body.decode("utf-8", errors="replace")
        if self.body_regex is not None and not re.search(self.body_regex, text):
            levels.append(Level.CRITICAL)
            notes.append(f"the body does not match {self.body_regex!r}")
        if self.extract:
            if truncated:
                levels.append(Level.UNKNOWN)
                notes.append(f"the answer is larger than {self.max_body_bytes} bytes")
            else:
                level, found, more = self._extract(text)
                levels.append(level)
                notes += more
                values |= found
        level = worst(levels)
        summary = f"HTTP {status} in {seconds * 1000:.0f} ms" + "".join(
            f"; {note}" for note in notes)
        return CheckResult(level, summary, long_output="" if level is Level.OK
                           else _excerpt(body), perfdata=perfdata, values=values)

    async def _fetch(self, timeout: float) -> tuple[int, bytes, float, bool]:
        import aiohttp

        headers = {name: value.get_secret_value() for name, value in self.headers.items()}
        # The loop's shared session: a client of its own per run would build an SSL context
        # on the event loop each time, and httpx costs several times aiohttp's CPU per
        # request when many checks answer at once (bot/httpclient.py).
        session = await shared_session()
        tls: ssl.SSLContext | bool = (await ssl_context() if self.verify_tls else False)
        started = time.monotonic()
        async with session.request(self.method, self.url, headers=headers, data=self.body,
                                   timeout=aiohttp.ClientTimeout(total=timeout),
                                   allow_redirects=self.follow_redirects, ssl=tls) as response:
            chunks, size, truncated = [], 0, False
            async for chunk in response.content.iter_any():
                chunks.append(chunk[:self.max_body_bytes - size])
                size += len(chunks[-1])
                if size >= self.max_body_bytes:
                    truncated = True  # stop reading: the rest is not wanted
                    break
            return (response.status, b"".join(chunks), time.monotonic() - started,
                    truncated)

    def _extract(self, text: str) -> tuple[Level, dict[str, float], list[str]]:
        try:
            document = json.loads(text)
        except ValueError as exc:
            return Level.CRITICAL, {}, [f"the answer is not JSON ({exc.msg} at {exc.pos})"]
        levels, values, notes = [], {}, []
        for item in self.extract:
            level, value, note = _judge(item, document)
            levels.append(level)
            if value is not None:
                values[item.name] = value
            if note:
                notes.append(note)
        return worst(levels), values, notes

    def _where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query: it may hold a key


def _judge(item: Extract, document: Any) -> tuple[Level, float | None, str]:
    """One extracted value: its level, its number (if it is one) and a note when not OK."""
    try:
        value = parse_selector(item.select).apply(document)
    except SelectError as exc:
        return Level.UNKNOWN, None, f"{item.name}: {exc}"
    number = float(value) if isinstance(value, (int, float)) else None
    shown = json.dumps(value)[:60]
    if item.expect is not None and not _same(value, item.expect):
        return (Level.parse(item.level), number,
                f"{item.name} is {shown}, expected {json.dumps(item.expect)}")
    if item.warning is None and item.critical is None:
        return Level.OK, number, ""
    if number is None:
        return Level.UNKNOWN, None, f"{item.name} is {shown}, not a number"
    rule = Thresholds(warning=item.warning, critical=item.critical)
    return rule.level(number), number, rule.reason(item.name, number, number_text) or ""


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    return bool(value == expected)


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"


def _error_text(exc: BaseException) -> str:
    """The most telling words in the chain: the errno of the socket error underneath
    ("Connection refused") rather than "All connection attempts failed"."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return " ".join((str(exc) or type(exc).__name__).split())[:200]
