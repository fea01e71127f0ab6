"""``/metrics`` for operations: the alerts inbox (depth, oldest age) sampled in the background
at most once per interval, never on the scrape's path; the scheduler's last pass; platforms'
sockets (what /readyz says) and reconnects over real sockets; inbound claim results and claim
conflicts between bots on one database; how late periodic jobs start (issue #16)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CORE_HANDLERS
from mattermost_harness import running
from prometheus_client.parser import text_string_to_metric_families
from slack_rig import ALICE, SHIFTERS, Factory, _clear_runs, rig, slack
from sqlalchemy import insert

from bot import clock, db
from bot.alerts.tables import DONE, PENDING, inbox
from bot.clock import ManualClock, use_clock
from bot.hooks import JobSpec
from bot.jobs import OK, TAKEN, Scheduler, next_instant
from bot.messaging import outbox
from bot.messaging.claims import claim_in
from bot.messaging.inbound import InboundClaims
from bot.metrics import Sampler, watch_operations
from bot.restart.lock import Lease
from bot.schedule.service import PassResult, service_of

__all__ = ["_clear_runs", "rig", "slack"]  # fixtures
ALERTS = {"bot": {"handlers": [*CORE_HANDLERS, "handlers.alerts", "handlers.schedule"]}}


def gauge(bot: Any, name: str) -> float:
    for line in bot.metrics.exposition().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def settled(bot: Any) -> None:
    for sampler in bot.metrics.samplers:
        if sampler._task is not None:
            await sampler._task


def add_rows(conn: Any, states: list[str], age: timedelta) -> None:
    at = db.utcnow() - age
    conn.execute(insert(inbox), [
        {"dedupe_key": f"k{i}-{state}-{age}", "resource": "issue", "action": "created",
         "subject": "s", "body": "{}", "received_at": at, "state": state, "next_at": at}
        for i, state in enumerate(states)])


async def test_inbox_depth_counts_pending_rows_only(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot, interval=0)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0  # first scrape: the last sample
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0
    await bot.database.run(add_rows, [PENDING, PENDING, DONE, PENDING], timedelta(minutes=5))
    gauge(bot, "shiftbot_alerts_inbox_depth")  # starts a sample
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 3
    assert 290 < gauge(bot, "shiftbot_alerts_inbox_oldest_age_seconds") < 400


async def test_samples_at_most_once_per_interval_and_never_block_a_scrape(
        make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    calls: list[int] = []
    gate = asyncio.Event()

    async def slow() -> None:
        calls.append(1)
        await gate.wait()

    bot.metrics.samplers.append(Sampler("slow", slow, interval=3600))
    for _ in range(5):
        bot.metrics.exposition()  # answers at once though the sample is still running
        await asyncio.sleep(0)
    gate.set()
    await settled(bot)
    for _ in range(5):
        bot.metrics.exposition()
        await asyncio.sleep(0)
    assert calls == [1]


async def test_a_failing_sample_keeps_the_last_value(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot, interval=0)
    await bot.database.run(add_rows, [PENDING], timedelta(seconds=1))
    gauge(bot, "shiftbot_alerts_inbox_depth")
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 1

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("database away")

    bot.database.run = down  # type: ignore[method-assign]
    gauge(bot, "shiftbot_alerts_inbox_depth")
    await settled(bot)
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 1


async def test_schedule_last_pass_age(make_bot: Any) -> None:
    bot = await make_bot(ALERTS)
    watch_operations(bot)
    assert gauge(bot, "shiftbot_schedule_last_pass_age_seconds") == -1  # no pass yet
    service = service_of(bot)
    at = db.utcnow() - timedelta(minutes=7)
    service.last = PassResult(at, at, at)
    assert 415 < gauge(bot, "shiftbot_schedule_last_pass_age_seconds") < 500


async def test_without_the_features_nothing_is_sampled(make_bot: Any) -> None:
    bot = await make_bot()
    watch_operations(bot)
    assert bot.metrics.samplers == []
    assert gauge(bot, "shiftbot_schedule_last_pass_age_seconds") == -1
    assert gauge(bot, "shiftbot_alerts_inbox_depth") == 0


# ------------------------------------------------------------------ claims and jobs

TTL = timedelta(minutes=10)
LEASE = timedelta(seconds=20)
TICK = 0.005


def sample(text: str, name: str, **labels: str) -> float | None:
    """A sample's value in a /metrics text (None: not exposed)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def value(bot: Any, name: str, **labels: str) -> float | None:
    return sample(bot.metrics.exposition().decode(), name, **labels)


