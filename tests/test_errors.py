"""Every error has a title and says what to do next."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from conftest import console
from fakes.condor import GWCELERY_SCOPE, condor_config, demo_pool

from bot.core import Bot, OutcomeStatus
from bot.render import render_text

POOLS = {"gwcelery": demo_pool(scope=GWCELERY_SCOPE), "all": demo_pool()}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    built: Bot = await make_bot(condor_config(POOLS, default_pool="gwcelery"))
    return built


@pytest.mark.parametrize("line", ["help nosuchthing", "help condor nosuch", "why nosuch",
                                  "why condor rm as nobody", "who-can nosuch"])
async def test_errors_have_a_title(bot: Bot, line: str) -> None:
    out = await bot.handle(console("carol", line))
    assert out.status == OutcomeStatus.ERROR
    assert out.reply.title and out.reply.title != "Error", \
        f"no title: {render_text(out.reply, 'mattermost')!r}"


@pytest.mark.parametrize("line", ["help condor nosuch", "why condor rm as nobody"])
async def test_errors_say_what_to_do_next(bot: Bot, line: str) -> None:
    out = await bot.handle(console("carol", line))
    text = render_text(out.reply)
    assert "'help" in text or "who-can" in text or "whoami" in text, text


def test_every_reply_error_in_the_code_names_a_title() -> None:
    """Reply.error falls back to "Error" only as a last resort: each call gives its own."""
    missing = []
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "error" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "Reply"
                    and not any(k.arg == "title" for k in node.keywords)):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == []
