"""Who is calling, from where: the platform-neutral shape every adapter produces."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")
_ID_FIELDS = ("user_id", "channel_id", "channel_alias", "user_name", "thread_id")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One command as an adapter received it.

    ``text`` is the command line without the slash command, mention or prefix
    (``condor q --all``). Adapters map an alias slash command (``/condor q``) by prepending the
    family (``condor q``). ``channel_alias`` is the configured alias (``ops``) when the adapter
    knows it; grants limited to channels are checked against it.
    """

    platform: str  # slack | mattermost | console | scheduler | http
    user_id: str  # the platform's immutable user id (console: the person's key)
    text: str
    channel_id: str | None = None
    channel_alias: str | None = None
    user_name: str | None = None  # display only, never used for identity
    thread_id: str | None = None
    is_direct: bool = False

    def __post_init__(self) -> None:
        # Platforms' JSON can carry lone surrogates ("\ud800"), which no database, log file or
        # API can encode, and no real id holds: an id with one becomes an unknown one. The text
        # is left as sent: the parser refuses it naming the code point (the person learns what
        # was wrong) and the audit stores it escaped (bot/audit.py).
        for name in _ID_FIELDS:
            value = getattr(self, name)
            if value and not value.isascii() and _SURROGATE.search(value):
                object.__setattr__(self, name, _SURROGATE.sub("\ufffd", value))


@dataclass(frozen=True, slots=True)
class Person:
    key: str  # the name used in the config (people.<key>)
    display_name: str
    ids: dict[str, str] = field(default_factory=dict)  # platform -> immutable id


@dataclass(frozen=True, slots=True)
class Caller:
    """An identified (``person`` set) or unknown platform user, with the channel they used."""

    platform: str
    user_id: str
    person: Person | None
    channel_id: str | None = None
    channel_alias: str | None = None
    user_name: str | None = None

    @property
    def label(self) -> str:
        """How audit entries and messages name the caller."""
        if self.person is not None:
            return self.person.key
        return f"{self.platform}:{self.user_id}"


class Directory:
    """Maps immutable platform ids to configured people. Adapters may bind ids learnt at
    startup (a Mattermost username resolved to its id)."""

    def __init__(self, people: dict[str, Person]) -> None:
        self.people = dict(people)
        self._by_id: dict[tuple[str, str], Person] = {}
        for person in people.values():
            for platform, user_id in person.ids.items():
                self._by_id[(platform, user_id)] = person

    @classmethod
    def from_config(cls, people_config: dict[str, object]) -> Directory:
        people = {}
        for key, cfg in people_config.items():
            ids = {"console": key}
            for platform in ("slack", "mattermost"):
                value = getattr(cfg, platform, None)
                if value:
                    ids[platform] = value
            people[key] = Person(key, getattr(cfg, "name", None) or key, ids)
        return cls(people)

    def bind(self, person_key: str, platform: str, user_id: str) -> bool:
        """Give a person an id learnt at runtime; refused (False, logged) when the id already
        is somebody else's: one account is one person, or the gate would pick one of them."""
        owner = self._by_id.get((platform, user_id))
        if owner is not None and owner.key != person_key:
            log.error("people.%s: the %s account %s already is people.%s; not bound (fix the "
                      "config: one account is one person)", person_key, platform, user_id,
                      owner.key)
            return False
        person = self.people[person_key]
        ids = {**person.ids, platform: user_id}
        updated = Person(person.key, person.display_name, ids)
        self.people[person_key] = updated
        for k, v in list(self._by_id.items()):
            if v.key == person_key:
                self._by_id[k] = updated
        self._by_id[(platform, user_id)] = updated
        return True

    def lookup(self, platform: str, user_id: str) -> Person | None:
        return self._by_id.get((platform, user_id))

    def caller(self, inbound: Inbound) -> Caller:
        return Caller(
            platform=inbound.platform,
            user_id=inbound.user_id,
            person=self.lookup(inbound.platform, inbound.user_id),
            channel_id=inbound.channel_id,
            channel_alias=inbound.channel_alias,
            user_name=inbound.user_name,
        )
