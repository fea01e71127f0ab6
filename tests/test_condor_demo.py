"""The fake schedd (real ClassAds, real evaluator) and the worker's operations, in-process."""

from __future__ import annotations

from collections import Counter

import classad2
import htcondor2
import pytest
from fakes.condor import GWCELERY_SCOPE, GWCELERY_SUB, demo_spec

from bot.condor import demo, ops, states
from bot.condor.analyze import split_and
from bot.condor.backend import DemoBackend, sinful
from bot.condor.constraints import all_of, attr_equals, jobs_constraint
from bot.condor.errors import CondorConfigError, CondorNotFound, CondorRefused

NOW = 1_795_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def schedd(size: int = 300, **kwargs: object) -> demo.DemoSchedd:
    return demo.DemoSchedd(demo.seed_queue(size, 1, NOW), **kwargs)  # type: ignore[arg-type]


def test_seeded_queue_is_realistic_and_deterministic() -> None:
    ads = demo.seed_queue(300, 1, NOW)
    again = demo.seed_queue(300, 1, NOW)
    assert len(ads) == 300
    assert [str(a) for a in ads] == [str(a) for a in again]
    letters = Counter(states.letter_of(a) for a in ads)
    assert letters["R"] > letters["I"] > letters["H"] >= 5
    gwcelery = [a for a in ads if a.get("JobBatchName") == "gwcelery"]
    assert len(gwcelery) == 72  # three deployments of 8 services + 16 OpenMP workers
    assert {a["JobUniverse"] for a in gwcelery} == {5, 12}
    held = [a for a in ads if a["JobStatus"] == 5]
    assert {a["HoldReasonCode"] for a in held} >= {1, 6, 12, 34}
    assert all(a["HoldReason"] for a in held)
    assert len(demo.seed_queue(100, 2, NOW)) == 100
    assert len(demo.seed_queue(10, 2, NOW)) == 10


def test_query_uses_the_classad_evaluator_and_honours_projection_and_limit() -> None:
    s = schedd()
    held = s.query("JobStatus == 5", ["ClusterId", "ProcId", "HoldReasonCode"])
    assert held and all(set(ad) <= {"ClusterId", "ProcId", "HoldReasonCode"} for ad in held)
    assert all(isinstance(ad, classad2.ClassAd) for ad in held)
    # Undefined never matches: only the 72 GWCelery jobs have an Iwd at all.
    assert len(s.query('Iwd != "/nowhere"', ["ClusterId"])) == 72
    assert len(s.query('!(Iwd == "/nowhere")', ["ClusterId"])) == 72
    assert len(s.query("true", ["ClusterId"], limit=7)) == 7
    ids = s.query("JobStatus == 5", ["ClusterId"], callback=lambda ad: ad["ClusterId"])
    assert all(isinstance(i, int) for i in ids)
    full = s.query("ClusterId == 1 && ProcId == 0")
    assert full[0]["JobDescription"] == "gwcelery-beat"
    # A changed copy does not change the queue.
    full[0]["JobStatus"] = 5
    assert s.query("ClusterId == 1 && ProcId == 0", ["JobStatus"])[0]["JobStatus"] == 2
    with pytest.raises(TypeError):
        s.query("true", "ClusterId")  # type: ignore[arg-type]


def test_unparsable_constraint_fails_like_the_real_schedd() -> None:
    with pytest.raises(htcondor2.HTCondorException) as caught:
        schedd().query("JobStatus ==", ["ClusterId"])
    assert str(caught.value) == ""


