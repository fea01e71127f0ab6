"""The worker process: reuse, deadlines, kill and respawn, and two real HTCondor failures."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from collections.abc import AsyncIterator

import pytest
from fakes.condor import SilentServer, closed_port, demo_spec

from bot.condor import errors
from bot.condor.errors import (
    CondorAuthError,
    CondorBusy,
    CondorError,
    CondorTimeout,
    CondorUnreachable,
    CondorWorkerError,
)
from bot.condor.models import PoolSpec
from bot.condor.worker import PROJECT_ROOT, WorkerClient, worker_environment


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A killed child may linger as a zombie until reaped; check its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
async def client() -> AsyncIterator[WorkerClient]:
    worker = WorkerClient(demo_spec(demo_jobs=80, timeout=10.0))
    yield worker
    await worker.close()


class Ticker:
    """Measures the event loop's responsiveness while something else is awaited."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.ticks = 0
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - self.period)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_worker_is_spawned_once_and_reused(client: WorkerClient) -> None:
    first = await client.call("ping")
    second = await client.call("ping")
    assert first["pid"] == second["pid"] == client.pid != os.getpid()
    assert first["backend"] == "demo" and "25." in first["htcondor"]


async def test_overrun_kills_the_worker_and_a_new_one_serves_the_next_call(
        client: WorkerClient) -> None:
    old = (await client.call("ping"))["pid"]
    started = time.perf_counter()
    with pytest.raises(CondorTimeout) as caught:
        await client.call("sleep", {"seconds": 30}, timeout=0.5)
    elapsed = time.perf_counter() - started
    assert 0.5 <= elapsed < 1.5
    assert str(caught.value).startswith(
        "schedd emfollow.ligo.caltech.edu did not answer within 0.5 s")
    assert gone(old) and client.restarts == 1
    new = (await client.call("ping"))["pid"]
    assert new != old


async def test_the_event_loop_keeps_running_during_a_call(client: WorkerClient) -> None:
    await client.call("ping")
    with Ticker() as ticker:
        await client.call("sleep", {"seconds": 1.0})
    assert ticker.ticks >= 30 and ticker.worst < 0.2


async def test_a_crashed_worker_is_reported_and_replaced(client: WorkerClient) -> None:
    old = (await client.call("ping"))["pid"]
    with pytest.raises(CondorWorkerError, match="died while running crash"):
        await client.call("crash")
    assert gone(old)
    assert (await client.call("ping"))["pid"] != old


async def test_kill_then_respawn(client: WorkerClient) -> None:
    old = (await client.call("ping"))["pid"]
    await client.kill()
    assert gone(old)
    assert (await client.call("ping"))["pid"] not in (old, None)


async def test_a_second_caller_gets_busy_instead_of_waiting_forever(client: WorkerClient) -> None:
    await client.call("ping")
    slow = asyncio.ensure_future(client.call("sleep", {"seconds": 1.5}, timeout=5))
    await asyncio.sleep(0.1)
    with pytest.raises(CondorBusy, match="still busy"):
        await client.call("ping", timeout=0.3)
    assert await slow == 1.5


async def test_close_stops_the_worker() -> None:
    worker = WorkerClient(demo_spec(demo_jobs=10))
    pid = (await worker.call("ping"))["pid"]
    await worker.close()
    assert gone(pid)
    with pytest.raises(CondorWorkerError):
        await worker.call("ping")


def test_worker_environment_carries_the_pools_condor_knobs() -> None:
    spec = PoolSpec(name="p", timeout=10, environment={"_CONDOR_SEC_CLIENT_AUTHENTICATION_"
                                                       "METHODS": "TOKEN"})
    env = worker_environment(spec)
    assert env["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] == "TOKEN"
    assert env["_CONDOR_QUERY_TIMEOUT"] == "6"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(PROJECT_ROOT)


def test_errors_translate_and_pickle() -> None:
    class HTCondorException(Exception):
        pass

    cases = [
        ("Failed to fetch ads from schedd, errmsg=CEDAR:6001:Failed to connect to <1.2.3.4:9618>",
         CondorUnreachable),
        ("Failed to fetch ads from schedd, errmsg=SECMAN:2007:This service is running, but did "
         "not respond in a reasonable time.", CondorTimeout),
        ("AUTHENTICATE:1003:Failed to authenticate with any method", CondorAuthError),
        ("Failed communication with collector.", CondorUnreachable),
    ]
    for message, kind in cases:
        error = errors.translate(HTCondorException(message), daemon="schedd s1")
        assert type(error) is kind, message
        assert str(error).startswith("schedd s1") and "\n" not in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is kind and str(copy) == str(error)
    empty = errors.translate(HTCondorException(""), daemon="schedd s1")
    assert "without a reason" in str(empty)


# ------------------------------------------------------------------ real htcondor2 failures


async def test_closed_port_fails_at_once_with_a_plain_message() -> None:
    port = closed_port()
    worker = WorkerClient(PoolSpec(name="dead", schedd_address=f"127.0.0.1:{port}", timeout=5))
    try:
        started = time.perf_counter()
        with pytest.raises(CondorUnreachable) as caught:
            await worker.call("q", {"constraint": "true", "letters": ("H",), "max_rows": 5})
        assert time.perf_counter() - started < 3
        assert str(caught.value) == (f"schedd 127.0.0.1:{port} is unreachable (connection "
                                     "refused or host down)")
        # The worker survives an error it translated: same process for the next call.
        pid = worker.pid
        with pytest.raises(CondorUnreachable):
            await worker.call("count", {"constraint": "true"})
        assert worker.pid == pid and worker.restarts == 0
    finally:
        await worker.close()


async def test_unreachable_collector_is_named() -> None:
    port = closed_port()
    worker = WorkerClient(PoolSpec(name="cm", collector=f"127.0.0.1:{port}", schedd="s1",
                                   timeout=5))
    try:
        with pytest.raises(CondorError, match=f"collector 127.0.0.1:{port} is unreachable"):
            await worker.call("count", {"constraint": "true"})
    finally:
        await worker.close()


@pytest.mark.slow
async def test_silent_schedd_is_cut_at_the_deadline_and_the_loop_stays_free() -> None:
    with SilentServer() as server:
        worker = WorkerClient(PoolSpec(name="hung", schedd_address=server.address, timeout=2))
        try:
            await worker.start()
            first_pid = worker.pid
            with Ticker() as ticker:
                started = time.perf_counter()
                with pytest.raises(CondorTimeout) as caught:
                    await worker.call("q", {"constraint": "true", "letters": ("H",),
                                            "max_rows": 5})
                elapsed = time.perf_counter() - started
            assert 2 <= elapsed < 3
            assert str(caught.value).startswith(f"schedd {server.address} did not answer "
                                                "within 2 s")
            assert server.connections >= 1  # it really connected and waited
            assert ticker.ticks >= 50 and ticker.worst < 0.25
            assert first_pid is not None and gone(first_pid)
            await asyncio.sleep(0.5)  # the replacement boots in the background
            assert worker.alive and worker.pid != first_pid
        finally:
            await worker.close()
