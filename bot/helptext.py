"""Help and usage text, built from the command declarations (never written by hand)."""

from __future__ import annotations

from bot.commands import Arg, CommandSpec, Opt
from bot.markup import user
from bot.parser import DURATION_BOUNDS, INT_BOUNDS, ParseError, format_seconds
from bot.registry import FamilyEntry, Registry
from bot.reply import Level, Reply, Table

# How to type a command, for every command's help: phones and macOS rewrite quotes and dashes.
TYPING = ("Quote text with spaces: --reason \"node drained\" (or 'node drained'). Curly "
          "quotes (“…” ‘…’), guillemets («…» ‹…›, the spaces just inside them dropped) and a "  # noqa: RUF001
          "leading — or – (for --) as phones and Macs type them work too; invisible characters "  # noqa: RUF001
          "(zero-width, bidi controls, variation selectors except after an emoji) are refused.")


def command_help(spec: CommandSpec) -> Reply:
    fields = [("Usage", spec.usage())]
    for arg in spec.args:
        fields.append((arg.metavar, _describe(arg)))
    for opt in spec.options:
        fields.append((f"--{opt.name}", _describe(opt)))
    fields.append(("Permission", spec.permission + (" (asks for confirmation)"
                                                    if spec.destructive else "")))
    text = spec.summary + (f"\n{spec.help}" if spec.help else "")
    if spec.examples:
        text += "\nExamples:\n" + "\n".join(f"  {e}" for e in spec.examples)
    if spec.args or spec.options:
        text += "\n" + TYPING
    return Reply(text, title=f"help {spec.words}", fields=fields)


def _describe(slot: Arg | Opt) -> str:
    """What a slot takes: its help, its choices, the range of a number or duration."""
    text = slot.help or slot.kind
    if slot.choices:
        text += f" ({'|'.join(slot.choices)})"
    if slot.kind == "int" and (slot.min_value is not None or slot.max_value is not None):
        # The default range (0 to a billion) says nothing worth a line; a declared one does.
        low, high = (INT_BOUNDS[0] if slot.min_value is None else slot.min_value,
                     INT_BOUNDS[1] if slot.max_value is None else slot.max_value)
        text += f" ({low} to {high})"
    elif slot.kind == "duration":
        low, high = (DURATION_BOUNDS[0] if slot.min_value is None else slot.min_value,
                     DURATION_BOUNDS[1] if slot.max_value is None else slot.max_value)
        text += f" ({format_seconds(low)} to {format_seconds(high)})"
    return text


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
    """What a caller sees for a malformed line: the problem, then the usage to fix it.

    The problem quotes what was typed ("unexpected argument '@channel'"): user text."""
    problem = user(exc.message)
    if exc.spec is not None:
        if help_only:
            return command_help(exc.spec)
        return Reply(
            f"{problem}\nUsage: {exc.spec.usage()}\n'help {exc.spec.words}' shows examples.",
            title="Cannot run that", level=Level.ERROR,
        )
    if exc.family is not None and exc.family in registry.families:
        family = registry.families[exc.family]
        subs = ", ".join(sorted(n for n, s in family.commands.items() if not s.hidden))
        return Reply(f"{problem}. Subcommands: {subs}.\n'help {exc.family}' shows usage.",
                     title="Cannot run that", level=Level.ERROR)
    return Reply(problem, title="Cannot run that", level=Level.ERROR)
