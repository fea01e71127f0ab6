"""The expression language (parser, types, evaluation) and the expression check: verdicts from
other checks' values, "for DURATION", missing values, config errors with their key path."""

from __future__ import annotations

import operator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from status_env import DATA, StubEnv, env_at

from bot.features import _problems
from bot.status.checks.expression import ExpressionCheck
from bot.status.config import StatusConfig
from bot.status.expr import ExpressionError, evaluate, parse
from bot.status.model import CheckResult, Level
from bot.status.runner import run_check, run_checks

# ------------------------------------------------------------------ the language


def truth(text: str, **values: float) -> bool:
    def lookup(check: str, key: str) -> float:
        return values[f"{check}_{key}".replace(".", "_").replace("-", "_")]

    return evaluate(parse(text), lookup)[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("a.x - b.y > 0", True), ("a.x - b.y > 2", False), ("a.x > 0 and b.y < 3", True),
    ("a.x > 0 and b.y > 3", False), ("a.x > 5 or b.y > 1", True), ("not a.x > 5", True),
    ("not (a.x > 1 or b.y > 1)", False), ("a.x + b.y * 2 == 7", True),  # * before +
    ("(a.x + b.y) * 2 == 10", True), ("a.x / b.y >= 1.5", True), ("-a.x < -2", True),
    ("- -a.x == 3", True), ("a.x - b.y - 1 == 0", True),  # left-associative
    ("12 / 3 / 2 == 2", True), ("a.x != b.y", True), ("true", True), ("false or true", True),
    ("true and not false", True), ("(a.x > 1) == (b.y > 1)", True),
    ("not a.x > 1 and b.y > 5", False),  # not binds tighter than and
    ("a.x > 5 or a.x > 2 and b.y > 5", False), ("1e3 > 999.5", True), (".5 < a.x", True),
])
def test_evaluation(text: str, expected: bool) -> None:
    assert truth(text, a_x=3.0, b_y=2.0) is expected


def test_names_and_references() -> None:
    expr = parse('nomad-prod.workers - pantasks.stack.run.nfail > disk."/var/log" for 1h30m')
    assert expr.references() == {"nomad-prod", "pantasks", "disk"}
    assert expr.names() == ["nomad-prod.workers", "pantasks.stack.run.nfail", "disk./var/log"]
    assert expr.duration == 5400
    values = {"nomad-prod.workers": 10, "pantasks.stack.run.nfail": 2, "disk./var/log": 3}
    ok, used = evaluate(expr, lambda check, key: values[f"{check}.{key}"])
    assert ok and used == values


@pytest.mark.parametrize(("duration", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200),
                                                   ("1d", 86400), ("1h30m", 5400),
                                                   ("1.5m", 90)])
def test_durations(duration: str, seconds: float) -> None:
    assert parse(f"a.x > 0 for {duration}").duration == seconds


@pytest.mark.parametrize(("text", "words"), [
    ("a.x", "is a number, not a condition"),
    ("a.x >", "at the end: expected a number"),
    ("0 < a.x < 5", "column 9: comparisons do not chain"),
    ("a.x > 0 for", "expected a duration"),
    ("a.x > 0 for 0s", "longer than 0"),
    ("a.x > 0 for 15", "column 13: expected a duration"),
    ("a.x > 0 for 15q", "column 13: unexpected '15q'"),
    ("a.x + (b.y > 1) > 0", "column 5: '+' needs a number"),
    ("a.x > 1 and 3", "column 9: 'and' needs a condition"),
    ("not 3", "column 1: 'not' needs a condition"),
    ("foo > 1", "column 1: 'foo' is not a value: write check.value"),
    ("(a.x > 1", "'(' at column 1 is not closed"),
    ("a.x > 1)", "column 8: unexpected ')'"),
    ("a.x >> 1", "column 6: expected a number"),
    ("a.x > 1 ; b.y", "column 9: unexpected ';"),
    ("", "expected a number"),
    ("a.x > 1 or", "at the end"),
    ("__import__('os') > 1", "column 12: unexpected"),
    ("a.x ** 2 > 1", "column 6"),
    ("a.x > 0 for 5m and b.y > 1", "column 16: unexpected 'and'"),
])
def test_parse_errors(text: str, words: str) -> None:
    with pytest.raises(ExpressionError, match=None) as caught:
        parse(text)
    assert words in str(caught.value)


# Random well-typed expressions, evaluated by the parser and by Python on the same tree.
_numbers = st.one_of(st.integers(-50, 50).map(float),
                     st.sampled_from(["a.x", "b.y", "c-d.z"]))


def _number_expr() -> st.SearchStrategy[tuple[str, Any]]:
    leaf = _numbers.map(lambda v: (v if isinstance(v, str) else repr(v), v))
    return st.recursive(leaf, lambda inner: st.tuples(
        inner, st.sampled_from(["+", "-", "*"]), inner).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})", (t[1], t[0][1], t[2][1]))), max_leaves=6)