def test_act_changes_states_and_returns_the_totals_ad() -> None:
    clock = Clock()
    s = schedd(clock=clock, remove_delay=5.0)
    result = s.act(htcondor2.JobAction.Hold, ["1.8", "1.9", "999.0"], ("disk full", 7))
    assert result["TotalSuccess"] == 2 and result["TotalNotFound"] == 1
    ad = s.query("ClusterId == 1 && ProcId == 8", ["JobStatus", "HoldReason", "HoldReasonCode",
                                                   "HoldReasonSubCode", "LastRemoteHost"])[0]
    assert (ad["JobStatus"], ad["HoldReason"], ad["HoldReasonCode"], ad["HoldReasonSubCode"]) \
        == (5, "disk full", 1, 7)
    assert ad["LastRemoteHost"].startswith("slot1@node")
    again = s.act(htcondor2.JobAction.Hold, "1.8", ("again", 0))
    assert again["TotalAlreadyDone"] == 1 and again["TotalSuccess"] == 0
    released = s.act(htcondor2.JobAction.Release, classad2.ExprTree("ClusterId == 1"), ("ok", 0))
    assert released["TotalSuccess"] == 3  # 1.8, 1.9 and the seeded held 1.22
    assert released["TotalBadStatus"] == 21
    # Remove: idle jobs leave at once, running ones linger in X for remove_delay seconds.
    removed = s.act(htcondor2.JobAction.Remove, 'JobBatchName == "gwcelery" && ClusterId == 1',
                    ("resubmit", 0))
    assert removed["TotalSuccess"] == 24
    left = Counter(s.query("ClusterId == 1", ["JobStatus"], callback=lambda a: a["JobStatus"]))
    assert set(left) == {3} and 0 < left[3] < 24
    clock.now += 6
    assert s.query("ClusterId == 1", ["ClusterId"]) == []


def test_plain_string_reason_is_dropped_like_htcondor2_does() -> None:
    s = schedd()
    s.act(htcondor2.JobAction.Hold, "1.8", "this text is lost")  # type: ignore[arg-type]
    reason = s.query("ClusterId == 1 && ProcId == 8", ["HoldReason"])[0]["HoldReason"]
    assert reason == "via condor_hold (by user emfollow)"
    with pytest.raises(TypeError):
        s.act(1, "1.8")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        s.act(htcondor2.JobAction.Hold, ["1.x"])


def test_submit_returns_a_real_submit_result() -> None:
    s = schedd()
    before = len(s)
    result = s.submit(htcondor2.Submit("executable = /bin/true\nrequest_memory = 2GB\n"
                                       "batch_name = test\nqueue 3"))
    assert isinstance(result, htcondor2.SubmitResult)
    assert result.num_procs() == 3 and result.first_proc() == 0
    ads = s.query(f"ClusterId == {result.cluster()}", ["RequestMemory", "JobBatchName",
                                                        "JobStatus"])
    assert [(a["RequestMemory"], a["JobBatchName"], a["JobStatus"]) for a in ads] == \
        [(2048, "test", 1)] * 3
    assert len(s) == before + 3
    with pytest.raises(TypeError):
        s.submit("executable = /bin/true")  # type: ignore[arg-type]


def test_collector_locate_returns_none_for_unknown_schedd() -> None:
    s = schedd()
    collector = demo.DemoCollector(s, demo.seed_slots())
    assert collector.locate(htcondor2.DaemonType.Schedd, "nope") is None
    assert collector.locate(htcondor2.DaemonType.Schedd, s.name)["Name"] == s.name
    slots = collector.query(htcondor2.AdType.Startd, "Online_EMFollow =?= true", ["Name"])
    assert len(slots) == 14 and all(set(a) == {"Name"} for a in slots)


# ------------------------------------------------------------------------- operations


def backend(**overrides: object) -> DemoBackend:
    return DemoBackend(demo_spec(**overrides))


def brute_force(b: DemoBackend, constraint: str, letters: tuple[str, ...]) -> list[str]:
    """The rows `q` should list, computed the slow, obvious way."""
    ads = b.schedd().query(constraint, ["ClusterId", "ProcId", "EnteredCurrentStatus",
                                        "JobStatus", "TransferringInput", "TransferringOutput"])
    rank = {letter: i for i, letter in enumerate(states.SEVERITY)}
    wanted = [a for a in ads if states.letter_of(a) in letters]
    wanted.sort(key=lambda a: (rank[states.letter_of(a)], a["EnteredCurrentStatus"],
                               a["ClusterId"], a["ProcId"]))
    return [f"{a['ClusterId']}.{a['ProcId']}" for a in wanted]


