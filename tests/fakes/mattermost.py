"""A faithful fake Mattermost for tests: REST v4 subset, slash-command hooks and the WebSocket.

It speaks real HTTP and WebSocket on 127.0.0.1 (aiohttp server, ephemeral port) inside the test's
event loop, so the real ``mattermostautodriver`` client (httpx REST, aiohttp websocket) and the
bot's adapter talk to it unchanged::

    async with FakeMattermost() as mm:
        driver = AsyncTypedDriver(mm.driver_options())  # mattermostautodriver
        await driver.login()                       # GET /api/v4/users/me
        await mm.post_as("alice", "ops", "@shiftbot status")
        assert mm.posts("ops")[-1]["message"] == "@shiftbot status"

Wire facts honoured (Mattermost server sources: api4/*.go, app/command.go, app/webhook.go,
app/integration_action.go, app/platform/web_conn.go, web_hub.go, websocket_router.go,
app/ratelimit.go; /work/shared/notes/PROTOCOLS.md):

* REST answers are ``Content-Type: application/json`` without charset; errors are AppError JSON
  ``{id, message, detailed_error, request_id, status_code}``. The token is read from
  ``Authorization: Bearer|Token <t>`` or ``?access_token=``; missing/unknown -> 401.
* ``POST /posts`` answers 201. ``root_id`` must name a root post of the same channel (else 400).
  A repeated ``pending_post_id`` within 30 s answers the post created the first time (the
  server's ``deduplicateCreatePost``: retried creates are idempotent).
  The poster must be a channel member (else 403). ``PUT /posts/{id}`` replaces ``message`` *and*
  ``props`` (omitting ``props`` wipes the attachments); ``PUT /posts/{id}/patch`` only changes
  the fields given. Button ``integration`` blocks are stripped from every post the server hands
  out (REST and WebSocket); ``mm.posts()`` returns the stored copies, which keep them.
* Rate limiting (``mm.rate_limit``) answers like Mattermost's throttled limiter: 429,
  ``text/plain`` body ``limit exceeded``, ``X-Ratelimit-Limit/-Remaining/-Reset`` (seconds) and
  ``Retry-After`` (seconds).
* WebSocket ``/api/v4/websocket``: authenticate with the ``authentication_challenge`` frame or with
  the token on the upgrade request (header or ``access_token``). On authentication the server
  queues ``hello`` (``seq`` 0, ``data.connection_id``, ``data.server_version``) *before* the
  ``{"status": "OK", "seq_reply": 1}`` reply (a header-authenticated socket gets no reply to a later
  challenge). A bad token closes the TCP connection without a close frame (client sees 1006), as
  do unauthenticated sockets after ``auth_timeout``. Events carry a per-connection ``seq``. The
  server pings every ``ping_interval`` and drops a socket that sent no pong for ``pong_wait``.
  Reconnecting with ``?connection_id=..&sequence_number=..`` (header-authenticated only, as in the
  server) replays missed events from a 128-event buffer.
* ``posted``: ``data.post`` is a JSON string, ``data.mentions`` a JSON string of user ids (only when
  someone is mentioned; the other member of a DM always is), ``data.sender_name`` is ``@name``,
  ``broadcast.channel_id`` is set, ``broadcast.team_id``/``user_id`` are empty (``data.team_id``
  has the team). Posts made by the bot are broadcast to the bot too.
* Slash commands: form POST (or GET) with ``Authorization: Token <token>``; the reply must be 200
  ``application/json`` (empty body: error; other content types are shown as plain text);
  ``in_channel`` replies become posts *authored by the invoking user* with
  ``props.from_webhook == "true"``; ephemeral replies go to the user only. ``response_url`` is
  ``{site}/hooks/commands/{id}`` (no ``/api/v4``): 5 uses (6th -> 400), 30 minutes (then 404),
  answers ``200 text/plain ok``. Buttons: action ids must be ``[A-Za-z0-9]+`` (else 404 before
  the integration is called); the click POSTs JSON to ``integration.url``; a non-200 answer is an
  error; ``update`` replaces message (missing -> empty!) and props (missing -> kept) of the post.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import fnmatch
import json
import math
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web

__all__ = [
    "COMMAND_HOOK_LIFETIME",
    "COMMAND_HOOK_MAX_USES",
    "DEFAULT_BOT_TOKEN",
    "Channel",
    "ClickResult",
    "CommandHook",
    "CommandRequest",
    "CommandResult",
    "EphemeralPost",
    "FakeMattermost",
    "Fault",
    "HookUse",
    "RecordedRequest",
    "Team",
    "User",
    "WsConnection",
    "new_id",
]

DEFAULT_BOT_TOKEN = "mm-bot-token"
SERVER_VERSION = "10.11.0"
BUILD_NUMBER = "16000000001"
POST_MESSAGE_MAX_RUNES = 16383
COMMAND_HOOK_LIFETIME = 30 * 60.0  # seconds (model.CommandWebhookLifetime)
COMMAND_HOOK_MAX_USES = 5
DEAD_QUEUE_SIZE = 128
PER_PAGE_MAXIMUM = 200
PENDING_POST_IDS_TTL = 30.0  # seconds (app/post.go PendingPostIDsCacheTTL)
RETAINED_ACTION_PROPS = ("from_webhook", "override_username", "override_icon_url")
LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost")

_B32_TABLE = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "ybndrfg8ejkmcpqxot1uwisza345h769"
)
_ACTION_ID = re.compile(r"^[A-Za-z0-9]+$")
_USER_MENTION = re.compile(r"\B@([A-Za-z0-9][A-Za-z0-9.\-_:]*)")
_CHANNEL_MENTION = re.compile(r"\B~([A-Za-z0-9\-_]+)")
_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

T = TypeVar("T")
SEND_QUEUE_SIZE = 256  # a parked connection with more undelivered events is discarded


def new_id() -> str:
    """A Mattermost id: 16 random bytes in Mattermost's base32 alphabet, 26 lowercase chars."""
    raw = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")
    return raw.translate(_B32_TABLE)


def _ensure_no_proxy() -> None:
    """Make sure proxy variables never capture loopback traffic (httpx honours them)."""
    for var in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(var, "").split(",") if h.strip()]
        for host in LOOPBACK_NO_PROXY:
            if host not in hosts:
                hosts.append(host)
        os.environ[var] = ",".join(hosts)


# ----------------------------------------------------------------------------- data model


@dataclass
class User:
    """A Mattermost account (humans and the bot)."""

    id: str
    username: str
    token: str
    is_bot: bool = False
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    create_at: int = 0

    @property
    def mention(self) -> str:
        """``@username``."""
        return "@" + self.username

    def to_json(self) -> dict[str, Any]:
        """The user object as ``GET /users/{id}`` returns it."""
        data: dict[str, Any] = {
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.create_at,
            "delete_at": 0,
            "username": self.username,
            "auth_data": "",
            "auth_service": "",
            "email": self.email,
            "email_verified": True,
            "nickname": "",
            "first_name": self.first_name,
            "last_name": self.last_name,
            "position": "",
            "roles": "system_user",
            "props": {},
            "notify_props": {"channel": "true", "desktop": "mention", "email": "true",
                             "mention_keys": "", "push": "mention"},
            "last_password_update": self.create_at,
            "locale": "en",
            "timezone": {"automaticTimezone": "", "manualTimezone": "",
                         "useAutomaticTimezone": "true"},
            "disable_welcome_email": False,
        }
        if self.is_bot:
            data["is_bot"] = True
            data["bot_description"] = ""
        return data


@dataclass
class Team:
    """A team (``name`` is the URL name, e.g. ``ops-team``)."""

    id: str
    name: str
    display_name: str
    create_at: int = 0
    members: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """The team object as ``GET /teams/name/{name}`` returns it."""
        return {
            "id": self.id, "create_at": self.create_at, "update_at": self.create_at,
            "delete_at": 0, "display_name": self.display_name, "name": self.name,
            "description": "", "email": "", "type": "O", "company_name": "",
            "allowed_domains": "", "invite_id": new_id(), "allow_open_invite": False,
            "scheme_id": None, "group_constrained": None, "policy_id": None,
        }


@dataclass
class Channel:
    """A channel: ``type`` O (public), P (private), D (direct, name ``<id1>__<id2>``), G."""

    id: str
    name: str
    type: str
    team_id: str
    display_name: str
    members: set[str] = field(default_factory=set)
    create_at: int = 0
    creator_id: str = ""
    last_post_at: int = 0
    total_msg_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """The channel object as ``GET /channels/{id}`` returns it."""
        return {
            "id": self.id, "create_at": self.create_at, "update_at": self.create_at,
            "delete_at": 0, "team_id": self.team_id, "type": self.type,
            "display_name": self.display_name, "name": self.name, "header": "", "purpose": "",
            "last_post_at": self.last_post_at, "total_msg_count": self.total_msg_count,
            "extra_update_at": 0, "creator_id": self.creator_id, "scheme_id": None,
            "props": None, "group_constrained": None, "shared": None,
            "total_msg_count_root": self.total_msg_count, "policy_id": None,
            "last_root_post_at": self.last_post_at,
        }


@dataclass
class RecordedRequest:
    """One HTTP request the fake received (REST, hooks, WebSocket upgrades)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    time: float  # fake clock (``mm.now()``)
    status: int = 0  # 0 while the request is still being handled (e.g. hanging)
    user_id: str | None = None  # the authenticated user, when the route needs one

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8", "replace")

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when it is not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (last value wins)."""
        return dict(parse_qsl(self.text, keep_blank_values=True))


@dataclass
class Fault:
    """An injected failure rule (see ``rate_limit``, ``fail_next``, ``hang``)."""

    kind: str  # "rate_limit" | "fail" | "hang"
    method: str | None
    pattern: str
    remaining: int | None  # None: forever
    status: int = 500
    retry_after: int | None = 1
    limit: int = 10
    seconds: float | None = None
    body: str | bytes | None = None
    content_type: str = "text/plain; charset=utf-8"
    hits: int = 0
    # "fail" with stored=True: the request is carried out, then answered with the failure;
    # "stall": held until release_stalls() (stored: carried out first, else never).
    stored: bool = False
    match: Callable[[RecordedRequest], bool] | None = None

    def matches(self, method: str, path: str, request: RecordedRequest | None = None) -> bool:
        """Whether this rule applies to ``method path`` (and ``request``, given a ``match``)."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if not fnmatch.fnmatchcase(path, self.pattern):
            return False
        return self.match is None or (request is not None and bool(self.match(request)))


@dataclass
class CommandHook:
    """The server side of a slash command's ``response_url``."""

    id: str
    command_id: str
    user_id: str
    channel_id: str
    root_id: str
    create_at: float  # fake clock, seconds
    use_count: int = 0


