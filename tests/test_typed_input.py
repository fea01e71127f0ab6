"""What people type that the parser must read right or refuse: characters that render as
nothing (Unicode's default-ignorable code points, variation selectors), and guillemets as
quotes. See bot/markup.py (refused_kind, visible) and bot/smartquotes.py."""

# Look-alike and invisible characters are the subject here.
# ruff: noqa: RUF001
from __future__ import annotations

import shlex
from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, condor_config, demo_pool

from bot.core import Bot, OutcomeStatus
from bot.markup import resolve, user, visible
from bot.render import render_text
from bot.smartquotes import normalise

POOLS = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE), "all": demo_pool()}


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config(POOLS, default_pool="gwcelery"))
    return built


# ------------------------------------------------------------------ invisible characters

# Default_Ignorable_Code_Point outside categories Cf/Cn (which are refused by category): the
# variation selectors (U+E0100.. smuggle a whole text, one selector per byte), Mongolian free
# variation selectors, Hangul fillers, U+034F, Khmer inherent vowels.
INVISIBLE = ["\U000e0100", "\U000e01ef", "\ufe01", "\ufe0f", "\u180b", "\u180f", "\u115f",
             "\u3164", "\uffa0", "\u034f", "\u17b4", "\u2060", "\U0001d173", "\U000e0020"]


@pytest.mark.parametrize("char", INVISIBLE)
async def test_invisible_characters_are_refused_in_commands(bot: Bot, char: str) -> None:
    hidden = "".join(chr(0xE0100 + b) for b in b"rm all") if char == "\U000e0100" else char * 3
    out = await bot.handle(console("carol", f"condor hold 1.20 --reason 'ok{hidden}'"))
    assert out.status == OutcomeStatus.USAGE, \
        f"accepted: the approver sees 'ok', the job's HoldReason holds {len(hidden)} more chars"


@pytest.mark.parametrize("char", INVISIBLE)
def test_invisible_characters_are_made_visible_in_job_ad_text(char: str) -> None:
    """A HoldReason (set by any pool user) is shown through visible()/user()."""
    reason = f"Held by admin{char * 5}"
    for dialect in ("console", "slack", "mattermost"):
        assert char not in resolve(user(reason), dialect)
    assert char not in visible(reason)


@pytest.mark.parametrize("emoji", ["👍\ufe0f", "❤\ufe0f", "☺\ufe0e", "1\ufe0f\u20e3", "‼\ufe0f"])
async def test_an_emoji_presentation_selector_after_an_emoji_is_fine(bot: Bot, emoji: str) -> None:
    """Phones add U+FE0F after many emoji: refusing it would refuse "👍️"."""
    out = await bot.handle(console("carol", f"condor hold 1.20 --reason 'ok {emoji}'"))
    assert out.status == OutcomeStatus.OK, render_text(out.reply)
    assert visible(emoji) == emoji


@pytest.mark.parametrize("text", ["a\ufe0f", "1\ufe0f", "\ufe0f", "👍\ufe01"])
def test_a_presentation_selector_elsewhere_is_shown(text: str) -> None:
    assert "⟨U+FE" in visible(text)


# ------------------------------------------------------------------ guillemets

@pytest.mark.parametrize("line", [
    "condor hold 1.20 --reason «node drained»",       # French/Swiss smart quotes (macOS, iOS)
    "condor hold 1.20 --reason « node drained »",     # with the spaces French typography adds
    "condor hold 1.20 --reason «\u202fnode drained\u00a0»",  # ... often no-break ones
    "condor hold 1.20 --reason »node drained«",       # German
    "condor hold 1.20 --reason ‹node drained›",
])
async def test_guillemets_quote_like_other_smart_quotes(bot: Bot, line: str) -> None:
    out = await bot.handle(console("carol", line))
    assert out.status == OutcomeStatus.OK, render_text(out.reply)


@pytest.mark.parametrize(("typed", "words"), [
    ("a « x »", ["a", "x"]),
    ('a "x «y» z"', ["a", "x «y» z"]),  # inside other quotes a guillemet is text
    ("a «say \"hi\"»", ["a", 'say "hi"']),
    ("a ‹it's›", ["a", "it's"]),
    ("a « x »  ‹ y ›", ["a", "x", "y"]),
])
def test_guillemets_normalise(typed: str, words: list[str]) -> None:
    assert shlex.split(normalise(typed)) == words
