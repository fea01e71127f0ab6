"""What a person typed, quoted back in a reply written in Python (not a template), is inert.

Error messages quote the input ("No command '@alice'"), titles name it, the gate's reasons name
the caller: each goes through ``user()``/``code()`` or, for a ``CommandError`` and a plan
step's refusal, is user text as a whole. Read the way each platform reads it (the helpers of
tests/test_escaping.py): no mention, image or link on Mattermost, nothing Slack parses.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, condor_config, demo_pool
from test_escaping import assert_slack_inert, mattermost_mass_mentions, outside_code

from bot.adapters.console import ConsoleAdapter, ConsoleSession
from bot.core import Bot, OutcomeStatus
from bot.identity import Inbound
from bot.markup import code, is_marked, plain, user
from bot.pending import Kind
from bot.render import render_text
from bot.reply import Choice, Reply

# Free text: an image, a person, Slack's broadcast, a code span, Mattermost's broadcast.
HOSTILE = "![x](http://e/x.png) @alice <!here> `x` @channel"
# What a word slot (letters, digits, _ . @ : / + = , * -) lets through: a person, a link.
MENTION, LINK = "@alice", "http://e/x.png"


def assert_inert(reply: Reply, case: str) -> None:
    mattermost = render_text(reply, "mattermost")
    assert not is_marked(mattermost), case
    assert mattermost_mass_mentions(mattermost) == set(), (case, mattermost)
    live = re.sub(r"\\.", "", outside_code(mattermost))  # what markdown still parses
    assert "![" not in live and "](" not in live, (case, mattermost)  # images, links
    assert "://" not in live, (case, mattermost)  # bare links (autolinked)
    assert not re.search(r"@(?!\u200d)\w", live), (case, mattermost)  # anybody notified
    slack = render_text(reply, "slack")
    assert not is_marked(slack), case
    assert_slack_inert(slack)  # no <!here>, <@U…>, <http://…|…>
    assert "`x`" not in slack, (case, slack)  # typed backticks never open a code span


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config({"gwcelery": demo_pool(scope=GWCELERY_SCOPE)},
                                              default_pool="gwcelery"))
    return built


CASES = {  # command line (run by carol, an expert) -> the outcome it gets
    f"help {MENTION}": OutcomeStatus.ERROR,
    f"help sample {LINK}": OutcomeStatus.ERROR,
    f"why {MENTION}": OutcomeStatus.ERROR,
    f"why sample echo as {MENTION}": OutcomeStatus.ERROR,
    f"who-can {LINK}": OutcomeStatus.ERROR,
    f"audit --who {MENTION}": OutcomeStatus.OK,
    f"condor q {MENTION}": OutcomeStatus.ERROR,  # CondorError -> CommandError
    f"condor q --constraint 'Owner == \"{HOSTILE}\" &&'": OutcomeStatus.ERROR,
    f"condor hold --batch '{HOSTILE}'": OutcomeStatus.ERROR,  # the handler's own error
    f"condor rm --batch '{HOSTILE}'": OutcomeStatus.ERROR,  # the plan step refuses
    f"condor submit {MENTION}": OutcomeStatus.ERROR,
    f"condor resubmit {LINK}": OutcomeStatus.ERROR,  # plan step: unknown description
}


@pytest.mark.parametrize(("line", "status"), CASES.items())
async def test_commands_quoting_what_was_typed(bot: Bot, line: str,
                                               status: OutcomeStatus) -> None:
    out = await bot.handle(console("carol", line))
    assert out.status == status, plain(render_text(out.reply))
    shown = render_text(out.reply, "console")
    assert MENTION in shown or LINK in shown, shown  # quoted, as typed
    assert_inert(out.reply, line)


@pytest.mark.parametrize(("inbound", "shown"), [
    # The gate's reason names the channel (console: as typed), 'why' repeats it.
    (console("alice", "why sample echo as dave", HOSTILE), HOSTILE),
    # An unknown caller's platform id: in the denial's reason, in 'help'.
    (Inbound("mattermost", HOSTILE, "sample echo hi"), HOSTILE),
    (Inbound("mattermost", MENTION, "help"), MENTION),
], ids=["why", "denied", "help"])
async def test_ids_and_channels_in_replies(bot: Bot, inbound: Inbound, shown: str) -> None:
    out = await bot.handle(inbound)
    assert shown in render_text(out.reply, "console")
    assert_inert(out.reply, inbound.text)


async def test_a_request_id_from_a_click(bot: Bot) -> None:
    out = await bot.decide(console("carol", ""), f"{MENTION} {LINK}", Choice.APPROVE)
    assert out.status == OutcomeStatus.ERROR and LINK in render_text(out.reply)
    assert_inert(out.reply, "decide")


async def test_an_expired_request(bot: Bot, monkeypatch: Any) -> None:
    """The note names the command line, whose backticks closed the hand-made code span."""
    announced: list[Reply] = []
    monkeypatch.setattr(bot, "_announce", lambda request_id, reply: announced.append(reply))
    carol = bot.directory.caller(console("carol", ""))
    await bot.requests.create(Kind.CONFIRM, command="condor.rm", caller=carol,
                              text=f"condor rm --batch '{HOSTILE}'", ttl=timedelta(seconds=-1))
    assert len(await bot.expire_requests()) == 1
    (note,) = announced
    assert HOSTILE in render_text(note, "console")
    assert_inert(note, "expired")


async def test_console_progress_resolves_marks(make_bot: Any) -> None:
    bot = await make_bot()
    out = io.StringIO()
    adapter = ConsoleAdapter(bot, ConsoleSession("alice"), out=out)
    await adapter.progress("removed " + user("a\x1b[31m\nb") + " of " + code("q"))
    assert out.getvalue() == "... removed a⟨U+001B⟩[31m↵b of `q`\n"