@dataclass
class HookUse:
    """One POST to ``/hooks/commands/{id}``."""

    hook_id: str
    time: float
    response: dict[str, Any] | None  # the parsed CommandResponse (None if unparsable)
    status: int = 0


@dataclass
class EphemeralPost:
    """An ephemeral post: shown to ``user_id`` only, never stored."""

    user_id: str
    post: dict[str, Any]
    source: str  # "rest", "command", "hook", "action"


@dataclass
class CommandRequest:
    """What the server sends to a custom slash command's URL."""

    url: str
    method: str  # "P" or "G"
    form: list[tuple[str, str]]
    headers: dict[str, str]
    hook: CommandHook
    command: dict[str, Any]

    @property
    def fields(self) -> dict[str, str]:
        """The form as a dict (first value of repeated keys)."""
        out: dict[str, str] = {}
        for key, value in self.form:
            out.setdefault(key, value)
        return out

    @property
    def response_url(self) -> str:
        """The ``response_url`` form field."""
        return self.fields["response_url"]


@dataclass
class CommandResult:
    """What happened when a slash command was invoked (``FakeMattermost.invoke_command``)."""

    request: CommandRequest
    status: int  # the bot's HTTP status (0: no answer)
    headers: dict[str, str]
    body: bytes
    json: Any  # parsed JSON body when the bot answered application/json, else None
    response: dict[str, Any] | None  # the CommandResponse the server understood
    server_status: int  # what Mattermost answers the user's client (200, 403, 500, ...)
    error: str | None = None
    posts: list[dict[str, Any]] = field(default_factory=list)
    ephemeral: list[EphemeralPost] = field(default_factory=list)

    @property
    def response_url(self) -> str:
        """The ``response_url`` given to the bot."""
        return self.request.response_url


@dataclass
class ClickResult:
    """What happened when a button was clicked (``FakeMattermost.click``)."""

    request: dict[str, Any] | None  # the JSON POSTed to the integration
    url: str | None
    status: int  # the integration's HTTP status (0: not called or no answer)
    body: bytes
    json: Any
    server_status: int  # what Mattermost answers the clicking client
    error: str | None = None
    ephemeral_text: str | None = None
    goto_location: str | None = None
    post: dict[str, Any] | None = None  # the stored post after the update (None: no update)


@dataclass(eq=False)
class WsConnection:
    """One WebSocket the fake accepted."""

    id: str  # the connection_id announced in hello
    query: dict[str, str]
    headers: dict[str, str]
    opened_at: float
    ws: web.WebSocketResponse = field(repr=False)
    transport: asyncio.BaseTransport | None = field(repr=False)
    user_id: str | None = None
    auth: str | None = None  # "challenge" | "header"
    seq: int = 0  # the next event sequence number
    resumed: str | None = None  # None | "replayed" | "lossless" | "lost"
    half_dead: bool = False
    closed: bool = False
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None  # client|server|abort|bad_token|auth_timeout|pong_timeout
    sent: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # lost while half-dead
    received: list[Any] = field(default_factory=list)
    pings_sent: int = 0
    client_pings: int = 0
    pongs: list[float] = field(default_factory=list)
    dead_queue: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=DEAD_QUEUE_SIZE), repr=False
    )
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue, repr=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    deadline: float = 0.0

    @property
    def authenticated(self) -> bool:
        """Whether the socket has a session."""
        return self.user_id is not None

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Events written to this socket (optionally only those named ``name``)."""
        return [m for m in self.sent if "event" in m and (name is None or m["event"] == name)]


_REC = web.RequestKey("fake_mattermost_request", RecordedRequest)


class _ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


def _permission_error() -> _ApiError:
    return _ApiError(403, "api.context.permissions.app_error",
                     "You do not have the appropriate permissions.")


def _invalid_body(name: str) -> _ApiError:
    return _ApiError(400, "api.context.invalid_body_param.app_error",
                     f"Invalid or missing {name} in request body.")


def _command_response_from_body(content_type: str, body: bytes) -> dict[str, Any]:
    """``model.CommandResponseFromHTTPBody``: JSON when the type says so, else plain text."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        parsed = json.loads(body)  # ValueError on an empty or broken body, as in Go
        if not isinstance(parsed, dict):
            raise ValueError("command response is not a JSON object")
        return parsed
    return {"text": body.decode("utf-8", "replace")}


def _generate_action_ids(props: dict[str, Any]) -> None:
    """``Post.GenerateActionIds``: every action without an id gets one."""
    for attachment in props.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        for action in attachment.get("actions") or []:
            if isinstance(action, dict) and not action.get("id"):
                action["id"] = new_id()


