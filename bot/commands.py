"""Declaring commands: metadata only.

A handler module declares what it offers with :func:`command`; nothing is registered at import
time. ``bot/registry.py`` collects the declarations from the handler modules in one place, and
the dispatcher (``bot/core.py``) parses, gates, runs and audits every call. The same declaration
serves Slack and Mattermost slash commands, mentions, prefixed messages, buttons, the console and
the scheduler.

    from bot.commands import Arg, Opt, command
    from bot.reply import Reply

    @command("condor hold", summary="Hold jobs", permission="condor.hold",
             args=[Arg("jobs", kind="jobid", many=True)], options=[Opt("reason", kind="text")])
    async def hold(ctx: Context) -> Reply: ...

Feature hooks are declared the same way (``@every``, ``@route``, ``@on_thread_reply``; see
``bot/hooks.py``), and a feature's config section and migrations at module level
(``bot/features.py``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

# Feature hooks and declarations live next to @command (bot/hooks.py, bot/features.py), so a
# handler module imports everything it declares from here.
from bot.hooks import ThreadContext as ThreadContext
from bot.hooks import every as every
from bot.hooks import on_thread_reply as on_thread_reply
from bot.hooks import route as route
from bot.reply import Reply

if TYPE_CHECKING:
    from bot.core import Bot
    from bot.identity import Caller

Kind = Literal["word", "int", "duration", "jobid", "text", "choice", "flag"]

# What a "word" slot accepts: names, hostnames, pool names, batch names, durations, ids.
WORD_PATTERN = r"[A-Za-z0-9_.@:/+=,*-]{1,200}"


class CommandError(Exception):
    """An expected failure a handler reports to the caller as a one-line message (no traceback):
    "schedd cms-01 did not answer within 10 s", "no submit description 'gwcelery'"."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a destructive command would do, worked out before anyone confirms it.

    A command declared with ``plan=`` has its plan step run first: a :class:`CommandError` there
    is an error before any request exists; otherwise ``summary`` (and ``details``) are shown on
    the confirmation and approval cards. When the command finally runs, the step runs again: if
    the fresh ``targets`` are not all among the confirmed ones (25 jobs match where 23 were
    confirmed), the core asks again instead of acting. The handler sees the confirmed plan as
    ``ctx.plan``.
    """

    summary: str  # "removes 23 jobs of emfollow: 1.0-1.19 running, 1.20-1.22 held"
    targets: frozenset[str] = frozenset()  # what it would affect (job ids, a URL, an argv)
    details: tuple[str, ...] = ()  # more lines for the cards (e.g. the exact argv)
    # Argument values the step settled from the config, by args key (("pool", "gwcelery")
    # when no --pool was typed): the line naming the default and the line leaving it out are
    # then one request (Parsed.canonical). Only used when the request is made; not stored.
    resolved: tuple[tuple[str, Any], ...] = ()

    def covers(self, fresh: Plan) -> bool:
        """Does this (confirmed) plan still cover what ``fresh`` would affect?"""
        return fresh.targets <= self.targets

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "targets": sorted(self.targets),
                "details": list(self.details)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(str(data.get("summary", "")), frozenset(map(str, data.get("targets", ()))),
                   tuple(map(str, data.get("details", ()))))


@dataclass(frozen=True, slots=True)
class Arg:
    """A positional argument."""

    name: str
    help: str = ""
    kind: Kind = "word"
    required: bool = True
    many: bool = False  # consumes every remaining positional (JOBID...)
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # full-match regex on top of the kind's own check
    secret: bool = False  # redacted in the audit log
    max_length: int = 500
    # Bounds of an int or duration slot (durations in seconds); None: the parser's default
    # (ints 0..1,000,000,000, durations 1 s..366 days).
    min_value: int | None = None
    max_value: int | None = None

    @property
    def metavar(self) -> str:
        base = self.name.upper() + ("..." if self.many else "")
        return base if self.required else f"[{base}]"


@dataclass(frozen=True, slots=True)
class Opt:
    """An option: ``--name value``, ``--name=value`` or ``name=value``.

    ``kind="flag"`` takes no value."""

    name: str
    help: str = ""
    kind: Kind = "word"
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    default: Any = None
    secret: bool = False
    max_length: int = 500
    min_value: int | None = None  # as for Arg
    max_value: int | None = None

    @property
    def usage(self) -> str:
        if self.kind == "flag":
            return f"[--{self.name}]"
        value = "|".join(self.choices) if self.choices else self.name.upper()
        return f"[--{self.name} {value}]"


@dataclass(slots=True)
class Context:
    """What a handler receives. It knows nothing about the chat platform."""

    bot: Bot
    caller: Caller
    spec: CommandSpec
    args: dict[str, Any]
    invocation_id: str
    # Adapters may pass a callback that shows progress (e.g. "3 of 12 jobs gone").
    progress_callback: Callable[[str], Awaitable[None]] | None = None
    plan: Plan | None = None  # the plan the caller confirmed (commands declared with plan=)

    async def progress(self, text: str) -> None:
        if self.progress_callback is not None:
            await self.progress_callback(text)


Handler = Callable[[Context], Awaitable[Reply]]
Planner = Callable[[Context], Awaitable[Plan]]


@dataclass(slots=True)
class CommandSpec:
    family: str
    name: str  # subcommand name; "" for a family that is a single command (help, whoami)
    summary: str
    handler: Handler
    permission: str
    args: tuple[Arg, ...] = ()
    options: tuple[Opt, ...] = ()
    help: str = ""
    examples: tuple[str, ...] = ()
    destructive: bool = False  # asks the caller to confirm before it runs
    slow: bool = False  # may take more than a second: adapters ack first, answer later
    public: bool = False  # results go to the channel unless the caller adds --private
    timeout: float = 60.0  # the dispatcher's deadline for the handler
    hidden: bool = False  # not listed by help (confirm/cancel plumbing)
    plan: Planner | None = None  # the preview step; required for destructive commands
    # Derived once (they are on every dispatch's path):
    key: str = field(init=False)  # condor.q or help: what audit and metrics speak of
    words: str = field(init=False)  # "condor q"
    _usage: str = field(init=False, repr=False)
    _short_usage: str = field(init=False, repr=False)
    secret_slots: frozenset[str] = field(init=False, repr=False)  # args keys audit masks
    # "restart.{target}": the argument whose value completes the permission (None: static).
    permission_slot: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = f"{self.family}.{self.name}" if self.name else self.family
        self.words = f"{self.family} {self.name}" if self.name else self.family
        positional = [self.words, *(a.metavar for a in self.args)]
        self._usage = " ".join([*positional, *(o.usage for o in self.options)])
        self._short_usage = " ".join(positional) + (" [options]" if self.options else "")
        self.secret_slots = frozenset(s.name.replace("-", "_")
                                      for s in (*self.args, *self.options) if s.secret)
        self.permission_slot = _permission_slot(self.permission, self.args)

    def permission_for(self, args: Mapping[str, Any]) -> str:
        """The permission a call with these (parsed) ``args`` needs: ``restart.{target}`` with
        target ``gwcelery`` needs ``restart.gwcelery``. A value that is not a plain name (or is
        missing) gives ``family.?``, which no grant names, so the gate refuses it."""
        if self.permission_slot is None:
            return self.permission
        value = args.get(self.permission_slot)
        if not isinstance(value, str) or not PERMISSION_VALUE.fullmatch(value):
            value = "?"
        return self.permission.replace("{" + self.permission_slot + "}", value)

    def permission_pattern(self) -> str:
        """The permission as a glob (``restart.*``): what config checks match roles against."""
        if self.permission_slot is None:
            return self.permission
        return self.permission.replace("{" + self.permission_slot + "}", "*")

    def usage(self) -> str:
        """The full usage, every option spelled out (``help condor q``, usage errors)."""
        return self._usage

    def short_usage(self) -> str:
        """``condor q [POOL] [options]``: for lists of many commands."""
        return self._short_usage


# What may complete a permission (``restart.{target}``): no glob characters, no dots.
PERMISSION_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _permission_slot(permission: str, args: tuple[Arg, ...]) -> str | None:
    """The argument named by ``{slot}`` in a permission; the declaration is checked at import
    so a typo cannot leave a command open or closed by accident."""
    slots = re.findall(r"\{([^{}]*)\}", permission)
    if not slots:
        return None
    names = {a.name.replace("-", "_"): a for a in args}
    if len(slots) != 1 or slots[0] not in names or not permission.endswith("{" + slots[0] + "}"):
        raise ValueError(f"permission {permission!r}: one trailing {{ARG}} naming a positional "
                         f"argument ({', '.join(names) or 'none declared'})")
    arg = names[slots[0]]
    if not arg.required or arg.many:
        raise ValueError(f"permission {permission!r}: argument {arg.name!r} must be required "
                         "and single")
    return slots[0]


@dataclass(frozen=True, slots=True)
class Family:
    """Optional module-level ``FAMILY = Family(...)``: the heading ``help`` shows."""

    name: str
    summary: str
    order: int = 100


@dataclass(slots=True)
class _Declaration:
    words: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def command(
    words: str,
    *,
    summary: str,
    permission: str | None = None,
    args: list[Arg] | tuple[Arg, ...] = (),
    options: list[Opt] | tuple[Opt, ...] = (),
    help: str = "",
    examples: list[str] | tuple[str, ...] = (),
    destructive: bool = False,
    slow: bool = False,
    public: bool = False,
    timeout: float = 60.0,
    hidden: bool = False,
    plan: Planner | None = None,
) -> Callable[[Handler], Handler]:
    """Attach a command declaration to a handler coroutine; the registry picks it up.

    ``plan`` is the preview step of a destructive command (see :class:`Plan`)."""
    parts = words.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"command words must be 'family' or 'family sub', got {words!r}")

    def attach(func: Handler) -> Handler:
        declarations: list[_Declaration] = getattr(func, "__shiftbot_commands__", [])
        declarations.append(
            _Declaration(
                words,
                dict(
                    summary=summary,
                    permission=permission,
                    args=tuple(args),
                    options=tuple(options),
                    help=help,
                    examples=tuple(examples),
                    destructive=destructive,
                    slow=slow,
                    public=public,
                    timeout=timeout,
                    hidden=hidden,
                    plan=plan,
                ),
            )
        )
        func.__shiftbot_commands__ = declarations  # type: ignore[attr-defined]
        return func

    return attach


def specs_of(func: Any) -> list[CommandSpec]:
    """The :class:`CommandSpec` objects declared on ``func`` (empty when none)."""
    result = []
    for decl in getattr(func, "__shiftbot_commands__", []):
        family, _, name = decl.words.partition(" ")
        kwargs = dict(decl.kwargs)
        permission = kwargs.pop("permission") or (f"{family}.{name}" if name else family)
        result.append(
            CommandSpec(family=family, name=name, handler=func, permission=permission, **kwargs)
        )
    return result
