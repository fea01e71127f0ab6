"""Typed names in condor replies are escaped even when nothing matches."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, condor_config, demo_pool

from bot.core import Bot
from bot.render import render_text

POOLS = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE), "all": demo_pool()}


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config(POOLS, default_pool="gwcelery"))
    return built


# ------------------------------------------------------------------ unmarked user text

async def test_a_typed_batch_name_is_escaped_when_nothing_matches(bot: Bot) -> None:
    """condor hold/release --batch X with no job: action_reply puts the typed batch into the
    error text unmarked, so Mattermost renders it as Markdown (an external image, a link, a
    person mention) and Slack gets raw backticks."""
    hostile = "![x](https://evil.example/a.png) [go](https://evil.example) @alice `x` <b>"
    out = await bot.handle(console("carol", f"condor hold --batch '{hostile}'"))
    text = render_text(out.reply, "mattermost")
    assert "![x](" not in text and "](https://evil.example)" not in text, text
    assert "@alice" not in text, text