@pytest.mark.parametrize("max_rows", [5, 40, 1000])
def test_q_lists_the_worst_jobs_first(max_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(demo_jobs=3000)
    letters = tuple(x for x in states.LETTERS if x != "R")
    expected = brute_force(b, "true", letters)
    for direct in (10**9, 0):  # the direct path and the rank-then-fetch path agree
        monkeypatch.setattr(ops, "DIRECT_FETCH", direct)
        summary = ops.q(b, "true", letters, max_rows)
        assert [r.job for r in summary.rows] == expected[:max_rows]
        assert summary.listed == len(expected)
        assert summary.total == 3000 and sum(summary.totals.values()) == 3000
        assert summary.omitted == max(0, len(expected) - max_rows)


def test_rank_then_fetch_uses_short_constraints(monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(demo_jobs=3000)
    seen: list[str] = []
    real = ops._top_constraint

    def spy(selected: str, ranked: list[tuple[int, int, int]], quota: int) -> str:
        seen.append(real(selected, ranked, quota))
        return seen[-1]

    monkeypatch.setattr(ops, "_top_constraint", spy)
    monkeypatch.setattr(ops, "DIRECT_FETCH", 0)
    for letters, rows in ((("H",), 3), (("I",), 40), (("I",), 1), (("C", "X"), 7)):
        summary = ops.q(b, "true", letters, rows)
        assert [r.job for r in summary.rows] == brute_force(b, "true", letters)[:rows]
    assert seen and all(len(c) < 400 for c in seen)
    # Distinct times: a threshold. Many jobs sharing the last wanted time (a big cluster
    # submitted at once): its clusters and procs are listed instead.
    distinct = [(1000 + i, 7, i) for i in range(500)]
    assert real("S", distinct, 5) == "(S) && (EnteredCurrentStatus <= 1004)"
    tied = [(1000, 7, i) for i in range(500)]
    assert real("S", tied, 3) == "(S) && (member(ClusterId, {7}) && member(ProcId, {0, 1, 2}))"


def test_q_rows_carry_what_the_runbook_asks() -> None:
    b = backend()
    summary = ops.q(b, GWCELERY_SCOPE, ("H", "I"), 40)
    rows = {r.job: r for r in summary.rows}
    assert summary.totals == {"R": 21, "I": 2, "H": 1}
    assert list(rows) == ["1.22", "1.20", "1.21"]  # held first, then the longest idle
    assert rows["1.22"].hold_code == 34 and "memory limit" in rows["1.22"].hold_reason
    assert rows["1.22"].worker == "slot1@node2296.cluster.ldas.cit"  # LastRemoteHost
    assert rows["1.20"].worker.startswith("slot1@node")  # evicted: where it last ran
    assert rows["1.21"].worker == ""  # never ran
    running = ops.q(b, all_of(GWCELERY_SCOPE, "JobUniverse == 12"), ("R",), 40)
    assert {r.worker for r in running.rows} == {"(local)"}


def test_act_reports_missing_jobs_and_respects_the_scope() -> None:
    b = backend()
    # 100.0 exists but is outside the scope: it must neither be found nor touched.
    scoped = all_of(GWCELERY_SCOPE, jobs_constraint(["1.0", "1.1", "100.0"]))
    result = ops.act(b, "hold", scoped, ["1.0", "1.1", "100.0"], "maintenance (carol)", 0)
    assert result.targets == ["1.0", "1.1"] and result.not_found == ["100.0"]
    assert result.success == 2
    outside = b.schedd().query("ClusterId == 100 && ProcId == 0", ["JobStatus"])[0]
    assert outside["JobStatus"] != 5 or outside.get("HoldReason") != "maintenance (carol)"
    reason = b.schedd().query("ClusterId == 1 && ProcId == 0", ["HoldReason"])[0]["HoldReason"]
    assert reason == "maintenance (carol)"
    release = ops.act(b, "release", all_of(GWCELERY_SCOPE, jobs_constraint(["1"])), ["1"],
                      "done", 0)
    assert release.success == 3 and release.bad_status == 21


def test_submit_splits_queue_statements_and_refuses_duplicates() -> None:
    b = backend()
    scope = 'JobBatchName == "gwcelery" && Owner == "emfollow"'
    where = {"initialdir": "/home/emfollow/gwcelery"}
    with pytest.raises(CondorRefused, match="already has jobs"):
        ops.submit(b, "gwcelery", GWCELERY_SUB, where, "gwcelery", scope, True)
    with pytest.raises(CondorConfigError, match="has no initialdir"):
        ops.submit(b, "gwcelery", GWCELERY_SUB, {}, "gwcelery", "false", True)
    outcome = ops.submit(b, "gwcelery", GWCELERY_SUB,
                         {"accounting_group": "ligo.dev.o4.cbc.pe.bayestar", **where},
                         "gwcelery", 'JobBatchName == "nothing-yet"', True)
    assert outcome.jobs == 3 and len(outcome.clusters) == 2
    ads = b.schedd().query(f"ClusterId == {outcome.clusters[1]}",
                           ["Requirements", "AcctGroup", "JobDescription", "RequestMemory",
                            "Online_EMFollow", "Iwd"])
    assert {a["Iwd"] for a in ads} == {"/home/emfollow/gwcelery"}
    assert [a["JobDescription"] for a in ads] == ["gwcelery-openmp-worker-0",
                                                  "gwcelery-openmp-worker-1"]
    assert all(a["AcctGroup"] == "ligo.dev.o4.cbc.pe.bayestar" and a["Online_EMFollow"] is True
               and a["RequestMemory"] == 16384 for a in ads)
    with pytest.raises(CondorConfigError):
        ops.submit(b, "bad", "executable = /bin/true\n", where, None, None, False)


def test_analyze_idle_held_running() -> None:
    b = backend()
    idle = ops.do_analyze(b, "ClusterId == 1 && ProcId == 21", "1.21")
    assert idle.status == "I" and idle.match is not None
    assert idle.match.slots == 64 and idle.match.matching == 14
    assert idle.match.matching_unclaimed == 0  # every Online_EMFollow slot is busy
    emfollow = [c for c in idle.match.clauses if "Online_EMFollow" in c.text]
    assert emfollow and emfollow[0].slots_ok == 14
    held = ops.do_analyze(b, "ClusterId == 1 && ProcId == 22", "1.22")
    assert (held.status, held.hold_code, held.hold_subcode) == ("H", 34, 102)
    assert held.match is None and held.num_job_starts == 1
    running = ops.do_analyze(b, "ClusterId == 1 && ProcId == 8", "1.8")
    assert running.status == "R" and running.worker.startswith("slot1@node") and not running.match
    with pytest.raises(CondorNotFound):
        ops.do_analyze(b, all_of(GWCELERY_SCOPE, "ClusterId == 100"), "100")


def test_analyze_names_the_clause_no_slot_satisfies() -> None:
    b = backend()
    s = b.schedd()
    result = s.submit(htcondor2.Submit("executable = /bin/true\nrequest_memory = 512GB\nqueue"))
    a = ops.do_analyze(b, f"ClusterId == {result.cluster()}", str(result.cluster()))
    assert a.match is not None and a.match.matching == 0
    assert a.match.failing == "TARGET.Memory >= 524288"


def test_helpers() -> None:
    assert split_and('(a && b) && c == "x && y" && (d)') == ["a && b", 'c == "x && y"', "d"]
    assert sinful("host:9618") == "<host:9618>"
    assert sinful("<10.0.0.1:9618?sock=schedd>") == "<10.0.0.1:9618?sock=schedd>"
    with pytest.raises(CondorConfigError):
        sinful("not an address")
    assert attr_equals("Owner", "a") == 'Owner == "a"'
