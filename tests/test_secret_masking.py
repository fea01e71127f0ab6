"""Registered secrets (every ${VAR} and *_file value, every SecretStr) never reach what people
or unauthenticated clients read: chat replies on every path, /healthz, and in no spelling
(raw, repr/ascii-escaped, JSON-escaped, percent-encoded)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from conftest import console
from fakes.condor import closed_port, condor_config, demo_pool
from mattermost_harness import running

from bot.outcome import Outcome, OutcomeStatus
from bot.render import render_text
from bot.reply import Action, Reply, Table
from bot.secrets import SecretMasker

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")


@pytest.mark.parametrize("secret", ["tök'en\"\\x\x7f\n-4711", "a/b c+d&e=f%-4711"])
def test_every_spelling_of_a_secret_is_masked(secret: str) -> None:
    masker = SecretMasker()
    masker.add(secret)
    for shown in [secret, repr("'" + secret), repr('"' + secret), repr("'\"" + secret),
                  ascii("x" + secret), json.dumps({"k": secret}),
                  json.dumps([secret], ensure_ascii=False), quote(secret, safe=""),
                  quote(secret), quote_plus(secret)]:
        assert "4711" not in masker.mask(shown), (shown, masker.mask(shown))


def test_short_values_are_not_registered() -> None:
    masker = SecretMasker()
    masker.add("abc")
    assert not masker.active and masker.mask("abc abc") == "abc abc"


def test_every_part_of_a_reply_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = SecretMasker()
    monkeypatch.setattr("bot.reply.masker", masker)
    reply = Reply(text="t", title="title")
    assert reply.masked() is reply  # nothing registered: no copy, no scan
    masker.add("hunter2-4711")
    assert reply.masked() is reply  # nothing to mask: no copy
    leaky = Reply(text="a hunter2-4711", title="hunter2-4711", fields=[("k", "hunter2-4711")],
                  table=Table(["c"], [["x hunter2-4711"]]),
                  actions=[Action.run("hunter2-4711", "help")])
    update = Reply(text="hunter2-4711")
    outcome = Outcome(leaky, OutcomeStatus.OK, update=update)
    for dialect in ("console", "slack", "mattermost"):
        for shown in (outcome.reply, outcome.update):
            assert shown is not None
            assert "4711" not in render_text(shown, dialect)
    assert "4711" not in outcome.reply.actions[0].label


async def test_chat_error_replies_mask_env_secrets(
        make_bot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply built from an error (not rendered from a template) quotes the schedd address
    that came from ${SCHEDD_ADDRESS}."""
    monkeypatch.setenv("SCHEDD_ADDRESS",
                       f"<127.0.0.1:{closed_port()}?sock=schedd_env_secret_4711>")
    pools = {"real": {"backend": "htcondor", "schedd_address": "${SCHEDD_ADDRESS}",
                      "timeout_seconds": 3}, "demo": demo_pool()}
    bot = await make_bot(condor_config(pools, default_pool="demo"))
    outcome = await bot.handle(console("carol", "condor q real"))
    for dialect in ("console", "slack", "mattermost"):
        text = render_text(outcome.reply, dialect)
        assert "schedd_env_secret_4711" not in text, text


@pytest.mark.parametrize("rows", [1, 50])  # as it is, and cut to bot.max_table_rows
async def test_rendered_replies_mask_env_secrets(
        make_bot: Any, monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """The notice path, thread replies and cards render through the Renderer: it masks."""
    monkeypatch.setenv("OPS_TOKEN", "renderer-env-secret-4711")
    bot = await make_bot({"bot": {"environment": "${OPS_TOKEN}"}})
    table = Table(["a"], [["renderer-env-secret-4711"]] * rows)
    rendered = await bot.renderer.render(Reply(text="renderer-env-secret-4711", table=table))
    assert "4711" not in render_text(rendered, "slack"), rendered


async def test_healthz_masks_env_secrets(make_bot: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """/healthz (unauthenticated) states alias problems: a channel configured as
    ${NIGHT_OPS_CHANNEL} is masked there as in the WARNING line."""
    monkeypatch.setenv("NIGHT_OPS_CHANNEL", "night-ops-env-secret-4711")
    cfg = {"channels": {"ops": "${NIGHT_OPS_CHANNEL}", "alerts": "~alerts"}}
    async with running(make_bot, mattermost=cfg) as st, aiohttp.ClientSession() as http, \
            http.get(f"{st.http.url}/healthz") as resp:
        body = await resp.text()
    assert "env-secret-4711" not in body, body
    assert "***" in body, body