async def until(check: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(TICK)


@pytest.fixture
def now() -> Any:
    manual = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    with use_clock(manual):
        yield manual


async def replicas(make_bot: Any, count: int) -> list[tuple[Any, InboundClaims]]:
    """Bots on one database (make_bot's file), wired as ``shiftbot run`` wires them, each
    with the inbound claims an adapter builds."""
    out = []
    for _ in range(count):
        bot = await make_bot()
        watch_operations(bot)
        out.append((bot, InboundClaims(bot.claims, "mattermost", TTL, lease=LEASE, poll=TICK,
                                       sweep=TICK)))
    return out


def claims_of(bot: Any, result: str) -> float | None:
    return value(bot, "shiftbot_inbound_claims_total", platform="mattermost", result=result)


async def test_one_delivery_on_two_replicas_is_claimed_once_and_a_duplicate_once(
        make_bot: Any) -> None:
    (a, first), (b, second) = await replicas(make_bot, 2)
    assert await first.first("post1")
    assert not await second.first("post1", wait=False)  # held by the first replica
    assert not await first.first("post1")  # a redelivery to the same process
    assert claims_of(a, "claimed") == 1 and claims_of(a, "duplicate") == 1
    assert claims_of(b, "claimed") is None and claims_of(b, "duplicate") == 1
    assert claims_of(a, "takeover") is None and value(
        a, "shiftbot_claim_conflicts_total", kind="inbound") is None  # duplicates: normal


async def test_a_stood_back_replica_counts_a_duplicate_once_the_holder_is_done(
        make_bot: Any) -> None:
    (a, first), (b, second) = await replicas(make_bot, 2)
    release = asyncio.Event()

    async def run_here() -> None:
        assert await first.first("post2")
        await release.wait()  # the command runs; the claim is done when this task ends

    holder = asyncio.create_task(run_here())
    await until(lambda: first.holding == 1, "the first replica to hold it")
    waiting = asyncio.create_task(second.first("post2"))
    await until(lambda: second.waiting == 1, "the second replica to stand back")
    assert claims_of(b, "duplicate") is None  # not decided while it waits
    release.set()
    await holder
    assert await waiting is False
    assert claims_of(b, "duplicate") == 1 and claims_of(a, "claimed") == 1


async def test_a_takeover_is_counted_and_the_stopped_holder_counts_a_conflict(
        make_bot: Any, now: ManualClock) -> None:
    (a, first), (b, second) = await replicas(make_bot, 2)
    stuck, taken = asyncio.Event(), asyncio.Event()
    renew = a.claims.renew

    async def late_renewal(keys: Any, lease: Any) -> Any:
        await taken.wait()  # the holder's renewal stalls (its loop blocked, say)...
        return await renew(keys, lease)  # ...and arrives after the takeover

    a.claims.renew = late_renewal

    async def run_here() -> None:
        assert await first.first("post3")
        await stuck.wait()  # a holder that stopped answering

    holder = asyncio.create_task(run_here())
    await until(lambda: first.holding == 1, "the first replica to hold it")
    now.advance(LEASE.total_seconds() + 1)  # the holder did not renew in time
    assert await second.first("post3")  # seen after the lease ran out: a takeover
    taken.set()
    assert claims_of(b, "takeover") == 1 and claims_of(b, "claimed") is None
    # the holder's next renewal finds the claim another process's: a conflict
    await until(lambda: value(a, "shiftbot_claim_conflicts_total", kind="inbound") == 1,
                "the lost lease to be counted")
    stuck.set()
    await holder


async def test_a_claim_that_cannot_be_asked_counts_an_error(make_bot: Any) -> None:
    [(bot, inbound)] = await replicas(make_bot, 1)

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("database unreachable")

    bot.claims.claim_delivery = broken
    assert not await inbound.first("post4")
    assert claims_of(bot, "error") == 1


async def test_jobs_leases_and_locks_held_elsewhere_are_conflicts(make_bot: Any) -> None:
    (a, _), (b, _) = await replicas(make_bot, 2)
    job = JobSpec("test.once", 60, _nothing, jitter=0)
    instant = next_instant(clock.utcnow().timestamp(), 60)
    assert await Scheduler(a, [job]).run_once(job, instant) == OK
    assert await Scheduler(b, [job]).run_once(job, instant) == TAKEN
    assert value(b, "shiftbot_claim_conflicts_total", kind="job") == 1
    assert value(a, "shiftbot_claim_conflicts_total", kind="job") is None
    # a channel's send lease (the outbox, claimed inside its own transaction)
    await a.database.run(claim_in, outbox.lease_key("slack", "C1"), a.claims.owner, LEASE)
    assert await b.database.run(outbox.begin, "slack", "C1", b.claims.owner, LEASE, 10) is None
    assert value(b, "shiftbot_claim_conflicts_total", kind="notices") == 1
    # a restart lock
    lease = await Lease.acquire(a.claims, "gwcelery", LEASE)
    assert lease is not None and await Lease.acquire(b.claims, "gwcelery", LEASE) is None
    await lease.release()
    assert value(b, "shiftbot_claim_conflicts_total", kind="restart") == 1


async def _nothing(bot: Any) -> None:
    return None


def lateness(bot: Any, job: str) -> tuple[float | None, float | None, float | None]:
    """(count, sum, runs within 10 s) of the job's lateness histogram."""
    text = bot.metrics.exposition().decode()
    name = "shiftbot_job_lateness_seconds"
    return (sample(text, name + "_count", job=job), sample(text, name + "_sum", job=job),
            sample(text, name + "_bucket", job=job, le="10.0"))


async def test_a_run_started_late_is_measured_against_when_it_was_due(
        make_bot: Any, now: ManualClock) -> None:
    bot = await make_bot()
    job = JobSpec("test.late", 60, _nothing, jitter=0)
    instant = next_instant(clock.utcnow().timestamp(), 60)
    now.advance(instant - clock.utcnow().timestamp() + 42)  # 42 s past its instant
    assert await Scheduler(bot, [job]).run_once(job, instant) == OK
    assert lateness(bot, "test.late") == (1, 42, 0)
    # on time (the jitter drawn for it is no lateness): in the lowest buckets
    assert await Scheduler(bot, [job]).run_once(job, instant + 60, due=instant + 60 - 5) == OK
    count, total, within = lateness(bot, "test.late")
    assert (count, within) == (2, 1) and total == 42


async def test_the_scheduler_loop_measures_a_late_wake_up(make_bot: Any) -> None:
    """The loop's own path: due at the next instant, woken when the clock is 7 s past it
    (the clock jumps while the loop sleeps, as when the host was suspended)."""
    manual = ManualClock(datetime(2026, 3, 1, 12, 0, 0, 700_000, tzinfo=UTC))
    ran = asyncio.Event()

    async def job_func(bot: Any) -> None:
        ran.set()

    with use_clock(manual):
        bot = await make_bot()
        scheduler = Scheduler(bot, [JobSpec("test.loop", 1, job_func, jitter=0)])
        scheduler.start()
        await asyncio.sleep(0.05)  # the loop sleeps until 12:00:01 (0.3 s)
        manual.advance(7)
        await asyncio.wait_for(ran.wait(), 5)
        await scheduler.stop()
    count, total, _ = lateness(bot, "test.loop")
    assert count == 1 and total == pytest.approx(6.7, abs=1e-3)  # 12:00:07.7 - 12:00:01


# ------------------------------------------------------------------ platforms, real sockets


async def scraped(url: str, name: str, **labels: str) -> float | None:
    async with httpx.AsyncClient(trust_env=False) as client:
        return sample((await client.get(url + "/metrics")).text, name, **labels)


async def until_scraped(url: str, expected: float, name: str, **labels: str) -> None:
    """Scrape until ``name`` shows ``expected`` (a sample started by a scrape shows in the
    next one; the Slack watchdog sees a new session at its next check)."""
    deadline = asyncio.get_running_loop().time() + 5
    while (found := await scraped(url, name, **labels)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{name}{labels}: {found}"
        await asyncio.sleep(0.05)


async def test_mattermost_socket_state_reconnects_and_claims(make_bot: Any) -> None:
    async with running(make_bot) as st:
        url, mm = st.http.url, {"platform": "mattermost"}
        await until_scraped(url, 1, "shiftbot_platform_connected", **mm)
        assert (await st.get("/readyz")).json()["components"]["mattermost"]["ready"] is True
        assert await scraped(url, "shiftbot_platform_reconnects_total", **mm) == 0
        assert await st.mm.drop_sockets(code=1001) == 1
        await st.mm.wait_for_connection(2, timeout=3)
        await until_scraped(url, 1, "shiftbot_platform_reconnects_total", **mm)
        assert await scraped(url, "shiftbot_mattermost_reconnects_total") == 1  # attempts
        post = await st.mm.post_as("alice", "ops", "!sample echo counted --public")
        await st.command_reply(post)
        assert await scraped(url, "shiftbot_inbound_claims_total", result="claimed", **mm) == 1
        await st.adapter.stop()
        readyz = (await st.get("/readyz")).json()["components"]["mattermost"]
        assert readyz == {"ready": False, "reason": "stopped"}
        assert await scraped(url, "shiftbot_platform_connected", **mm) == 0  # as /readyz said


async def test_slack_http_mode_counts_as_connected_while_serving(rig: Factory) -> None:
    r = await rig("http")
    await until_scraped(r.http.url, 1, "shiftbot_platform_connected", platform="slack")


async def test_slack_socket_replicas_claims_and_reconnects(rig: Factory, slack: Any) -> None:
    first, second = await rig("socket"), await rig("socket")
    for r in (first, second):
        await until_scraped(r.http.url, 1, "shiftbot_platform_connected", platform="slack")
    one, two = slack.open_connections[-2:]
    for i in range(3):  # Slack hands a retry to the other replica's socket
        command = slack.slash_command_payload(f"sample echo c{i}", user_id=ALICE,
                                              channel_id=SHIFTERS)
        await asyncio.gather(slack.send_envelope("slash_commands", command, connection=one),
                             slack.send_envelope("slash_commands", command, connection=two))
    totals = {result: sum([await scraped(r.http.url, "shiftbot_inbound_claims_total",
                                         platform="slack", result=result) or 0
                           for r in (first, second)])
              for result in ("claimed", "duplicate", "takeover", "error")}
    assert totals == {"claimed": 3, "duplicate": 3, "takeover": 0, "error": 0}
    await slack.socket_disconnect(connection=one)  # "refresh_requested": a new session
    await slack.wait_for_connection(3)
    assert one is slack.connections[0]  # the first replica's
    await until_scraped(first.http.url, 1, "shiftbot_platform_reconnects_total", platform="slack")
    assert await scraped(second.http.url, "shiftbot_platform_reconnects_total",
                         platform="slack") == 0


async def test_docs_list_every_metric(make_bot: Any) -> None:
    bot = await make_bot()
    bot.metrics.connection_attempts()  # made by the Mattermost adapter
    doc = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    names = {family.name + ("_total" if family.type == "counter" else "")
             for family in bot.metrics.registry.collect()}
    assert len(names) >= 20 and {n for n in names if f"`{n}" not in doc} == set()
