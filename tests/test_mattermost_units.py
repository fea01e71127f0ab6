"""The Mattermost adapter's pieces without a server: signing, parsing, backoff, errors, config."""

from __future__ import annotations

import httpx
import pytest
from mattermostautodriver.exceptions import (
    InvalidMattermostError,
    NotEnoughPermissions,
    TooManyRequests,
    UnknownMattermostError,
)

from bot.adapters.mattermost.actions import (
    ActionSigner,
    ButtonFactory,
    ExpiredContext,
    ForgedContext,
    derive_key,
)
from bot.adapters.mattermost.inbound import command_in, is_direct_channel, slash_text
from bot.adapters.mattermost.outbound import MESSAGE_LIMIT, Responder, fit
from bot.adapters.mattermost.rest import classify, driver_options, websocket_url
from bot.adapters.mattermost.websocket import Backoff
from bot.config import ConfigError, MattermostConfig, parse_config
from bot.reply import Action, Choice, Level
from bot.sender import RateLimited, TransientError


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------- signing


def test_signed_context_round_trip_and_tampering() -> None:
    clock = Clock()
    signer = ActionSigner(b"k" * 32, clock=clock)
    context = signer.sign("approve", "r1234", 60, root_id="root")
    signed = signer.verify(context)
    assert (signed.action, signed.request_id, signed.root_id) == ("approve", "r1234", "root")
    for key, value in (("a", "deny"), ("r", "r9999"), ("e", str(int(clock.now) + 9999)),
                       ("t", "other"), ("s", "0" * 64)):
        with pytest.raises(ForgedContext):
            signer.verify({**context, key: value})
    with pytest.raises(ForgedContext):
        signer.verify({**context, "extra": "x"})
    with pytest.raises(ForgedContext):
        signer.verify({k: v for k, v in context.items() if k != "s"})
    with pytest.raises(ForgedContext):
        ActionSigner(b"another key").verify(context)
    for junk in (None, "text", [], {}, {**context, "a": 1}):
        with pytest.raises(ForgedContext):
            signer.verify(junk)
    clock.now += 61
    with pytest.raises(ExpiredContext):
        signer.verify(context)


def test_derived_key_depends_on_the_token_only() -> None:
    assert derive_key("token-a") == derive_key("token-a") != derive_key("token-b")
    assert len(derive_key("t")) == 32
    with pytest.raises(ValueError):
        ActionSigner(b"")
    with pytest.raises(ValueError):
        ActionSigner(b"k").sign("explode", "r", 1)


def test_buttons_have_valid_ids_and_a_two_step_confirm() -> None:
    factory = ButtonFactory(ActionSigner(b"k"), "https://bot/mattermost/action", 300)
    attachment = factory.attachment(
        [Action("Confirm", Choice.CONFIRM, "abcd", style="danger", confirm_text="Run it?"),
         Action("Cancel", Choice.CANCEL, "abcd")], Level.WARNING, root_id="r", requester="u1")
    ids = [a["id"] for a in attachment["actions"]]
    assert ids == ["confirmask", "cancel"] and all(i.isalnum() for i in ids)
    ask = factory.signer.verify(attachment["actions"][0]["integration"]["context"])
    assert (ask.action, ask.requester, ask.question) == ("ask", "u1", "Run it?")
    second = factory.second_step(ask)
    assert [a["id"] for a in second["actions"]] == ["confirm", "cancel"]
    confirm = factory.signer.verify(second["actions"][0]["integration"]["context"])
    assert (confirm.action, confirm.request_id, confirm.root_id) == ("confirm", "abcd", "r")


# ------------------------------------------------------------------------- inbound text


@pytest.mark.parametrize(("message", "direct", "expected"), [
    ("!condor q", False, ("condor q", "prefix")),
    ("!", False, ("help", "prefix")),
    ("@shiftbot condor q", False, ("condor q", "mention")),
    ("@ShiftBot: status", False, ("status", "mention")),
    ("@shiftbot", False, ("help", "mention")),
    ("@shiftbot.", False, ("help", "mention")),
    ("@shiftbotter hi", False, None),
    ("@shiftbot.io hi", False, None),
    ("ask @shiftbot later", False, None),
    ("condor q", False, None),
    ("condor q", True, ("condor q", "direct")),
    ("@shiftbot condor q", True, ("condor q", "mention")),
    ("   ", True, None),
])
def test_what_a_message_asks(message: str, direct: bool, expected: tuple[str, str] | None) -> None:
    found = command_in(message, prefix="!", bot_username="shiftbot", direct=direct)
    assert (None if found is None else (found.text, found.how)) == expected


