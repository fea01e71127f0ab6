"""The permission gate: a table-driven matrix, explanations, dynamic roles, one gate for all."""

from __future__ import annotations

import pytest
from conftest import console

from bot.core import OutcomeStatus
from bot.identity import Caller, Person

# (person, channel, command line) -> expected status. Roles: alice/bob shifters (sample.* with
# sample.restart needing an expert), carol/erin experts, dave viewer in #ops only,
# "stranger" unknown.
MATRIX = [
    ("alice", None, "sample echo hi", OutcomeStatus.OK),
    ("alice", "ops", "sample echo hi", OutcomeStatus.OK),
    ("alice", None, "sample wipe disk", OutcomeStatus.PENDING),  # destructive: confirmation
    ("alice", None, "sample restart gw", OutcomeStatus.PENDING),  # approval by an expert
    ("alice", None, "audit", OutcomeStatus.OK),
    ("carol", None, "sample restart gw", OutcomeStatus.OK),  # experts need no approval
    ("carol", None, "sample wipe disk", OutcomeStatus.PENDING),
    ("dave", "ops", "sample echo hi", OutcomeStatus.OK),  # viewer grant limited to ops
    ("dave", "alerts", "sample echo hi", OutcomeStatus.DENIED),
    ("dave", None, "sample echo hi", OutcomeStatus.DENIED),
    ("dave", "ops", "sample wipe disk", OutcomeStatus.DENIED),
    ("dave", "ops", "audit", OutcomeStatus.DENIED),
    ("dave", None, "help", OutcomeStatus.OK),  # baseline for everyone
    ("dave", None, "whoami", OutcomeStatus.OK),
    ("stranger", None, "help", OutcomeStatus.OK),
    ("stranger", None, "whoami", OutcomeStatus.OK),
    ("stranger", "ops", "sample echo hi", OutcomeStatus.DENIED),
    ("stranger", None, "audit", OutcomeStatus.DENIED),
    ("stranger", None, "why sample echo", OutcomeStatus.DENIED),
    ("stranger", None, "approve abcdef", OutcomeStatus.DENIED),  # decisions need a person
    ("stranger", None, "approvals", OutcomeStatus.DENIED),
]


@pytest.mark.parametrize(("person", "channel", "line", "expected"), MATRIX)
async def test_matrix(make_bot, person, channel, line, expected) -> None:  # type: ignore[no-untyped-def]
    import sample_handlers

    bot = await make_bot()
    sample_handlers.RUNS.clear()
    outcome = await bot.handle(console(person, line, channel))
    assert outcome.status == expected, outcome.reply.text
    ran = [r for r in sample_handlers.RUNS if r[0] == outcome.spec.key] if outcome.spec else []
    if line.startswith("sample"):
        assert bool(ran) == (expected == OutcomeStatus.OK)  # nothing runs unless allowed


async def test_unknown_users_baseline_is_configurable(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"bot": {"unknown_user_allow": ["help"]}})
    assert (await bot.handle(console("stranger", "whoami"))).status == OutcomeStatus.DENIED
    assert (await bot.handle(console("stranger", "help"))).status == OutcomeStatus.OK


async def test_deny_by_default_with_no_grants(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"grants": []})
    for line in ("sample echo x", "audit", "why help"):
        assert (await bot.handle(console("carol", line))).status == OutcomeStatus.DENIED


async def test_identity_is_by_immutable_id_not_name(make_bot) -> None:  # type: ignore[no-untyped-def]
    from bot.identity import Inbound

    bot = await make_bot()
    impostor = Inbound(platform="slack", user_id="U0MALLORY", user_name="alice",
                       text="sample echo hi")
    real = Inbound(platform="slack", user_id="U0ALICE01", user_name="whatever",
                   text="sample echo hi")
    assert (await bot.handle(impostor)).status == OutcomeStatus.DENIED
    assert (await bot.handle(real)).status == OutcomeStatus.OK


async def test_why_explains_allow_and_deny(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    allowed = (await bot.handle(console("alice", "why sample restart"))).reply.text
    assert "grant #1 (group shifters)" in allowed and "approval by role expert" in allowed
    denied = (await bot.handle(console("alice", "why sample echo as dave"))).reply.text
    assert "dave may not run" in denied and "no grant gives dave" in denied
    in_ops = (await bot.handle(console("alice", "why sample echo as dave", "ops"))).reply.text
    assert "dave may run" in in_ops and "channels ops" in in_ops


async def test_who_can(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    text = (await bot.handle(console("alice", "who-can sample restart"))).reply.text
    assert "group shifters [alice, bob] (role shifter) (with approval by role expert)" in text
    assert "- carol (role expert)" in text and "- erin (role expert)" in text
    assert "dave" not in text
    viewer = (await bot.handle(console("alice", "who-can sample echo"))).reply.text
    assert "dave (role viewer) in channels ops" in viewer


async def test_whoami_shows_roles(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot()
    reply = (await bot.handle(console("carol", "whoami"))).reply
    assert reply.table is not None
    assert ["expert", "grant #2 (person carol)"] in reply.table.rows


async def test_dynamic_role_provider(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await make_bot({"roles": {"on-shift": {"allow": ["sample.wipe"]}}})
    on_shift = {"dave"}
    bot.gate.add_role_provider(
        "rota", lambda caller: ["on-shift"] if caller.person and caller.person.key in on_shift
        else [])
    assert (await bot.handle(console("dave", "sample wipe x"))).status == OutcomeStatus.PENDING
    on_shift.clear()
    assert (await bot.handle(console("dave", "sample wipe x"))).status == OutcomeStatus.DENIED
    assert "whoever provider 'rota' grants" in "\n".join(bot.gate.who_can("sample.wipe"))


async def test_role_inheritance_and_cycles_do_not_loop(make_config) -> None:  # type: ignore[no-untyped-def]
    from bot.identity import Directory
    from bot.permissions import Gate

    config = make_config({"roles": {"a": {"inherits": ["b"], "allow": ["help"]},
                                    "b": {"inherits": ["a"], "allow": ["audit"]}},
                          "grants": [{"role": "a", "people": ["alice"]}]})
    gate = Gate(config, Directory.from_config(config.people))
    alice = Caller("console", "alice", Person("alice", "Alice"))
    assert gate.check(alice, "audit").allowed
    assert not gate.check(alice, "sample.wipe").allowed