_VALUES = {"a.x": 3.0, "b.y": -2.0, "c-d.z": 7.0}
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, ">": operator.gt,
        "<=": operator.le, "==": operator.eq, "and": lambda a, b: a and b,
        "or": lambda a, b: a or b}


def _reference(tree: Any) -> Any:
    if isinstance(tree, str):
        return _VALUES[tree]
    if isinstance(tree, float):
        return tree
    if tree[0] == "not":
        return not _reference(tree[1])
    return _OPS[tree[0]](_reference(tree[1]), _reference(tree[2]))


_comparisons = st.tuples(_number_expr(), st.sampled_from([">", "<=", "=="]),
                         _number_expr()).map(
    lambda t: (f"{t[0][0]} {t[1]} {t[2][0]}", (t[1], t[0][1], t[2][1])))
_conditions = st.recursive(_comparisons, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
        lambda t: (f"({t[0][0]}) {t[1]} ({t[2][0]})", (t[1], t[0][1], t[2][1]))),
    inner.map(lambda t: (f"not ({t[0]})", ("not", t[1])))), max_leaves=4)


@given(_conditions)
def test_matches_a_reference_evaluation(case: tuple[str, Any]) -> None:
    text, tree = case
    ok, _ = evaluate(parse(text), lambda check, key: _VALUES[f"{check}.{key}"])
    assert ok == bool(_reference(tree)), text


# ------------------------------------------------------------------ the check


def check(expression: str, **keys: Any) -> ExpressionCheck:
    return ExpressionCheck.model_validate({"type": "expression", "name": "e",
                                           "expression": expression, **keys})


WORKERS = "openstack.workers - nomad.workers > 0"


@pytest.mark.parametrize(("level", "os_workers", "expected"), [
    ("critical", 12, Level.CRITICAL), ("warning", 12, Level.WARNING),
    ("critical", 10, Level.OK)])
async def test_without_duration(level: str, os_workers: float, expected: Level) -> None:
    env = StubEnv(values={"openstack": {"workers": os_workers}, "nomad": {"workers": 10}})
    result = await run_check(check(WORKERS, level=level, summary="nomad lost workers"), env)
    assert result.level is expected
    shown = f"(openstack.workers={int(os_workers)}, nomad.workers=10)"
    if expected is Level.OK:
        assert result.summary == f"condition false {shown}"
    else:
        assert result.summary == f"nomad lost workers {shown}"
    assert result.values["value"] == (expected is not Level.OK)


async def test_missing_values_name_what_is_missing() -> None:
    env = StubEnv(values={"openstack": {"workers": 3, "cores": 9}})
    result = await run_check(check(WORKERS), env)
    assert (result.level, result.summary) == (
        Level.UNKNOWN, "no result yet for check nomad (needed for nomad.workers)")
    env.values["nomad"] = {"queued": 1}
    result = await run_check(check(WORKERS), env)
    assert result.summary == "check nomad has no value 'workers' (it has: queued)"


async def test_division_by_zero_is_unknown() -> None:
    env = StubEnv(values={"a": {"x": 1}, "b": {"y": 0}})
    result = await run_check(check("a.x / b.y > 1"), env)
    assert (result.level, result.summary) == (Level.UNKNOWN, "division by zero")


async def test_for_duration_holds_then_alarms_then_clears() -> None:
    expr = check(WORKERS + " for 15m", level="warning", interval_seconds=60)
    values = {"openstack": {"workers": 12}, "nomad": {"workers": 10}}
    previous: CheckResult | None = None
    levels = []
    for minute in range(0, 20):
        env = env_at(minute=minute)
        env.values, env.previous_result = values, previous
        if minute == 17:
            values = {"openstack": {"workers": 10}, "nomad": {"workers": 10}}
            env.values = values
        previous = await run_check(expr, env)
        levels.append(previous.level)
    assert levels[:15] == [Level.OK] * 15
    assert levels[15:17] == [Level.WARNING] * 2
    assert levels[17:] == [Level.OK] * 3
    assert previous is not None and previous.state == {"true_since": None}


async def test_for_duration_texts_and_state() -> None:
    expr = check(WORKERS + " for 15m", level="warning", summary="Nomad misses workers")
    env = env_at(hour=12, minute=0)
    env.values = {"openstack": {"workers": 12}, "nomad": {"workers": 10}}
    first = await run_check(expr, env)
    assert first.summary == ("true for 0s of 15m (openstack.workers=12, nomad.workers=10)")
    assert first.state == {"true_since": "2025-01-01T12:00:00+00:00"}
    env = env_at(hour=12, minute=20)
    env.values = {"openstack": {"workers": 12}, "nomad": {"workers": 10}}
    env.previous_result = CheckResult(Level.OK, "", state=first.state,
                                      checked_at=env.now() - timedelta(minutes=1))
    later = await run_check(expr, env)
    assert later.level is Level.WARNING
    assert later.summary == ("Nomad misses workers (openstack.workers=12, nomad.workers=10) "
                             "for 20m")
    assert later.values["held_seconds"] == 1200


