"""Help and usage text, built from the command declarations (never written by hand)."""

from __future__ import annotations

from bot.commands import CommandSpec
from bot.parser import ParseError
from bot.registry import FamilyEntry, Registry
from bot.reply import Level, Reply, Table


def command_help(spec: CommandSpec) -> Reply:
    fields = [("Usage", spec.usage())]
    for arg in spec.args:
        fields.append((arg.metavar, arg.help or arg.kind))
    for opt in spec.options:
        choices = f" ({'|'.join(opt.choices)})" if opt.choices else ""
        fields.append((f"--{opt.name}", (opt.help or opt.kind) + choices))
    fields.append(("Permission", spec.permission + (" (asks for confirmation)"
                                                    if spec.destructive else "")))
    text = spec.summary + (f"\n{spec.help}" if spec.help else "")
    if spec.examples:
        text += "\nExamples:\n" + "\n".join(f"  {e}" for e in spec.examples)
    return Reply(text, title=f"help {spec.words}", fields=fields)


def family_help(family: FamilyEntry, allowed: list[CommandSpec]) -> Reply:
    rows = [[spec.short_usage(), spec.summary] for spec in allowed]
    examples = [e for spec in allowed for e in spec.examples[:1]]
    text = family.summary
    if examples:
        text += "\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    hidden = len([s for s in family.commands.values() if not s.hidden]) - len(allowed)
    if hidden > 0:
        text += f"\n({hidden} more you may not run here; 'why {family.name} ...' explains.)"
    return Reply(text, title=f"help {family.name}", table=Table(["command", "what it does"], rows))


def usage_reply(registry: Registry, exc: ParseError, help_only: bool = False) -> Reply:
    """What a caller sees for a malformed line: the problem, then the usage to fix it."""
    if exc.spec is not None:
        if help_only:
            return command_help(exc.spec)
        return Reply(
            f"{exc.message}\nUsage: {exc.spec.usage()}\n'help {exc.spec.words}' shows examples.",
            title="Cannot run that", level=Level.ERROR,
        )
    if exc.family is not None and exc.family in registry.families:
        family = registry.families[exc.family]
        subs = ", ".join(sorted(n for n, s in family.commands.items() if not s.hidden))
        return Reply(f"{exc.message}. Subcommands: {subs}.\n'help {exc.family}' shows usage.",
                     title="Cannot run that", level=Level.ERROR)
    return Reply(f"{exc.message}", title="Cannot run that", level=Level.ERROR)
