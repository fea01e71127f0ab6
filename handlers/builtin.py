"""help, whoami, why, who-can: the bot explaining itself and its permissions."""

from __future__ import annotations

from bot.commands import Arg, CommandSpec, Context, Family, command
from bot.helptext import TYPING, command_help, family_help
from bot.identity import Caller
from bot.markup import code, user
from bot.parser import suggest
from bot.permissions import RoleSource
from bot.reply import Level, Reply, Table

FAMILY = Family("help", "Help and identity", order=0)


class HelpRows(dict[tuple[object, ...], list[list[str]]]):
    """The help table per (person, channel, role set), kept in ``bot.services``."""


def _allowed(ctx: Context, spec: CommandSpec,
             sources: tuple[RoleSource, ...] | None = None) -> bool:
    return not spec.hidden and ctx.bot.gate.check(ctx.caller, spec.permission_pattern(),
                                                  sources).allowed


def _help_rows(ctx: Context) -> list[list[str]]:
    """The help table for the caller's roles here. It depends only on those roles (the
    registry and rules are fixed once the bot runs), so it is computed once per role set:
    help is the command people run most."""
    sources = ctx.bot.gate.roles_of(ctx.caller)
    cache = ctx.bot.services.ensure(HelpRows)
    key = (ctx.caller.person.key if ctx.caller.person else None, ctx.caller.channel_alias,
           sources)
    rows = cache.get(key)
    if rows is None:
        rows = []
        for spec in ctx.bot.registry.specs():
            if spec.hidden:
                continue
            # restart.{target}: listed for whoever holds restart.* (the gate decides per target)
            decision = ctx.bot.gate.check(ctx.caller, spec.permission_pattern(), sources)
            if decision.allowed:
                note = " (needs approval)" if decision.approval_role else ""
                rows.append([spec.short_usage(), spec.summary + note])
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = rows
    return [list(row) for row in rows]


@command("help", summary="What you can run here; 'help condor' for a family",
         args=[Arg("topic", help="a command family or command", many=True, required=False)],
         examples=["help", "help condor", "help condor q"])
async def help_(ctx: Context) -> Reply:
    registry = ctx.bot.registry
    topic = [t.lower() for t in ctx.args["topic"]]
    if topic:
        spec = registry.find_words(" ".join(topic[:2]))
        family_of = registry.families.get(topic[0])
        alone = family_of is not None and len(family_of.commands) == 1
        if spec is not None and (spec.name or (len(topic) == 1 and alone)):
            return command_help(spec)  # "help status" lists status and its subcommands
        family = registry.families.get(topic[0])
        if family is None:
            hint = suggest(" ".join(topic), registry.command_words())
            extra = f" Did you mean '{hint}'?" if hint else ""
            return Reply.error(f"No command '{user(' '.join(topic))}'.{extra} 'help' lists "
                               "them.", title="No such command")
        if len(topic) > 1:
            hint = suggest(topic[1], list(family.commands))
            extra = f" Did you mean '{family.name} {hint}'?" if hint else ""
            return Reply.error(f"No command '{user(' '.join(topic))}'.{extra} "
                               f"'help {family.name}' lists its commands.",
                               title="No such command")
        return family_help(family, [s for s in family.commands.values() if _allowed(ctx, s)])
    rows = _help_rows(ctx)
    text = "Commands you may run here. 'help FAMILY' shows examples."
    if ctx.caller.person is None:
        # The id is the platform's (console: whatever was given): shown inert.
        text += ("\nYou are not a configured person: ask an operator to add your "
                 f"{ctx.caller.platform} id {code(ctx.caller.user_id)} to the config.")
    text += "\n" + TYPING  # as 'help COMMAND' ends: phones' quotes and dashes are understood
    return Reply(text, title=f"{ctx.bot.config.bot.name} help",
                 table=Table(["command", "what it does"], rows))