def _find_action(post: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """``Post.GetAction``: the first action with that id."""
    for attachment in post.get("props", {}).get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        for action in attachment.get("actions") or []:
            if isinstance(action, dict) and action.get("id") == action_id:
                return action
    return None


def _target(spec: str) -> tuple[str | None, str]:
    """Parse ``"POST /api/v4/posts"``, ``"posts/*"``, ``"GET"`` or ``"*"`` into (method, glob)."""
    spec = spec.strip()
    method: str | None = None
    path = spec
    if " " in spec:
        method, path = spec.split(None, 1)
        method = method.upper()
    elif spec.upper() in _HTTP_METHODS:
        method, path = spec.upper(), "*"
    path = path.strip()
    if path in ("", "*"):
        return method, "*"
    if not path.startswith(("/api/v4", "/hooks", "*")):
        path = "/api/v4/" + path.lstrip("/")
    return method, path


class FakeMattermost:
    """A Mattermost server on 127.0.0.1: REST v4 subset, command hooks and WebSocket.

    Seeds one team, the bot account and human users (token ``<username>-token``), and channels
    whose members are everyone; the team and users exist as soon as the object is built, the
    URLs once it is started (``async with`` or ``await start()``).
    """

    def __init__(
        self,
        *,
        team: str = "ops-team",
        team_display_name: str = "Ops Team",
        bot_username: str = "shiftbot",
        bot_token: str = DEFAULT_BOT_TOKEN,
        users: Iterable[str] = ("alice", "bob", "carol"),
        channels: Iterable[tuple[str, str]] = (
            ("town-square", "O"), ("ops", "O"), ("alerts", "O"), ("shifters", "P")),
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 60.0,
        pong_wait: float = 100.0,
        auth_timeout: float = 5.0,
        ws_close_timeout: float = 2.0,
        outgoing_timeout: float = 30.0,
        server_version: str = SERVER_VERSION,
        json_content_type: str = "application/json",
        plain_errors: bool = False,
    ) -> None:
        # Behind a proxy: JSON labelled e.g. "application/json; charset=utf-8", and errors as
        # text/plain pages instead of AppError JSON.
        self.json_content_type = json_content_type
        self.plain_errors = plain_errors
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.pong_wait = pong_wait
        self.auth_timeout = auth_timeout
        self.ws_close_timeout = ws_close_timeout
        self.outgoing_timeout = outgoing_timeout
        config_hash = secrets.token_hex(8)
        self.server_version = f"{server_version}.{BUILD_NUMBER}.{config_hash}.false"
        self.version_id = f"{server_version}.{BUILD_NUMBER}.{config_hash}.false"

        self._clock_offset = 0.0
        self._last_ms = 0
        self.requests: list[RecordedRequest] = []
        self.events: list[dict[str, Any]] = []  # every published event (before fan-out)
        self.ephemeral: list[EphemeralPost] = []
        self.hook_uses: list[HookUse] = []
        self.pongs: list[tuple[str, float]] = []  # (connection_id, fake time)
        self.ws_connections: list[WsConnection] = []  # every socket accepted, in order
        self.auth_failures = 0
        self.refused_connections = 0
        self.faults: list[Fault] = []
        self.stalled: list[RecordedRequest] = []  # requests held by a stall right now
        self._stalls_released = asyncio.Event()
        self.half_dead_new_connections = False

        self._users: dict[str, User] = {}
        self._tokens: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        from fakes.mattermost_files import MattermostFiles  # POST /files, a post's file_ids

        self.files = MattermostFiles(self)
        self._posts: dict[str, dict[str, Any]] = {}
        self._post_order: list[str] = []
        self._pending_post_ids: dict[str, tuple[str, float]] = {}  # pending id -> (post, time)
        self._commands: dict[str, dict[str, Any]] = {}
        self._hooks: dict[str, CommandHook] = {}
        self._open: list[WsConnection] = []
        self._parked: list[WsConnection] = []  # disconnected sessions that may be resumed
        self._refuse_remaining = 0
        self._refuse_status = 503
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

        created = self._ms()
        self.team = Team(new_id(), team, team_display_name, created)
        self.bot = self.add_user(bot_username, token=bot_token, is_bot=True)
        self.bot_token = bot_token
        for name in users:
            self.add_user(name)
        for name, kind in channels:
            self.add_channel(name, kind)

    # ------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeMattermost:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> FakeMattermost:
        """Start serving on ``host:port`` (port 0: an ephemeral one)."""
        _ensure_no_proxy()
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        v4 = "/api/v4"
        r.add_get(f"{v4}/system/ping", self._system_ping)
        r.add_get(f"{v4}/websocket", self._ws_handler)
        r.add_get(f"{v4}/users/me", self._get_me)
        r.add_get(f"{v4}/users/username/{{username}}", self._get_user_by_name)
        r.add_post(f"{v4}/users/usernames", self._users_by_names)
        r.add_post(f"{v4}/users/ids", self._users_by_ids)
        r.add_get(f"{v4}/users/{{user_id}}/teams", self._user_teams)
        r.add_get(f"{v4}/users/{{user_id}}", self._get_user)
        r.add_get(f"{v4}/teams/name/{{team}}/channels/name/{{channel}}",
                  self._channel_by_team_name)
        r.add_get(f"{v4}/teams/name/{{team}}", self._team_by_name)
        r.add_get(f"{v4}/teams/{{team_id}}/channels/name/{{channel}}", self._channel_by_name)
        r.add_get(f"{v4}/teams/{{team_id}}", self._team_by_id)
        r.add_post(f"{v4}/channels/direct", self._create_direct)
        r.add_get(f"{v4}/channels/{{channel_id}}/posts", self._channel_posts)
        r.add_get(f"{v4}/channels/{{channel_id}}", self._get_channel)
        r.add_post(f"{v4}/posts/ephemeral", self._create_ephemeral)
        r.add_post(f"{v4}/posts", self._create_post)
        r.add_get(f"{v4}/posts/{{post_id}}/thread", self._post_thread)
        r.add_put(f"{v4}/posts/{{post_id}}/patch", self._patch_post)
        r.add_get(f"{v4}/posts/{{post_id}}", self._get_post)
        r.add_put(f"{v4}/posts/{{post_id}}", self._update_post)
        r.add_delete(f"{v4}/posts/{{post_id}}", self._delete_post)
        r.add_post(f"{v4}/commands", self._create_command)
        r.add_get(f"{v4}/commands", self._list_commands)
        r.add_put(f"{v4}/commands/{{command_id}}/regen_token", self._regen_command_token)
        r.add_get(f"{v4}/commands/{{command_id}}", self._get_command)
        r.add_put(f"{v4}/commands/{{command_id}}", self._update_command)
        r.add_delete(f"{v4}/commands/{{command_id}}", self._delete_command)
        r.add_post("/hooks/commands/{hook_id}", self._command_hook)
        self.files.install(app)
        r.add_route("*", f"{v4}/{{tail:.*}}", self._not_found)

        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0,
                                     access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        """Close every socket and stop the server (hung requests are released)."""
        if self._closed:
            return
        self._closed = True
        self._release.set()
        self._stalls_released.set()
        for conn in list(self._open):
            conn.half_dead = False
            if conn.transport is not None:
                conn.transport.abort()
            conn.close_reason = conn.close_reason or "shutdown"
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the site URL (what ``mattermost.url`` should be)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``<url>/api/v4``."""
        return self.url + "/api/v4"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/api/v4/websocket``."""
        return f"ws://{self.host}:{self.port}/api/v4/websocket"

    def driver_options(self, token: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Options for ``mattermostautodriver.AsyncDriver`` pointing at this server."""
        options: dict[str, Any] = {
            "url": self.host,
            "port": self.port,
            "scheme": "http",
            "token": self.bot_token if token is None else token,
            "verify": False,
            "request_timeout": 5,
            "keepalive": True,
            "keepalive_delay": 0.1,
        }
        options.update(overrides)
        return options

    # ------------------------------------------------------------------------ clock

    def now(self) -> float:
        """The fake clock in seconds (wall clock plus everything ``advance`` added)."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward (response_url expiry, create_at)."""
        self._clock_offset += seconds

    def _ms(self) -> int:
        """Milliseconds on the fake clock, strictly increasing."""
        now = int(self.now() * 1000)
        self._last_ms = max(now, self._last_ms + 1)
        return self._last_ms

    # ------------------------------------------------------------------------ seed data

    def add_user(self, username: str, *, token: str | None = None, is_bot: bool = False,
                 first_name: str = "", last_name: str = "",
                 channels: Iterable[Channel | str] | None = None) -> User:
        """Create a user (token default ``<username>-token``), add it to the team and channels.

        ``channels`` None joins every public and private channel that exists now.
        """
        name = username.lower()
        if any(u.username == name for u in self._users.values()):
            raise ValueError(f"username {name!r} already exists")
        user = User(id=new_id(), username=name, token=token or f"{name}-token", is_bot=is_bot,
                    first_name=first_name, last_name=last_name,
                    email="" if is_bot else f"{name}@example.org", create_at=self._ms())
        self._users[user.id] = user
        self._tokens[user.token] = user
        self.team.members.add(user.id)
        targets = ([c for c in self._channels.values() if c.type in ("O", "P")]
                   if channels is None else [self.channel(c) for c in channels])
        for channel in targets:
            channel.members.add(user.id)
        return user

    def add_channel(self, name: str, type: str = "O", *, display_name: str | None = None,
                    members: Iterable[User | str] | None = None) -> Channel:
        """Create a team channel; ``members`` None means every user (the bot included)."""
        if type not in ("O", "P"):
            raise ValueError("team channels are O or P; use dm_channel() for D")
        if self._find_channel(name) is not None:
            raise ValueError(f"channel {name!r} already exists")
        ids = ({u.id for u in self._users.values()} if members is None
               else {self.user(m).id for m in members})
        channel = Channel(id=new_id(), name=name, type=type, team_id=self.team.id,
                          display_name=display_name or name.replace("-", " ").title(),
                          members=ids, create_at=self._ms(), creator_id=self.bot.id)
        self._channels[channel.id] = channel
        return channel

    def dm_channel(self, user: User | str, other: User | str | None = None) -> Channel:
        """The direct channel between ``user`` and ``other`` (default: the bot), created once."""
        first, second = self.user(user), self.user(other or self.bot)
        low, high = sorted((first.id, second.id))
        name = f"{low}__{high}"
        existing = self._find_channel(name)
        if existing is not None:
            return existing
        channel = Channel(id=new_id(), name=name, type="D", team_id="", display_name="",
                          members={first.id, second.id}, create_at=self._ms(),
                          creator_id=first.id)
        self._channels[channel.id] = channel
        return channel

    def add_to_channel(self, user: User | str, channel: Channel | str) -> None:
        """Make ``user`` a member of ``channel`` (publishes ``user_added``)."""
        u, ch = self.user(user), self.channel(channel)
        ch.members.add(u.id)
        self.publish("user_added", {"team_id": ch.team_id, "user_id": u.id},
                     channel_id=ch.id)

    def remove_from_channel(self, user: User | str, channel: Channel | str) -> None:
        """Remove ``user`` from ``channel`` (publishes ``user_removed``)."""
        u, ch = self.user(user), self.channel(channel)
        self.publish("user_removed", {"remover_id": self.bot.id, "user_id": u.id},
                     channel_id=ch.id)
        ch.members.discard(u.id)

    def user(self, ref: User | str) -> User:
        """A user by object, id, username or ``@username``."""
        if isinstance(ref, User):
            return ref
        if ref in self._users:
            return self._users[ref]
        name = ref.lstrip("@").lower()
        for user in self._users.values():
            if user.username == name:
                return user
        raise KeyError(f"no such user: {ref!r}")

    @property
    def users(self) -> list[User]:
        """Every user, the bot first."""
        return list(self._users.values())

    def channel(self, ref: Channel | str) -> Channel:
        """A channel by object, id or name (``~name`` accepted)."""
        if isinstance(ref, Channel):
            return ref
        found = self._find_channel(ref)
        if found is None:
            raise KeyError(f"no such channel: {ref!r}")
        return found

    @property
    def channels(self) -> list[Channel]:
        """Every channel, DMs included."""
        return list(self._channels.values())

    def _find_channel(self, ref: str) -> Channel | None:
        if ref in self._channels:
            return self._channels[ref]
        name = ref.lstrip("~")
        for channel in self._channels.values():
            if channel.name == name:
                return channel
        return None

    def token_for(self, user: User | str) -> str:
        """The personal access token of ``user``."""
        return self.user(user).token

    # ------------------------------------------------------------------------ posts

    def posts(self, channel: Channel | str | None = None) -> list[dict[str, Any]]:
        """Stored posts (with button integrations) in creation order, deleted ones excluded."""
        ch_id = None if channel is None else self.channel(channel).id
        return [copy.deepcopy(self._posts[pid]) for pid in self._post_order
                if not self._posts[pid]["delete_at"]
                and (ch_id is None or self._posts[pid]["channel_id"] == ch_id)]

    def post(self, post_id: str) -> dict[str, Any]:
        """One stored post (KeyError if unknown)."""
        return copy.deepcopy(self._posts[post_id])

    def thread(self, root_id: str) -> list[dict[str, Any]]:
        """The root post and its replies, oldest first."""
        return [p for p in self.posts() if p["id"] == root_id or p["root_id"] == root_id]

    def ephemeral_posts(self, user: User | str | None = None) -> list[dict[str, Any]]:
        """Ephemeral posts sent so far (optionally only those shown to ``user``)."""
        uid = None if user is None else self.user(user).id
        return [e.post for e in self.ephemeral if uid is None or e.user_id == uid]

    async def post_as(self, user: User | str, channel: Channel | str, message: str, *,
                      root_id: str | None = None, props: Mapping[str, Any] | None = None,
                      file_ids: Iterable[str] = ()) -> dict[str, Any]:
        """Create a post as ``user`` like a client would and broadcast ``posted``.

        Raises ``PermissionError`` if the user is not a channel member and ``ValueError`` for
        what the server rejects with 400 (bad ``root_id``, message too long).
        """
        u, ch = self.user(user), self.channel(channel)
        if u.id not in ch.members:
            raise PermissionError(f"{u.username} is not a member of {ch.name}")
        try:
            post = self._create_post_record(u, ch, message, root_id=root_id or "",
                                             props=dict(props or {}), file_ids=list(file_ids))
        except _ApiError as err:
            raise ValueError(f"{err.error_id}: {err.message}") from None
        await asyncio.sleep(0)
        return copy.deepcopy(post)

    def _create_post_record(self, user: User, channel: Channel, message: str, *,
                            root_id: str = "", props: dict[str, Any] | None = None,
                            file_ids: list[str] | None = None, post_type: str = "",
                            pending_post_id: str = "") -> dict[str, Any]:
        if len(message) > POST_MESSAGE_MAX_RUNES:
            raise _ApiError(400, "model.post.is_valid.msg.app_error", "Invalid Message.")
        root: dict[str, Any] | None = None
        if root_id:
            root = self._posts.get(root_id)
            if root is None or root["delete_at"] or root["root_id"]:
                raise _ApiError(400, "api.post.create_post.root_id.app_error",
                                "Invalid RootId parameter.")
            if root["channel_id"] != channel.id:
                raise _ApiError(400, "api.post.create_post.channel_root_id.app_error",
                                "Invalid ChannelId for RootId parameter.")
        now = self._ms()
        props = copy.deepcopy(props or {})
        _generate_action_ids(props)
        post: dict[str, Any] = {
            "id": new_id(), "create_at": now, "update_at": now, "edit_at": 0, "delete_at": 0,
            "is_pinned": False, "user_id": user.id, "channel_id": channel.id,
            "root_id": root_id, "original_id": "", "message": message, "type": post_type,
            "props": props, "hashtags": "", "pending_post_id": pending_post_id,
            "reply_count": 0, "last_reply_at": 0, "participants": None, "metadata": {},
        }
        if file_ids:
            post["file_ids"] = list(file_ids)
        self._posts[post["id"]] = post
        self._post_order.append(post["id"])
        channel.last_post_at = now
        channel.total_msg_count += 1
        if root is not None:
            root["reply_count"] += 1
            root["last_reply_at"] = now
            post["reply_count"] = root["reply_count"]
        self._publish_posted(post, channel, user)
        return post

    def _client_post(self, post: Mapping[str, Any]) -> dict[str, Any]:
        """``Post.StripActionIntegrations``: what clients (and the bot) get to see."""
        out = copy.deepcopy(dict(post))
        for attachment in out.get("props", {}).get("attachments") or []:
            if isinstance(attachment, dict):
                for action in attachment.get("actions") or []:
                    if isinstance(action, dict):
                        action.pop("integration", None)
        return out

    def _mentions(self, message: str, channel: Channel, sender: User) -> list[str]:
        """User ids mentioned by ``message`` (channel members only, never the sender)."""
        ids: list[str] = []

        def add(uid: str) -> None:
            if uid != sender.id and uid in channel.members and uid not in ids:
                ids.append(uid)

        if channel.type == "D":
            for uid in sorted(channel.members):
                add(uid)
        for match in _USER_MENTION.finditer(message):
            name = match.group(1).lower()
            while name:
                if name in ("channel", "all"):
                    for uid in sorted(channel.members):
                        add(uid)
                    break
                user = next((u for u in self._users.values() if u.username == name), None)
                if user is not None:
                    add(user.id)
                    break
                if name[-1] not in ".-_:":
                    break
                name = name[:-1]
        return ids

    def _publish_posted(self, post: Mapping[str, Any], channel: Channel, sender: User) -> None:
        display = "@" + sender.username if channel.type == "D" else channel.display_name
        data: dict[str, Any] = {
            "channel_display_name": display,
            "channel_name": channel.name,
            "channel_type": channel.type,
            "post": json.dumps(self._client_post(post)),
            "sender_name": "@" + sender.username,
            "set_online": True,
            "team_id": channel.team_id,
        }
        mentions = self._mentions(str(post["message"]), channel, sender)
        if mentions:
            data["mentions"] = json.dumps(mentions)
        self.publish("posted", data, channel_id=channel.id)

    def _apply_update(self, post: dict[str, Any], *, message: str | None,
                      props: dict[str, Any] | None, replace_props: bool) -> None:
        """``App.UpdatePost``: message replaced, props replaced (``replace_props``) or kept."""
        now = self._ms()
        if message is not None and message != post["message"]:
            post["message"] = message
            post["edit_at"] = now
        if replace_props:
            post["props"] = copy.deepcopy(props or {})
        elif props is not None:
            post["props"] = copy.deepcopy(props)
        _generate_action_ids(post["props"])
        post["update_at"] = now
        self.publish("post_edited", {"post": json.dumps(self._client_post(post))},
                     channel_id=post["channel_id"])

    def _send_ephemeral(self, target_user_id: str, sender_id: str, channel_id: str,
                        message: str, *, root_id: str = "", props: dict[str, Any] | None = None,
                        source: str) -> EphemeralPost:
        """``App.SendEphemeralPost``: an ``ephemeral_message`` event to one user."""
        now = self._ms()
        post: dict[str, Any] = {
            "id": new_id(), "create_at": now, "update_at": now, "edit_at": 0, "delete_at": 0,
            "is_pinned": False, "user_id": sender_id, "channel_id": channel_id,
            "root_id": root_id, "original_id": "", "message": message,
            "type": "system_ephemeral", "props": copy.deepcopy(props or {}), "hashtags": "",
            "pending_post_id": "", "reply_count": 0, "last_reply_at": 0,
            "participants": None, "metadata": {},
        }
        _generate_action_ids(post["props"])
        entry = EphemeralPost(user_id=target_user_id, post=post, source=source)
        self.ephemeral.append(entry)
        self.publish("ephemeral_message", {"post": json.dumps(self._client_post(post))},
                     channel_id=channel_id, user_id=target_user_id)
        return entry

    # ------------------------------------------------------------------------ recording

    def find_requests(self, spec: str = "*") -> list[RecordedRequest]:
        """Recorded requests matching ``"METHOD /path"`` (globs; ``/api/v4`` may be left out)."""
        method, pattern = _target(spec)
        return [r for r in self.requests
                if (method is None or r.method == method)
                and fnmatch.fnmatchcase(r.path, pattern)]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                       interval: float = 0.01) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    async def wait_for_request(self, spec: str = "*", count: int = 1,
                               timeout: float = 5.0) -> RecordedRequest:
        """Wait until ``count`` requests match ``spec``; return the last of them."""
        found = await self.wait_for(
            lambda: (m := self.find_requests(spec)) and len(m) >= count and m, timeout)
        return found[count - 1]

    async def wait_for_post(self, channel: Channel | str | None = None, *,
                            predicate: Callable[[dict[str, Any]], bool] | None = None,
                            user: User | str | None = None, count: int = 1,
                            timeout: float = 5.0) -> dict[str, Any]:
        """Wait until ``count`` stored posts match; return the ``count``-th one."""
        uid = None if user is None else self.user(user).id

        def matching() -> list[dict[str, Any]]:
            return [p for p in self.posts(channel)
                    if (uid is None or p["user_id"] == uid)
                    and (predicate is None or predicate(p))]

        found = await self.wait_for(lambda: (m := matching()) and len(m) >= count and m, timeout)
        return found[count - 1]

    # ------------------------------------------------------------------------ faults

    def rate_limit(self, path_or_method: str = "*", times: int | None = 1, *,
                   retry_after: int | None = 1, limit: int = 10) -> Fault:
        """Answer the next ``times`` matching requests with Mattermost's 429.

        ``path_or_method``: ``"POST /api/v4/posts"``, ``"posts"``, ``"/api/v4/posts/*"``,
        ``"PUT"`` or ``"*"``. ``retry_after`` None leaves out ``Retry-After`` (the driver then
        uses ``X-Ratelimit-Reset``); ``times`` None: until ``clear_faults``.
        """
        method, pattern = _target(path_or_method)
        fault = Fault("rate_limit", method, pattern, times, status=429,
                      retry_after=retry_after, limit=limit)
        self.faults.append(fault)
        return fault

    def fail_next(self, path_or_method: str = "*", status: int = 500, times: int | None = 1, *,
                  body: str | bytes | None = None,
                  content_type: str = "text/plain; charset=utf-8",
                  stored: bool = False) -> Fault:
        """Answer the next ``times`` matching requests with ``status``.

        Default body: an AppError JSON; give ``body`` (e.g. a proxy's HTML) to send that instead.
        ``stored``: the request is carried out first (the post exists) and only its answer is
        the failure, as when a proxy times out after the server did the work. Faults apply in
        the order they were added (the first one matching a request is used).
        """
        method, pattern = _target(path_or_method)
        fault = Fault("fail", method, pattern, times, status=status, body=body,
                      content_type=content_type, stored=stored)
        self.faults.append(fault)
        return fault

    def stall(self, path_or_method: str = "*", times: int | None = 1, *, stored: bool,
              match: Callable[[RecordedRequest], bool] | None = None) -> Fault:
        """Hold the next ``times`` matching requests (those ``match`` accepts) until
        :meth:`release_stalls` or :meth:`close`; they show in :attr:`stalled` meanwhile.

        ``stored=False``: the request is never carried out (lost on its way in; released, it is
        answered 503). ``stored=True``: it is carried out at once (the post exists, shows in
        the channel's posts) and only the answer is held (lost on its way out; released, it is
        sent). A client killed meanwhile never hears back: a crash mid-send.
        """
        method, pattern = _target(path_or_method)
        fault = Fault("stall", method, pattern, times, stored=stored, match=match)
        self.faults.append(fault)
        return fault

    def release_stalls(self) -> None:
        """Let every held request finish (see :meth:`stall`)."""
        self._stalls_released.set()
        self._stalls_released = asyncio.Event()

    async def _hold(self, rec: RecordedRequest) -> None:
        self.stalled.append(rec)
        try:
            await self._stalls_released.wait()
        finally:
            self.stalled.remove(rec)

    def hang(self, path_or_method: str = "*", times: int | None = 1, *,
             seconds: float | None = None) -> Fault:
        """Hold the next ``times`` matching requests until ``release_hangs`` (or ``seconds``),
        then handle them normally. Works for WebSocket upgrades too."""
        method, pattern = _target(path_or_method)
        fault = Fault("hang", method, pattern, times, seconds=seconds)
        self.faults.append(fault)
        return fault

    def release_hangs(self) -> None:
        """Let every hung request proceed."""
        self._release.set()
        self._release = asyncio.Event()

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self.faults.clear()

    def _match_fault(self, method: str, path: str,
                     request: RecordedRequest | None = None) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path, request):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    # ------------------------------------------------------------------------ HTTP plumbing

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        return {"Content-Type": content_type or self.json_content_type, "X-Request-Id": new_id(),
                "X-Version-Id": self.version_id}

    def _json(self, data: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=json.dumps(data).encode(),
                            headers=self._headers())

    def _error(self, status: int, error_id: str, message: str) -> web.Response:
        if self.plain_errors:  # a proxy's own error page, not the server's AppError JSON
            return web.Response(status=status, text=f"{status} {message}\n",
                                headers=self._headers("text/plain; charset=utf-8"))
        headers = self._headers()
        payload = {"id": error_id, "message": message, "detailed_error": "",
                   "request_id": headers["X-Request-Id"], "status_code": status}
        return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        rec = RecordedRequest(method=request.method, path=request.path,
                              query=dict(request.query), headers=dict(request.headers),
                              body=body, time=self.now())
        self.requests.append(rec)
        request[_REC] = rec
        response: web.StreamResponse
        fault = self._match_fault(request.method, request.path, rec)
        try:
            if fault is not None and fault.kind == "hang":
                release = self._release
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(release.wait(), fault.seconds)
                fault = None
            if fault is not None and fault.kind == "stall" and not fault.stored:
                await self._hold(rec)  # lost on its way in: never carried out
                response = self._error(503, "api.fake.stalled", "Stalled request released.")
            elif fault is not None and fault.kind == "rate_limit":
                response = self._rate_limited(fault)
            elif fault is not None and (fault.kind == "stall" or fault.stored):
                response = await self._carried_out(handler, request)
                if fault.kind == "stall":
                    await self._hold(rec)  # carried out; the answer is lost on its way out
                else:
                    response = self._injected_failure(fault)
            elif fault is not None:
                response = self._injected_failure(fault)
            else:
                response = await handler(request)
        except _ApiError as err:
            response = self._error(err.status, err.error_id, err.message)
        except web.HTTPException as exc:
            response = self._error(exc.status, "api.context.404.app_error"
                                   if exc.status == 404 else "api.context.http_error",
                                   exc.reason)
        rec.status = response.status
        return response

    async def _carried_out(self, handler: Callable[[web.Request], Any],
                           request: web.Request) -> web.StreamResponse:
        """The handler's answer, an AppError turned into its response (for ``stored``)."""
        try:
            return await handler(request)
        except _ApiError as err:
            return self._error(err.status, err.error_id, err.message)

    def _rate_limited(self, fault: Fault) -> web.Response:
        reset = fault.retry_after if fault.retry_after is not None else 1
        headers = {"Content-Type": "text/plain; charset=utf-8",
                   "X-Content-Type-Options": "nosniff",
                   "X-Ratelimit-Limit": str(fault.limit), "X-Ratelimit-Remaining": "0",
                   "X-Ratelimit-Reset": str(reset)}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return web.Response(status=429, body=b"limit exceeded\n", headers=headers)

    def _injected_failure(self, fault: Fault) -> web.Response:
        if fault.body is None:
            return self._error(fault.status, "api.fake.injected_failure",
                               f"Injected failure (HTTP {fault.status}).")
        body = fault.body.encode() if isinstance(fault.body, str) else fault.body
        return web.Response(status=fault.status, body=body,
                            headers={"Content-Type": fault.content_type})

    def _session_user(self, request: web.Request) -> User:
        """``ParseAuthTokenFromRequest`` + session lookup; 401 when absent or unknown."""
        token = self._token_from(request)
        user = self._tokens.get(token) if token else None
        if user is None:
            raise _ApiError(401, "api.context.session_expired.app_error",
                            "Invalid or expired session, please login again.")
        request[_REC].user_id = user.id
        return user

    @staticmethod
    def _token_from(request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        if len(header) > 6 and header[:6].upper() == "BEARER":
            return header[7:].strip()
        if len(header) > 5 and header[:5].lower() == "token":
            return header[6:].strip()
        return request.query.get("access_token", "")

    @staticmethod
    def _body(request: web.Request, name: str) -> Any:
        try:
            return json.loads(request[_REC].body)
        except ValueError:
            raise _invalid_body(name) from None

    def _visible_channel(self, user: User, channel_id: str) -> Channel:
        channel = self._channels.get(channel_id)
        if channel is None:
            raise _ApiError(404, "app.channel.get.existing.app_error",
                            "Unable to find the existing channel.")
        if channel.type != "O" and user.id not in channel.members:
            raise _permission_error()
        return channel

    def _readable_post(self, user: User, post_id: str) -> dict[str, Any]:
        post = self._posts.get(post_id)
        if post is None or post["delete_at"]:
            raise _ApiError(404, "app.post.get.app_error", "Unable to get the post.")
        channel = self._channels[post["channel_id"]]
        if channel.type != "O" and user.id not in channel.members:
            raise _permission_error()
        return post

    # ------------------------------------------------------------------------ REST: misc

    async def _system_ping(self, request: web.Request) -> web.Response:
        return self._json({"status": "OK", "ActiveSearchBackend": "database"})

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._error(404, "api.context.404.app_error", "Sorry, we could not find the page.")

    # ------------------------------------------------------------------------ REST: users

    async def _get_me(self, request: web.Request) -> web.Response:
        return self._json(self._session_user(request).to_json())

    async def _get_user(self, request: web.Request) -> web.Response:
        me = self._session_user(request)
        uid = request.match_info["user_id"]
        user = me if uid == "me" else self._users.get(uid)
        if user is None:
            raise _ApiError(404, "app.user.missing_account.const", "Unable to find the user.")
        return self._json(user.to_json())

    async def _get_user_by_name(self, request: web.Request) -> web.Response:
        self._session_user(request)
        name = request.match_info["username"].lower()
        user = next((u for u in self._users.values() if u.username == name), None)
        if user is None:
            raise _ApiError(404, "app.user.get_by_username.app_error",
                            "Unable to find an existing account matching your username.")
        return self._json(user.to_json())

    async def _users_by_names(self, request: web.Request) -> web.Response:
        self._session_user(request)
        names = self._body(request, "usernames")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _invalid_body("usernames")
        wanted = {n.lower() for n in names}
        return self._json([u.to_json() for u in self._users.values() if u.username in wanted])

    async def _users_by_ids(self, request: web.Request) -> web.Response:
        self._session_user(request)
        ids = self._body(request, "user_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _invalid_body("user_ids")
        return self._json([self._users[i].to_json() for i in ids if i in self._users])

    async def _user_teams(self, request: web.Request) -> web.Response:
        me = self._session_user(request)
        uid = request.match_info["user_id"]
        uid = me.id if uid == "me" else uid
        return self._json([self.team.to_json()] if uid in self.team.members else [])

    # ------------------------------------------------------------------------ REST: teams

    def _team_named(self, name: str) -> Team:
        if name != self.team.name:
            raise _ApiError(404, "app.team.get_by_name.missing.app_error",
                            "Unable to find the existing team.")
        return self.team

    async def _team_by_name(self, request: web.Request) -> web.Response:
        self._session_user(request)
        return self._json(self._team_named(request.match_info["team"]).to_json())

    async def _team_by_id(self, request: web.Request) -> web.Response:
        self._session_user(request)
        if request.match_info["team_id"] != self.team.id:
            raise _ApiError(404, "app.team.get.find.app_error",
                            "Unable to find the existing team.")
        return self._json(self.team.to_json())

    def _channel_named(self, user: User, team: Team, name: str) -> Channel:
        for channel in self._channels.values():
            if channel.team_id == team.id and channel.name == name and (
                    channel.type == "O" or user.id in channel.members):
                return channel
        raise _ApiError(404, "app.channel.get_by_name.missing.app_error",
                        "Unable to find the existing channel.")

    async def _channel_by_team_name(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        team = self._team_named(request.match_info["team"])
        return self._json(self._channel_named(user, team, request.match_info["channel"])
                          .to_json())

    async def _channel_by_name(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        if request.match_info["team_id"] != self.team.id:
            raise _ApiError(404, "app.team.get.find.app_error",
                            "Unable to find the existing team.")
        return self._json(self._channel_named(user, self.team, request.match_info["channel"])
                          .to_json())

    # ------------------------------------------------------------------------ REST: channels

    async def _get_channel(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        return self._json(self._visible_channel(user, request.match_info["channel_id"])
                          .to_json())

    async def _create_direct(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        ids = self._body(request, "user_ids")
        if (not isinstance(ids, list) or len(ids) != 2
                or not all(isinstance(i, str) and i in self._users for i in ids)):
            raise _invalid_body("user_ids")
        if user.id not in ids:
            raise _permission_error()
        return self._json(self.dm_channel(ids[0], ids[1]).to_json(), status=201)

    async def _channel_posts(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        channel = self._visible_channel(user, request.match_info["channel_id"])
        since = int(request.query.get("since", "0") or 0)
        page = int(request.query.get("page", "0") or 0)
        # api4/params.go: per_page above PerPageMaximum (200) is cut to it, not refused
        per_page = min(int(request.query.get("per_page", "60") or 60), PER_PAGE_MAXIMUM)
        posts = [p for p in self._posts.values() if p["channel_id"] == channel.id
                 and not p["delete_at"] and (not since or p["update_at"] >= since)]
        posts.sort(key=lambda p: p["create_at"], reverse=True)
        if not since:
            posts = posts[page * per_page:(page + 1) * per_page]
        return self._json(self._post_list(posts))

    def _post_list(self, posts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"order": [p["id"] for p in posts],
                "posts": {p["id"]: self._client_post(p) for p in posts},
                "next_post_id": "", "prev_post_id": "", "has_next": False}

    # ------------------------------------------------------------------------ REST: posts

    async def _create_post(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        body = self._body(request, "post")
        if not isinstance(body, dict):
            raise _invalid_body("post")
        channel = self._channels.get(str(body.get("channel_id") or ""))
        if channel is None or user.id not in channel.members:
            raise _permission_error()
        props = body.get("props") or {}
        if not isinstance(props, dict):
            raise _invalid_body("post")
        pending = str(body.get("pending_post_id") or "")
        seen = self._pending_post_ids.get(pending) if pending else None
        if seen is not None and self.now() - seen[1] < PENDING_POST_IDS_TTL:
            # deduplicateCreatePost: a retried create answers the post made the first time
            existing = self._posts.get(seen[0])
            if existing is not None:
                return self._json(self._client_post(existing), status=201)
        post = self._create_post_record(
            user, channel, str(body.get("message") or ""), root_id=str(body.get("root_id") or ""),
            props=props, file_ids=list(body.get("file_ids") or []),
            pending_post_id=pending)
        self.files.attach(post)
        if pending:
            self._pending_post_ids[pending] = (post["id"], self.now())
        return self._json(self._client_post(post), status=201)

    async def _create_ephemeral(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        body = self._body(request, "ephemeral_post")
        if not isinstance(body, dict) or not isinstance(body.get("post"), dict):
            raise _invalid_body("ephemeral_post")
        target = str(body.get("user_id") or "")
        if target not in self._users:
            raise _invalid_body("user_id")
        fields = body["post"]
        channel = self._channels.get(str(fields.get("channel_id") or ""))
        if channel is None or user.id not in channel.members:
            raise _permission_error()
        entry = self._send_ephemeral(target, user.id, channel.id, str(fields.get("message") or ""),
                                     root_id=str(fields.get("root_id") or ""),
                                     props=fields.get("props") or {}, source="rest")
        return self._json(self._client_post(entry.post), status=201)

    async def _get_post(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        return self._json(self._client_post(self._readable_post(user,
                                                                request.match_info["post_id"])))

    async def _post_thread(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        post = self._readable_post(user, request.match_info["post_id"])
        root_id = post["root_id"] or post["id"]
        posts = [p for p in self._posts.values() if not p["delete_at"]
                 and (p["id"] == root_id or p["root_id"] == root_id)]
        posts.sort(key=lambda p: p["create_at"], reverse=True)
        return self._json(self._post_list(posts))

    def _editable_post(self, user: User, post_id: str) -> dict[str, Any]:
        post = self._posts.get(post_id)
        if post is None or post["delete_at"] or post["user_id"] != user.id:
            raise _permission_error()
        return post

    async def _update_post(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        post_id = request.match_info["post_id"]
        body = self._body(request, "post")
        if not isinstance(body, dict) or body.get("id") != post_id:
            raise _invalid_body("id")
        post = self._editable_post(user, post_id)
        props = body.get("props")
        if props is not None and not isinstance(props, dict):
            raise _invalid_body("post")
        self._apply_update(post, message=str(body.get("message") or ""), props=props,
                           replace_props=True)
        return self._json(self._client_post(post))

    async def _patch_post(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        body = self._body(request, "post")
        if not isinstance(body, dict):
            raise _invalid_body("post")
        post = self._editable_post(user, request.match_info["post_id"])
        props = body.get("props")
        if props is not None and not isinstance(props, dict):
            raise _invalid_body("post")
        message = body.get("message")
        self._apply_update(post, message=None if message is None else str(message),
                           props=props, replace_props=False)
        if "is_pinned" in body:
            post["is_pinned"] = bool(body["is_pinned"])
        return self._json(self._client_post(post))

    async def _delete_post(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        post = self._editable_post(user, request.match_info["post_id"])
        post["delete_at"] = self._ms()
        self.publish("post_deleted", {"delete_by": user.id,
                                      "post": json.dumps(self._client_post(post))},
                     channel_id=post["channel_id"])
        return self._json({"status": "OK"})

    # ------------------------------------------------------------------------ commands

    def commands(self) -> list[dict[str, Any]]:
        """Every registered custom slash command (with its token)."""
        return [copy.deepcopy(c) for c in self._commands.values() if not c["delete_at"]]

    def command(self, trigger: str) -> dict[str, Any] | None:
        """The team's custom command for ``trigger`` (with or without ``/``), or None."""
        trig = trigger.lstrip("/").lower()
        for cmd in self._commands.values():
            if not cmd["delete_at"] and cmd["trigger"] == trig and cmd["team_id"] == self.team.id:
                return cmd
        return None

    def add_command(self, trigger: str, url: str, *, method: str = "P",
                    token: str | None = None, creator: User | str | None = None,
                    **extra: Any) -> dict[str, Any]:
        """Register a custom slash command as an admin would in the UI; returns it."""
        cmd = self._new_command({"trigger": trigger, "url": url, "method": method,
                                 "team_id": self.team.id, "token": token or "", **extra},
                                self.user(creator or self.bot))
        return copy.deepcopy(cmd)

    def _validate_command(self, cmd: Mapping[str, Any]) -> None:
        trigger = str(cmd.get("trigger") or "")
        if not trigger or len(trigger) > 128 or trigger.startswith("/") or " " in trigger:
            raise _ApiError(400, "model.command.is_valid.trigger.app_error", "Invalid trigger.")
        url = str(cmd.get("url") or "")
        if not url.startswith(("http://", "https://")) or len(url) > 1024:
            raise _ApiError(400, "model.command.is_valid.url_http.app_error",
                            "Invalid URL. Must be a valid URL and start with http:// or "
                            "https://.")
        if cmd.get("method") not in ("P", "G"):
            raise _ApiError(400, "model.command.is_valid.method.app_error", "Invalid Method.")

    def _new_command(self, body: Mapping[str, Any], creator: User) -> dict[str, Any]:
        if body.get("team_id") != self.team.id:
            raise _permission_error()
        self._validate_command(body)
        trigger = str(body["trigger"]).lower()
        if self.command(trigger) is not None:
            raise _ApiError(400, "api.command.duplicate_trigger.app_error",
                            "This trigger word is already in use. Please choose another word.")
        now = self._ms()
        cmd: dict[str, Any] = {
            "id": new_id(), "token": str(body.get("token") or "") or new_id(),
            "create_at": now, "update_at": now, "delete_at": 0, "creator_id": creator.id,
            "team_id": self.team.id, "trigger": trigger, "method": body["method"],
            "username": str(body.get("username") or ""),
            "icon_url": str(body.get("icon_url") or ""),
            "auto_complete": bool(body.get("auto_complete", False)),
            "auto_complete_desc": str(body.get("auto_complete_desc") or ""),
            "auto_complete_hint": str(body.get("auto_complete_hint") or ""),
            "display_name": str(body.get("display_name") or ""),
            "description": str(body.get("description") or ""), "url": str(body["url"]),
            "plugin_id": "",
        }
        self._commands[cmd["id"]] = cmd
        return cmd

    def _command_or_404(self, command_id: str) -> dict[str, Any]:
        cmd = self._commands.get(command_id)
        if cmd is None or cmd["delete_at"]:
            raise _ApiError(404, "api.command.command_not_found.app_error",
                            "Command not found.")
        return cmd

    async def _create_command(self, request: web.Request) -> web.Response:
        user = self._session_user(request)
        body = self._body(request, "command")
        if not isinstance(body, dict):
            raise _invalid_body("command")
        return self._json(self._new_command(body, user), status=201)

    async def _list_commands(self, request: web.Request) -> web.Response:
        self._session_user(request)
        team_id = request.query.get("team_id", "")
        if not team_id:
            raise _ApiError(400, "api.context.invalid_url_param.app_error",
                            "Invalid or missing team_id parameter in request URL.")
        if team_id != self.team.id:
            raise _permission_error()
        custom_only = request.query.get("custom_only", "").lower() in ("1", "t", "true")
        mine = [c for c in self._commands.values()
                if not c["delete_at"] and c["team_id"] == team_id]
        if custom_only:
            return self._json(mine)
        builtins = [{"trigger": t, "auto_complete": True, "display_name": "",
                     "description": "", "id": "", "token": "", "url": "", "method": ""}
                    for t in ("away", "echo", "join", "me", "msg", "shrug")]
        sanitized = [{**c, "token": "", "creator_id": "", "method": "", "url": "",
                      "username": "", "icon_url": ""} for c in mine]
        return self._json(builtins + sanitized)

    async def _get_command(self, request: web.Request) -> web.Response:
        self._session_user(request)
        return self._json(self._command_or_404(request.match_info["command_id"]))

    async def _update_command(self, request: web.Request) -> web.Response:
        self._session_user(request)
        command_id = request.match_info["command_id"]
        body = self._body(request, "command")
        if not isinstance(body, dict) or body.get("id") != command_id:
            raise _invalid_body("command")
        cmd = self._command_or_404(command_id)
        if body.get("team_id") != cmd["team_id"]:
            raise _ApiError(400, "api.command.team_mismatch.app_error",
                            "Unable to update command across teams.")
        self._validate_command(body)
        trigger = str(body["trigger"]).lower()
        other = self.command(trigger)
        if other is not None and other["id"] != command_id:
            raise _ApiError(400, "api.command.duplicate_trigger.app_error",
                            "This trigger word is already in use. Please choose another word.")
        for key in ("method", "username", "icon_url", "auto_complete", "auto_complete_desc",
                    "auto_complete_hint", "display_name", "description", "url"):
            default: Any = False if key == "auto_complete" else ""
            cmd[key] = body.get(key, default)
        cmd["trigger"] = trigger
        cmd["update_at"] = self._ms()
        return self._json(cmd)

    async def _delete_command(self, request: web.Request) -> web.Response:
        self._session_user(request)
        cmd = self._command_or_404(request.match_info["command_id"])
        cmd["delete_at"] = self._ms()
        return self._json({"status": "OK"})

    async def _regen_command_token(self, request: web.Request) -> web.Response:
        self._session_user(request)
        cmd = self._command_or_404(request.match_info["command_id"])
        cmd["token"] = new_id()
        cmd["update_at"] = self._ms()
        return self._json({"token": cmd["token"]})

    async def _command_hook(self, request: web.Request) -> web.Response:
        rec = request[_REC]
        hook_id = request.match_info["hook_id"]
        use = HookUse(hook_id=hook_id, time=self.now(), response=None)
        self.hook_uses.append(use)
        try:
            try:
                response = _command_response_from_body(request.headers.get("Content-Type", ""),
                                                       rec.body)
            except ValueError:
                raise _ApiError(400, "web.command_webhook.parse.app_error",
                                "Unable to parse incoming data.") from None
            use.response = response
            hook = self._hooks.get(hook_id)
            if hook is None or self.now() - hook.create_at >= COMMAND_HOOK_LIFETIME:
                raise _ApiError(404, "app.command_webhook.get.missing",
                                "Unable to get the webhook.")
            cmd = self._commands.get(hook.command_id)
            if cmd is None:
                raise _ApiError(400, "web.command_webhook.command.app_error",
                                "Couldn't find the command.")
            if hook.use_count >= COMMAND_HOOK_MAX_USES:
                raise _ApiError(400, "app.command_webhook.try_use.invalid", "Invalid use.")
            hook.use_count += 1
            _posts, _eph, error = self._handle_command_response(
                self._users[hook.user_id], hook.channel_id, hook.root_id, response, "hook")
            if error is not None:
                raise _ApiError(500, "api.command.execute_command.create_post_failed.app_error",
                                error)
            use.status = 200
            return web.Response(status=200, body=b"ok", headers=self._headers("text/plain"))
        except _ApiError as err:
            use.status = err.status
            raise

    def _handle_command_response(
        self, user: User, channel_id: str, root_id: str, response: Mapping[str, Any],
        source: str,
    ) -> tuple[list[dict[str, Any]], list[EphemeralPost], str | None]:
        """``HandleCommandResponse``: posts and ephemeral posts for a CommandResponse."""
        posts: list[dict[str, Any]] = []
        ephemeral: list[EphemeralPost] = []
        error: str | None = None
        extra = response.get("extra_responses") or []
        for resp in [response, *[r for r in extra if isinstance(r, dict)]]:
            target_id = str(resp.get("channel_id") or channel_id)
            channel = self._channels.get(target_id)
            if channel is None or user.id not in channel.members:
                error = f"user is not a member of channel {target_id}"
                continue
            props = dict(resp.get("props") or {})
            props["from_webhook"] = "true"
            text = str(resp.get("text") or "")
            attachments = resp.get("attachments")
            if attachments:
                props["attachments"] = copy.deepcopy(attachments)
            kind = resp.get("response_type") or ""
            if kind == "in_channel":
                try:
                    posts.append(self._create_post_record(
                        user, channel, text, root_id=root_id, props=props,
                        post_type=str(resp.get("type") or "")))
                except _ApiError as err:
                    error = err.message
            elif kind in ("ephemeral", "") and (text or attachments):
                ephemeral.append(self._send_ephemeral(
                    user.id, user.id, channel.id, text, root_id=root_id, props=props,
                    source=source))
        return posts, ephemeral, error

    def build_command_request(
        self, trigger: str, text: str, user: User | str, channel: Channel | str, *,
        token: str | None = None, root_id: str = "", url: str | None = None,
    ) -> CommandRequest:
        """The form and headers Mattermost sends for ``/<trigger> <text>``; registers the hook.

        The command must be registered (``add_command`` or ``POST /commands``) unless ``url``
        is given, in which case it is registered on the fly. ``token`` overrides the token sent
        (the stored one is kept), e.g. to test a wrong token.
        """
        u, ch = self.user(user), self.channel(channel)
        cmd = self.command(trigger)
        if cmd is None:
            if url is None:
                raise LookupError(f"no slash command /{trigger.lstrip('/')} registered")
            cmd = self._new_command({"trigger": trigger.lstrip("/"), "url": url, "method": "P",
                                     "team_id": self.team.id}, self.bot)
        sent_token = cmd["token"] if token is None else token
        hook = CommandHook(id=new_id(), command_id=cmd["id"], user_id=u.id, channel_id=ch.id,
                           root_id=root_id, create_at=self.now())
        self._hooks[hook.id] = hook
        trigger_id = base64.b64encode(
            f"{new_id()}:{u.id}:{self._ms()}:{secrets.token_hex(16)}".encode()).decode()
        form: list[tuple[str, str]] = [
            ("channel_id", ch.id), ("channel_name", ch.name), ("command", "/" + cmd["trigger"]),
            ("response_url", f"{self.url}/hooks/commands/{hook.id}"), ("root_id", root_id),
            ("team_domain", self.team.name), ("team_id", cmd["team_id"]), ("text", text),
            ("token", sent_token), ("trigger_id", trigger_id), ("user_id", u.id),
            ("user_name", u.username),
        ]
        for match in _USER_MENTION.finditer(text):
            name = match.group(1).lower()
            mentioned = next((x for x in self._users.values() if x.username == name), None)
            if mentioned is not None and mentioned.id in self.team.members:
                form += [("user_mentions", name), ("user_mentions_ids", mentioned.id)]
        for match in _CHANNEL_MENTION.finditer(text):
            named = self._find_channel(match.group(1))
            if named is not None and named.type == "O":
                form += [("channel_mentions", named.name), ("channel_mentions_ids", named.id)]
        form.sort(key=lambda kv: kv[0])  # url.Values.Encode sorts by key
        headers = {"Accept": "application/json"}
        if sent_token:
            headers["Authorization"] = "Token " + sent_token
        if cmd["method"] == "P":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return CommandRequest(url=url or cmd["url"], method=cmd["method"], form=form,
                              headers=headers, hook=hook, command=copy.deepcopy(cmd))

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=self.outgoing_timeout))
        return self._session

    async def invoke_command(
        self, bot_url: str | None, trigger: str, text: str, user: User | str,
        channel: Channel | str, *, token: str | None = None, root_id: str = "",
        create_posts: bool = True,
    ) -> CommandResult:
        """Run ``/<trigger> <text>`` as ``user`` in ``channel``, like the server does.

        POSTs (or GETs, for method ``G``) the command form to ``bot_url`` (None: the registered
        command's URL), then, unless ``create_posts`` is false, turns the answer into posts
        (``in_channel``) or ephemeral posts like Mattermost. ``server_status`` is what the user's
        client would get: 403 (not a channel member), 500 (bot not 200, empty or broken JSON,
        timeout), else 200.
        """
        u, ch = self.user(user), self.channel(channel)
        req = self.build_command_request(trigger, text, u, ch, token=token, root_id=root_id,
                                         url=bot_url)
        if u.id not in ch.members:
            return CommandResult(req, 0, {}, b"", None, None, 403,
                                 error="user is not a member of the channel")
        session = self._client_session()
        try:
            if req.method == "G":
                sep = "&" if "?" in req.url else "?"
                ctx = session.get(req.url + sep + urlencode(req.form), headers=req.headers)
            else:
                ctx = session.post(req.url, data=urlencode(req.form), headers=req.headers)
            async with ctx as resp:
                status, headers, body = resp.status, dict(resp.headers), await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return CommandResult(req, 0, {}, b"", None, None, 500,
                                 error=f"command request failed: {exc!r}")
        content_type = headers.get("Content-Type", "")
        parsed_json: Any = None
        if content_type.split(";")[0].strip().lower() == "application/json":
            with contextlib.suppress(ValueError):
                parsed_json = json.loads(body)
        result = CommandResult(req, status, headers, body, parsed_json, None, 200)
        if status != 200:
            result.server_status = 500
            result.error = f"command answered HTTP {status}"
            return result
        try:
            result.response = _command_response_from_body(content_type, body)
        except ValueError as exc:
            result.server_status = 500
            result.error = f"command answered an empty or invalid JSON body: {exc}"
            return result
        if create_posts:
            posts, ephemeral, error = self._handle_command_response(u, ch.id, root_id,
                                                                    result.response, "command")
            result.posts = [copy.deepcopy(p) for p in posts]
            result.ephemeral = ephemeral
            if error is not None:
                result.server_status, result.error = 500, error
        return result

    # ------------------------------------------------------------------------ buttons

    async def click(self, url: str | None, post_id: str, action_id: str,
                    user: User | str) -> ClickResult:
        """Click button ``action_id`` of stored post ``post_id`` as ``user``.

        POSTs the real integration request to ``url`` (None: the button's ``integration.url``),
        then applies ``update`` to the post (``post_edited`` event) and sends ``ephemeral_text``
        to the user as Mattermost does.
        """
        u = self.user(user)
        post = self._posts.get(post_id)
        if not _ACTION_ID.match(action_id):
            return ClickResult(None, None, 0, b"", None, 404,
                               error="action id is not [A-Za-z0-9]+: the server's route 404s")
        if post is None or post["delete_at"]:
            return ClickResult(None, None, 0, b"", None, 404, error="no such post")
        action = _find_action(post, action_id)
        integration = (action or {}).get("integration")
        if action is None or not isinstance(integration, dict):
            return ClickResult(None, None, 0, b"", None, 404,
                               error="no action with that id and an integration")
        channel = self._channels[post["channel_id"]]
        if channel.type != "O" and u.id not in channel.members:
            return ClickResult(None, None, 0, b"", None, 403, error="not a channel member")
        payload: dict[str, Any] = {
            "user_id": u.id, "user_name": u.username, "channel_id": channel.id,
            "channel_name": channel.name, "team_id": channel.team_id,
            "team_domain": self.team.name if channel.team_id else "", "post_id": post_id,
            "trigger_id": base64.b64encode(
                f"{new_id()}:{u.id}:{self._ms()}:{secrets.token_hex(16)}".encode()).decode(),
            "type": action.get("type") or "button",
            "data_source": action.get("data_source") or "",
        }
        if integration.get("context") is not None:
            payload["context"] = copy.deepcopy(integration["context"])
        target = url or str(integration.get("url") or "")
        result = ClickResult(payload, target, 0, b"", None, 200)
        try:
            async with self._client_session().post(
                    target, data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json",
                             "Accept": "application/json"}) as resp:
                result.status, result.body = resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.server_status, result.error = 400, f"integration request failed: {exc!r}"
            return result
        if result.status != 200:
            result.server_status, result.error = 400, f"integration answered HTTP {result.status}"
            return result
        answer: dict[str, Any] = {}
        if result.body:
            try:
                parsed = json.loads(result.body)
            except ValueError:
                result.server_status, result.error = 400, "integration answered invalid JSON"
                return result
            result.json = parsed
            answer = parsed if isinstance(parsed, dict) else {}
        update = answer.get("update")
        if isinstance(update, dict):
            original = post["props"]
            props = update.get("props")
            if isinstance(props, dict):
                new_props = copy.deepcopy(props)
                for key in RETAINED_ACTION_PROPS:
                    if key in original:
                        new_props[key] = original[key]
                    else:
                        new_props.pop(key, None)
            else:
                new_props = copy.deepcopy(original)
            self._apply_update(post, message=str(update.get("message") or ""), props=new_props,
                               replace_props=True)
            result.post = copy.deepcopy(post)
        text = answer.get("ephemeral_text")
        if text:
            result.ephemeral_text = str(text)
            self._send_ephemeral(u.id, u.id, channel.id, str(text),
                                 root_id=post["root_id"] or post["id"], source="action")
        if answer.get("goto_location"):
            result.goto_location = str(answer["goto_location"])
        return result

    # ------------------------------------------------------------------------ websocket: API

    def publish(self, event: str, data: Mapping[str, Any], *, channel_id: str = "",
                user_id: str = "", team_id: str = "",
                omit_users: Iterable[str] | None = None) -> dict[str, Any]:
        """Publish an event like the server's hub: to one user, a channel's members or a team."""
        omitted = {uid: True for uid in omit_users} if omit_users else None
        message = {"event": event, "data": dict(data), "broadcast": {
            "omit_users": omitted, "user_id": user_id, "channel_id": channel_id,
            "team_id": team_id, "connection_id": "", "omit_connection_id": ""}}
        self.events.append(copy.deepcopy(message))
        for conn in self._open:
            if self._should_send(conn, message):
                conn.queue.put_nowait(message)
        for conn in list(self._parked):  # the hub keeps queueing for a disconnected session
            if self._should_send(conn, message):
                conn.queue.put_nowait(message)
                if conn.queue.qsize() > SEND_QUEUE_SIZE:
                    self._parked.remove(conn)
        return message

    def _should_send(self, conn: WsConnection, message: Mapping[str, Any]) -> bool:
        if not conn.authenticated:
            return False
        bc = message["broadcast"]
        if bc["user_id"]:
            return conn.user_id == bc["user_id"]
        if bc["omit_users"] and conn.user_id in bc["omit_users"]:
            return False
        if bc["channel_id"]:
            channel = self._channels.get(bc["channel_id"])
            return channel is not None and conn.user_id in channel.members
        if bc["team_id"]:
            return conn.user_id in self.team.members
        return True

    @property
    def open_connections(self) -> list[WsConnection]:
        """Sockets currently open (authenticated or not)."""
        return list(self._open)

    @property
    def connection_count(self) -> int:
        """Authenticated sockets currently open."""
        return sum(1 for c in self._open if c.authenticated)

    @property
    def total_connections(self) -> int:
        """Sockets that ever authenticated."""
        return sum(1 for c in self.ws_connections if c.authenticated)

    async def wait_for_connection(self, n: int = 1, timeout: float = 5.0) -> WsConnection:
        """Wait until ``n`` sockets have authenticated in total; return the ``n``-th one."""
        def nth() -> WsConnection | None:
            done = [c for c in self.ws_connections if c.authenticated]
            return done[n - 1] if len(done) >= n else None

        return await self.wait_for(nth, timeout)

    def refuse_connections(self, n: int = 1, status: int = 503) -> None:
        """Fail the next ``n`` WebSocket upgrades with HTTP ``status`` (a proxy during restart)."""
        self._refuse_remaining = n
        self._refuse_status = status

    async def drop_sockets(self, code: int = 1000, message: bytes = b"",
                           user: User | str | None = None) -> int:
        """Close open sockets cleanly with a close frame ``code``; returns how many."""
        uid = None if user is None else self.user(user).id
        conns = [c for c in self._open if uid is None or c.user_id == uid]
        for conn in conns:
            conn.close_reason = "server"
            conn.half_dead = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=message),
                                       self.ws_close_timeout)
        await self.wait_for(lambda: all(c.closed for c in conns), self.ws_close_timeout + 1)
        return len(conns)

    async def drop_sockets_abnormally(self, user: User | str | None = None) -> int:
        """Abort the TCP connection of open sockets (no close frame: client sees 1006)."""
        uid = None if user is None else self.user(user).id
        conns = [c for c in self._open if uid is None or c.user_id == uid]
        for conn in conns:
            self._drop_tcp(conn, "abort", abort=True)
        await self.wait_for(lambda: all(c.closed for c in conns), 2.0)
        return len(conns)

    def half_dead(self, new_connections: bool = False) -> int:
        """Make open sockets silent: no events, pings, pongs or close replies (events are lost).

        With ``new_connections`` later sockets start half-dead too. Returns how many changed.
        """
        self.half_dead_new_connections = new_connections
        for conn in self._open:
            conn.half_dead = True
        return len(self._open)

    def revive(self) -> None:
        """Undo ``half_dead`` (events lost meanwhile stay lost)."""
        self.half_dead_new_connections = False
        for conn in self._open:
            conn.half_dead = False

    # ------------------------------------------------------------------------ websocket: server

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if self._refuse_remaining > 0:
            self._refuse_remaining -= 1
            self.refused_connections += 1
            return web.Response(status=self._refuse_status, text="upstream unavailable\n")
        ws = web.WebSocketResponse(autoping=False, autoclose=False,
                                   timeout=self.ws_close_timeout)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = WsConnection(id=new_id(), query=dict(request.query),
                            headers=dict(request.headers), opened_at=self.now(), ws=ws,
                            transport=request.transport,
                            half_dead=self.half_dead_new_connections,
                            deadline=loop.time() + self.pong_wait)
        self.ws_connections.append(conn)
        self._open.append(conn)
        try:
            token = self._token_from(request)
            user = self._tokens.get(token) if token else None
            if user is not None:
                carried = self._resume(conn, user)
                if carried is None:
                    self._drop_tcp(conn, "bad_sequence")
                    return ws
                self._register(conn, user, "header", hello=conn.resumed in (None, "lost"))
                for message in carried:
                    conn.queue.put_nowait(message)
            conn.tasks.append(asyncio.create_task(self._ws_writer(conn)))
            conn.tasks.append(asyncio.create_task(self._ws_watchdog(conn)))
            await self._ws_read_loop(conn)
        finally:
            conn.closed = True
            conn.closed_at = self.now()
            if conn.close_code is None:
                conn.close_code = ws.close_code
            conn.close_reason = conn.close_reason or "client"
            if conn in self._open:
                self._open.remove(conn)
            for task in conn.tasks:
                task.cancel()
            if conn.authenticated and not self._closed:
                self._parked.append(conn)
        return ws

    def _resume(self, conn: WsConnection, user: User) -> list[dict[str, Any]] | None:
        """``PopulateWebConnConfig`` + the writePump's dead-queue check (header auth only).

        Returns the events queued while disconnected (to send after hello/replay), or None
        when the request is invalid (the server then closes the socket).
        """
        cid = conn.query.get("connection_id", "")
        prev = next((c for c in self._parked if c.id == cid), None) if cid else None
        if prev is None or prev.user_id != user.id:
            return []
        try:
            seq = int(conn.query.get("sequence_number", ""))
        except ValueError:
            return None
        if seq < 0:
            return None
        self._parked.remove(prev)
        conn.id = cid
        conn.dead_queue = prev.dead_queue
        conn.seq = prev.seq
        queued = list(conn.dead_queue)
        index = next((i for i, m in enumerate(queued) if m["seq"] == seq), None)
        if seq != 0 and index is not None:
            conn.resumed = "replayed"
            for message in queued[index:]:  # the dead queue first, then what was parked
                conn.queue.put_nowait(message)
        elif seq != 0 and (not queued or queued[-1]["seq"] == seq - 1):
            conn.resumed = "lossless"
            conn.seq = seq
        else:
            conn.resumed = "lost"
            conn.id = new_id()
            conn.seq = 0
            conn.dead_queue = deque(maxlen=DEAD_QUEUE_SIZE)
        carried: list[dict[str, Any]] = []
        while not prev.queue.empty():
            carried.append(prev.queue.get_nowait())
        return carried

    def _register(self, conn: WsConnection, user: User, via: str, *, hello: bool = True) -> None:
        conn.user_id = user.id
        conn.auth = via
        if hello:
            conn.queue.put_nowait({"event": "hello", "data": {
                "connection_id": conn.id, "server_version": self.server_version},
                "broadcast": {"omit_users": None, "user_id": user.id, "channel_id": "",
                              "team_id": "", "connection_id": "", "omit_connection_id": ""}})

    def _drop_tcp(self, conn: WsConnection, reason: str, *, abort: bool = False) -> None:
        """Close the TCP connection without a close frame (gorilla ``Conn.Close``)."""
        conn.close_reason = conn.close_reason or reason
        conn.close_code = conn.close_code or 1006
        if conn.transport is not None:
            if abort:
                conn.transport.abort()
            else:
                conn.transport.close()

    async def _ws_writer(self, conn: WsConnection) -> None:
        while True:
            message = await conn.queue.get()
            if "event" in message and "seq" not in message:
                message = {**message, "seq": conn.seq}
                conn.seq += 1
                conn.dead_queue.append(message)
            if conn.half_dead:
                conn.dropped.append(message)
                continue
            try:
                await conn.ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return
            conn.sent.append(message)

    async def _ws_watchdog(self, conn: WsConnection) -> None:
        """Server pings, the unauthenticated-socket timeout and the pong read deadline."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_ping = start + self.ping_interval
        auth_deadline = start + self.auth_timeout
        while not conn.closed:
            wake = min(next_ping, conn.deadline,
                       math.inf if conn.authenticated else auth_deadline)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            now = loop.time()
            if conn.closed:
                return
            if conn.half_dead:
                next_ping = now + self.ping_interval
                conn.deadline = now + self.pong_wait
                auth_deadline = math.inf
                continue
            if not conn.authenticated and now >= auth_deadline:
                self._drop_tcp(conn, "auth_timeout")
                return
            if now >= conn.deadline:
                self._drop_tcp(conn, "pong_timeout")
                return
            if now >= next_ping:
                next_ping = now + self.ping_interval
                try:
                    await conn.ws.ping()
                except (ConnectionError, RuntimeError):
                    return
                conn.pings_sent += 1

    async def _ws_read_loop(self, conn: WsConnection) -> None:
        ws = conn.ws
        loop = asyncio.get_running_loop()
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                conn.received.append(msg.data)
                if not conn.half_dead and not self._ws_request(conn, msg.data):
                    return
            elif msg.type is WSMsgType.BINARY:
                conn.received.append(msg.data)
            elif msg.type is WSMsgType.PING:
                conn.client_pings += 1
                if not conn.half_dead:
                    await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                conn.pongs.append(self.now())
                self.pongs.append((conn.id, self.now()))
                conn.deadline = loop.time() + self.pong_wait
            elif msg.type is WSMsgType.CLOSE:
                conn.close_code = int(msg.data) if msg.data is not None else 1005
                if conn.half_dead:
                    while conn.transport is not None and not conn.transport.is_closing():
                        await asyncio.sleep(0.05)
                else:
                    with contextlib.suppress(Exception):
                        await ws.close(code=conn.close_code)
                return
            else:  # CLOSING, CLOSED, ERROR: the transport went away
                return

    def _ws_request(self, conn: WsConnection, text: str) -> bool:
        """Route one client frame (``WebSocketRouter.ServeWebSocket``); False: connection gone."""
        try:
            req = json.loads(text)
        except ValueError:
            self._drop_tcp(conn, "bad_frame")
            return False
        if not isinstance(req, dict):
            self._drop_tcp(conn, "bad_frame")
            return False
        action = req.get("action")
        seq = req.get("seq")
        seq_reply = seq if isinstance(seq, int) else 0
        if not action:
            self._ws_fail(conn, seq_reply, 400, "api.web_socket_router.no_action.app_error",
                          "No websocket action.")
            return True
        if not isinstance(seq, int) or seq <= 0:
            self._ws_fail(conn, seq_reply, 400, "api.web_socket_router.bad_seq.app_error",
                          "Invalid sequence for WebSocket message.")
            return True
        if action == "authentication_challenge":
            if conn.authenticated:
                return True
            token = (req.get("data") or {}).get("token") if isinstance(req.get("data"),
                                                                      dict) else None
            user = self._tokens.get(token) if isinstance(token, str) else None
            if user is None:
                self.auth_failures += 1
                self._drop_tcp(conn, "bad_token")
                return False
            self._register(conn, user, "challenge")
            conn.queue.put_nowait({"status": "OK", "seq_reply": seq})
            return True
        if not conn.authenticated:
            self._ws_fail(conn, seq, 401, "api.web_socket_router.not_authenticated.app_error",
                          "WebSocket not authenticated. Please log in and try again.")
            return True
        if action == "ping":
            conn.queue.put_nowait({"status": "OK", "seq_reply": seq, "data": {
                "text": "pong", "version": self.server_version.split(".")[0],
                "server_time": self._ms(), "node_id": ""}})
        elif action in ("user_typing", "get_statuses", "get_statuses_by_ids",
                        "user_update_active_status", "presence"):
            conn.queue.put_nowait({"status": "OK", "seq_reply": seq})
        else:
            self._ws_fail(conn, seq, 500, "api.web_socket_router.bad_action.app_error",
                          "Unknown WebSocket action.")
        return True

    def _ws_fail(self, conn: WsConnection, seq: int, status: int, error_id: str,
                 message: str) -> None:
        conn.queue.put_nowait({"status": "FAIL", "seq_reply": seq, "error": {
            "id": error_id, "message": message, "detailed_error": "", "status_code": status}})
