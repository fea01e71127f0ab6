"""The condor command family through the real core: parse, gate, confirm, run, render."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, SilentServer, closed_port, condor_config, demo_pool

from bot.condor.service import CondorService
from bot.core import Bot, OutcomeStatus
from bot.markup import plain
from bot.render import render_text
from bot.reply import Choice

POOLS = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE), "all": demo_pool()}


async def run(bot: Bot, who: str, line: str) -> Any:
    outcome = await bot.handle(console(who, line))
    return outcome


def text(outcome: Any) -> str:
    return render_text(outcome.reply, "console")


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config(POOLS, default_pool="gwcelery"))
    return built


async def test_q_totals_and_the_jobs_that_are_not_running(bot: Bot) -> None:
    out = await run(bot, "dave", "condor q")  # viewer role, but only in #ops
    assert out.status == OutcomeStatus.DENIED
    out = await bot.handle(console("dave", "condor q", channel="ops"))
    assert out.status == OutcomeStatus.OK, text(out)
    reply = out.reply
    assert "24 jobs: R 21, I 2, H 1" in reply.text
    assert 'scope: JobBatchName == "gwcelery" && Owner == "emfollow"' in plain(reply.text)
    assert reply.table is not None
    assert reply.table.columns == ["job", "owner", "batch", "st", "in state", "worker",
                                   "hold reason"]
    assert [row[0] for row in reply.table.rows] == ["1.22", "1.20", "1.21"]
    held = reply.table.rows[0]
    assert held[3] == "H" and held[4] == "5h 0m"
    assert held[5] == "slot1@node2296.cluster.ldas.cit"
    assert held[6].startswith("34 JobOutOfResources: Job has gone over cgroup memory limit")


async def test_q_options(bot: Bot) -> None:
    everything = await run(bot, "alice", "condor q --all")
    assert everything.reply.table is not None and len(everything.reply.table.rows) == 24
    assert everything.reply.table.rows[-1][3] == "R"
    held = await run(bot, "alice", "condor q all --status held")
    assert held.reply.table is not None
    assert {row[3] for row in held.reply.table.rows} == {"H"}
    assert "Filters: status held" in text(held)
    assert len(held.reply.table.rows) == int(held.reply.text.split(" jobs: H ")[1].split()[0])
    owner = await run(bot, "alice", "condor q all --owner emfollow-playground --status idle")
    assert owner.reply.table is not None and [r[0] for r in owner.reply.table.rows] == ["2.17"]
    batch = await run(bot, "alice", "condor q all --batch gwcelery --constraint 'ProcId < 8'")
    assert "24 jobs: R 23, H 1" in batch.reply.text  # the eight services of each deployment
    limited = await bot.handle(console("alice", "condor q all"))
    assert limited.reply.table is not None and limited.reply.table.omitted > 0
    assert "(40 of" in limited.reply.text


async def test_hostile_input_cannot_widen_the_query(bot: Bot) -> None:
    out = await run(bot, "alice", """condor q all --owner 'x" || true'""")
    assert out.status == OutcomeStatus.OK
    assert "0 jobs: none" in out.reply.text and out.reply.table is None
    out = await run(bot, "alice", "condor q --constraint 'true) || (true'")
    assert out.status == OutcomeStatus.ERROR
    assert plain(out.reply.text) == "--constraint: unbalanced ')'"
    out = await run(bot, "alice", "condor q --constraint 'JobStatus == 5; x = 1'")
    assert out.status == OutcomeStatus.ERROR and "';' is not allowed" in out.reply.text
    out = await run(bot, "alice", "condor hold '1 || true'")
    assert out.status == OutcomeStatus.USAGE


async def test_unknown_pool_is_a_one_line_error(bot: Bot) -> None:
    out = await run(bot, "alice", "condor q nowhere")
    assert out.status == OutcomeStatus.ERROR
    assert plain(out.reply.text) == "unknown pool 'nowhere'; known: gwcelery, all"


async def test_analyze(bot: Bot) -> None:
    held = await run(bot, "alice", "condor analyze 1.22")
    assert held.status == OutcomeStatus.OK
    assert "held (H) for 5h 0m" in held.reply.text
    assert "Hold: 34 JobOutOfResources (memory): the job used more than it requested" \
        in held.reply.text
    assert "=> Held: it will not run until released." in text(held)
    idle = await run(bot, "alice", "condor analyze 1.21")
    assert "Matching (collector demo): 64 slots; 14 satisfy the job's requirements" \
        in idle.reply.text
    assert "14 slots match, all busy" in text(idle)
    assert idle.reply.table is not None
    assert ["TARGET.Online_EMFollow is true", "14", ""] in idle.reply.table.rows
    running = await run(bot, "alice", "condor analyze 1.3")
    assert "running (R)" in running.reply.text and "worker (local)" in text(running)
    missing = await run(bot, "alice", "condor analyze 100.0")  # exists, outside the scope
    assert missing.status == OutcomeStatus.ERROR
    assert plain(missing.reply.text) == ("job 100.0 is not in the queue of schedd "
                                         "emfollow.ligo.caltech.edu within this pool's scope "
                                         "(finished jobs are in condor_history)")


async def test_hold_and_release_record_who_and_why(bot: Bot) -> None:
    out = await run(bot, "alice", "condor hold 1.8 1.9 77.0 --reason 'node2290 drain'")
    assert out.status == OutcomeStatus.OK and out.reply.visibility == "channel"
    assert "Held 2 jobs on schedd emfollow.ligo.caltech.edu (pool gwcelery): 1.8, 1.9." \
        in out.reply.text
    assert "Not in the queue within this pool's scope: 77.0." in out.reply.text
    analyzed = await run(bot, "alice", "condor analyze 1.8")
    assert "Hold reason: node2290 drain (via shiftbot by alice)" in text(analyzed)
    again = await run(bot, "alice", "condor release 1.8 1.20")
    assert "Released 1 of 2 jobs" in again.reply.text
    assert "Left unchanged (not held): 1.20 (I)" in again.reply.text
    nothing = await run(bot, "alice", "condor release 4242")
    assert nothing.status == OutcomeStatus.ERROR and "nothing was released" in nothing.reply.text
    both = await run(bot, "alice", "condor hold 1.8 --batch gwcelery")
    assert both.status == OutcomeStatus.ERROR


async def test_actions_never_leave_the_scope(bot: Bot) -> None:
    before = await run(bot, "alice", "condor analyze 100.0 all")
    assert before.status == OutcomeStatus.OK and "held (H)" not in before.reply.text
    out = await run(bot, "alice", "condor hold 100.0 1.8")  # 100.0 is outside gwcelery's scope
    assert "Held 1 job" in out.reply.text
    assert "Not in the queue within this pool's scope: 100.0." in out.reply.text
    after = await run(bot, "alice", "condor analyze 100.0 all")
    assert after.reply.text.split("\n")[0] == before.reply.text.split("\n")[0]
    other_batch = text(before).split(", batch ")[1].split(",")[0]
    assert other_batch.startswith(("bilby", "pycbc", "rift", "gstlal", "omicron", "cwb"))
    batch = await run(bot, "alice", f"condor hold --batch {other_batch}")
    assert batch.status == OutcomeStatus.ERROR and "nothing was held" in batch.reply.text
    elsewhere = await run(bot, "alice", f"condor q all --batch {other_batch} --status held")
    assert "no job" in elsewhere.reply.text.lower() or "H " in elsewhere.reply.text
    assert "via shiftbot" not in " ".join(r[6] for r in (elsewhere.reply.table.rows
                                                         if elsewhere.reply.table else []))


async def test_rm_is_for_experts_and_asks_for_confirmation(bot: Bot) -> None:
    denied = await run(bot, "alice", "condor rm 1.20")
    assert denied.status == OutcomeStatus.DENIED
    asked = await run(bot, "carol", "condor rm 1.20 1.21")
    assert asked.status == OutcomeStatus.PENDING and asked.request_id
    before = await run(bot, "carol", "condor q")
    assert "I 2" in before.reply.text  # nothing happened yet
    other = await bot.decide(console("erin", ""), asked.request_id, Choice.CONFIRM)
    assert other.status == OutcomeStatus.DENIED
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK, text(done)
    assert "Removed 2 jobs" in done.reply.text
    after = await run(bot, "carol", "condor q")
    assert "22 jobs: R 21, H 1" in after.reply.text


async def test_rm_batch(bot: Bot) -> None:
    asked = await run(bot, "carol", "condor rm --batch gwcelery --reason 'redeploy'")
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert "Removed 24 jobs of batch gwcelery" in text(done)
    # A batch with no jobs is an error before any request: nothing to confirm.
    nothing = await run(bot, "carol", "condor rm --batch nope")
    assert nothing.status == OutcomeStatus.ERROR and nothing.request_id is None
    assert "No job of batch nope" in text(nothing)
    assert await bot.requests.list_pending() == []


async def test_rm_preview_and_refusals_before_any_request(bot: Bot) -> None:
    asked = await run(bot, "carol", "condor rm --batch gwcelery")
    shown = text(asked)
    assert "removes 24 jobs of emfollow on pool gwcelery (within its scope)" in shown
    assert "1.0-1.19, 1.23 running" in shown and "1.20-1.21 idle" in shown and "1.22 held" in shown
    assert "changes things" not in shown
    await bot.decide(console("carol", ""), asked.request_id, Choice.CANCEL)
    for line, why in [("condor rm", "Name job ids or --batch NAME"),
                      ("condor rm 999.0", "Not in the queue"),
                      ("condor rm 1.20 999.0", "999.0"),
                      ("condor rm 1.20 --batch gwcelery", "one of the two"),
                      ("condor rm 1.20 --pool nowhere", "unknown pool")]:
        out = await run(bot, "carol", line)
        assert out.status == OutcomeStatus.ERROR and out.request_id is None, line
        assert why in text(out) and "Usage:" in text(out), line
    assert await bot.requests.list_pending() == []


async def test_rm_acts_only_on_the_confirmed_jobs(bot: Bot) -> None:
    asked = await run(bot, "carol", "condor rm 1.20")
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert done.status == OutcomeStatus.OK and "Removed 1 job" in text(done)


async def test_rm_batch_asks_again_when_more_jobs_match(bot: Bot) -> None:
    asked = await run(bot, "carol", "condor rm --batch gwcelery")
    # Meanwhile the batch grew: a resubmit by someone else adds jobs to it.
    service = bot.services.require(CondorService)
    held = await run(bot, "carol", "condor hold 1.0")  # not a change in membership: still ok
    assert held.status == OutcomeStatus.OK, text(held)
    source = await service.load_submit(service.pool("gwcelery"), "gwcelery")
    await service._submit(service.pool("gwcelery"), source, refuse_if_present=False)
    again = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert again.status == OutcomeStatus.PENDING and again.request_id != asked.request_id
    assert "changed" in text(again) and "removes 27 jobs" in text(again)
    after = await run(bot, "carol", "condor q --all")
    assert "27 jobs" in text(after)  # nothing was removed


async def test_submit_refuses_duplicates_and_resubmit_waits(bot: Bot) -> None:
    refused = await run(bot, "carol", "condor submit gwcelery")
    assert refused.status == OutcomeStatus.ERROR
    assert "batch gwcelery already has jobs" in refused.reply.text
    unknown = await run(bot, "carol", "condor submit nope")
    assert plain(unknown.reply.text) == ("pool gwcelery has no submit description 'nope' "
                                         "(configured: gwcelery)")
    asked = await run(bot, "carol", "condor resubmit gwcelery")
    assert asked.status == OutcomeStatus.PENDING
    said: list[str] = []

    async def progress(line: str) -> None:
        said.append(line)

    started = time.perf_counter()
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM,
                            progress=progress)
    assert done.status == OutcomeStatus.OK, text(done)
    assert time.perf_counter() - started >= 0.5  # running jobs linger 0.5 s in state X
    assert said[0].startswith("Removed 24 of 24 jobs of batch gwcelery")
    assert any(" left (" in line for line in said)
    assert said[-1] == "Batch gwcelery is gone; submitting gwcelery."
    assert "Removed 24 jobs of batch gwcelery" in text(done)
    assert "3 jobs in clusters" in done.reply.text
    after = await run(bot, "carol", "condor q --all")
    assert "3 jobs: R 1, I 2" in after.reply.text


async def test_resubmit_gives_up_and_submits_nothing(make_bot: Any) -> None:
    pools = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE, demo_remove_delay_seconds=60)}
    bot = await make_bot(condor_config(pools, resubmit_wait_seconds=1))
    asked = await run(bot, "carol", "condor resubmit gwcelery")
    started = time.perf_counter()
    done = await bot.decide(console("carol", ""), asked.request_id, Choice.CONFIRM)
    assert time.perf_counter() - started < 4
    assert done.status == OutcomeStatus.ERROR
    assert plain(done.reply.text).startswith(
        "gave up after 1 s: 21 jobs of batch gwcelery are still in the queue (21 removed); "
        "nothing was submitted.")
    after = await run(bot, "carol", "condor q --all")
    assert "21 jobs: X 21" in after.reply.text


async def test_worker_respawn_after_a_kill(bot: Bot) -> None:
    await run(bot, "alice", "condor q")
    service = bot.services.require(CondorService)
    worker = service.worker("gwcelery")
    old = worker.pid
    await worker.kill()
    out = await run(bot, "alice", "condor q")
    assert out.status == OutcomeStatus.OK and "24 jobs" in out.reply.text
    assert worker.pid not in (None, old) and worker.restarts == 1
    pools = await run(bot, "alice", "condor pools")
    assert pools.reply.table is not None
    assert pools.reply.table.rows[0][0] == "gwcelery (default)"
    assert pools.reply.table.rows[0][-1] == f"pid {worker.pid}, 1 restart(s)"


async def test_closed_port_is_a_plain_error(make_bot: Any) -> None:
    port = closed_port()
    bot = await make_bot(condor_config({"dead": {"schedd_address": f"127.0.0.1:{port}"}}))
    out = await run(bot, "alice", "condor q")
    assert out.status == OutcomeStatus.ERROR
    assert plain(out.reply.text) == (f"schedd 127.0.0.1:{port} is unreachable (connection "
                                     "refused or host down)")
    assert "Traceback" not in text(out) and "CEDAR" not in text(out)


@pytest.mark.slow
async def test_a_hung_schedd_does_not_stop_the_bot(make_bot: Any) -> None:
    with SilentServer() as server:
        pools = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE),
                 "hung": {"schedd_address": server.address, "timeout_seconds": 2}}
        bot = await make_bot(condor_config(pools, default_pool="gwcelery"))
        await run(bot, "alice", "condor q")  # the demo pool's worker is up
        started = time.perf_counter()
        hung = asyncio.ensure_future(run(bot, "alice", "condor q hung"))
        await asyncio.sleep(0.3)  # the hung pool's worker is now stuck in htcondor2
        help_out = await run(bot, "alice", "help")
        help_done = time.perf_counter() - started
        demo_out = await run(bot, "alice", "condor q")  # another pool, another worker
        demo_done = time.perf_counter() - started
        still_waiting = not hung.done()
        out = await hung
        elapsed = time.perf_counter() - started
        assert help_out.status == OutcomeStatus.OK and "condor q" in text(help_out)
        assert demo_out.status == OutcomeStatus.OK and "24 jobs" in demo_out.reply.text
        assert help_done < 1.0 and demo_done < 1.5 and still_waiting
        assert out.status == OutcomeStatus.ERROR
        assert plain(out.reply.text).startswith(
            f"schedd {server.address} did not answer within 2 s")
        assert 2 <= elapsed < 3  # deadline + 1 s
        assert server.connections >= 1


def test_importing_the_handler_is_cheap() -> None:
    code = ("import json, sys, time; t = time.perf_counter(); import handlers.condor; "
            "print(json.dumps({'seconds': time.perf_counter() - t, "
            "'htcondor2': 'htcondor2' in sys.modules, 'classad2': 'classad2' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    result = json.loads(out.stdout)
    assert result == {**result, "htcondor2": False, "classad2": False}
    assert result["seconds"] < 1.0
