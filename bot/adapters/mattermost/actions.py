"""Buttons: signed integration contexts and the attachments that carry them.

Mattermost does not sign the request it sends when someone clicks a button: anybody who can
reach ``/mattermost/action`` could claim to be anybody clicking anything. The ``context`` of each
button is stored by the server and never shown to clients, so it carries an HMAC-SHA256 over a
canonical string of every field (action, request id, expiry, thread, ...) made with the bot's
action secret. A click is only acted upon when the signature verifies and has not expired; the
clicking user is then checked by the core's decision gate (:meth:`bot.core.Bot.decide`).

A command button (``Action.run``) is signed the same way with the action ``run``; its ``r`` field
is the opaque id under which the command line is stored (``bot/messaging/actions.py``), never the
command itself: a click runs exactly what was offered, as the clicker (:meth:`bot.core.Bot.click`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.reply import Action, Choice, Level

SIGNATURE_VERSION = "1"
# Label of the key derived from the bot token when no action_secret is configured.
DERIVED_KEY_LABEL = b"shiftbot/mattermost/action-context/v1"
ASK = "ask"  # first step of a confirmation: show "Confirm / Cancel"
RUN = "run"  # a command button: ``r`` is the stored action id
ACTIONS = frozenset({ASK, RUN, *(c.value for c in Choice)})
# Context keys: a=action, r=request id, e=expiry (unix s), t=thread root post id,
# u=requester's user id (ask step only), q=question shown at the second step, v=version.
_KEYS = frozenset({"a", "r", "e", "t", "u", "q", "v", "s"})

LEVEL_COLOURS = {
    Level.INFO: "#1e88e5",
    Level.OK: "#2e7d32",
    Level.WARNING: "#f9a825",
    Level.ERROR: "#c62828",
    Level.DENIED: "#c62828",
}
STYLES = {"default": "default", "primary": "primary", "danger": "danger"}


class BadContext(Exception):
    """A button context that must not be acted upon."""


class ForgedContext(BadContext):
    """Missing, malformed or wrongly signed: nobody but the bot made it."""


class ExpiredContext(BadContext):
    """Signed by the bot, but too old."""


@dataclass(frozen=True, slots=True)
class SignedAction:
    """What a verified button context says."""

    action: str  # ask | run | confirm | cancel | approve | deny
    request_id: str  # the pending request's id; for ``run``, the stored action id
    expires: int
    root_id: str = ""
    requester: str = ""  # ask step: who may move on to the second step
    question: str = ""  # ask step: the confirmation question


def derive_key(bot_token: str) -> bytes:
    """The action key used when ``mattermost.action_secret`` is unset."""
    return hmac.new(bot_token.encode(), DERIVED_KEY_LABEL, hashlib.sha256).digest()


class ActionSigner:
    """Signs and verifies button contexts (``clock``: unix seconds, injectable for tests)."""

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if not key:
            raise ValueError("the action key must not be empty")
        self._key = key
        self.clock = clock

    def sign(self, action: str, request_id: str, ttl_seconds: float, *, root_id: str = "",
             requester: str = "", question: str = "") -> dict[str, str]:
        """A context for one button."""
        if action not in ACTIONS:
            raise ValueError(f"unknown button action {action!r}")
        fields = {"v": SIGNATURE_VERSION, "a": action, "r": request_id,
                  "e": str(int(self.clock() + ttl_seconds))}
        for key, value in (("t", root_id), ("u", requester), ("q", question)):
            if value:
                fields[key] = value
        fields["s"] = self._mac(fields)
        return fields

    def verify(self, context: Any) -> SignedAction:
        """The action a context authorises; raises :class:`BadContext` subclasses."""
        if not isinstance(context, Mapping) or not context:
            raise ForgedContext("no context")
        if not set(context) <= _KEYS or not all(isinstance(v, str) for v in context.values()):
            raise ForgedContext("unexpected context fields")
        fields = {k: v for k, v in context.items() if k != "s"}
        given = context.get("s", "")
        # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
        if not hmac.compare_digest(self._mac(fields).encode(), _utf8(given)):
            raise ForgedContext("bad signature")
        if fields.get("v") != SIGNATURE_VERSION or fields.get("a") not in ACTIONS:
            raise ForgedContext("unknown version or action")
        try:
            expires = int(fields["e"])
        except (KeyError, ValueError):
            raise ForgedContext("no expiry") from None
        if not fields.get("r"):
            raise ForgedContext("no request id")
        if self.clock() > expires:
            raise ExpiredContext(f"expired {self.clock() - expires:.0f} s ago")
        return SignedAction(fields["a"], fields["r"], expires, fields.get("t", ""),
                            fields.get("u", ""), fields.get("q", ""))

    def _mac(self, fields: Mapping[str, str]) -> str:
        canonical = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
        return hmac.new(self._key, _utf8(canonical), hashlib.sha256).hexdigest()


def _utf8(text: str) -> bytes:
    """UTF-8, but lone surrogates (JSON may carry ``"\\ud800"``) do not raise; other text
    encodes exactly as with ``str.encode()``, so signatures are unchanged."""
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class ButtonFactory:
    """Builds attachments whose buttons POST to ``action_url`` with signed contexts."""

    signer: ActionSigner
    action_url: str
    ttl_seconds: float
    run_ttl_seconds: float = 30 * 24 * 3600.0  # command buttons (a notice's) live as stored

    def attachment(self, actions: list[Action], level: Level, *, root_id: str,
                   requester: str) -> dict[str, Any]:
        """One attachment holding a button per action (a confirmation asks twice)."""
        buttons = []
        for action in actions:
            if action.command is not None:
                if action.action_id:  # stored by bot.actions; an unstored one cannot be run
                    context = self.signer.sign(RUN, action.action_id, self.run_ttl_seconds,
                                               root_id=root_id)
                    buttons.append(self._button("r" + action.action_id, action.label,
                                                action.style, context))
            elif action.choice is None or action.request_id is None:
                continue
            elif action.choice == Choice.CONFIRM and action.confirm_text:
                context = self.signer.sign(ASK, action.request_id, self.ttl_seconds,
                                           root_id=root_id, requester=requester,
                                           question=action.confirm_text)
                buttons.append(self._button("confirmask", f"{action.label}…", action.style,
                                            context))
            else:
                context = self.signer.sign(action.choice.value, action.request_id,
                                           self.ttl_seconds, root_id=root_id)
                buttons.append(self._button(action.choice.value, action.label, action.style,
                                            context))
        return {"color": LEVEL_COLOURS.get(level, ""), "fallback": "Buttons", "actions": buttons}

    def second_step(self, signed: SignedAction) -> dict[str, Any]:
        """The "Confirm / Cancel" attachment shown after the first click on "Confirm…"."""
        buttons = [
            self._button("confirm", "Confirm", "danger", self.signer.sign(
                Choice.CONFIRM.value, signed.request_id, self.ttl_seconds,
                root_id=signed.root_id)),
            self._button("cancel", "Cancel", "default", self.signer.sign(
                Choice.CANCEL.value, signed.request_id, self.ttl_seconds,
                root_id=signed.root_id)),
        ]
        return {"color": LEVEL_COLOURS[Level.WARNING], "fallback": "Confirm or cancel",
                "actions": buttons}

    def _button(self, action_id: str, label: str, style: str,
                context: dict[str, str]) -> dict[str, Any]:
        # Mattermost routes clicks by action id, which must match [A-Za-z0-9]+.
        return {"id": action_id, "type": "button", "name": label,
                "style": STYLES.get(style, "default"),
                "integration": {"url": self.action_url, "context": context}}
