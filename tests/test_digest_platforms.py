"""A digest with its chart through the real adapters: on Slack (the loopback FakeSlack: the
external upload, the file shared in the digest's thread) and on Mattermost (FakeMattermost:
``POST /files``, the post's ``file_ids``); when the upload fails at any step, the text digest
still goes out, once, and the failure is logged once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import deep_merge
from fakes.mattermost import FakeMattermost
from fakes.slack import FakeSlack
from mattermost_harness import FAST, PEOPLE, command_token, people_by_username
from slack_rig import SHIFTERS, USERS
from test_digest_rig import DIGESTS, clock, seed

from bot.adapters.mattermost import MattermostAdapter
from bot.adapters.slack import SlackAdapter
from bot.core import Bot
from bot.identity import Inbound
from bot.reply import FileRef
from bot.runtime import attach_http

__all__ = ["clock"]  # fixture

CHART = "digest-now-20260331T070000Z.png"
FAILED_UPLOAD = "without its attachment"


async def digest_now(bot: Bot) -> None:
    outcome = await bot.handle(Inbound(platform="console", user_id="alice", text="digest now",
                                       channel_id="ops", channel_alias="ops"))
    assert "posted" in outcome.reply.text, outcome.reply.text
    assert await bot.notices.idle(10)


def upload_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if FAILED_UPLOAD in r.getMessage()]


# ------------------------------------------------------------------------ Slack


@pytest.fixture
async def on_slack(make_bot: Any, clock: Any) -> AsyncIterator[tuple[Bot, FakeSlack]]:
    async with FakeSlack(users=USERS) as slack:
        section = {"mode": "http", "bot_token": slack.bot_token,
                   "signing_secret": slack.signing_secret, "api_url": slack.api_url,
                   "channels": {"ops": "#shifters"}, "request_timeout_seconds": 2}
        bot: Bot = await make_bot({**DIGESTS, "slack": section})
        http = attach_http(bot, "127.0.0.1", 0)
        adapter = SlackAdapter(bot, bot.config.slack)
        await http.start()
        await adapter.start()
        await bot.notices.start()
        await seed(bot)
        try:
            yield bot, slack
        finally:
            await adapter.stop()
            await http.stop()


async def test_slack_digest_with_its_chart(on_slack: tuple[Bot, FakeSlack],
                                           tmp_path: Path) -> None:
    bot, slack = on_slack
    await digest_now(bot)
    (digest, share) = slack.messages(SHIFTERS)
    assert "Shift digest" in (digest.text or "") and "Alerts: 3 deliveries" in str(digest.blocks)
    (chart,) = slack.files.shared(SHIFTERS)
    assert chart.data == (tmp_path / CHART).read_bytes()
    assert chart.data.startswith(b"\x89PNG") and chart.filename == "shift-chart.png"
    assert chart.title == "shift-chart.png" and "HTCondor queue by state" in chart.alt
    # Shared right under the digest, in its thread, introduced by the alt text.
    assert chart.shares == [(SHIFTERS, digest.ts)]
    assert share.thread_ts == digest.ts and share.params["files"] == [chart.id]
    assert share.text == chart.alt
    methods = [c.method for c in slack.calls() if c.method.startswith(("chat.", "files."))]
    assert methods == ["chat.postMessage", "files.getUploadURLExternal",
                       "files.completeUploadExternal"]
    (ask,) = slack.calls("files.getUploadURLExternal")
    assert int(ask.params["length"]) == len(chart.data)


@pytest.mark.parametrize("failure", ["no upload url", "bytes refused", "share refused",
                                     "file gone"])
async def test_slack_upload_failure_leaves_the_text(
        on_slack: tuple[Bot, FakeSlack], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    bot, slack = on_slack
    if failure == "no upload url":
        slack.ok_false("files.getUploadURLExternal", "file_uploads_disabled")
    elif failure == "bytes refused":
        slack.files.fail_uploads(500)
    elif failure == "share refused":
        slack.ok_false("files.completeUploadExternal", "not_in_channel")
    else:
        monkeypatch.setattr(FileRef, "read", _gone)
    with caplog.at_level(logging.WARNING):
        await digest_now(bot)
    (digest,) = slack.messages(SHIFTERS)
    assert "Alerts: 3 deliveries" in str(digest.blocks)
    assert slack.files.shared() == []
    assert len(slack.calls("chat.postMessage")) == 1  # the text is not posted again
    assert len(upload_warnings(caplog)) == 1


def _gone(self: FileRef) -> bytes:
    raise FileNotFoundError(self.path)


# ------------------------------------------------------------------------ Mattermost


@pytest.fixture
async def on_mattermost(make_bot: Any, clock: Any) -> AsyncIterator[tuple[Bot, FakeMattermost]]:
    mm = FakeMattermost(users=PEOPLE, channels=(("ops", "O"),), ping_interval=0.5,
                        auth_timeout=1.0)
    await mm.start()
    section: dict[str, Any] = {"url": mm.url, "token": mm.bot_token, "team": mm.team.name,
                               "channels": {"ops": "ops"},
                               "command_tokens": [command_token("shiftbot")], **FAST}
    config = deep_merge(DIGESTS, {"people": people_by_username(*PEOPLE),
                                  "mattermost": section})
    bot: Bot = await make_bot(config)
    adapter = MattermostAdapter(bot, bot.config.mattermost, startup_wait=5.0)
    await adapter.start()
    await bot.notices.start()
    await seed(bot)
    try:
        yield bot, mm
    finally:
        await adapter.stop()
        await mm.close()


def _digests(mm: FakeMattermost) -> list[dict[str, Any]]:
    return [p for p in mm.posts("ops") if "Shift digest" in p["message"]]


async def test_mattermost_digest_with_its_chart(on_mattermost: tuple[Bot, FakeMattermost],
                                                tmp_path: Path) -> None:
    bot, mm = on_mattermost
    await digest_now(bot)
    (post,) = _digests(mm)
    assert "Alerts: 3 deliveries" in post["message"]
    (chart,) = mm.files.of_post(post["id"])
    assert post["file_ids"] == [chart.id]
    assert post["metadata"]["files"][0]["mime_type"] == "image/png"
    assert chart.name == "shift-chart.png" and chart.channel_id == post["channel_id"]
    assert chart.data == (tmp_path / CHART).read_bytes()
    order = [r.path for r in mm.requests if r.method == "POST" and r.path in
             ("/api/v4/files", "/api/v4/posts")]
    assert order == ["/api/v4/files", "/api/v4/posts"]


FAILURES: dict[str, Callable[[FakeMattermost], Any]] = {
    "server error": lambda mm: mm.fail_next("POST /api/v4/files", 500),
    "attachments disabled": lambda mm: setattr(mm.files, "enabled", False),
    "too large": lambda mm: setattr(mm.files, "max_file_size", 10),
    "forbidden": lambda mm: mm.fail_next("POST /api/v4/files", 403),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_mattermost_upload_failure_leaves_the_text(
        on_mattermost: tuple[Bot, FakeMattermost], caplog: pytest.LogCaptureFixture,
        failure: str) -> None:
    bot, mm = on_mattermost
    FAILURES[failure](mm)
    with caplog.at_level(logging.WARNING):
        await digest_now(bot)
    (post,) = _digests(mm)
    assert "Alerts: 3 deliveries" in post["message"]
    assert "file_ids" not in post and mm.files.of_post(post["id"]) == []
    assert len(upload_warnings(caplog)) == 1


async def test_mattermost_drops_files_that_are_not_the_posters(
        on_mattermost: tuple[Bot, FakeMattermost]) -> None:
    """The fake keeps the server's rule: only the author's own, unattached uploads of that
    channel are attached (so the adapter's test cannot pass on ids it never uploaded)."""
    bot, mm = on_mattermost
    rest = bot.platforms["mattermost"].rest  # type: ignore[attr-defined]
    channel = mm.channel("ops").id
    upload = await rest.upload_file(channel, "a.png", b"\x89PNG", "image/png")
    file_id = upload["file_infos"][0]["id"]
    first = await rest.create_post(channel, "one", file_ids=[file_id, "nosuchfileid"])
    again = await rest.create_post(channel, "two", file_ids=[file_id])
    assert first["file_ids"] == [file_id] and "file_ids" not in again
