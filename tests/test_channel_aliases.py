"""Channel-limited grants follow the aliased channel's *id* on both platforms, never a name.

A channel with the alias's name in another Mattermost team (or a channel whose name a request
merely claims) gets nothing; an alias that cannot be resolved grants nothing and is reported at
startup (WARNING with its key path) and in ``/healthz`` (component ``channels``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import sample_handlers
from fakes.mattermost import Channel, FakeMattermost, new_id
from fakes.slack import FakeSlack, User
from mattermost_harness import Stack, running

from bot.adapters.aliases import PENDING, AliasTable
from bot.adapters.mattermost.channels import resolve_aliases
from bot.adapters.mattermost.inbound import is_mattermost_id
from bot.adapters.slack import SlackAdapter
from bot.adapters.slack.channels import FAILURE_RETRY, ChannelDirectory
from bot.core import Bot
from bot.health import Health
from bot.http import HttpServer
from bot.runtime import attach_http

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

# dave may echo only in the ops channel; carol approves only there.
GRANTS = {"grants": [
    {"role": "shifter", "groups": ["shifters"]},
    {"role": "expert", "people": ["carol"], "channels": ["ops"]},
    {"role": "viewer", "people": ["dave"], "channels": ["ops"]},
]}


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    sample_handlers.RUNS.clear()


def ran(command: str) -> list[tuple[str, str, dict[str, object]]]:
    return [r for r in sample_handlers.RUNS if r[0] == command]


def other_team_channel(mm: FakeMattermost, name: str) -> Channel:
    """A channel called ``name`` in another team (the fake serves one team: move one out)."""
    channel = mm.add_channel(f"{name}-elsewhere")
    channel.name, channel.team_id = name, new_id()
    return channel


async def healthz(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
        return await resp.json()  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ Mattermost


async def _reply_to(st: Stack, user: str, post: dict[str, Any]) -> str:
    note = await st.ephemeral(user, lambda p: p["root_id"] == post["id"])
    return str(note["message"])


async def test_mattermost_same_named_channel_of_another_team_gets_no_grant(make_bot) -> None:
    async with running(make_bot, overrides=GRANTS) as st:
        theirs = other_team_channel(st.mm, "ops")
        # a message over the websocket (its event says channel_name "ops")
        post = await st.mm.post_as("dave", theirs, "!sample echo hi")
        assert "You may not run 'sample echo'" in await _reply_to(st, "dave", post)
        # a slash command (its form says channel_name "ops")
        slash = await st.mm.invoke_command(None, "shiftbot", "sample echo hi", "dave", theirs)
        assert "You may not run 'sample echo'" in slash.json["text"]
        ours = await st.mm.invoke_command(None, "shiftbot", "sample echo hi", "dave", "ops")
        assert ours.json["text"] == "hi"
        assert ran("sample.echo") == [("sample.echo", "dave", {"words": ["hi"], "times": 1})]

        # a button: carol approves as expert only in ops; a click that comes from the other
        # team's "ops" does not make her one
        ask = await st.mm.post_as("alice", "ops", "!sample restart web")
        card = await st.mm.wait_for_post(predicate=lambda p: p["root_id"] == ask["id"]
                                         and p["user_id"] == st.mm.bot.id
                                         and p["props"].get("attachments"))
        click = {**st.click_payload(card, "approve", "carol"), "channel_id": theirs.id,
                 "channel_name": "ops", "team_id": theirs.team_id}
        refused = (await st.post_action(click)).json()
        assert "needs role expert" in refused["ephemeral_text"]
        assert ran("sample.restart") == []
        approved = await st.mm.click(None, card["id"], "approve", "carol")  # from our ops
        assert "Approved by carol" in approved.post["message"]
        assert ran("sample.restart") == [("sample.restart", "alice", {"service": "web"})]


async def test_mattermost_unresolvable_alias_grants_nothing_and_is_reported(
        make_bot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters")
    cfg = {"channels": {"ops": "night-ops", "alerts": "~alerts"}}
    async with running(make_bot, mattermost=cfg, overrides=GRANTS, start=False) as st:
        # "night-ops" exists, but only in another team: the alias cannot be resolved
        elsewhere = other_team_channel(st.mm, "night-ops")
        await st.adapter.start()
        post = await st.mm.post_as("dave", elsewhere, "!sample echo hi")
        assert "You may not run 'sample echo'" in await _reply_to(st, "dave", post)
        slash = await st.mm.invoke_command(None, "shiftbot", "sample echo hi", "dave", elsewhere)
        assert "You may not run 'sample echo'" in slash.json["text"]
        assert ran("sample.echo") == []

        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(w.startswith("mattermost.channels.ops: no channel 'night-ops' in team "
                                f"'{st.mm.team.name}'") for w in warnings), warnings
        channels = (await healthz(st.http.url))["components"]["channels"]
        assert channels["ok"] is True  # visible, but not a reason to restart the bot
        assert "mattermost: 1 of 2 aliases resolved" in channels["detail"]
        assert "granting nothing: mattermost.channels.ops (no channel 'night-ops'" \
            in channels["detail"]
        assert st.adapter.alias_for(st.mm.channel("alerts").id) == "alerts"


async def test_mattermost_id_shaped_values_are_verified_in_the_team(make_bot) -> None:
    """Mattermost names a channel whose display name has no Latin letters with 26 id-like
    characters; an id of a channel of another team is no channel of ours either. A configured
    value shaped like an id is bound only once GET /channels/{id} says it is a channel of the
    team, else it is tried as a name, else it grants nothing and is reported."""
    name_like_id = "k4q9x1m2n3b5v6c7z8l0p1o2i3"
    assert is_mattermost_id(name_like_id)
    table = AliasTable("mattermost", {"ops": name_like_id}, is_mattermost_id, Health())
    assert table.unresolved == {"ops": PENDING} and table.alias_for(name_like_id) is None
    async with running(make_bot) as st:
        by_name = st.mm.add_channel(name_like_id, display_name="運用")
        ours = st.mm.add_channel("night-ops")
        theirs = other_team_channel(st.mm, "ops")
        table = AliasTable("mattermost", {"jp": name_like_id, "night": ours.id,
                                          "other": theirs.id, "ghost": new_id()},
                           is_mattermost_id, Health())
        await resolve_aliases(st.adapter.rest, st.mm.team.name, table, st.adapter.team_id)
        assert table.ids == {"jp": by_name.id, "night": ours.id}
        assert table.alias_for(theirs.id) is None
        assert table.unresolved["other"].startswith(f"channel {theirs.id} is not in team ")
        assert table.unresolved["ghost"].startswith("no channel with id ")


# ---------------------------------------------------------------------------------- Slack

DAVE = "U0DAVE001"
SHIFTERS = "C00000002"  # "#shifters": the alias "ops"
USERS = [User("U0ALICE01", "alice"), User("U0CAROL01", "carol"), User(DAVE, "dave")]


@pytest.fixture
async def slack_rig(make_bot: Callable[..., Awaitable[Bot]]) -> AsyncIterator[
        Callable[..., Awaitable[tuple[FakeSlack, SlackAdapter, HttpServer]]]]:
    """A Slack adapter in http mode on the fake; ``prepare(fake)`` runs before it starts."""
    made: list[tuple[FakeSlack, SlackAdapter, HttpServer]] = []

    async def factory(channels: dict[str, str],
                      prepare: Callable[[FakeSlack], None] = lambda _: None,
                      ) -> tuple[FakeSlack, SlackAdapter, HttpServer]:
        fake = FakeSlack(users=USERS)
        await fake.start()
        prepare(fake)
        bot = await make_bot({**GRANTS, "slack": {
            "mode": "http", "bot_token": fake.bot_token, "signing_secret": fake.signing_secret,
            "api_url": fake.api_url, "channels": channels}})
        http = attach_http(bot, "127.0.0.1", 0)
        assert bot.config.slack is not None
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        made.append((fake, adapter, http))
        return made[-1]

    yield factory
    for fake, adapter, http in made:
        await adapter.stop()
        await http.stop()
        await fake.stop()


async def _slash(fake: FakeSlack, http: HttpServer, channel_id: str) -> str:
    answer = await fake.deliver(f"{http.url}/slack/events", fake.signed_slash_command(
        "sample echo hi", user_id=DAVE, channel_id=channel_id))
    return str(answer.json()["text"])


async def test_slack_grants_match_the_resolved_channel_id_never_a_name(slack_rig) -> None:
    # Another "#shifters" the bot cannot list: a private channel elsewhere, or one of another
    # workspace of an Enterprise Grid org. Its requests say channel_name=shifters.
    fake, adapter, http = await slack_rig(
        {"ops": "#shifters"},
        lambda f: f.add_channel("shifters", id="C0GRID001", is_private=True, is_member=False))
    assert await _slash(fake, http, "C0GRID001") != "hi"
    mention = fake.app_mention_event("sample echo hey", user_id=DAVE, channel_id="C0GRID001")
    await fake.deliver(f"{http.url}/slack/events", fake.signed_event(mention))
    await fake.wait_for("chat.postEphemeral")
    assert ran("sample.echo") == []
    assert fake.calls("conversations.info") == []  # a channel's name never makes an alias

    assert await _slash(fake, http, SHIFTERS) == "hi"  # the aliased channel itself
    assert adapter.channels.table.ids == {"ops": SHIFTERS}
    assert len(fake.calls("conversations.list")) == 1  # resolved once, at startup


async def test_slack_unresolvable_alias_grants_nothing_and_is_reported(
        slack_rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters")
    fake, _, http = await slack_rig(
        {"ops": "#night-ops", "alerts": "C00000001"},
        lambda f: f.add_channel("night-ops", id="C0NIGHT01", is_private=True, is_member=False))
    assert await _slash(fake, http, "C0NIGHT01") != "hi"
    assert ran("sample.echo") == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("slack.channels.ops: no Slack channel named #night-ops")
               for w in warnings), warnings
    channels = (await healthz(http.url))["components"]["channels"]
    assert channels["ok"] is True
    assert channels["detail"].startswith("slack: 1 of 2 aliases resolved; granting nothing: "
                                         "slack.channels.ops (no Slack channel named #night-ops")


async def test_slack_alias_paging_failure_is_retried_later(slack: FakeSlack) -> None:
    now = [1000.0]
    directory = ChannelDirectory(slack.web_client(), {"ops": "#shifters"},
                                 clock=lambda: now[0])
    slack.fail_next("conversations.list", status=500)
    assert await directory.alias_for(SHIFTERS) is None  # and no name to fall back on
    assert "conversations.list failed" in directory.table.unresolved["ops"]
    assert await directory.alias_for(SHIFTERS) is None  # not retried at once
    assert len(slack.calls("conversations.list")) == 1
    now[0] += FAILURE_RETRY
    assert await directory.alias_for(SHIFTERS) == "ops"
    assert directory.table.unresolved == {}
    await directory.close()


async def test_slack_alias_does_not_follow_its_name_to_another_channel(
        slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """#shifters is renamed; anybody may then create a public #shifters. The alias (and the
    grants limited to it) stays with the channel first resolved; the move is an ERROR and is
    in /healthz, and posts still go to the channel the operator meant."""
    caplog.set_level(logging.ERROR, logger="bot.adapters")
    now = [1000.0]
    health = Health()
    directory = ChannelDirectory(slack.web_client(), {"ops": "#shifters"}, ttl=60,
                                 clock=lambda: now[0], health=health)
    assert await directory.alias_for(SHIFTERS) == "ops"
    slack.channel(SHIFTERS).name = "shifters-old"
    evil = slack.add_channel("shifters")
    now[0] += 61  # the periodic re-resolution is due; any inbound message starts it
    assert await directory.alias_for(evil.id) is None
    while directory._refresh is not None:
        await asyncio.sleep(0.01)
    assert await directory.alias_for(evil.id) is None
    assert await directory.alias_for(SHIFTERS) == "ops"
    assert await directory.resolve("ops") == SHIFTERS
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"slack.channels.ops: the name 'shifters' now is channel {evil.id}; the "
                      f"alias stays channel {SHIFTERS} (renamed, or a new channel took the "
                      "name?); configure the alias by id to silence this"]
    detail = (await health.snapshot())["channels"].detail
    assert f"kept the first channel: slack.channels.ops (the name 'shifters' now is channel " \
        f"{evil.id})" in detail
    # renamed back: nothing to report any more
    evil.name, slack.channel(SHIFTERS).name = "evil", "shifters"
    now[0] += 61
    await directory.alias_for(SHIFTERS)
    while directory._refresh is not None:
        await asyncio.sleep(0.01)
    assert "kept the first channel" not in (await health.snapshot())["channels"].detail
    await directory.close()


async def test_a_channel_keeps_its_first_alias(slack: FakeSlack) -> None:
    # "#shifters" is C00000002, which "ops" already names: "night" would take its grants away
    directory = ChannelDirectory(slack.web_client(), {"ops": SHIFTERS, "night": "#shifters"})
    assert await directory.resolve("ops") == SHIFTERS
    with pytest.raises(LookupError, match=r"already is slack\.channels\.ops"):
        await directory.resolve("night")
    assert await directory.alias_for(SHIFTERS) == "ops"
    await directory.close()