def test_slash_text_and_direct_channels() -> None:
    families = {"shiftbot": None, "condor": "condor"}
    assert slash_text("/shiftbot", " condor q ", families) == "condor q"
    assert slash_text("/condor", "q --all", families) == "condor q --all"
    assert slash_text("/condor", "", families) == "condor"
    assert slash_text("/shiftbot", "", families) == "help"
    assert slash_text("/unknown", "status", families) == "status"
    assert is_direct_channel("D", None) and not is_direct_channel("O", "a" * 26 + "__" + "b" * 26)
    assert is_direct_channel(None, "a" * 26 + "__" + "b" * 26)
    assert not is_direct_channel(None, "ops") and not is_direct_channel("G", None)


# ------------------------------------------------------------------------- backoff, errors


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    low = Backoff(1, 60, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    high = Backoff(1, 60, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    high.reset()
    assert high.next_delay() == 1


def test_failures_are_classified_for_the_sender() -> None:
    limited = classify(TooManyRequests("limit exceeded", 3.0))
    assert isinstance(limited, RateLimited) and limited.retry_after == 3.0
    assert isinstance(classify(UnknownMattermostError("x", 503, "id", "r", False)),
                      TransientError)
    assert isinstance(classify(InvalidMattermostError("<html>", 502)), TransientError)
    assert isinstance(classify(httpx.ConnectError("refused")), TransientError)
    assert isinstance(classify(httpx.ReadTimeout("slow")), TransientError)
    assert isinstance(classify(TimeoutError()), TransientError)
    forbidden = NotEnoughPermissions("no", "id", "r", False)
    assert classify(forbidden) is forbidden
    assert classify(InvalidMattermostError("bad", 400)).__class__ is InvalidMattermostError


def test_message_fits_and_response_url_budget() -> None:
    long = "```\n" + "x" * (MESSAGE_LIMIT + 10)
    cut = fit(long)
    assert len(cut) <= MESSAGE_LIMIT + 4 and cut.count("```") == 2 and "cut" in cut
    assert fit("short") == "short"
    clock = Clock(0)
    responder = Responder("https://mm/hooks/commands/x", created=0, clock=clock)
    assert responder.usable(reserve=2)
    responder.uses = 3
    assert not responder.usable(reserve=2) and responder.usable()
    responder.uses = 5
    assert not responder.usable()
    responder.uses, clock.now = 0, 30 * 60
    assert not responder.usable()


# ------------------------------------------------------------------------- config


def _section(**changes: object) -> dict[str, object]:
    return {"url": "https://mm.example.org", "token": "t", "team": "ops", **changes}


def test_config_urls_and_triggers() -> None:
    config = MattermostConfig.model_validate(_section(commands={"/Condor": "condor"}))
    assert config.commands == {"condor": "condor"}
    options = driver_options(config)
    assert (options["url"], options["port"], options["scheme"]) == ("mm.example.org", 443,
                                                                    "https")
    assert options["max_retries"] == 0 and options["request_timeout"] == 10
    assert websocket_url(config.url) == "wss://mm.example.org:443/api/v4/websocket"
    plain = MattermostConfig.model_validate(_section(url="http://127.0.0.1:8065/"))
    assert plain.url == "http://127.0.0.1:8065"
    assert websocket_url(plain.url) == "ws://127.0.0.1:8065/api/v4/websocket"
    for bad in ("mm.example.org", "ftp://mm", "https://mm.example.org/chat"):
        with pytest.raises(ConfigError):
            parse_config({"mattermost": _section(url=bad)})
    with pytest.raises(ConfigError):
        parse_config({"mattermost": _section(command_prefix="")})
