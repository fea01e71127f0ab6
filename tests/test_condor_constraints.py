"""Constraint building: validation, quoting of chat input, job ids, hold codes, submit files."""

from __future__ import annotations

import classad2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.condor import holdcodes, states, submitdesc
from bot.condor.constraints import (
    all_of,
    attr_equals,
    jobs_constraint,
    parse_jobid,
    quote,
    validate,
)
from bot.condor.errors import CondorBadConstraint, CondorConfigError

SCOPE = 'JobBatchName == "gwcelery"'


def matches(constraint: str, **attrs: object) -> bool:
    return classad2.ExprTree(constraint).eval(classad2.ClassAd(attrs)) is True


def test_validate_returns_the_parsers_text() -> None:
    assert validate("  RequestMemory   >  8192 ") == "RequestMemory > 8192"
    assert validate('Owner == "x" || JobStatus == 5') == 'Owner == "x" || JobStatus == 5'


@pytest.mark.parametrize("bad", [
    "true) || (true",  # would close the scope's parenthesis
    "true ] [ x = 1",  # ExprTree would silently keep only "true"
    "JobStatus == 5; Owner = 1",  # ditto, keeps "JobStatus == 5"
    'Owner == "x',  # unterminated string
    "a == 1 // comment",
    "JobStatus ==",
    "",
    "   ",
    "a\nb",
    "x" * 3000,
])
def test_validate_rejects(bad: str) -> None:
    with pytest.raises(CondorBadConstraint):
        validate(bad)


def test_hostile_owner_is_a_string_literal() -> None:
    hostile = 'x" || true'
    constraint = all_of(SCOPE, attr_equals("Owner", hostile))
    assert constraint == '(JobBatchName == "gwcelery") && (Owner == "x\\" || true")'
    assert not matches(constraint, JobBatchName="gwcelery", Owner="emfollow")
    assert matches(constraint, JobBatchName="gwcelery", Owner=hostile)
    assert not matches(constraint, JobBatchName="other", Owner=hostile)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
               max_size=40))
def test_any_owner_matches_itself_and_nothing_else(owner: str) -> None:
    constraint = all_of(SCOPE, attr_equals("Owner", owner))
    assert matches(constraint, JobBatchName="gwcelery", Owner=owner)
    assert not matches(constraint, JobBatchName="gwcelery", Owner=owner + "_other")
    assert not matches(constraint, JobBatchName="elsewhere", Owner=owner)
    assert classad2.unquote(quote(owner)) == owner


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="()[]{};\"'/*&|!=<> aTxyz0123456789.", min_size=1, max_size=30))
def test_user_constraints_cannot_widen_the_scope(text: str) -> None:
    try:
        user = validate(text)
    except CondorBadConstraint:
        return
    combined = all_of(SCOPE, user)
    # Whatever the user wrote, a job outside the scope never matches.
    assert not matches(combined, JobBatchName="other", a=1, T=1, x=1, y=1, z=1)


def test_control_characters_in_values_are_refused() -> None:
    with pytest.raises(CondorBadConstraint):
        attr_equals("Owner", "a\nb")
    with pytest.raises(CondorBadConstraint):
        attr_equals("Owner) || (true", "x")


def test_job_ids() -> None:
    assert parse_jobid("123.4") == (123, 4)
    assert parse_jobid("123") == (123, None)
    for bad in ["12.x", "1.2.3", "-1", "1 || true", ""]:
        with pytest.raises(CondorBadConstraint):
            parse_jobid(bad)
    constraint = jobs_constraint(["12.0", "12.3", "15", "15.2", "7.1"])
    assert matches(constraint, ClusterId=12, ProcId=3)
    assert matches(constraint, ClusterId=15, ProcId=9)  # the whole cluster
    assert matches(constraint, ClusterId=7, ProcId=1)
    assert not matches(constraint, ClusterId=12, ProcId=1)
    assert not matches(constraint, ClusterId=7, ProcId=0)


def test_letters_and_their_constraints_agree() -> None:
    cases = [
        ({"JobStatus": 1}, "I"), ({"JobStatus": 2}, "R"), ({"JobStatus": 3}, "X"),
        ({"JobStatus": 4}, "C"), ({"JobStatus": 5}, "H"), ({"JobStatus": 6}, ">"),
        ({"JobStatus": 7}, "S"), ({"JobStatus": 2, "TransferringInput": True}, "<"),
        ({"JobStatus": 2, "TransferringOutput": True}, ">"),
    ]
    for attrs, letter in cases:
        assert states.letter_of(attrs) == letter
        chosen = [x for x, c in states.LETTER_CONSTRAINT.items() if matches(c, **attrs)]
        assert chosen == [letter], (attrs, chosen)
    assert states.letters_for(["held", "transferring"]) == ("H", "<", ">")


def test_hold_codes_in_words() -> None:
    assert holdcodes.explain(34, 102).startswith("34 JobOutOfResources (memory)")
    assert "errno 2 ENOENT" in holdcodes.explain(6, 2)
    assert "plugin exited with 1" in holdcodes.explain(13, 256)
    assert "timed out" in holdcodes.explain(12, 62)
    assert holdcodes.explain(1, 0).startswith("1 UserRequest: someone put the job on hold")
    assert "not in the table" in holdcodes.explain(999)
    assert holdcodes.explain(None) == ""


def test_submit_description_is_split_per_queue_statement() -> None:
    parts = submitdesc.split("universe = local\nexecutable = /bin/env\n# c\nqueue\n"
                             "universe = vanilla\nrequest_memory = 1GB \\\n\nqueue 16\n")
    assert len(parts) == 2
    assert parts[0].endswith("queue\n") and "vanilla" not in parts[0]
    assert "universe = vanilla" in parts[1] and parts[1].endswith("queue 16\n")
    for bad in ["executable = /bin/true\n", "queue 3 from list.txt\n", "not a command\nqueue\n"]:
        with pytest.raises(CondorConfigError):
            submitdesc.split(bad)
    with pytest.raises(CondorConfigError):
        submitdesc.check_attributes({"queue": "5"})
    with pytest.raises(CondorConfigError):
        submitdesc.check_attributes({"accounting_group": "a\nqueue 100"})
    submitdesc.check_attributes({"accounting_group": "ligo.dev", "+Online_EMFollow": "True"})


def test_a_constraint_whose_canonical_text_does_not_parse_is_refused() -> None:
    # Found by hypothesis: classad prints "0 .T" as "0.T", which it cannot parse back; the
    # schedd would have refused the combined constraint with a confusing error.
    with pytest.raises(CondorBadConstraint):
        validate("0 .T")
