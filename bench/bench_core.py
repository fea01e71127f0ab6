"""Core benchmark: dispatch latency, console cold start, idle RSS of `shiftbot run`.

Dispatch = parser + permission gate + audit write (SQLite file, WAL) + render, in process.
Limits (issue #2): dispatch p99 < 2 ms; cold start < 1.5 s. Idle RSS is reported.
Run: .venv/bin/python bench/bench_core.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from sqlalchemy import text

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import free_port, percentile, print_table, repo_root, rss_mb, verdict

from bot.config import load_config
from bot.core import Bot
from bot.identity import Inbound

CALLS = 10_000
DISPATCH_P99_LIMIT_MS = 2.0
COLD_START_LIMIT_S = 1.5
ROOT = Path(repo_root())


def demo_config_copy(tmp: Path, port: int = 8080) -> Path:
    raw = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    raw["bot"]["database"] = f"sqlite:///{tmp / 'bench.db'}"
    raw["bot"]["http"] = {"host": "127.0.0.1", "port": port}
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def dispatch(config_path: Path) -> list[list[str]]:
    bot = await Bot.create(load_config(config_path))
    rows = []
    cases = [("help (allowed)", Inbound("console", "alice", "help")),
             ("condor rm (denied)", Inbound("console", "dave", "condor rm 1.0"))]
    expected_rows = 0
    try:
        for name, inbound in cases:
            for _ in range(200):  # warm up
                await bot.handle(inbound)
            samples = []
            for _ in range(CALLS):
                start = time.perf_counter()
                await bot.handle(inbound)
                samples.append((time.perf_counter() - start) * 1000)
            await bot.audit.flush()
            written = await bot.database.run(
                lambda c: c.execute(text("SELECT count(*) FROM audit")).scalar())
            if written != expected_rows + CALLS + 200:
                raise SystemExit(f"audit rows missing: {written} written")
            expected_rows = written
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            rows.append([name, str(CALLS), f"{p50:.3f}", f"{p99:.3f}",
                         f"< {DISPATCH_P99_LIMIT_MS}", verdict(p99 < DISPATCH_P99_LIMIT_MS)])
    finally:
        await bot.close()
    return rows


def cold_start(config_path: Path, runs: int = 7) -> list[str]:
    exe = str(Path(sys.executable).parent / "shiftbot")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([exe, "console", "--config", str(config_path), "-c", "help"],
                                capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"cold start failed: {result.stderr}")
    median = statistics.median(times)
    return ["shiftbot console -c help", str(runs), f"{median:.3f}", f"{max(times):.3f}",
            f"< {COLD_START_LIMIT_S}", verdict(median < COLD_START_LIMIT_S)]


def idle_rss(tmp: Path) -> list[str]:
    port = free_port()
    config_path = demo_config_copy(tmp, port)
    exe = str(Path(sys.executable).parent / "shiftbot")
    proc = subprocess.Popen([exe, "run", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(3)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        total = rss_mb(proc.pid) + sum(rss_mb(int(c)) for c in children)
        return ["shiftbot run (demo config, no chat platform)", f"{rss_mb(proc.pid):.1f}",
                f"{total:.1f}", str(len(children))]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config_path = demo_config_copy(tmp)
        rows = asyncio.run(dispatch(config_path))
        print_table(f"Dispatch through parser + gate + audit write + render ({CALLS} calls, ms)",
                    ["case", "calls", "p50", "p99", "limit", "verdict"], rows)
        start = cold_start(config_path)
        print_table("Console cold start to reply (s)",
                    ["command", "runs", "median", "max", "limit", "verdict"], [start])
        rss = idle_rss(tmp)
        print_table("Idle RSS (MB)", ["process", "main", "with children", "children"], [rss])
    failed = [r for r in [*rows, start] if r[-1] == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
