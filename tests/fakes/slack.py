"""A faithful fake Slack for tests: Web API, ``response_url`` and Socket Mode on 127.0.0.1.

It speaks the real protocols over real sockets (aiohttp server + WebSocket, loopback, ephemeral
port) inside the test's event loop, so the real ``slack_sdk`` / ``slack_bolt`` clients can be
pointed at it::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="general", text="hi")
        assert slack.messages("general")[0].text == "hi"

Wire facts honoured (see /work/shared/notes/PROTOCOLS.md and /work/shared/reference/slack/):

* Web API errors are HTTP 200 ``{"ok": false, "error": ...}``; rate limits are HTTP 429 with an
  integer ``Retry-After`` header and ``{"ok": false, "error": "ratelimited"}``.
* Bodies may be JSON or form-encoded (plus query parameters); the token comes from
  ``Authorization: Bearer ...`` (or a ``token`` form/query field). Missing token -> ``not_authed``,
  the other valid token type (bot vs app) -> ``not_allowed_token_type``, anything else ->
  ``invalid_auth``.
* ``response_url``: JSON POST, 5 uses, 30 minutes. Success is ``200 text/plain "ok"``. Failures
  follow the incoming-webhook convention (plain-text error code): ``404 expired_url``,
  ``404 used_url``, ``404 no_service`` (unknown id), ``400 invalid_payload`` / ``400 no_text``.
  The exact status Slack uses for used/expired response URLs is not documented in the material
  available to us; this choice is ours (see ``RESPONSE_URL_*`` constants).
* Socket Mode: ``hello`` on connect, envelopes ``{envelope_id, type, payload,
  accepts_response_payload}``, client acks ``{"envelope_id": ...}`` (optionally ``payload``)
  within 3 s; ``disconnect`` envelopes; pings answered by hand (so they can be ignored).
  WebSocket URLs from ``apps.connections.open`` are single-use by default, like Slack's tickets.
* Message metadata: ``chat.postMessage`` / ``chat.update`` take ``metadata`` =
  ``{"event_type": str, "event_payload": object}`` (a JSON object, or a JSON string in a form
  body; anything else -> ``invalid_metadata_format``); ``chat.update`` without it keeps the
  message's metadata. ``conversations.history`` / ``conversations.replies`` return it only with
  ``include_all_metadata`` true. History is newest first, top-level messages only (replies
  stay in their thread unless broadcast), the bot's ephemeral and deleted messages never;
  replies are the root then its replies, oldest first; both page with ``limit`` /
  ``next_cursor`` and need the bot in the channel (``not_in_channel``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import ClientSession, ClientTimeout, WSMsgType, web
from slack_sdk.signature import SignatureVerifier

__all__ = [
    "ACK_DEADLINE",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_SIGNING_SECRET",
    "Call",
    "Channel",
    "Envelope",
    "FakeSlack",
    "HttpDelivery",
    "Message",
    "ResponseUrl",
    "SignedRequest",
    "SocketConnection",
    "User",
    "button_errors",
]

DEFAULT_BOT_TOKEN = "xoxb-test"
DEFAULT_APP_TOKEN = "xapp-test"
DEFAULT_SIGNING_SECRET = "shiftbot-test-signing-secret-0123456789"
DEFAULT_VERIFICATION_TOKEN = "fake-verification-token"

ACK_DEADLINE = 3.0  # seconds Slack waits for an HTTP 200 / a Socket Mode ack
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_EXPIRED = (404, "expired_url")
RESPONSE_URL_USED = (404, "used_url")
RESPONSE_URL_UNKNOWN = (404, "no_service")
MAX_TEXT_LENGTH = 40_000
MAX_BLOCKS = 50
CONVERSATIONS_LIST_DEFAULT_LIMIT = 100
CONVERSATIONS_LIST_MAX_LIMIT = 1000
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 999

# Pseudo-method names accepted by the fault controls besides Web API methods.
RESPONSE_URL = "response_url"
SOCKET = "socket"
ANY_API_METHOD = "*"

_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_ANY_TOKEN_METHODS = frozenset({"auth.test"})
_MENTION_RE = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass
class Channel:
    """A conversation of the fake workspace (public/private channel or IM)."""

    id: str
    name: str
    is_member: bool = True
    is_private: bool = False
    is_archived: bool = False
    is_im: bool = False
    user: str | None = None  # the other party of an IM
    topic: str = ""
    purpose: str = ""
    created: int = 1_700_000_000
    num_members: int = 3

    @property
    def kind(self) -> str:
        """The ``types`` value of ``conversations.list`` this channel belongs to."""
        if self.is_im:
            return "im"
        return "private_channel" if self.is_private else "public_channel"

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The channel object as ``conversations.info`` / ``conversations.list`` return it."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": team_id,
                "user": self.user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "unlinked": 0,
            "name_normalized": self.name.lower(),
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": team_id,
            "updated": self.created * 1000,
            "parent_conversation": None,
            "creator": "U00000000",
            "shared_team_ids": [team_id],
            "is_member": self.is_member,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
            "num_members": self.num_members,
        }


@dataclass
class User:
    """A member of the fake workspace."""

    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False
    is_admin: bool = False
    deleted: bool = False
    tz: str = "Europe/Zurich"
    tz_offset: int = 3600
    email: str = ""
    bot_id: str | None = None

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The user object as ``users.info`` returns it."""
        real = self.real_name or self.name
        profile: dict[str, Any] = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": real,
            "real_name_normalized": real,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g" + self.id.lower()[-10:],
            "email": self.email or f"{self.name}@example.org",
            "first_name": real.split(" ")[0],
            "last_name": " ".join(real.split(" ")[1:]),
            "team": team_id,
        }
        if self.is_bot and self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": self.tz_offset,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "is_email_confirmed": True,
            "who_can_share_contact_card": "EVERYONE",
        }


@dataclass(eq=False)
class Call:
    """One request received by the fake (a Web API call, or a ``response_url`` POST)."""

    method: str  # Web API method, or "response_url"
    params: dict[str, Any]  # query + form/JSON body, JSON fields (blocks...) decoded
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    token: str | None
    t: float  # time.monotonic() at arrival
    http_method: str = "POST"
    url_id: str | None = None  # response_url id
    status: int = 0  # 0 while not answered
    response: Any = None  # JSON dict (Web API) or text (response_url)
    answered_at: float | None = None

    @property
    def answered(self) -> bool:
        """True once the fake has produced the response."""
        return self.status != 0

    @property
    def ok(self) -> bool:
        """True for an HTTP 200 answer that Slack would call a success."""
        if self.status != 200:
            return False
        if isinstance(self.response, dict):
            return self.response.get("ok") is True
        return self.response == "ok"

    @property
    def error(self) -> str | None:
        """The Slack error code of a failed answer (``None`` on success)."""
        if self.ok or not self.answered:
            return None
        if isinstance(self.response, dict):
            return self.response.get("error")
        return str(self.response)

    def header(self, name: str) -> str | None:
        """Case-insensitive request header lookup."""
        lname = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lname), None)