@command("whoami", summary="Who the bot thinks you are, and your roles here")
async def whoami(ctx: Context) -> Reply:
    caller = ctx.caller
    fields = [("Platform", caller.platform), ("User id", caller.user_id)]
    if caller.channel_alias or caller.channel_id:
        fields.append(("Channel", caller.channel_alias or caller.channel_id or ""))
    if caller.person is None:
        return Reply("You are not a configured person; you may only run the baseline "
                     "commands (" + ", ".join(ctx.bot.config.bot.unknown_user_allow) + ").",
                     title="Unknown user", fields=fields, level=Level.WARNING)
    person = caller.person
    fields[:0] = [("Person", f"{person.key} ({person.display_name})")]
    groups = ctx.bot.gate.groups_of(person.key)
    fields.append(("Groups", ", ".join(groups) or "none"))
    rows = [[s.role, s.via] for s in ctx.bot.gate.roles_of(caller)]
    return Reply("", title=f"You are {person.key}", fields=fields,
                 table=Table(["role", "from"], rows))


@command("why", summary="Explain whether a command is allowed: 'why condor rm [as PERSON]'",
         args=[Arg("command", help="the command, optionally followed by 'as PERSON'",
                   many=True)],
         examples=["why condor rm", "why restart gwcelery as bob"])
async def why(ctx: Context) -> Reply:
    words = list(ctx.args["command"])
    caller = ctx.caller
    if len(words) >= 3 and words[-2].lower() == "as":
        key = words[-1]
        person = ctx.bot.directory.people.get(key)
        if person is None:
            return Reply.error(f"No person '{user(key)}' in the config. Name a person by their "
                               "config key, as 'whoami' shows it; 'who-can COMMAND' lists who "
                               "may run a command.", title="No such person")
        caller = Caller(caller.platform, person.ids.get(caller.platform, key), person,
                        caller.channel_id, caller.channel_alias)
        words = words[:-2]
    spec, permission = _command_permission(ctx, words)
    if spec is None:
        return Reply.error(f"No command '{user(' '.join(words))}'; 'help' lists them.",
                           title="No such command")
    decision = ctx.bot.gate.check(caller, permission)
    # An unknown caller's label (platform:id) and the gate's reason (channel names) hold what
    # the platform or the person gave; a person's key is the config's.
    who = caller.label if caller.person else user(caller.label)
    reason = user(decision.reason)
    if not decision.allowed:
        return Reply(f"{who} may not run '{spec.words}' (permission {permission}): "
                     f"{reason}.", title="Denied", level=Level.DENIED)
    extra = " It asks for confirmation first." if spec.destructive else ""
    return Reply(f"{who} may run '{spec.words}' (permission {permission}): "
                 f"{reason}.{extra}", title="Allowed", level=Level.OK)


@command("who-can", summary="Who may run a command", args=[Arg("command", many=True)],
         examples=["who-can condor rm"])
async def who_can(ctx: Context) -> Reply:
    words = " ".join(ctx.args["command"])
    spec, permission = _command_permission(ctx, list(ctx.args["command"]))
    if spec is None:
        return Reply.error(f"No command '{user(words)}'; 'help' lists them.",
                           title="No such command")
    lines = ctx.bot.gate.who_can(permission)
    if not lines:
        return Reply(f"Nobody may run '{spec.words}' (permission {permission}).",
                     level=Level.WARNING)
    return Reply("\n".join(f"- {line}" for line in lines),
                 title=f"Who can run '{spec.words}' ({permission})")


def _command_permission(ctx: Context, words: list[str]) -> tuple[CommandSpec | None, str]:
    """The command ``words`` name and the permission it needs: ``restart gwcelery`` needs
    ``restart.gwcelery`` (a permission completed by an argument); without the argument, the
    pattern (``restart.*``)."""
    for size in (2, 1):
        spec = ctx.bot.registry.find_words(" ".join(words[:size]))
        if spec is None:
            continue
        if spec.permission_slot is None:
            return spec, spec.permission
        rest = words[len(spec.words.split()):]
        slot = spec.permission_slot
        return spec, (spec.permission_for({slot: rest[0]}) if rest
                      else spec.permission_pattern())
    return None, ""
