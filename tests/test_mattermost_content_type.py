"""A proxy in front of Mattermost that labels JSON ``application/json; charset=utf-8`` and answers
errors as ``text/plain``: the bot still logs in and posts, and errors stay readable.

mattermostautodriver returns its raw response unless the Content-Type is exactly
``application/json``, and its ``login()`` then fails forever with a TypeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fakes.mattermost import FakeMattermost
from mattermost_harness import running
from mattermostautodriver.exceptions import InvalidMattermostError

from bot.adapters.mattermost.rest import MattermostRest, UnexpectedResponse, describe
from bot.config import Config

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

PROXIED = {"json_content_type": "application/json; charset=utf-8", "plain_errors": True}


def rest_for(mm: FakeMattermost, make_config: Callable[..., Config]) -> MattermostRest:
    config = make_config({"mattermost": {"url": mm.url, "token": mm.bot_token,
                                         "team": mm.team.name, "request_timeout_seconds": 2}})
    return MattermostRest(config.mattermost)


async def test_login_and_post_with_a_charset(make_config) -> None:  # type: ignore[no-untyped-def]
    async with FakeMattermost(**PROXIED) as mm:
        rest = rest_for(mm, make_config)
        try:
            me = await rest.login()
            assert (me["username"], rest.user_id) == ("shiftbot", mm.bot.id)
            channel = await rest.channel_by_name(mm.team.name, "ops")
            post = await rest.create_post(channel["id"], "through the proxy")
            assert mm.post(post["id"])["message"] == "through the proxy"
            assert (await rest.team(mm.team.name))["id"] == mm.team.id
            raw = await rest.http.get(f"{mm.url}/api/v4/users/me",
                                      headers={"Authorization": f"Bearer {mm.bot_token}"})
            assert raw.headers["Content-Type"] == "application/json; charset=utf-8"
        finally:
            await rest.close()


async def test_errors_that_are_not_json_are_clear(make_config) -> None:  # type: ignore[no-untyped-def]
    async with FakeMattermost(**PROXIED) as mm:
        rest = rest_for(mm, make_config)
        try:
            await rest.login()
            with pytest.raises(InvalidMattermostError) as missing:
                await rest.channel_by_name(mm.team.name, "no-such-channel")
            assert missing.value.status_code == 404
            assert "HTTP 404" in describe(missing.value)
            mm.fail_next("GET /api/v4/users/me", status=200, body="<html>proxy login</html>",
                         content_type="text/html")
            with pytest.raises(UnexpectedResponse) as page:
                await rest.login()
            assert "text/html, not JSON: '<html>proxy login</html>'" in str(page.value)
        finally:
            await rest.close()


async def test_the_adapter_works_behind_the_proxy(make_bot) -> None:  # type: ignore[no-untyped-def]
    async with running(make_bot, fake=PROXIED) as st:
        assert st.adapter.socket.working()
        post = await st.mm.post_as("alice", "ops", "!sample echo proxied --public")
        reply: dict[str, Any] = await st.command_reply(post)
        assert reply["message"] == "proxied"
        assert st.adapter.channel_ids["ops"] == st.mm.channel("ops").id  # resolved at startup