@dataclass(eq=False)
class Message:
    """A message in a channel: posted by the bot (API / response_url) or injected as a user's."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    user: str
    source: str  # "chat.postMessage" | "chat.postEphemeral" | "response_url" | "ack" | "user"
    ephemeral_to: str | None = None
    attachments: list[Any] | None = None
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)  # earlier {text, blocks}
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    metadata: dict[str, Any] | None = None  # {"event_type", "event_payload"} (message metadata)

    @property
    def is_ephemeral(self) -> bool:
        """True when only ``ephemeral_to`` sees this message."""
        return self.ephemeral_to is not None


@dataclass(eq=False)
class ResponseUrl:
    """A ``response_url`` issued by :meth:`FakeSlack.new_response_url`."""

    id: str
    url: str
    channel: str
    user: str
    message_ts: str | None  # original message (block_actions), for replace/delete_original
    created_at: float  # FakeSlack.now() at issue time
    max_uses: int
    ttl: float
    uses: int = 0
    last_ts: str | None = None  # message created by the last use (slash commands)


@dataclass(eq=False)
class SocketConnection:
    """One Socket Mode WebSocket connection accepted by the fake."""

    number: int  # 1-based, in order of opening
    ticket: str
    opened_at: float  # time.monotonic()
    hello: dict[str, Any]
    ws: web.WebSocketResponse = field(repr=False)
    transport: asyncio.BaseTransport | None = field(repr=False)
    closed_at: float | None = None
    close_reason: str | None = None  # "client" | "server" | "killed" | "shutdown"
    pings: int = 0
    silent: bool = False
    received: list[Any] = field(default_factory=list, repr=False)

    @property
    def is_open(self) -> bool:
        """True until the TCP connection is gone."""
        return self.closed_at is None


@dataclass(eq=False)
class Envelope:
    """A Socket Mode envelope pushed by the fake, and its ack."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    connection: int  # SocketConnection.number
    sent_at: float  # time.monotonic()
    delivered: bool = True  # False when written to a silent/closed socket
    ack: dict[str, Any] | None = None
    acked_at: float | None = None
    deadline: float = ACK_DEADLINE

    @property
    def elapsed(self) -> float | None:
        """Seconds between sending and receiving the ack (``None`` when not acked)."""
        return None if self.acked_at is None else self.acked_at - self.sent_at

    @property
    def in_time(self) -> bool:
        """True when acked within the 3 s deadline."""
        return self.elapsed is not None and self.elapsed <= self.deadline

    @property
    def response_payload(self) -> dict[str, Any] | None:
        """The ``payload`` the client put in its ack, if any."""
        return None if self.ack is None else self.ack.get("payload")


@dataclass
class SignedRequest:
    """An HTTP-mode request ready to POST to the bot: raw body, headers and decoded payload."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class HttpDelivery:
    """The bot's answer to a request delivered by :meth:`FakeSlack.deliver`."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed: float  # seconds until the full answer was read
    in_time: bool  # answered within Slack's 3 s

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class _Fault:
    method: str
    kind: str  # "hang" | "status" | "ratelimit" | "ok_false"
    times: int | None  # None: until cleared
    status: int = 500
    error: str = "internal_error"
    retry_after: int = 1
    seconds: float = 0.0
    # "status" with stored=True: the call is carried out, then answered with the failure;
    # "stall": held until release_stalls() (stored: carried out first, else never).
    stored: bool = False
    match: Callable[[Call], bool] | None = None


class _ApiError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def _as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _as_int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _ApiError("invalid_arguments") from None


# Block Kit button element limits (docs.slack.dev, "Button element"): a button may open a page
# (``url``; the click still sends block_actions), carry a value, or both.
BUTTON_LIMITS = {"action_id": 255, "url": 3000, "value": 2000}
BUTTON_TEXT_LIMIT = 75


