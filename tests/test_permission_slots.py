"""A permission completed by an argument (``restart.{target}``): the gate decides per target,
for confirmation, approval and the run-time re-check; and a family that is a command and has
subcommands (``status NAME`` next to ``status ack NAME``)."""

from __future__ import annotations

import pytest
import slot_handlers
from conftest import CORE_HANDLERS, console

from bot.commands import Arg, command, specs_of
from bot.configchecks import check_references
from bot.markup import plain
from bot.outcome import OutcomeStatus
from bot.registry import Registry
from bot.reply import Choice

CONFIG = {
    "bot": {"handlers": [*CORE_HANDLERS, "slot_handlers"]},
    "roles": {
        "viewer": {"allow": ["help", "why", "who-can", "svc.list"]},
        "shifter": {"inherits": ["viewer"], "allow": ["svc.alpha", "svc.beta"],
                    "approval": {"svc.beta": "expert"}},
        "expert": {"inherits": ["shifter"], "allow": ["svc.*"]},
    },
}


@pytest.fixture(autouse=True)
def _clean() -> None:
    slot_handlers.RAN.clear()


async def test_subcommand_wins_over_the_family_command(make_bot) -> None:
    bot = await make_bot(CONFIG)
    listed = await bot.handle(console("alice", "svc list"))
    assert "alpha beta" in plain(listed.reply.text)
    asked = await bot.handle(console("alice", "svc alpha"))
    assert asked.status == OutcomeStatus.PENDING


@pytest.mark.parametrize(("who", "target", "status"), [
    ("alice", "alpha", OutcomeStatus.PENDING),  # confirm first
    ("alice", "gamma", OutcomeStatus.DENIED),  # no grant names svc.gamma
    ("dave", "alpha", OutcomeStatus.DENIED),  # a viewer
    ("carol", "gamma", OutcomeStatus.PENDING),  # svc.* for experts
])
async def test_the_gate_decides_per_target(make_bot, who, target, status) -> None:
    bot = await make_bot(CONFIG)
    outcome = await bot.handle(console(who, f"svc {target}", "ops"))
    assert outcome.status == status, plain(outcome.reply.text)
    if status == OutcomeStatus.DENIED:
        assert f"svc.{target}" in plain(outcome.reply.text) or who == "dave"
    assert slot_handlers.RAN == []


async def test_approval_rules_match_the_completed_permission(make_bot) -> None:
    bot = await make_bot(CONFIG)
    direct = await bot.handle(console("alice", "svc alpha"))
    done = await bot.decide(console("alice", ""), direct.request_id, Choice.CONFIRM)
    assert slot_handlers.RAN == ["alpha"], plain(done.reply.text)
    guarded = await bot.handle(console("alice", "svc beta"))
    waiting = await bot.decide(console("alice", ""), guarded.request_id, Choice.CONFIRM)
    assert slot_handlers.RAN == ["alpha"]  # svc.beta needs an expert's approval
    assert "role expert must approve" in plain(waiting.reply.text)
    approved = await bot.decide(console("carol", ""), guarded.request_id, Choice.APPROVE)
    assert slot_handlers.RAN == ["alpha", "beta"], plain(approved.reply.text)


async def test_the_run_time_recheck_uses_the_target(make_bot, make_config) -> None:
    bot = await make_bot(CONFIG)
    asked = await bot.handle(console("alice", "svc alpha"))
    # The grant changes before the confirmation: svc.alpha is no longer alice's.
    narrowed = make_config({**CONFIG, "roles": {**CONFIG["roles"], "shifter": {
        "inherits": ["viewer"], "allow": ["svc.beta"]}}})
    later = await make_bot(config=narrowed)
    outcome = await later.decide(console("alice", ""), asked.request_id, Choice.CONFIRM)
    assert outcome.status == OutcomeStatus.DENIED, plain(outcome.reply.text)
    assert slot_handlers.RAN == []


@pytest.mark.parametrize("value", ["al*", "a.b", "?", "", "x" * 80])
def test_values_that_are_not_plain_names_complete_nothing(value) -> None:
    spec = specs_of(slot_handlers.restart)[0]
    assert spec.permission_for({"target": value}) == "svc.?"
    assert spec.permission_for({"target": "alpha"}) == "svc.alpha"
    assert spec.permission_pattern() == "svc.*"


@pytest.mark.parametrize(("permission", "args"), [
    ("x.{nope}", [Arg("target")]),  # names no argument
    ("x.{target}.y", [Arg("target")]),  # not trailing
    ("x.{a}{b}", [Arg("a"), Arg("b")]),  # two slots
    ("x.{target}", [Arg("target", required=False)]),
    ("x.{target}", [Arg("target", many=True)]),
])
def test_bad_slot_declarations_are_refused_at_import(permission, args) -> None:
    async def handler(ctx):  # pragma: no cover - never runs
        raise AssertionError

    with pytest.raises(ValueError, match="permission"):
        specs_of(command("x", summary="x", permission=permission, args=args)(handler))


def test_config_checks_know_the_completed_permissions(make_config) -> None:
    registry = Registry().load([*CORE_HANDLERS, "slot_handlers"])
    good = make_config(CONFIG)
    assert not [p for p in check_references(good, registry) if "svc" in p.path]
    bad = make_config({**CONFIG, "roles": {**CONFIG["roles"], "viewer": {
        "allow": ["svx.alpha"]}}})
    problems = [p for p in check_references(bad, registry) if p.path.startswith("roles.viewer")]
    assert problems and "svx.alpha" in problems[0].message


async def test_why_and_who_can_name_the_completed_permission(make_bot) -> None:
    bot = await make_bot(CONFIG)
    why = await bot.handle(console("alice", "why svc beta as dave"))
    assert "svc.beta" in plain(why.reply.text)
    who = await bot.handle(console("alice", "who-can svc gamma"))
    text = plain(who.reply.text) + plain(who.reply.title or "")
    assert "svc.gamma" in text and "expert" in text


async def test_help_of_a_family_with_a_command_and_subcommands_lists_both(make_bot) -> None:
    bot = await make_bot(CONFIG)
    shown = await bot.handle(console("carol", "help svc"))
    rows = [row[0] for row in shown.reply.table.rows]
    assert any(r.startswith("svc TARGET") for r in rows) and "svc list" in rows, rows
    one = await bot.handle(console("carol", "help svc list"))
    assert "svc list" in plain(one.reply.title or "") + plain(one.reply.text)
