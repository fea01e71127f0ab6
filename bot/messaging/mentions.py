"""Who a notice mentions, and how each platform names them.

A name is a person (a ``people:`` key), a group (``groups:``) or a role: every configured person
holding it through the gate, grants and role providers included (the rota gives ``on-shift``),
worked out when the message is sent, so a notice mentions whoever holds the role then.
Channel-limited grants count wherever they apply (a mention is not a permission).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.identity import Caller, Directory, Person
from bot.messaging.port import Platform
from bot.permissions import Gate


class UnknownMention(ValueError):
    """A name that is neither a person, a group, nor a role."""


def check_names(names: Iterable[str], gate: Gate) -> list[str]:
    """The names as given, or UnknownMention. Roles only a provider knows (``on-shift``) are
    accepted while any provider is registered."""
    config = gate.config
    out = []
    for name in names:
        known = name in config.people or name in config.groups or name in config.roles
        if not known and not gate.providers:
            raise UnknownMention(f"mention {name!r}: not a person, group or role in the config")
        out.append(name)
    return out


def people(names: Iterable[str], gate: Gate, directory: Directory) -> list[Person]:
    """The people ``names`` stand for, in order, each once."""
    seen: dict[str, Person] = {}
    groups = gate.config.groups
    for name in names:
        if name in directory.people:
            keys = [name]
        elif name in groups:
            keys = list(groups[name])
        else:
            keys = [key for key, person in directory.people.items()
                    if _holds(gate, person, name)]
        for key in keys:
            person = directory.people.get(key)
            if person is not None and key not in seen:
                seen[key] = person
    return list(seen.values())


def _holds(gate: Gate, person: Person, role: str) -> bool:
    caller = Caller(platform="notice", user_id=person.key, person=person)
    for source in gate.roles_of(caller, any_channel=True):
        if source.role == role or role in gate._ancestors(source.role):
            return True
    return False


def render(persons: Iterable[Person], platform: Platform) -> list[str]:
    """How ``platform`` names each person: its mention when the person has an id there,
    else their name, plainly (nobody is notified, but everybody sees who was meant)."""
    out = []
    for person in persons:
        user_id = person.ids.get(platform.name)
        out.append(platform.mention(user_id) if user_id else person.display_name)
    return out