def button_errors(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would refuse in the button elements of ``blocks`` (empty: all accepted)."""
    errors: list[str] = []
    for block in blocks:
        elements = block.get("elements") if block.get("type") == "actions" else None
        elements = [*(elements or []), *([block["accessory"]] if block.get("accessory") else [])]
        seen: set[str] = set()
        for element in elements:
            if not isinstance(element, dict) or element.get("type") != "button":
                continue
            errors += _button_errors(element)
            action_id = element.get("action_id")
            if action_id is not None and action_id in seen:
                errors.append(f"action_id {action_id!r} repeated in a block")
            seen.add(str(action_id))
    return errors


def _button_errors(element: dict[str, Any]) -> list[str]:
    errors = []
    text = element.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text" \
            or not 0 < len(str(text.get("text") or "")) <= BUTTON_TEXT_LIMIT:
        errors.append("button text must be plain_text of 1-75 characters")
    for key, limit in BUTTON_LIMITS.items():
        if key in element and (not isinstance(element[key], str) or len(element[key]) > limit):
            errors.append(f"button {key} must be a string of at most {limit} characters")
    if "style" in element and element["style"] not in ("primary", "danger"):
        errors.append("button style must be primary or danger")
    return errors


def _default_channels() -> list[Channel]:
    return [
        Channel("C00000001", "general"),
        Channel("C00000002", "shifters"),
        Channel("C00000003", "random", is_member=False),
        Channel("C00000004", "ops-private", is_private=True),
    ]


def _default_users() -> list[User]:
    return [
        User("U00000001", "alice", "Alice Shifter"),
        User("U00000002", "bob", "Bob Expert"),
    ]


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeSlack:
    """Fake Slack server (Web API + response_url + Socket Mode) for one test.

    Use as ``async with FakeSlack(...) as slack:``; it listens on 127.0.0.1 with an ephemeral
    port. Everything it receives is recorded; failure modes can be switched on at runtime.
    """

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        channels: Iterable[Channel | Mapping[str, Any]] | None = None,
        users: Iterable[User | Mapping[str, Any]] | None = None,
        team_id: str = "T00000001",
        team_name: str = "Fake Observatory",
        team_domain: str = "fake-observatory",
        app_id: str = "A00000001",
        bot_id: str = "B00000001",
        bot_user_id: str = "U0000BOT1",
        bot_name: str = "shiftbot",
        clock: Callable[[], float] | None = None,
        response_url_max_uses: int = RESPONSE_URL_MAX_USES,
        response_url_ttl: float = RESPONSE_URL_TTL,
        ack_deadline: float = ACK_DEADLINE,
        single_use_socket_urls: bool = True,
        seed: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.verification_token = DEFAULT_VERIFICATION_TOKEN
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.app_id = app_id
        self.bot_id = bot_id
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.clock: Callable[[], float] = clock or time.time
        self.response_url_max_uses = response_url_max_uses
        self.response_url_ttl = response_url_ttl
        self.ack_deadline = ack_deadline
        self.single_use_socket_urls = single_use_socket_urls
        self.ignore_pings = False  # True: no connection answers pings (half-dead sockets)

        self.channels: dict[str, Channel] = {}
        for ch in _default_channels() if channels is None else channels:
            self._register_channel(ch if isinstance(ch, Channel) else Channel(**ch))
        self.users: dict[str, User] = {}
        bot = User(bot_user_id, bot_name, "Shiftbot", is_bot=True, bot_id=bot_id)
        for user in [bot, *(_default_users() if users is None else users)]:
            u = user if isinstance(user, User) else User(**user)
            self.users[u.id] = u

        self.rate_limited_count = 0  # number of HTTP 429 answers served
        self.connections: list[SocketConnection] = []
        self.envelopes: list[Envelope] = []
        self.acks: list[Envelope] = []  # envelopes in the order their acks arrived
        self.stray_acks: list[dict[str, Any]] = []  # acks for unknown/already-acked envelopes
        self.response_urls: dict[str, ResponseUrl] = {}

        self._calls: list[Call] = []
        self._messages: list[Message] = []
        self._faults: list[_Fault] = []
        self.stalled: list[Call] = []  # calls held by a stall right now
        self._stalls_released = asyncio.Event()
        self._channel_rate: tuple[float, float, frozenset[str]] | None = None
        self._buckets: dict[str, tuple[float, float]] = {}
        self._tickets: dict[str, float] = {}
        self._envelopes_by_id: dict[str, Envelope] = {}
        self._offset = 0.0
        self._last_ts_us = 0
        self._rng = random.Random(seed)
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._api_handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "auth.test": self._api_auth_test,
            "chat.postMessage": self._api_post_message,
            "chat.postEphemeral": self._api_post_ephemeral,
            "chat.update": self._api_update,
            "conversations.list": self._api_conversations_list,
            "conversations.info": self._api_conversations_info,
            "conversations.history": self._api_conversations_history,
            "conversations.replies": self._api_conversations_replies,
            "users.info": self._api_users_info,
            "apps.connections.open": self._api_connections_open,
        }
        from fakes.slack_files import SlackFiles  # the external file upload

        self.files = SlackFiles(self)

    # ---------------------------------------------------------------- lifecycle / addresses

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening on 127.0.0.1 (ephemeral port)."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{id}", self._handle_response_url)
        app.router.add_get("/socket/{ticket}", self._handle_socket)
        self.files.install(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close every socket, release hanging requests and stop the server."""
        self._closing.set()
        self.release_stalls()
        for conn in self.connections:
            if conn.is_open:
                conn.close_reason = conn.close_reason or "shutdown"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=1001), 0.3)
                if conn.transport is not None:
                    conn.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``WebClient(base_url=...)`` (with the trailing slash)."""
        return f"{self.base_url}/api/"

    def web_client(self, token: str | None = None, **kwargs: Any) -> Any:
        """An ``AsyncWebClient`` pointed at the fake (bot token unless ``token`` is given)."""
        from slack_sdk.web.async_client import AsyncWebClient

        return AsyncWebClient(token=token or self.bot_token, base_url=self.api_url, **kwargs)

    # ---------------------------------------------------------------- clock

    def now(self) -> float:
        """The fake's wall clock: ``clock() + advance()`` offset (epoch seconds)."""
        return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (response_url expiry, per-channel rate windows)."""
        self._offset += seconds
        self._notify()

    # ---------------------------------------------------------------- workspace content

    def add_channel(
        self,
        name: str,
        *,
        id: str | None = None,
        is_member: bool = True,
        is_private: bool = False,
        is_archived: bool = False,
    ) -> Channel:
        """Add a channel (``id`` generated as ``C########`` unless given)."""
        ch = Channel(
            id=id or self._new_channel_id(),
            name=name,
            is_member=is_member,
            is_private=is_private,
            is_archived=is_archived,
        )
        return self._register_channel(ch)

    def add_channels(
        self, count: int, *, prefix: str = "chan", is_member: bool = False, is_private: bool = False
    ) -> list[Channel]:
        """Add ``count`` channels named ``{prefix}-0001``... (to exercise paging)."""
        return [
            self.add_channel(f"{prefix}-{i:04d}", is_member=is_member, is_private=is_private)
            for i in range(1, count + 1)
        ]

    def add_user(
        self, name: str, *, id: str | None = None, real_name: str = "", **extra: Any
    ) -> User:
        """Add a workspace member (``id`` generated unless given)."""
        uid = id or f"U{len(self.users) + 1:08d}"
        while uid in self.users:
            uid = f"U{self._rng.randrange(10**8):08d}"
        user = User(uid, name, real_name, **extra)
        self.users[uid] = user
        return user

    def channel(self, key: str) -> Channel:
        """Look a channel up by id, name or ``#name`` (KeyError if unknown)."""
        ch = self._find_channel(key)
        if ch is None:
            raise KeyError(key)
        return ch

    def dm_channel(self, user_id: str) -> Channel:
        """The bot's IM channel with ``user_id`` (created on first use, ``D...``)."""
        for ch in self.channels.values():
            if ch.is_im and ch.user == user_id:
                return ch
        return self._register_channel(
            Channel(id="D" + user_id[1:], name=user_id, is_im=True, user=user_id, num_members=2)
        )

    # ---------------------------------------------------------------- failure modes

    def rate_limit(self, method: str, *, times: int | None = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 + ``Retry-After``."""
        self._faults.append(_Fault(method, "ratelimit", times, retry_after=int(retry_after)))

    def limit_channel_rate(
        self,
        per_second: float | None = 1.0,
        *,
        burst: float = 1.0,
        methods: Iterable[str] = ("chat.postMessage",),
    ) -> None:
        """Per-channel token bucket (Slack's ~1 message/s); posts that come too fast get 429.

        ``per_second=None`` switches it off. Uses the fake clock (``advance`` refills it).
        """
        self._buckets.clear()
        self._channel_rate = (
            None if per_second is None else (float(per_second), float(burst), frozenset(methods))
        )

    def fail_next(
        self,
        method: str,
        status: int = 500,
        *,
        times: int | None = 1,
        error: str = "internal_error",
        stored: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status``.

        ``stored``: the call is carried out first (the message exists) and only its answer is
        the failure, as when a gateway times out after Slack did the work. Faults of one method
        apply in the order they were added.
        """
        self._faults.append(_Fault(method, "status", times, status=status, error=error,
                                   stored=stored))

    def stall(
        self,
        method: str,
        *,
        stored: bool,
        times: int | None = 1,
        match: Callable[[Call], bool] | None = None,
    ) -> None:
        """Hold the next ``times`` calls of ``method`` (those ``match`` accepts) until
        :meth:`release_stalls` or :meth:`stop`; they show in :attr:`stalled` meanwhile.

        ``stored=False``: the call is never carried out (lost on its way in; released, it is
        answered 503). ``stored=True``: it is carried out at once (the message exists, shows in
        history) and only the answer is held (lost on its way out; released, it is sent). A
        client killed meanwhile never hears back: a crash mid-send.
        """
        self._faults.append(_Fault(method, "stall", times, stored=stored, match=match))

    def release_stalls(self) -> None:
        """Let every held call finish (see :meth:`stall`)."""
        self._stalls_released.set()
        self._stalls_released = asyncio.Event()

    def hang(self, method: str, seconds: float, *, times: int | None = 1) -> None:
        """Delay the next ``times`` answers of ``method`` by ``seconds`` (then answer normally)."""
        self._faults.append(_Fault(method, "hang", times, seconds=seconds))

    def ok_false(self, method: str, error: str, *, times: int | None = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 200 ``ok:false, error``."""
        self._faults.append(_Fault(method, "ok_false", times, error=error))

    def clear_faults(self, method: str | None = None) -> None:
        """Remove pending faults (for ``method`` only, or all); also stops channel rate limits."""
        self._faults = [f for f in self._faults if method is not None and f.method != method]
        if method is None:
            self.limit_channel_rate(None)

    # ---------------------------------------------------------------- recording accessors

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded requests, oldest first (all, or those of one method / ``"response_url"``)."""
        return [c for c in self._calls if method is None or c.method == method]

    def messages(
        self,
        channel: str | None = None,
        *,
        thread_ts: str | None = None,
        ephemeral: bool | None = None,
        include_deleted: bool = False,
    ) -> list[Message]:
        """Messages the bot made visible (API posts and response_url posts), oldest first.

        ``channel`` may be an id or a name; ``thread_ts`` keeps one thread's replies;
        ``ephemeral`` True/False filters ephemeral messages; deleted ones are hidden by default.
        """
        return [
            m
            for m in self.history(channel, include_deleted=include_deleted)
            if m.source != "user"
            and (thread_ts is None or m.thread_ts == thread_ts)
            and (ephemeral is None or m.is_ephemeral == ephemeral)
        ]

    def history(
        self, channel: str | None = None, *, include_deleted: bool = False
    ) -> list[Message]:
        """Every message of a channel (including injected user messages), oldest first."""
        cid = None if channel is None else self.channel(channel).id
        return [
            m
            for m in self._messages
            if (cid is None or m.channel == cid) and (include_deleted or not m.deleted)
        ]

    def message(self, channel: str, ts: str) -> Message | None:
        """The message with ``ts`` in ``channel`` (or None)."""
        cid = self.channel(channel).id
        return next((m for m in self._messages if m.channel == cid and m.ts == ts), None)

    @property
    def connection_count(self) -> int:
        """How many Socket Mode connections were opened so far."""
        return len(self.connections)

    @property
    def open_connections(self) -> list[SocketConnection]:
        """The Socket Mode connections that are still open."""
        return [c for c in self.connections if c.is_open]

    def clear_records(self) -> None:
        """Forget recorded calls, envelopes and acks (messages and channels are kept)."""
        self._calls.clear()
        self.envelopes.clear()
        self.acks.clear()
        self.stray_acks.clear()
        self.rate_limited_count = 0

    # ---------------------------------------------------------------- waiting without sleeps

    async def wait_until(
        self, condition: Callable[[], bool], timeout: float = 5.0, description: str = "condition"
    ) -> None:
        """Wait until ``condition()`` is true (re-checked on every fake event, and every 50 ms)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"FakeSlack: {description} not met within {timeout} s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    async def wait_for(
        self,
        what: str | Callable[[Call], bool] | None = None,
        count: int = 1,
        timeout: float = 5.0,
        *,
        answered: bool = True,
    ) -> list[Call]:
        """Wait until ``count`` matching calls were received (and answered) and return them.

        ``what`` is a method name (``"chat.postMessage"``, ``"response_url"``), a predicate on
        :class:`Call`, or None for any call.
        """
        if what is None:
            pred: Callable[[Call], bool] = lambda c: True  # noqa: E731
        elif isinstance(what, str):
            pred = lambda c: c.method == what  # noqa: E731
        else:
            pred = what

        def matching() -> list[Call]:
            return [c for c in self._calls if pred(c) and (c.answered or not answered)]

        await self.wait_until(lambda: len(matching()) >= count, timeout, f"{count} x {what!r}")
        return matching()

    async def wait_for_connection(self, n: int = 1, timeout: float = 5.0) -> SocketConnection:
        """Wait until the ``n``-th Socket Mode connection (1-based, cumulative) has been opened."""
        await self.wait_until(
            lambda: len(self.connections) >= n, timeout, f"socket connection #{n}"
        )
        return self.connections[n - 1]

    async def wait_for_acks(self, count: int = 1, timeout: float = 5.0) -> list[Envelope]:
        """Wait until ``count`` envelopes have been acked; return them in ack order."""
        await self.wait_until(lambda: len(self.acks) >= count, timeout, f"{count} acks")
        return list(self.acks)

    # ---------------------------------------------------------------- response_url

    def new_response_url(
        self,
        channel: str | None = None,
        user: str | None = None,
        *,
        message_ts: str | None = None,
    ) -> str:
        """Issue ``http://127.0.0.1:PORT/response/<id>`` bound to a channel/user (5 uses, 30 min).

        ``message_ts`` is the original message (for ``replace_original`` / ``delete_original``).
        """
        ch = self.channel(channel) if channel else self._default_channel()
        rid = self._hex(24)
        url = f"{self.base_url}/response/{rid}"
        self.response_urls[rid] = ResponseUrl(
            id=rid,
            url=url,
            channel=ch.id,
            user=user or self._default_user().id,
            message_ts=message_ts,
            created_at=self.now(),
            max_uses=self.response_url_max_uses,
            ttl=self.response_url_ttl,
        )
        return url

    def response_url(self, url: str) -> ResponseUrl:
        """The :class:`ResponseUrl` record behind a URL (or id)."""
        return self.response_urls[url.rstrip("/").rsplit("/", 1)[-1]]

    def response_posts(self, url: str | None = None) -> list[Call]:
        """Recorded ``response_url`` POSTs (all, or those of one URL)."""
        rid = None if url is None else self.response_url(url).id
        return [c for c in self.calls(RESPONSE_URL) if rid is None or c.url_id == rid]

    # ---------------------------------------------------------------- Socket Mode controls

    async def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        connection: SocketConnection | None = None,
        wait: bool = True,
        timeout: float = 5.0,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> Envelope:
        """Push an envelope to the newest open connection; by default wait for its ack.

        Returns the :class:`Envelope` (``ack`` is None if none came within ``timeout``).
        ``accepts_response_payload`` defaults to True for ``slash_commands`` only, like Slack.
        """
        if connection is None:
            await self.wait_until(lambda: bool(self.open_connections), timeout, "open socket")
            connection = self.open_connections[-1]
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands"
        env = Envelope(
            envelope_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            type=type,
            payload=payload,
            accepts_response_payload=accepts_response_payload,
            connection=connection.number,
            sent_at=time.monotonic(),
            deadline=self.ack_deadline,
        )
        frame: dict[str, Any] = {
            "envelope_id": env.envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            frame["retry_attempt"] = retry_attempt
            frame["retry_reason"] = retry_reason
        self.envelopes.append(env)
        self._envelopes_by_id[env.envelope_id] = env
        env.delivered = await self._ws_send(connection, frame)
        if wait:
            with contextlib.suppress(TimeoutError):
                await self.wait_until(lambda: env.ack is not None, timeout, "ack")
        return env

    async def socket_disconnect(
        self,
        reason: str = "refresh_requested",
        *,
        connection: SocketConnection | None = None,
        close_after: float | None = None,
    ) -> SocketConnection:
        """Send a ``disconnect`` envelope; optionally close the socket ``close_after`` s later."""
        conn = self._current_connection(connection)
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": self._host(conn)}}
        await self._ws_send(conn, frame)
        if close_after is not None:
            self._spawn(self._close_later(conn, close_after))
        return conn

    async def close_socket(
        self, *, connection: SocketConnection | None = None, code: int = 1000
    ) -> SocketConnection:
        """Close the socket cleanly from the server side (close frame)."""
        conn = self._current_connection(connection)
        conn.close_reason = conn.close_reason or "server"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(code=code), 1.0)
        return conn

    async def kill_socket(self, *, connection: SocketConnection | None = None) -> SocketConnection:
        """Drop the TCP connection abruptly (no close frame), like a dead network path."""
        conn = self._current_connection(connection)
        conn.close_reason = "killed"
        conn.silent = True
        if conn.transport is not None:
            conn.transport.abort()
        await self.wait_until(lambda: not conn.is_open, 2.0, "killed socket to close")
        return conn

    async def go_silent(
        self, *, connection: SocketConnection | None = None, abort_after: float | None = None
    ) -> SocketConnection:
        """Half-dead socket: stop answering pings and drop traffic both ways, TCP stays up.

        With ``abort_after`` the TCP connection is aborted that many seconds later.
        """
        conn = self._current_connection(connection)
        conn.silent = True
        if abort_after is not None:
            self._spawn(self._abort_later(conn, abort_after))
        return conn

    # ---------------------------------------------------------------- payload builders

    def slash_command_payload(
        self,
        text: str = "",
        *,
        command: str = "/shiftbot",
        user_id: str | None = None,
        channel_id: str | None = None,
        response_url: str | None = None,
        trigger_id: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str = "",
    ) -> dict[str, str]:
        """The slash-command fields of the sample (all strings, as in the form body).

        ``enterprise_id``/``enterprise_name`` are only present for an Enterprise Grid org.
        """
        ch = self.channel(channel_id) if channel_id else self._default_channel()
        user = self._user(user_id)
        grid = (
            {}
            if enterprise_id is None
            else {
                "enterprise_id": enterprise_id,
                "enterprise_name": enterprise_name,
            }
        )
        return {
            **grid,
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": ch.id,
            "channel_name": "directmessage" if ch.is_im else ch.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.new_response_url(ch.id, user.id),
            "trigger_id": trigger_id or self._trigger_id(),
        }

    def app_mention_event(
        self,
        text: str,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """An ``app_mention`` event (the bot mention is prepended when ``text`` lacks it).

        The message is also stored in the channel history so replies can thread on it.
        """
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}".rstrip()
        ch = self.channel(channel_id) if channel_id else self._default_channel()
        msg = self._inject_user_message(ch.id, self._user(user_id).id, text, thread_ts)
        event = self._event_base("app_mention", msg)
        return event

    def message_event(
        self,
        text: str,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        channel_type: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        bot_id: str | None = None,
    ) -> dict[str, Any]:
        """A ``message`` event; without ``channel_id`` it is a DM (``channel_type: im``)."""
        user = self._user(user_id)
        ch = self.channel(channel_id) if channel_id else self.dm_channel(user.id)
        msg = self._inject_user_message(ch.id, user.id, text, thread_ts)
        event = self._event_base("message", msg)
        event["channel_type"] = channel_type or (
            "im" if ch.is_im else "group" if ch.is_private else "channel"
        )
        if subtype is not None:
            event["subtype"] = subtype
        if bot_id is not None:
            event["bot_id"] = bot_id
        return event

    def event_callback(self, event: dict[str, Any]) -> dict[str, Any]:
        """Wrap an event in the Events API ``event_callback`` envelope payload."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + self._alnum(10),
            "event_time": int(self.now()),
            "authed_users": [self.bot_user_id],  # deprecated, still required by the schema
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + self._alnum(40),
        }

    def block_actions_payload(
        self,
        action_id: str,
        *,
        value: str | None = None,
        block_id: str | None = None,
        user_id: str | None = None,
        channel_id: str | None = None,
        message_ts: str | None = None,
        response_url: str | None = None,
        action_type: str = "button",
    ) -> dict[str, Any]:
        """A ``block_actions`` payload (shape of the sample) for a click on ``action_id``.

        Defaults: the channel's latest bot message; ``block_id``/``value``/text are taken from
        the matching element of that message's blocks when present.
        """
        ch = self.channel(channel_id) if channel_id else self._default_channel()
        user = self._user(user_id)
        msg = self.message(ch.id, message_ts) if message_ts else None
        if msg is None and message_ts is None:
            bot_msgs = [m for m in self.messages(ch.id) if not m.is_ephemeral]
            msg = bot_msgs[-1] if bot_msgs else None
        ts = message_ts or (msg.ts if msg else self._next_ts())
        element, found_block = self._find_element(msg, action_id) if msg else ({}, None)
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id or found_block or self._alnum(5),
            "text": element.get("text", {"type": "plain_text", "text": action_id, "emoji": True}),
            "value": value if value is not None else element.get("value", ""),
            "type": action_type,
            "action_ts": self._next_ts(),
        }
        if "style" in element:
            action["style"] = element["style"]
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": ch.id,
            "is_ephemeral": bool(msg and msg.is_ephemeral),
        }
        if msg is not None and msg.thread_ts:
            container["thread_ts"] = msg.thread_ts
        return {
            "type": "block_actions",
            "user": {
                "id": user.id,
                "username": user.name,
                "name": user.name,
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self._trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": ch.id, "name": "directmessage" if ch.is_im else ch.name},
            "message": self._message_api(msg)
            if msg
            else {"type": "message", "ts": ts, "text": "", "user": self.bot_user_id},
            "state": {"values": {}},
            "response_url": response_url or self.new_response_url(ch.id, user.id, message_ts=ts),
            "actions": [action],
        }

    async def send_slash_command(self, text: str = "", **kwargs: Any) -> Envelope:
        """Build a slash command (kwargs of :meth:`slash_command_payload`) and push it."""
        wait_kw = self._pop_send_kwargs(kwargs)
        payload = self.slash_command_payload(text, **kwargs)
        return await self.send_envelope("slash_commands", payload, **wait_kw)

    async def send_event(self, event: dict[str, Any], **kwargs: Any) -> Envelope:
        """Wrap ``event`` in ``event_callback`` and push it as an ``events_api`` envelope."""
        return await self.send_envelope("events_api", self.event_callback(event), **kwargs)

    async def send_app_mention(self, text: str, **kwargs: Any) -> Envelope:
        """Build an ``app_mention`` (kwargs of :meth:`app_mention_event`) and push it."""
        wait_kw = self._pop_send_kwargs(kwargs)
        return await self.send_event(self.app_mention_event(text, **kwargs), **wait_kw)

    async def send_message_event(self, text: str, **kwargs: Any) -> Envelope:
        """Build a ``message`` event (kwargs of :meth:`message_event`) and push it."""
        wait_kw = self._pop_send_kwargs(kwargs)
        return await self.send_event(self.message_event(text, **kwargs), **wait_kw)

    async def send_block_action(self, action_id: str, **kwargs: Any) -> Envelope:
        """Build a ``block_actions`` payload and push it as an ``interactive`` envelope."""
        wait_kw = self._pop_send_kwargs(kwargs)
        payload = self.block_actions_payload(action_id, **kwargs)
        return await self.send_envelope("interactive", payload, **wait_kw)

    # ---------------------------------------------------------------- HTTP-mode helpers

    def sign(
        self, body: bytes | str, timestamp: int | str | None = None, *, secret: str | None = None
    ) -> dict[str, str]:
        """``X-Slack-Request-Timestamp`` / ``X-Slack-Signature`` headers for ``body``.

        The timestamp defaults to the real ``time.time()`` (the bot checks it against its own
        clock, not the fake's).
        """
        ts = str(int(time.time()) if timestamp is None else timestamp)
        verifier = SignatureVerifier(secret or self.signing_secret)
        signature = verifier.generate_signature(timestamp=ts, body=body)
        assert signature is not None
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    @staticmethod
    def stale_timestamp(age: float = 600.0) -> str:
        """A request timestamp ``age`` seconds in the past (bolt rejects > 300 s)."""
        return str(int(time.time() - age))

    def signed_slash_command(
        self,
        text: str = "",
        *,
        timestamp: int | str | None = None,
        stale: bool = False,
        bad_signature: bool = False,
        **kwargs: Any,
    ) -> SignedRequest:
        """A signed form POST of a slash command (kwargs of :meth:`slash_command_payload`)."""
        payload = self.slash_command_payload(text, **kwargs)
        body = urlencode(payload).encode()
        return self._signed(
            body, payload, "application/x-www-form-urlencoded", timestamp, stale, bad_signature
        )

    def signed_block_actions(
        self,
        action_id: str,
        *,
        timestamp: int | str | None = None,
        stale: bool = False,
        bad_signature: bool = False,
        **kwargs: Any,
    ) -> SignedRequest:
        """A signed ``payload=<json>`` interactivity POST (see :meth:`block_actions_payload`)."""
        payload = self.block_actions_payload(action_id, **kwargs)
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return self._signed(
            body, payload, "application/x-www-form-urlencoded", timestamp, stale, bad_signature
        )

    def signed_event(
        self,
        event: dict[str, Any],
        *,
        timestamp: int | str | None = None,
        stale: bool = False,
        bad_signature: bool = False,
    ) -> SignedRequest:
        """A signed JSON Events API POST wrapping ``event`` (from :meth:`app_mention_event`...)."""
        payload = self.event_callback(event)
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self._signed(body, payload, "application/json", timestamp, stale, bad_signature)

    async def deliver(
        self, url: str, request: SignedRequest, *, timeout: float = 10.0
    ) -> HttpDelivery:
        """POST a signed request to the bot (e.g. ``.../slack/events``) as Slack would.

        Measures how long the bot took; ``in_time`` tells whether it met the 3 s deadline
        (the request is not cut off at 3 s so slow answers can still be inspected).
        """
        async with ClientSession(timeout=ClientTimeout(total=timeout)) as http:
            t0 = time.monotonic()
            async with http.post(url, data=request.body, headers=request.headers) as resp:
                body = await resp.text()
            elapsed = time.monotonic() - t0
        if resp.status == 200 and body.strip() and "command" in request.payload:
            data: Any = {"text": body}
            if body.lstrip().startswith("{"):
                with contextlib.suppress(ValueError):
                    data = json.loads(body)
            self._materialize_ack(request.payload, data)
        return HttpDelivery(
            status=resp.status,
            body=body,
            headers=dict(resp.headers),
            elapsed=elapsed,
            in_time=elapsed <= self.ack_deadline,
        )

    # ================================================================ internals

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hex(self, n: int) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(n))

    def _alnum(self, n: int) -> str:
        return "".join(self._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(n))

    def _trigger_id(self) -> str:
        head = f"{int(self.now())}{self._rng.randrange(10**6):06d}"
        return f"{head}.{self._rng.randrange(10**10)}.{self._hex(32)}"

    def _next_ts(self) -> str:
        us = int(self.now() * 1_000_000)
        if us <= self._last_ts_us:
            us = self._last_ts_us + 1
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _new_channel_id(self) -> str:
        n = len(self.channels) + 1
        while f"C{n:08d}" in self.channels:
            n += 1
        return f"C{n:08d}"

    def _register_channel(self, ch: Channel) -> Channel:
        if ch.id in self.channels:
            raise ValueError(f"duplicate channel id {ch.id}")
        self.channels[ch.id] = ch
        return ch

    def _find_channel(self, key: str | None) -> Channel | None:
        if not key:
            return None
        if key in self.channels:
            return self.channels[key]
        name = key.lstrip("#")
        for ch in self.channels.values():
            if not ch.is_im and ch.name == name:
                return ch
        return None

    def _default_channel(self) -> Channel:
        for ch in self.channels.values():
            if ch.is_member and not ch.is_im and not ch.is_archived:
                return ch
        raise LookupError("FakeSlack has no channel the bot is a member of")

    def _default_user(self) -> User:
        for user in self.users.values():
            if not user.is_bot:
                return user
        raise LookupError("FakeSlack has no human user")

    def _user(self, user_id: str | None) -> User:
        if user_id is None:
            return self._default_user()
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}")
        return self.users[user_id]

    def _pop_send_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        keys = ("connection", "wait", "timeout", "accepts_response_payload")
        return {k: kwargs.pop(k) for k in keys if k in kwargs}

    def _inject_user_message(
        self, channel_id: str, user_id: str, text: str, thread_ts: str | None
    ) -> Message:
        msg = Message(
            channel=channel_id,
            ts=self._next_ts(),
            text=text,
            blocks=[self._rich_text(text)],
            thread_ts=thread_ts,
            user=user_id,
            source="user",
        )
        self._messages.append(msg)
        return msg

    def _rich_text(self, text: str) -> dict[str, Any]:
        elements: list[dict[str, Any]] = []
        pos = 0
        for m in _MENTION_RE.finditer(text):
            if m.start() > pos:
                elements.append({"type": "text", "text": text[pos : m.start()]})
            elements.append({"type": "user", "user_id": m.group(1)})
            pos = m.end()
        if pos < len(text):
            elements.append({"type": "text", "text": text[pos:]})
        return {
            "type": "rich_text",
            "block_id": self._alnum(4),
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }

    def _event_base(self, type_: str, msg: Message) -> dict[str, Any]:
        event: dict[str, Any] = {
            "client_msg_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "type": type_,
            "text": msg.text,
            "user": msg.user,
            "ts": msg.ts,
            "blocks": msg.blocks,
            "team": self.team_id,
            "channel": msg.channel,
            "event_ts": msg.ts,
        }
        if msg.thread_ts:
            event["thread_ts"] = msg.thread_ts
            parent = self.message(msg.channel, msg.thread_ts)
            if parent is not None:
                event["parent_user_id"] = parent.user
        return event

    @staticmethod
    def _find_element(msg: Message, action_id: str) -> tuple[dict[str, Any], str | None]:
        for block in msg.blocks or []:
            elements = block.get("elements", [])
            if block.get("accessory"):
                elements = [*elements, block["accessory"]]
            for element in elements:
                if isinstance(element, dict) and element.get("action_id") == action_id:
                    return element, block.get("block_id")
        return {}, None

    def _signed(
        self,
        body: bytes,
        payload: dict[str, Any],
        content_type: str,
        timestamp: int | str | None,
        stale: bool,
        bad_signature: bool,
    ) -> SignedRequest:
        ts = self.stale_timestamp() if stale and timestamp is None else timestamp
        secret = self.signing_secret + "-wrong" if bad_signature else None
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.sign(body, ts, secret=secret),
        }
        return SignedRequest(body=body, headers=headers, payload=payload)

    # ---------------------------------------------------------------- faults

    def _take_fault(self, name: str, kinds: tuple[str, ...]) -> _Fault | None:
        is_api = name not in (RESPONSE_URL, SOCKET)
        for fault in self._faults:
            if fault.kind not in kinds:
                continue
            if fault.method == name or (is_api and fault.method == ANY_API_METHOD):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _injected(self, name: str) -> tuple[int, str, dict[str, str]] | None:
        """Apply hang/status/ratelimit/ok_false faults: (status, error, headers) or None."""
        hang = self._take_fault(name, ("hang",))
        if hang is not None:
            await self._sleep(hang.seconds)
        fault = self._take_fault(name, ("status", "ratelimit", "ok_false"))
        if fault is None:
            return None
        if fault.kind == "ratelimit":
            self.rate_limited_count += 1
            return 429, "ratelimited", {"Retry-After": str(fault.retry_after)}
        if fault.kind == "status":
            if fault.status == 429:
                self.rate_limited_count += 1
            return fault.status, fault.error, {}
        return 200, fault.error, {}

    def _check_channel_rate(self, method: str, channel: Channel) -> None:
        if self._channel_rate is None:
            return
        per_second, burst, methods = self._channel_rate
        if method not in methods:
            return
        now = self.now()
        tokens, last = self._buckets.get(channel.id, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - last) * per_second)
        if tokens < 1.0:
            self._buckets[channel.id] = (tokens, now)
            raise _RateLimited(max(1, math.ceil((1.0 - tokens) / per_second)))
        self._buckets[channel.id] = (tokens - 1.0, now)

    # ---------------------------------------------------------------- Web API

    def _parse_params(self, request: web.Request, body: bytes) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if not body:
            return params, None
        ctype = request.content_type
        if ctype == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                return params, "invalid_json"
            if not isinstance(data, dict):
                return params, "json_not_object"
            data.pop("token", None)  # Slack ignores tokens inside JSON bodies
            params.update(data)
        else:
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                return params, "invalid_charset"
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    error = {"blocks": "invalid_blocks_format", "metadata":
                             "invalid_metadata_format"}.get(key, "invalid_attachments")
                    return params, error
        return params, None

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.read()
        params, parse_error = self._parse_params(request, body)
        auth = request.headers.get("Authorization", "")
        token: str | None = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        form_token = params.pop("token", None)
        token = token or (str(form_token) if form_token else None)
        call = Call(
            method=method,
            params=params,
            headers=dict(request.headers),
            body=body,
            token=token,
            t=time.monotonic(),
            http_method=request.method,
        )
        self._calls.append(call)
        self._notify()
        status, data, headers = await self._api_answer(method, call, parse_error)
        call.status, call.response, call.answered_at = status, data, time.monotonic()
        self._notify()
        return web.json_response(data, status=status, headers=headers)

    async def _api_answer(
        self, method: str, call: Call, parse_error: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        stall = self._take_stall(method, call)
        if stall is not None and not stall.stored:
            await self._hold(call)  # lost on its way in: never carried out
            return 503, {"ok": False, "error": "service_unavailable"}, {}
        after = self._take_stored_failure(method)
        if after is None:
            injected = await self._injected(method)
            if injected is not None:
                status, error, headers = injected
                return status, {"ok": False, "error": error}, headers
        answer = self._api_result(method, call, parse_error)
        if stall is not None:
            await self._hold(call)  # carried out; the answer is lost on its way out
        if after is not None:
            return after.status, {"ok": False, "error": after.error}, {}
        return answer

    def _take_stall(self, method: str, call: Call) -> _Fault | None:
        for fault in self._faults:
            if fault.kind == "stall" and fault.method in (method, ANY_API_METHOD) and (
                    fault.match is None or fault.match(call)):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _take_stored_failure(self, method: str) -> _Fault | None:
        """The next failure fault of ``method`` if it is a ``stored`` one (order is kept: an
        earlier plain fault goes first)."""
        for fault in self._faults:
            if fault.kind in ("status", "ratelimit", "ok_false") and \
                    fault.method in (method, ANY_API_METHOD):
                return self._take_fault(method, (fault.kind,)) if fault.stored else None
        return None

    async def _hold(self, call: Call) -> None:
        self.stalled.append(call)
        self._notify()
        try:
            await self._stalls_released.wait()  # stop() releases them too
        finally:
            self.stalled.remove(call)
            self._notify()

    def _api_result(
        self, method: str, call: Call, parse_error: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if parse_error:
            return 200, {"ok": False, "error": parse_error}, {}
        handler = self._api_handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token_kind = self._token_kind(method, call.token)
        if token_kind not in ("bot", "app"):
            return 200, {"ok": False, "error": token_kind}, {}
        try:
            return 200, handler(call.params, token_kind), {}
        except _ApiError as exc:
            return 200, {"ok": False, "error": exc.error}, {}
        except _RateLimited as exc:
            self.rate_limited_count += 1
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(exc.retry_after)}

    def _token_kind(self, method: str, token: str | None) -> str:
        """ "bot"/"app" when the token is accepted for ``method``, else the Slack error code."""
        if not token:
            return "not_authed"
        kind = "bot" if token == self.bot_token else "app" if token == self.app_token else None
        if kind is None:
            return "invalid_auth"
        if method in _ANY_TOKEN_METHODS:
            return kind
        wanted = "app" if method in _APP_TOKEN_METHODS else "bot"
        return kind if kind == wanted else "not_allowed_token_type"

    def _resolve_channel(self, value: Any) -> Channel:
        key = str(value) if value else ""
        ch = self._find_channel(key)
        if ch is None and key in self.users:
            ch = self.dm_channel(key)  # posting to a user id opens the app's DM
        if ch is None:
            raise _ApiError("channel_not_found")
        return ch

    @staticmethod
    def _content(params: Mapping[str, Any], *, required: bool = True) -> tuple[Any, Any, Any]:
        text = params.get("text")
        blocks = params.get("blocks")
        attachments = params.get("attachments")
        if required and not text and not blocks and not attachments:
            raise _ApiError("no_text")
        if text is not None and len(str(text)) > MAX_TEXT_LENGTH:
            raise _ApiError("msg_too_long")
        if blocks is not None and (
            not isinstance(blocks, list)
            or len(blocks) > MAX_BLOCKS
            or not all(isinstance(b, dict) and b.get("type") for b in blocks)
            or button_errors(blocks)
        ):
            raise _ApiError("invalid_blocks")
        return (None if text is None else str(text)), blocks, attachments

    def _message_api(self, m: Message, *, metadata: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "text": m.text or "",
            "user": m.user,
            "ts": m.ts,
            "team": self.team_id,
        }
        if m.user == self.bot_user_id:
            data["bot_id"] = self.bot_id
            data["app_id"] = self.app_id
            data["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
                "updated": 1_700_000_000,
                "icons": {"image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png"},
            }
        if m.blocks is not None:
            data["blocks"] = m.blocks
        if m.attachments:
            data["attachments"] = m.attachments
        if m.thread_ts and m.thread_ts != m.ts:
            data["thread_ts"] = m.thread_ts
            parent = next(
                (p for p in self._messages if p.channel == m.channel and p.ts == m.thread_ts), None
            )
            data["parent_user_id"] = parent.user if parent else m.user
        if m.edits:
            data["edited"] = {"user": m.user, "ts": self._next_ts()}
        replies = [r for r in self._thread(m.channel, m.ts) if r is not m]
        if replies and not (m.thread_ts and m.thread_ts != m.ts):
            data.update(thread_ts=m.ts, reply_count=len(replies), latest_reply=replies[-1].ts)
        if metadata and m.metadata is not None:
            data["metadata"] = m.metadata
        return data

    def _thread(self, channel_id: str, root_ts: str) -> list[Message]:
        """A thread's visible messages: the root, then its replies, oldest first."""
        return [m for m in self._messages
                if m.channel == channel_id and not m.deleted and not m.is_ephemeral
                and (m.ts == root_ts or m.thread_ts == root_ts)]

    @staticmethod
    def _metadata(params: Mapping[str, Any]) -> dict[str, Any] | None:
        value = params.get("metadata")
        if value is None or value == "":
            return None
        if not isinstance(value, dict) or not isinstance(value.get("event_type"), str) \
                or not isinstance(value.get("event_payload", {}), dict):
            raise _ApiError("invalid_metadata_format")
        return {"event_type": value["event_type"],
                "event_payload": value.get("event_payload", {})}

    def _api_auth_test(self, params: dict[str, Any], token_kind: str) -> dict[str, Any]:
        base = {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "team_id": self.team_id,
            "is_enterprise_install": False,
        }
        if token_kind == "app":
            return {**base, "app_id": self.app_id, "app_name": self.bot_name}
        return {**base, "user": self.bot_name, "user_id": self.bot_user_id, "bot_id": self.bot_id}

    def _postable(self, params: dict[str, Any], method: str) -> Channel:
        ch = self._resolve_channel(params.get("channel"))
        if ch.is_archived:
            raise _ApiError("is_archived")
        if not ch.is_member and not ch.is_im:
            raise _ApiError("not_in_channel")
        self._check_channel_rate(method, ch)
        return ch

    def _api_post_message(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ch = self._postable(params, "chat.postMessage")
        text, blocks, attachments = self._content(params)
        metadata = self._metadata(params)
        thread_ts = params.get("thread_ts") or None
        msg = Message(
            channel=ch.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            user=self.bot_user_id,
            source="chat.postMessage",
            attachments=attachments,
            params=dict(params),
            metadata=metadata,
        )
        self._messages.append(msg)
        return {"ok": True, "channel": ch.id, "ts": msg.ts,
                "message": self._message_api(msg, metadata=True)}

    def _api_post_ephemeral(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ch = self._postable(params, "chat.postEphemeral")
        user = params.get("user")
        if not user:
            raise _ApiError("invalid_arguments")
        if user not in self.users:
            raise _ApiError("user_not_found")
        if ch.is_im and ch.user != user:
            raise _ApiError("user_not_in_channel")
        text, blocks, attachments = self._content(params)
        thread_ts = params.get("thread_ts") or None
        msg = Message(
            channel=ch.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            user=self.bot_user_id,
            source="chat.postEphemeral",
            ephemeral_to=str(user),
            attachments=attachments,
            params=dict(params),
        )
        self._messages.append(msg)
        return {"ok": True, "message_ts": msg.ts}

    def _api_update(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ch = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        msg = next(
            (
                m
                for m in self._messages
                if m.channel == ch.id and m.ts == ts and not m.deleted and not m.is_ephemeral
            ),
            None,
        )
        if msg is None:
            raise _ApiError("message_not_found")
        if msg.user != self.bot_user_id:
            raise _ApiError("cant_update_message")
        text, blocks, attachments = self._content(params, required=False)
        if text is None and blocks is None and attachments is None:
            raise _ApiError("no_text")
        metadata = self._metadata(params)
        if metadata is not None:
            msg.metadata = metadata
        msg.edits.append({"text": msg.text, "blocks": msg.blocks})
        if text is not None:
            msg.text = text
        if blocks is not None:  # absent: kept; [] removes them (Slack semantics)
            msg.blocks = blocks or None
        if attachments is not None:
            msg.attachments = attachments
        return {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "text": msg.text or "",
            "message": self._message_api(msg),
        }

    def _api_conversations_list(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        types = {t.strip() for t in str(params.get("types") or "public_channel").split(",")}
        unknown = types - {"public_channel", "private_channel", "mpim", "im"}
        if unknown:
            raise _ApiError("invalid_types")
        exclude_archived = _as_bool(params.get("exclude_archived"))
        limit = _as_int(params.get("limit"), CONVERSATIONS_LIST_DEFAULT_LIMIT)
        if limit <= 0:
            limit = CONVERSATIONS_LIST_DEFAULT_LIMIT
        limit = min(limit, CONVERSATIONS_LIST_MAX_LIMIT)
        selected = [
            ch
            for ch in self.channels.values()
            if ch.kind in types
            and not (exclude_archived and ch.is_archived)
            and (ch.kind != "private_channel" or ch.is_member)
        ]
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                team, _sep, first_id = base64.b64decode(str(cursor)).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise _ApiError("invalid_cursor") from None
            ids = [ch.id for ch in selected]
            if team != "team" or first_id not in ids:
                raise _ApiError("invalid_cursor")
            start = ids.index(first_id)
        page = selected[start : start + limit]
        rest = selected[start + limit :]
        next_cursor = base64.b64encode(f"team:{rest[0].id}".encode()).decode() if rest else ""
        return {
            "ok": True,
            "channels": [ch.to_api(self.team_id) for ch in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _readable(self, params: Mapping[str, Any]) -> Channel:
        key = params.get("channel")
        ch = self.channels.get(str(key)) if key else None  # ids only, like Slack
        if ch is None:
            raise _ApiError("channel_not_found")
        if not ch.is_member and not ch.is_im:
            raise _ApiError("not_in_channel")
        return ch

    def _page(self, params: Mapping[str, Any], messages: list[Message],
              metadata: bool) -> dict[str, Any]:
        limit = _as_int(params.get("limit"), HISTORY_DEFAULT_LIMIT)
        limit = min(HISTORY_MAX_LIMIT, limit if limit > 0 else HISTORY_DEFAULT_LIMIT)
        start = 0
        if params.get("cursor"):
            try:
                kind, _sep, index = base64.b64decode(str(params["cursor"])).decode().partition(":")
                start = int(index)
            except (ValueError, UnicodeDecodeError):
                raise _ApiError("invalid_cursor") from None
            if kind != "next_ts" or not 0 <= start <= len(messages):
                raise _ApiError("invalid_cursor")
        page, more = messages[start:start + limit], len(messages) > start + limit
        cursor = base64.b64encode(f"next_ts:{start + limit}".encode()).decode() if more else ""
        return {"ok": True, "messages": [self._message_api(m, metadata=metadata) for m in page],
                "has_more": more, "response_metadata": {"next_cursor": cursor}}

    def _api_conversations_history(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ch = self._readable(params)
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        top = [m for m in self._messages
               if m.channel == ch.id and not m.deleted and not m.is_ephemeral
               and (not m.thread_ts or m.thread_ts == m.ts
                    or m.params.get("reply_broadcast") in (True, "true", "1"))
               and oldest < float(m.ts) < latest]
        page = self._page(params, list(reversed(top)), _as_bool(params.get("include_all_metadata")))
        return {**page, "pin_count": 0}

    def _api_conversations_replies(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ch = self._readable(params)
        ts = str(params.get("ts") or "")
        if not ts:
            raise _ApiError("invalid_arguments")
        thread = self._thread(ch.id, ts)
        if not thread or thread[0].ts != ts:
            raise _ApiError("thread_not_found")
        return self._page(params, thread, _as_bool(params.get("include_all_metadata")))

    def _api_conversations_info(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        key = params.get("channel")
        ch = self.channels.get(str(key)) if key else None  # ids only, like Slack
        if ch is None:
            raise _ApiError("channel_not_found")
        return {"ok": True, "channel": ch.to_api(self.team_id)}

    def _api_users_info(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            raise _ApiError("user_not_found")
        return {"ok": True, "user": user.to_api(self.team_id)}

    def _api_connections_open(self, params: dict[str, Any], _: str) -> dict[str, Any]:
        ticket = self._hex(32)
        self._tickets[ticket] = self.now()
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket/{ticket}"}

    # ---------------------------------------------------------------- response_url endpoint

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        body = await request.read()
        data: Any = None
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            if request.content_type == "application/x-www-form-urlencoded":
                data = json.loads(dict(parse_qsl(body.decode())).get("payload", ""))
            else:
                data = json.loads(body)
        call = Call(
            method=RESPONSE_URL,
            params=data if isinstance(data, dict) else {},
            headers=dict(request.headers),
            body=body,
            token=None,
            t=time.monotonic(),
            http_method=request.method,
            url_id=rid,
        )
        self._calls.append(call)
        self._notify()
        status, text = await self._response_url_answer(rid, data)
        call.status, call.response, call.answered_at = status, text, time.monotonic()
        self._notify()
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _response_url_answer(self, rid: str, data: Any) -> tuple[int, str]:
        injected = await self._injected(RESPONSE_URL)
        if injected is not None:
            status, error, _headers = injected
            return status, error
        ru = self.response_urls.get(rid)
        if ru is None:
            return RESPONSE_URL_UNKNOWN
        if self.now() - ru.created_at > ru.ttl:
            return RESPONSE_URL_EXPIRED
        if ru.uses >= ru.max_uses:
            return RESPONSE_URL_USED
        if not isinstance(data, dict):
            return 400, "invalid_payload"
        delete = _as_bool(data.get("delete_original"))
        if not delete and not (data.get("text") or data.get("blocks") or data.get("attachments")):
            return 400, "no_text"
        blocks = data.get("blocks")
        if isinstance(blocks, list) and button_errors([b for b in blocks if isinstance(b, dict)]):
            return 400, "invalid_blocks"
        ru.uses += 1
        self._apply_response(ru, data, delete)
        return 200, "ok"

    def _apply_response(self, ru: ResponseUrl, data: dict[str, Any], delete: bool) -> None:
        target_ts = ru.message_ts or ru.last_ts
        original = next(
            (m for m in self._messages if m.channel == ru.channel and m.ts == target_ts), None
        )
        if delete:
            if original is not None:
                original.deleted = True
            return
        if _as_bool(data.get("replace_original")) and original is not None:
            original.edits.append({"text": original.text, "blocks": original.blocks})
            original.text = data.get("text")
            original.blocks = data.get("blocks")
            original.attachments = data.get("attachments")
            return
        self._post_for(ru, data, RESPONSE_URL, thread_ts=data.get("thread_ts"))

    def _materialize_ack(self, command: Mapping[str, Any], data: Any) -> Message | None:
        """Slack shows a slash command's ack body as a message (ephemeral unless
        ``response_type: in_channel``); it does not use up the command's response_url."""
        if not isinstance(data, dict) or not (
            data.get("text") or data.get("blocks") or data.get("attachments")
        ):
            return None
        try:
            ru = self.response_url(str(command.get("response_url") or ""))
        except KeyError:
            return None
        msg = self._post_for(ru, data, "ack", thread_ts=None)
        self._notify()
        return msg

    def _post_for(self, ru: ResponseUrl, data: dict[str, Any], source: str,
                  thread_ts: str | None) -> Message:
        """The message a response_url POST or an ack body shows (ephemeral unless in_channel)."""
        in_channel = data.get("response_type") == "in_channel"
        msg = Message(
            channel=ru.channel,
            ts=self._next_ts(),
            text=data.get("text"),
            blocks=data.get("blocks"),
            thread_ts=thread_ts,
            user=self.bot_user_id,
            source=source,
            ephemeral_to=None if in_channel else ru.user,
            attachments=data.get("attachments"),
            params=dict(data),
        )
        self._messages.append(msg)
        ru.last_ts = msg.ts
        return msg

    # ---------------------------------------------------------------- Socket Mode endpoint

    def _host(self, conn: SocketConnection) -> str:
        return f"applink-fake-{conn.number}"

    def _current_connection(self, connection: SocketConnection | None) -> SocketConnection:
        if connection is not None:
            return connection
        if not self.open_connections:
            raise RuntimeError("FakeSlack: no open Socket Mode connection")
        return self.open_connections[-1]

    async def _ws_send(self, conn: SocketConnection, frame: dict[str, Any]) -> bool:
        if conn.silent or not conn.is_open or conn.ws.closed:
            return False
        try:
            await conn.ws.send_str(json.dumps(frame))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def _close_later(self, conn: SocketConnection, delay: float) -> None:
        await self._sleep(delay)
        if conn.is_open:
            await self.close_socket(connection=conn)

    async def _abort_later(self, conn: SocketConnection, delay: float) -> None:
        await self._sleep(delay)
        if conn.is_open and conn.transport is not None:
            conn.close_reason = "killed"
            conn.transport.abort()

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        injected = await self._injected(SOCKET)
        if injected is not None:
            status, error, headers = injected
            return web.Response(status=status, text=error, headers=headers)
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid_ticket")
        if self.single_use_socket_urls:
            del self._tickets[ticket]
        ws = web.WebSocketResponse(autoping=False, timeout=1.0)
        await ws.prepare(request)
        number = len(self.connections) + 1
        hello = {
            "type": "hello",
            "num_connections": len(self.open_connections) + 1,
            "debug_info": {
                "host": f"applink-fake-{number}",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        conn = SocketConnection(
            number=number,
            ticket=ticket,
            opened_at=time.monotonic(),
            hello=hello,
            ws=ws,
            transport=request.transport,
        )
        self.connections.append(conn)
        try:
            await ws.send_str(json.dumps(hello))
            self._notify()
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    conn.pings += 1
                    if not (conn.silent or self.ignore_pings):
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT and not conn.silent:
                    self._on_socket_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            conn.closed_at = time.monotonic()
            conn.close_reason = conn.close_reason or "client"
            self._notify()
        return ws

    def _on_socket_text(self, conn: SocketConnection, raw: str) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            conn.received.append(raw)
            return
        conn.received.append(data)
        eid = data.get("envelope_id") if isinstance(data, dict) else None
        env = self._envelopes_by_id.get(eid) if eid else None
        if env is None or env.ack is not None:
            if isinstance(data, dict):
                self.stray_acks.append(data)
        else:
            env.ack = data
            env.acked_at = time.monotonic()
            self.acks.append(env)
            if env.type == "slash_commands":
                self._materialize_ack(env.payload, data.get("payload"))
        self._notify()