async def test_a_gap_in_the_results_restarts_the_count() -> None:
    expr = check(WORKERS + " for 15m", interval_seconds=60)
    env = env_at(hour=14)
    env.values = {"openstack": {"workers": 12}, "nomad": {"workers": 10}}
    env.previous_result = CheckResult(
        Level.OK, "", state={"true_since": "2025-01-01T12:00:00+00:00"},
        checked_at=env.now() - timedelta(hours=1))  # nobody looked for an hour
    result = await run_check(expr, env)
    assert result.level is Level.OK and result.state == {"true_since": env.now().isoformat()}


async def test_unknown_keeps_true_since() -> None:
    expr = check(WORKERS + " for 15m")
    state = {"true_since": "2025-01-01T11:50:00+00:00"}
    env = env_at(hour=12)
    env.previous_result = CheckResult(Level.OK, "", state=state)
    result = await run_check(expr, env)  # no values at all
    assert result.level is Level.UNKNOWN and result.state == state


async def test_runner_feeds_this_rounds_values() -> None:
    from bot.status.checks.nagios import NagiosCheck

    def plugin(name: str, perf: str) -> NagiosCheck:
        return NagiosCheck(type="nagios", name=name, command=[
            "/bin/sh", str(DATA / "exit_code.sh"), "0", f"{name.upper()} OK | {perf}"])

    checks = [check("nomad.queued > 0 and openstack.workers < 210", name="capacity"),
              plugin("nomad", "queued=4 workers=200"), plugin("openstack", "workers=200")]
    stale = StubEnv(values={"nomad": {"queued": 0}, "openstack": {"workers": 500}})
    results = await run_checks(checks, lambda c: stale)
    assert results["capacity"].level is Level.CRITICAL
    assert results["capacity"].summary.endswith("(nomad.queued=4, openstack.workers=200)")


# ------------------------------------------------------------------ config errors


def problems(checks: list[dict]) -> list[str]:
    try:
        StatusConfig.model_validate({"checks": checks})
    except ValidationError as exc:
        return [str(p) for p in _problems("status", StatusConfig, exc)]
    return []


NAGIOS = {"type": "nagios", "command": ["check_dummy", "0"]}


def test_config_errors_carry_the_key_path() -> None:
    found = problems([{**NAGIOS, "name": "nomad"},
                      {"type": "expression", "name": "bad", "expression": "nomad.x >"}])
    assert found == ["status.checks[1].expression: Value error, at the end: expected a "
                     "number, a value (check.value) or '('"]
    found = problems([{**NAGIOS, "name": "nomad"},
                      {"type": "expression", "name": "e", "expression": "nomda.x > 1"}])
    assert found == ["status.checks[1].expression: no check named 'nomda' "
                     "(did you mean 'nomad'?)"]
    found = problems([{"type": "expression", "name": "e", "expression": "e.x > 1"}])
    assert found == ["status.checks[0].expression: refers to itself"]


def test_cycles_and_duplicates() -> None:
    found = problems([{"type": "expression", "name": "a", "expression": "b.value > 0"},
                      {"type": "expression", "name": "b", "expression": "c.value > 0"},
                      {"type": "expression", "name": "c", "expression": "a.value > 0"},
                      {**NAGIOS, "name": "a"}])
    assert "status.checks[3].name: duplicate check name 'a' (also checks[0])" in found
    assert "status.checks[0].expression: circular references: a -> b -> c -> a" in found
    chain = problems([{"type": "expression", "name": "a", "expression": "b.value > 0"},
                      {"type": "expression", "name": "b", "expression": "n.x > 0"},
                      {**NAGIOS, "name": "n"}])
    assert chain == []


def test_unknown_keys_and_types_in_checks() -> None:
    found = problems([{"type": "expression", "name": "e", "expresion": "a.x > 1"},
                      {"type": "expresion", "name": "f"}, {"name": "g"}])
    assert "status.checks[0].expresion: unknown key 'expresion' (did you mean " \
           "'expression'?)" in found
    assert "status.checks[0].expression: Field required" in found
    assert any(p.startswith("status.checks[1].type: unknown check type 'expresion' (one of: "
                            "nagios, http,") for p in found)
    assert any(p.startswith("status.checks[2]: every check needs a 'type'") for p in found)
    nested = problems([{"type": "http", "name": "h", "url": "http://127.0.0.1/",
                        "extract": [{"select": ".a", "expct": 1}], "latency": {"warn": 1}}])
    assert sorted(nested) == [
        "status.checks[0].extract[0].expct: unknown key 'expct' (did you mean 'expect'?)",
        "status.checks[0].latency.warn: unknown key 'warn' (did you mean 'warning'?)"]


@pytest.mark.parametrize("level", ["ok", "bad"])
def test_bad_level(level: str) -> None:
    with pytest.raises(ValidationError):
        check("a.x > 1", level=level)
