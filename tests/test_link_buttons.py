"""Link buttons (``Action.link``): a button that opens a web page and runs nothing.

The model refuses anything but an http(s) URL a platform can carry as it is; every consumer of
``Reply.actions`` treats a link as neither a decision nor a command (not stored, not clicked
into a command, kept through a stored notice's JSON); each platform shows it its own way (Slack:
a url button whose click is only acknowledged; Mattermost, whose buttons cannot open pages: a
Markdown link in the attachment text; console: ``[Label: URL]``); a status alert with an http(s)
runbook carries one instead of a "Runbook:" line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import deep_merge
from fakes.mattermost import FakeMattermost
from fakes.slack import RESPONSE_URL, FakeSlack, button_errors
from mattermost_harness import CHANNELS, FAST, PEOPLE, command_token, people_by_username
from slack_rig import BOB, SHIFTERS, buttons, slack
from test_status_feature_rig import (
    SCRIPT,
    STATUS_ROLES,
    _fresh_script,
    clock,
    scripted,
    status_rig,
)

import bot.reply as reply_module
from bot import clock as bot_clock
from bot.adapters.console import format_reply
from bot.adapters.mattermost import MattermostAdapter
from bot.adapters.mattermost.actions import ActionSigner
from bot.adapters.mattermost.compose import Composer, link_line
from bot.adapters.slack import SlackAdapter, blocks
from bot.clock import ManualClock
from bot.core import Bot
from bot.messaging import replyjson
from bot.reply import URL_LIMIT, Action, Choice, Reply, Visibility
from bot.runtime import attach_http
from bot.secrets import SecretMasker
from bot.status import notify
from bot.status import states as st
from bot.status.config import StatusConfig
from bot.status.model import Level
from bot.status.service import StatusService

__all__ = ["_fresh_script", "clock", "slack"]  # fixtures

RUNBOOK = "https://wiki.example/runbooks/disk_(full)?from=shiftbot&x=1#steps"
GOOD_URLS = ["http://wiki.example", "https://wiki.example/a/b?c=d&e=%20f#g",
             "HTTPS://Wiki.Example:8443/x", "https://[::1]:8080/p", RUNBOOK,
             "https://wiki.example/" + "a" * (URL_LIMIT - len("https://wiki.example/"))]
BAD_URLS = ["javascript:alert(1)", "file:///etc/passwd", "ftp://host/x", "data:text/html,x",
            "mailto:a@b.example", "//wiki.example/x", "wiki.example/x", "https://", "http:///x",
            "", "https://wiki.example/a b", "https://wiki.example/\nx", "https://wiki.example/<x>",
            "https://wiki.example/x|y", 'https://wiki.example/"x', "https://wiki.example/`x`",
            "https://wiki.example/\u00e9", "https://wiki.example/\u202ex", "https://wiki.example\\x",
            "https://wiki.example/" + "a" * (URL_LIMIT - len("https://wiki.example/") + 1)]


# ------------------------------------------------------------------------ the model


@pytest.mark.parametrize("url", GOOD_URLS)
def test_http_and_https_links_are_accepted(url: str) -> None:
    link = Action.link("Runbook", url)
    assert link.url == url and link.is_link
    assert not link.decides and link.command is None and link.choice is None


@pytest.mark.parametrize("url", BAD_URLS)
def test_other_links_are_refused_however_made(url: str) -> None:
    with pytest.raises(ValueError):
        Action.link("Runbook", url)
    with pytest.raises(ValueError):
        Action("Runbook", url=url)  # built directly (or loaded back): refused the same


def test_a_link_neither_runs_nor_decides() -> None:
    with pytest.raises(ValueError):
        Action("Runbook", command="status disk", url=RUNBOOK)
    with pytest.raises(ValueError):
        Action("Runbook", Choice.CONFIRM, "r1", url=RUNBOOK)


def test_secrets_in_a_link_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = SecretMasker()
    monkeypatch.setattr(reply_module, "masker", masker)
    masker.add("tok-4711-secret")
    masker.add("https://whole.example/tok-0815")
    reply = Reply(text="see", actions=[
        Action.link("Runbook", "https://wiki.example/x?token=tok-4711-secret"),
        Action.link("Other", "https://whole.example/tok-0815"),
        Action.run("Details", "status disk")]).masked()
    assert "4711" not in repr(reply) and "0815" not in repr(reply)
    # a link that is still one keeps working without the secret; one that is no link any
    # more (the secret was all of it) is left out; the other buttons stay
    assert [(a.label, a.url) for a in reply.actions] == [
        ("Runbook", "https://wiki.example/x?token=***"), ("Details", None)]


# ------------------------------------------------------------------------ consumers of actions


async def test_links_are_not_stored_as_commands(make_bot: Any) -> None:
    bot = await make_bot()
    link = Action.link("Runbook", RUNBOOK)
    only_link = Reply(text="x", actions=[link])
    assert await bot.actions.store(only_link) is only_link  # nothing to store
    stored = await bot.actions.store(Reply(text="x", actions=[
        Action.run("Details", "status disk"), link]))
    details, kept = stored.actions
    assert details.action_id and kept == link and kept.action_id is None
    # a click carrying a link's (absent) id, or anything not a stored command, runs nothing
    who = SimpleNamespace(platform="console", user_id="alice")
    outcome = await bot.click(who, RUNBOOK)  # type: ignore[arg-type]
    assert outcome.reply.title == "Unknown button"


def test_a_link_survives_the_stored_notice_json() -> None:
    reply = Reply(text="alert", title="disk CRITICAL", actions=[
        Action.run("Details", "status disk"), Action.link("Runbook", RUNBOOK, style="primary"),
        Action("Approve", Choice.APPROVE, "r1", style="primary")])
    loaded = replyjson.load(replyjson.dump(reply))
    assert loaded.actions == reply.actions
    assert [a.url for a in loaded.actions] == [None, RUNBOOK, None]


def test_a_stored_link_no_longer_accepted_is_left_out_not_fatal() -> None:
    data = json.loads(replyjson.dump(Reply(text="alert", actions=[
        Action.run("Details", "status disk"), Action.link("Runbook", RUNBOOK)])))
    data["actions"][1]["url"] = "javascript:alert(1)"
    loaded = replyjson.load(json.dumps(data))
    assert [a.label for a in loaded.actions] == ["Details"] and loaded.text == "alert"
    data["actions"][0]["choice"] = "explode"  # other damage is still an error
    with pytest.raises(ValueError):
        replyjson.load(json.dumps(data))


# ------------------------------------------------------------------------ rendering


def stored_run(label: str, command: str) -> Action:
    return Action(label, command=command, action_id="a" + "0" * 19 + str(len(label) % 10))


def test_slack_renders_a_url_button_that_the_fake_slack_accepts() -> None:
    reply = Reply(text="alert", actions=[stored_run("Details", "status disk"),
                                         Action.link("Runbook", RUNBOOK),
                                         Action.link("Dashboard", "https://grafana.example/d")])
    message = blocks.message(reply)
    elements = buttons(message["blocks"])
    links = [e for e in elements.values() if "url" in e]
    assert [(e["text"]["text"], e["url"]) for e in links] == [
        ("Runbook", RUNBOOK), ("Dashboard", "https://grafana.example/d")]
    assert all(blocks.is_link(e) and "value" not in e for e in links)
    assert all(blocks.parse_run(e) is None and blocks.parse_action(e) is None for e in links)
    assert len(elements) == 3  # action_ids unique within the block
    assert button_errors(message["blocks"]) == []


def test_the_fake_slack_refuses_what_slack_refuses_in_buttons() -> None:
    link = blocks.link_button(Action.link("Runbook", RUNBOOK), 0)
    assert button_errors([{"type": "actions", "elements": [link]}]) == []
    for broken in ({"url": "https://x.example/" + "a" * URL_LIMIT}, {"style": "link"},
                   {"text": {"type": "mrkdwn", "text": "x"}}, {"value": "v" * 2001}):
        assert button_errors([{"type": "actions", "elements": [{**link, **broken}]}])
    twice = {"type": "actions", "elements": [link, link]}
    assert button_errors([twice])


def composer(public_url: str | None) -> Composer:
    config = SimpleNamespace(bot=SimpleNamespace(
        http=SimpleNamespace(public_url=public_url), approval_timeout_minutes=30,
        confirmation_timeout_minutes=5))
    section = SimpleNamespace(action_ttl_minutes=None, command_prefix="/shiftbot ")
    return Composer(config, section, ActionSigner(b"k" * 32), 3600.0)  # type: ignore[arg-type]


def test_mattermost_shows_links_as_markdown_not_buttons() -> None:
    reply = Reply(text="alert", visibility=Visibility.CHANNEL, actions=[
        stored_run("Details", "status disk"), Action.link("Run[book]", RUNBOOK)])
    message, props = composer("https://bot.example").compose(reply, root_id="", requester="")
    assert props is not None
    (attachment,) = props["attachments"]
    assert [a["name"] for a in attachment["actions"]] == ["Details"]
    # parentheses percent-encoded (none ends the link early), the label escaped
    assert attachment["text"] == (r"[Run\[book\]](https://wiki.example/runbooks/disk_%28full%29"
                                  "?from=shiftbot&x=1#steps)")
    assert RUNBOOK.split("(")[0] not in message


def test_mattermost_without_buttons_puts_links_in_the_message() -> None:
    reply = Reply(text="alert", actions=[stored_run("Details", "status disk"),
                                         Action.link("Runbook", "https://wiki.example/x")])
    message, props = composer(None).compose(reply, root_id="", requester="")
    assert props is None
    assert message.splitlines()[-2:] == ["[Runbook](https://wiki.example/x)",
                                         "Reply `/shiftbot status disk`."]
    # only links: no attachment either way (an ephemeral answer stays ephemeral)
    only = Reply(text="see", actions=[Action.link("Runbook", "https://wiki.example/x")])
    for public in (None, "https://bot.example"):
        assert composer(public).compose(only, root_id="", requester="") == (
            "see\n[Runbook](https://wiki.example/x)", None)
    assert link_line([stored_run("Details", "status disk")]) == ""


def test_console_prints_links_after_the_command_buttons() -> None:
    text = format_reply(Reply(text="alert", actions=[
        stored_run("Details", "status disk"), Action.link("Runbook", RUNBOOK)]))
    last = text.splitlines()[-1]
    assert last.startswith("-> [Details: click a") and last.endswith(f"  [Runbook: {RUNBOOK}]")
    assert format_reply(Reply(text="x", actions=[Action.link("Runbook", RUNBOOK)])) == (
        f"x\n-> [Runbook: {RUNBOOK}]")


# ------------------------------------------------------------------------ status notices

NOW = datetime(2026, 12, 3, 12, 5, tzinfo=UTC)


def op(role: str, level: Level = Level.CRITICAL) -> st.NoticeOp:
    began = NOW - timedelta(minutes=5)
    extra = {"was": Level.CRITICAL.value, "began": began.isoformat(), "now": Level.OK.value,
             "by": "bob", "reason": "", "repeat": 1}
    return st.NoticeOp(kind=st.POST, key="k", role=role, level=level, summary="DISK CRITICAL",
                       at=NOW, extra=extra)


@pytest.mark.parametrize("role", [st.ALERT, st.REPEAT, st.ACKED, st.RECOVERED])
async def test_status_notices_carry_the_runbook_as_a_button(make_bot: Any, role: str) -> None:
    bot = await make_bot()
    spec = scripted("disk", runbook=RUNBOOK)
    reply = notify.notice_reply(op(role), spec, "UTC", NOW)
    (link,) = [a for a in reply.actions if a.url]
    assert (link.label, link.url) == ("Runbook", RUNBOOK)
    rendered = await bot.renderer.render(reply)
    assert RUNBOOK not in rendered.text and "Runbook" not in rendered.text  # no line too


@pytest.mark.parametrize("role", [st.SUPERSEDED, st.RECOVERY])
def test_superseded_and_recovery_notices_have_no_runbook_button(role: str) -> None:
    reply = notify.notice_reply(op(role), scripted("disk", runbook=RUNBOOK), "UTC", NOW)
    assert not any(a.url for a in reply.actions)


@pytest.mark.parametrize("runbook", ["Wiki: Disk full", "file:///srv/runbooks/disk.md"])
async def test_a_runbook_that_is_no_link_stays_a_line(make_bot: Any, runbook: str) -> None:
    bot = await make_bot()
    reply = notify.notice_reply(op(st.ALERT), scripted("disk", runbook=runbook), "UTC", NOW)
    assert not any(a.url for a in reply.actions)
    assert f"Runbook: {runbook}" in (await bot.renderer.render(reply)).text


# ------------------------------------------------------------------------ through the adapters


async def alert(bot: Bot, minutes: int = 1) -> None:
    """The check turns CRITICAL (from OK at minute 0); the notices are delivered."""
    service = bot.services.require(StatusService)
    for level, at in ((Level.OK, 0), (Level.CRITICAL, minutes)):
        SCRIPT["disk"] = level
        task = await service.tick(bot_clock.utcnow() + timedelta(minutes=at))
        assert task is not None
        await task
    assert await bot.notices.idle(5)


async def test_console_status_alert_shows_the_runbook_link(make_bot: Any,
                                                           clock: ManualClock) -> None:
    rig = await status_rig(make_bot, [scripted("disk", runbook=RUNBOOK)], notify_after=1)
    for level in (Level.OK, Level.CRITICAL):
        SCRIPT["disk"] = level
        clock.advance(60)
        await rig.tick()
    printed = rig.take()
    assert f"[Runbook: {RUNBOOK}]" in printed
    assert f"Runbook: {RUNBOOK}\n" not in printed  # the button replaced the line
    assert f"Runbook: {RUNBOOK}" in await rig.run("status disk")  # details keep it


@pytest.fixture
async def slack_bot(make_bot: Any, slack: FakeSlack) -> AsyncIterator[tuple[Bot, str]]:
    section = {"mode": "http", "bot_token": slack.bot_token, "app_token": slack.app_token,
               "signing_secret": slack.signing_secret, "api_url": slack.api_url,
               "channels": {"ops": "#shifters"}, "ping_interval_seconds": 0.2,
               "request_timeout_seconds": 1}
    bot = await make_bot(deep_merge(STATUS_ROLES, {"slack": section}), start_handlers=False)
    bot.config.feature_sections["status"] = StatusConfig.model_construct(
        checks=[scripted("disk", runbook=RUNBOOK)], channel="ops", mention=["shifters"],
        notify_after=1, margin_seconds=0.5)
    await bot.start_handlers()
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.slack is not None
    adapter = SlackAdapter(bot, bot.config.slack)
    await http.start()
    await adapter.start()
    await bot.notices.start()
    try:
        yield bot, f"{http.url}/slack/events"
    finally:
        await adapter.stop()
        await http.stop()


def answers(slack: FakeSlack) -> list[Any]:
    """What the bot said on Slack: posts, updates, response_url answers."""
    return [c for c in slack.calls() if c.method.startswith("chat.") or c.method == RESPONSE_URL]


async def test_slack_alert_has_a_url_button_whose_click_runs_nothing(
        slack_bot: tuple[Bot, str], slack: FakeSlack) -> None:
    bot, url = slack_bot
    await alert(bot)
    (posted,) = slack.messages("shifters")
    runbook = {e["text"]["text"]: e for e in buttons(posted.blocks).values()}["Runbook"]
    assert runbook["url"] == RUNBOOK and "Runbook:" not in (posted.text or "")
    audited = len(await bot.audit.query(limit=100))
    calls = len(answers(slack))

    delivery = await slack.deliver(url, slack.signed_block_actions(
        runbook["action_id"], user_id=BOB, channel_id=SHIFTERS, message_ts=posted.ts))
    assert delivery.status == 200 and delivery.in_time  # acknowledged: Slack shows no error
    await asyncio.sleep(0.3)  # a click handled in the background would have answered by now
    assert await bot.notices.idle(5)
    assert answers(slack)[calls:] == []  # nothing answered, posted or updated
    assert len(await bot.audit.query(limit=100)) == audited  # nothing ran
    assert slack.messages("shifters") == [posted] and posted.edits == []


@pytest.fixture
async def mm_bot(make_bot: Any) -> AsyncIterator[tuple[Bot, FakeMattermost]]:
    mm = FakeMattermost(users=PEOPLE, channels=CHANNELS, ping_interval=0.5, auth_timeout=1.0)
    await mm.start()
    section: dict[str, Any] = {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                               "channels": {"ops": "shifters"},
                               "command_tokens": [command_token("shiftbot")], **FAST}
    config = deep_merge(STATUS_ROLES, {"people": people_by_username(*PEOPLE),
                                       "mattermost": section})
    bot = await make_bot(config, start_handlers=False)
    bot.config.feature_sections["status"] = StatusConfig.model_construct(
        checks=[scripted("disk", runbook=RUNBOOK)], channel="ops", mention=["shifters"],
        notify_after=1, margin_seconds=0.5)
    await bot.start_handlers()
    http = attach_http(bot, "127.0.0.1", 0)
    assert bot.config.mattermost is not None
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=5.0)
    await http.start()
    bot.config.bot.http.public_url = http.url
    await adapter.start()
    await bot.notices.start()
    try:
        yield bot, mm
    finally:
        await adapter.stop()
        await http.stop()
        await mm.close()


async def test_mattermost_alert_has_a_markdown_runbook_link(
        mm_bot: tuple[Bot, FakeMattermost]) -> None:
    bot, mm = mm_bot
    await alert(bot)
    (posted,) = mm.posts("shifters")
    (attachment,) = posted["props"]["attachments"]
    assert {a["name"] for a in attachment["actions"]} == {"Details", "Ack"}
    assert attachment["text"] == ("[Runbook](https://wiki.example/runbooks/disk_%28full%29"
                                  "?from=shiftbot&x=1#steps)")
    assert "Runbook" not in posted["message"]
