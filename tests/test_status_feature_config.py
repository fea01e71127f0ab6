"""The status feature with a real config: check-config's cross-checks (channels, names that are
subcommands, mentions, timeouts), a real plugin (monitoring-plugins' check_dummy) answering
`status`, the section left empty, and the checks' HTCondor counts through the condor service."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from conftest import console, deep_merge
from fakes.condor import condor_config, demo_pool
from test_status_feature_rig import STATUS_ROLES

from bot.configchecks import check_references
from bot.markup import plain
from bot.registry import Registry
from bot.status.env import CondorUnavailable, StatusEnv, condor_counts

DUMMY = "/usr/lib/nagios/plugins/check_dummy"


def nagios(name: str, *args: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "nagios", "command": ["check_dummy", *args], **keys}


def problems(make_config: Any, section: dict[str, Any]) -> list[str]:
    config = make_config(deep_merge(STATUS_ROLES, {"status": section}))
    registry = Registry().load(config.bot.handlers)
    return [str(p) if p.severity == "warning" else f"error: {p}"
            for p in check_references(config, registry) if p.path.startswith("status")]


def test_check_config_cross_checks_the_status_section(make_config) -> None:
    found = problems(make_config, {
        "channel": "opz", "mention": ["shifters", "on-shift"],
        "checks": [nagios("history", "0", channel="nowhere", timeout_seconds=30,
                          interval_seconds=10, mention=["carol", "nobody"]),
                   nagios("disk", "0")]})
    assert found == [
        "error: status.channel: unknown channel alias 'opz' (add it under 'channels:')",
        "warning: status.mention[1]: 'on-shift' is not a person, group or role in the config "
        "(fine for a role a provider grants (on-shift); otherwise nobody is mentioned)",
        "error: status.checks[0].channel: unknown channel alias 'nowhere' (add it under "
        "'channels:')",
        "error: status.checks[0].name: 'history' is a status subcommand (choose another name)",
        "warning: status.checks[0].timeout_seconds: longer than the interval: runs are skipped "
        "while the previous one goes on",
        "warning: status.checks[0].mention[1]: 'nobody' is not a person, group or role in the "
        "config (fine for a role a provider grants (on-shift); otherwise nobody is mentioned)"]


def test_a_check_needs_a_channel_for_its_notices(make_config) -> None:
    assert problems(make_config, {"checks": [nagios("disk", "0"),
                                             nagios("queue", "0", channel="alerts")]}) == [
        "error: status.checks[0].channel: no channel for its notices (set status.channel or "
        "this check's channel)"]
    assert problems(make_config, {"channel": "ops", "checks": [nagios("disk", "0")]}) == []
    assert problems(make_config, {}) == []


async def test_an_empty_section_is_a_quiet_feature(make_bot) -> None:
    bot = await make_bot(deep_merge(STATUS_ROLES, {"status": {}}))
    outcome = await bot.handle(console("alice", "status"))
    assert outcome.reply.text == "No status checks are configured (status.checks)."
    assert "status.tick" in bot.registry.jobs and "status.prune" in bot.registry.jobs


@pytest.mark.skipif(shutil.which("check_dummy", path="/usr/lib/nagios/plugins") is None,
                    reason="monitoring-plugins-basic is not installed (check_dummy)")
async def test_status_runs_real_plugins(make_bot) -> None:
    bot = await make_bot(deep_merge(STATUS_ROLES, {"status": {"channel": "ops", "checks": [
        nagios("fine", "0", "all good"), nagios("disk", "2", "/ is 97% full"),
        nagios("odd", "3", "cannot tell")]}}))
    outcome = await bot.handle(console("alice", "status"))
    text = plain(outcome.reply.text)
    assert text.startswith("CRITICAL: 2 of 3 checks not OK")
    lines = text.splitlines()[1:]
    assert lines[0].startswith("[CRIT] disk: CRITICAL: / is 97% full")
    assert lines[1].startswith("[UNKN] odd: UNKNOWN: cannot tell")
    assert lines[2].startswith("[ok] fine: OK: all good")


async def test_condor_counts_come_from_the_condor_service(make_bot) -> None:
    bot = await make_bot(deep_merge(condor_config({"all": demo_pool()}),
                                    {"bot": {"handlers": ["handlers.condor", "handlers.status"]}}))
    env = StatusEnv(bot, None, {})
    counts = await env.condor_counts("all")
    assert counts["total"] == 300
    assert sum(v for k, v in counts.items() if k != "total") == 300
    assert counts["running"] > counts["idle"] > counts["held"] > 0
    assert "transferring_output" in counts  # every state named, zero or not
    with pytest.raises(Exception, match="unknown pool 'nope'"):
        await condor_counts(bot, "nope")


async def test_condor_counts_without_pools_say_so(make_bot) -> None:
    bot = await make_bot(deep_merge(STATUS_ROLES, {}))
    with pytest.raises(CondorUnavailable, match="no HTCondor pool is configured"):
        await StatusEnv(bot, None, {}).condor_counts(None)
