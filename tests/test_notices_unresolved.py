"""A platform that cannot resolve a channel alias right now (its API is down): the notice is
refused before anything is stored, so the caller retries it whole, instead of it being posted
on the other platform and silently never on this one."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import console
from notice_platform import FakePlatform, TransientError
from test_notices import clock, started  # noqa: F401 (clock: a fixture)

from bot.markup import plain
from bot.outcome import OutcomeStatus
from bot.reply import Reply


class Unreachable(FakePlatform):
    """Resolves nothing until ``up`` is set."""

    up = False

    async def channel_for(self, alias: str) -> str | None:
        if not self.up:
            raise TransientError("conversations.list: HTTP 503")
        return await super().channel_for(alias)


@pytest.mark.usefixtures("clock")
async def test_post_is_refused_whole_then_succeeds_on_both(make_bot: Any) -> None:
    slack, mm = Unreachable("slack", {"ops": "C1"}), FakePlatform("mattermost", {"ops": "m1"})
    bot = await started(make_bot, slack, mm)
    with pytest.raises(TransientError, match=r"slack .* nothing was stored"):
        await bot.notices.post("ops", Reply(text="hello"), key="k1")
    assert await bot.notices.idle(5)
    assert mm.texts() == []  # not half-posted
    slack.up = True
    await bot.notices.post("ops", Reply(text="hello"), key="k1")  # the key was never taken
    refs = await bot.notices.delivered("k1", 5)
    assert {r.platform for r in refs} == {"slack", "mattermost"}
    assert slack.texts() == ["hello"] and mm.texts() == ["hello"]


@pytest.mark.usefixtures("clock")
async def test_announce_says_nothing_was_posted(make_bot: Any) -> None:
    slack = Unreachable("slack", {"ops": "C1"})
    bot = await started(make_bot, slack)
    outcome = await bot.handle(console("alice", 'announce ops "maintenance at 14:00"'))
    assert outcome.status == OutcomeStatus.ERROR
    assert "Nothing was posted" in plain(outcome.reply.text)
    assert "Traceback" not in plain(outcome.reply.text)
    assert (await bot.notices.unfinished()) == []
