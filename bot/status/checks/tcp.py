"""The ``tcp`` check: a host:port accepts a connection (within the check's timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Literal

from pydantic import Field

from bot.status.model import CheckEnv, CheckResult, CheckSpec, Level, PerfDatum
from bot.status.thresholds import Thresholds, perf_range


class TcpCheck(CheckSpec):
    type: Literal["tcp"]
    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\[\]-]+$")
    port: int = Field(ge=1, le=65535)
    latency: Thresholds = Thresholds()  # seconds to connect, e.g. {warning: 0.5}
    # Level when the port does not answer (refused, unreachable).
    down_level: Literal["warning", "critical"] = "critical"

    async def run(self, env: CheckEnv) -> CheckResult:
        where = f"{self.host}:{self.port}"
        started = time.monotonic()
        try:
            _, writer = await asyncio.open_connection(self.host.strip("[]"), self.port)
        except socket.gaierror as exc:
            return CheckResult(Level.UNKNOWN, f"cannot resolve {self.host}: {exc.strerror}")
        except OSError as exc:
            # asyncio words a refusal "Connect call failed (addr)": say what the errno says.
            reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            return CheckResult(Level.parse(self.down_level), f"{where}: {reason}")
        seconds = time.monotonic() - started
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        level = self.latency.level(seconds)
        summary = f"{where} accepted a connection in {seconds * 1000:.1f} ms"
        reason = self.latency.reason("time", seconds, lambda v: f"{v:.3f} s")
        return CheckResult(level, summary + (f" - {reason}" if reason else ""),
                           perfdata=(PerfDatum("time", round(seconds, 6), "s",
                                               perf_range(self.latency.warning),
                                               perf_range(self.latency.critical), 0,
                                               self.timeout_seconds),))
