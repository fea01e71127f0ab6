"""Restart parameters and templates: only declared slots, only allowed values, refused with a
clear message; and the config's template checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.commands import CommandError
from bot.restart import params
from bot.restart.config import ParamSpec, RestartConfig

RULES = {
    "component": ParamSpec(choices=["worker", "beat", "flower"]),
    "node": ParamSpec(pattern=r"node[0-9]{1,4}", default="node1"),
    "offset": ParamSpec(pattern=r"-?[0-9]+", allow_leading_dash=True, default="0"),
}


def resolve(*given: str) -> dict[str, str]:
    return params.resolve("gwcelery", RULES, list(given))


def test_values_fill_declared_slots_with_defaults() -> None:
    assert resolve("component=beat") == {"component": "beat", "node": "node1", "offset": "0"}
    assert resolve("node=node42", "component=worker", "offset=-5")["offset"] == "-5"


@pytest.mark.parametrize(("given", "says"), [
    (["component=-x"], "may not start with '-'"),
    (["component=--all"], "may not start with '-'"),
    (["node=-node1"], "may not start with '-'"),
    (["component=A;rm"], "is not one of worker, beat, flower"),
    (["component=worker;rm -rf /"], "holds a space"),
    (["component=$(id)"], "is not one of"),
    (["component=`id`"], "is not one of"),
    (["node=node1;id"], "must match node[0-9]{1,4}"),
    (["node=node1\nid"], "U+000A"),
    (["node=node1 id"], "holds a space"),
    (["component=w\u043erker"], "U+043E (CYRILLIC SMALL LETTER O)"),  # a look-alike o
    (["component=\uff57orker"], "U+FF57 (FULLWIDTH LATIN SMALL LETTER W)"),
    (["node=node\u0661"], "U+0661"),  # an Arabic-Indic digit: [0-9] is ASCII only here
    (["component=" + "w" * 300], "too long (300 characters, at most 100)"),
    (["component="], "empty value"),
    (["component=worker", "component=beat"], "component given twice"),
    (["c\u043emponent=worker"], "is not a parameter of restart target gwcelery"),
    (["colour=red"], "is not a parameter of restart target gwcelery (parameters: "
                     "component, node, offset)"),
    (["worker"], "'worker' is not PARAM=VALUE"),
    ([], "missing component=VALUE (one of worker, beat, flower)"),
])
def test_bad_values_are_refused_with_a_clear_message(given: list[str], says: str) -> None:
    with pytest.raises(CommandError) as caught:
        resolve(*given)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message  # one line, whatever was typed


def test_a_pattern_is_a_full_match_with_ascii_classes() -> None:
    rule = ParamSpec(pattern=r"\w+")
    assert params.check_value("x", rule, "abc_1") is None
    assert params.check_value("x", rule, "abc") is None
    assert params.check_value("x", rule, "ab\u00e9") is not None  # \w is ASCII only
    assert params.check_value("x", ParamSpec(pattern="ab"), "abab") is not None


@pytest.mark.parametrize(("template", "slots"), [
    ("--component", []), ("{component}", ["component"]),
    ("--component={component}", ["component"]), ("{a}-{b}", ["a", "b"]),
    ("literal {{braces}} and {a}", ["a"]),
])
def test_slots(template: str, slots: list[str]) -> None:
    assert params.slots(template) == slots


@pytest.mark.parametrize("template", ["{", "}", "a{b", "{}", "{0}", "{a.b}", "{A}",
                                      "{a b}", "{{a}"])
def test_broken_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        params.slots(template)


def test_fill_replaces_inside_one_string_only() -> None:
    assert params.fill("--x={a}/{b} {{lit}}", {"a": "1", "b": "2"}) == "--x=1/2 {lit}"
    assert params.fill("/v1/{a}", {"a": "x/../y"}, encode=lambda v: v.replace("/", "%2F")) \
        == "/v1/x%2F..%2Fy"


def target(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "command", "argv": ["/bin/echo", "{component}"],
                            "params": {"component": {"choices": ["worker"]}}}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("targets", "says"), [
    ({"t": target(argv=["/bin/echo", "{nope}"])}, "slot {nope} is not a declared parameter"),
    ({"t": target(argv=["/bin/echo"])}, "'component' is declared but no template uses it"),
    ({"t": target(argv=["{component}", "x"])}, "argv[0] (the program) may not hold a {slot}"),
    ({"t": target(argv=["/bin/restart --all", "{component}"])}, "holds a space"),
    ({"t": target(argv=["/bin/echo", "{component"])}, "stray '{'"),
    ({"t": target(params={"component": {}})}, "exactly one of 'choices'"),
    ({"t": target(params={"component": {"choices": ["a"], "pattern": "a"}})},
     "exactly one of 'choices'"),
    ({"t": target(params={"component": {"pattern": "("}})}, "is not a regex"),
    ({"t": target(params={"component": {"choices": ["-x"]}})}, "may not start with '-'"),
    ({"t": target(params={"Component": {"choices": ["x"]}})}, "parameter name"),
    ({"list": target()}, "is a subcommand of restart"),
    ({"a.b": target()}, "target name 'a.b'"),
    ({"t": {"type": "http", "url": "https://{component}.example/x",
            "params": {"component": {"choices": ["a"]}}}}, "the host may not hold a {slot}"),
    ({"t": {"type": "http", "url": "ftp://x/y"}}, "expected http(s)://host/path"),
    ({"t": {"type": "gitlab_pipeline", "ref": "main", "variables": {"A-B": "x"}}},
     "is not a CI/CD variable name"),
    ({"t": {"type": "nomad"}}, "type"),
    ({"t": target(timeout_seconds=601)}, "600"),
])
def test_config_refuses_bad_targets(targets: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RestartConfig.model_validate({"targets": targets})
    assert says in str(caught.value)


def test_config_accepts_every_kind() -> None:
    config = RestartConfig.model_validate({"targets": {
        "cmd": target(argv=["/bin/echo", "--component={component}"]),
        "nomad": {"type": "http", "method": "PUT",
                  "url": "https://nomad:4646/v1/client/allocation/{alloc}/restart",
                  "headers": {"X-Nomad-Token": "secret-token-value"},
                  "body": {"TaskName": "{task}"},
                  "params": {"alloc": {"pattern": "[0-9a-f-]{36}"},
                             "task": {"choices": ["gwcelery-worker"]}}},
        "deploy": {"type": "gitlab_pipeline", "ref": "main",
                   "variables": {"TARGET": "{env}"}, "params": {"env": {"choices": ["prod"]}}},
        "resubmit": {"type": "condor_resubmit", "submit": "gwcelery"},
    }})
    assert sorted(config.targets) == ["cmd", "deploy", "nomad", "resubmit"]
