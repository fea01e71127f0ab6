"""The permission gate: deny by default, roles from config, explainable decisions.

A permission is ``family.subcommand`` (``condor.rm``) or a bare family (``help``). Roles are sets
of globs over permissions (``condor.*``), may inherit other roles, and may require that some of
their permissions be approved by a holder of another role (``approval: {"restart.*": expert}``).
Grants give roles to people or groups, optionally only in some channels. Role providers (the
shift rota, later) add roles at check time. Nothing is allowed that no grant allows, except the
baseline ``bot.unknown_user_allow`` (``help``, ``whoami``) that everybody has. Who may decide a
pending request (confirm, cancel, approve, deny) is decided here too (:meth:`Gate.may_decide`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from bot.config import Config
from bot.identity import Caller, Directory
from bot.reply import Choice

if TYPE_CHECKING:
    from bot.pending import PendingRequest

# Decisions on pending requests are open to every configured person: the request itself says
# who may decide (the requester confirms, a holder of the approval role approves).
DECISION_PERMISSIONS = frozenset({"confirm", "cancel", "approve", "deny", "approvals"})

RoleProvider = Callable[[Caller], Iterable[str]]


@dataclass(frozen=True, slots=True)
class Rule:
    glob: str
    role: str  # the role that states the rule (may be inherited)
    # (permission glob, approving role) pairs of the role and of the roles inheriting it
    approvals: tuple[tuple[str, str], ...] = ()

    def approval_role(self, permission: str) -> str | None:
        for pattern, role in self.approvals:
            if fnmatchcase(permission, pattern):
                return role
        return None


@dataclass(frozen=True, slots=True)
class RoleSource:
    role: str
    via: str  # "grant #2 (group shifters, channels ops)", "everyone", "provider rota"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    approval_role: str | None = None  # allowed only once a holder of this role approves
    via: RoleSource | None = None


BASELINE = "everyone"


class Gate:
    def __init__(self, config: Config, directory: Directory) -> None:
        self.config = config
        self.directory = directory
        self.providers: dict[str, RoleProvider] = {}
        self._rules: dict[str, tuple[Rule, ...]] = {
            name: tuple(self._closure(name, set())) for name in config.roles
        }
        self._rules[BASELINE] = tuple(Rule(g, BASELINE) for g in config.bot.unknown_user_allow)
        self._memo: dict[tuple[object, ...], Decision] = {}
        self._baseline = (RoleSource(BASELINE, "everyone"),)
        self._granted: dict[tuple[str, str | None, bool], tuple[RoleSource, ...]] = {}
        self._grants_seen = config.grants

    def _closure(self, role: str, seen: set[str]) -> list[Rule]:
        if role in seen or role not in self.config.roles:
            return []  # cycles and unknown parents are reported by check-config
        seen.add(role)
        cfg = self.config.roles[role]
        own = tuple(cfg.approval.items())
        rules = [Rule(g, role, own) for g in cfg.allow]
        for parent in cfg.inherits:
            for rule in self._closure(parent, seen):
                # A child's own approval rules also apply to what it inherits.
                rules.append(Rule(rule.glob, rule.role, rule.approvals + own))
        return rules

    def add_role_provider(self, name: str, provider: RoleProvider) -> None:
        """Add roles at check time (e.g. the shift rota grants ``on-shift`` to the shifter)."""
        self.providers[name] = provider

    def groups_of(self, person_key: str) -> list[str]:
        return [g for g, members in self.config.groups.items() if person_key in members]

    def roles_of(self, caller: Caller, *, any_channel: bool = False) -> tuple[RoleSource, ...]:
        person = caller.person
        if person is None:
            return self._baseline
        if self.config.grants is not self._grants_seen:  # the grants were replaced: forget
            self._granted.clear()
            self._grants_seen = self.config.grants
        key = (person.key, caller.channel_alias, any_channel)
        granted = self._granted.get(key)
        if granted is None:
            # Grants are fixed once the gate is built: work them out once per person and place.
            if len(self._granted) > 20_000:
                self._granted.clear()
            granted = self._granted[key] = self._baseline + tuple(
                self._grants_of(person.key, caller.channel_alias, any_channel))
        if not self.providers:
            return granted
        provided = [RoleSource(role, f"provider {name}")
                    for name, provider in self.providers.items() for role in provider(caller)]
        return granted + tuple(provided)

    def _grants_of(self, person_key: str, channel_alias: str | None,
                   any_channel: bool) -> Iterable[RoleSource]:
        groups = set(self.groups_of(person_key))
        for index, grant in enumerate(self.config.grants, start=1):
            who = [f"person {person_key}"] if person_key in grant.people else []
            who += [f"group {g}" for g in grant.groups if g in groups]
            if not who:
                continue
            where = ""
            if grant.channels is not None:
                if not any_channel and channel_alias not in grant.channels:
                    continue
                where = ", channels " + ", ".join(grant.channels)
            yield RoleSource(grant.role, f"grant #{index} ({who[0]}{where})")

    def check(self, caller: Caller, permission: str,
              sources: tuple[RoleSource, ...] | None = None) -> Decision:
        """Decide one permission; ``sources`` (from :meth:`roles_of`) saves recomputing them
        when one caller is checked against many permissions (``help``)."""
        if sources is None:
            sources = self.roles_of(caller)
        # The decision depends only on these; rules are fixed once the gate is built.
        memo_key = (caller.person.key if caller.person else None, caller.channel_alias,
                    sources, permission)
        decision = self._memo.get(memo_key)
        if decision is None:
            if len(self._memo) > 20_000:
                self._memo.clear()
            decision = self._memo[memo_key] = self._decide(caller, permission, sources)
        return decision

    def _decide(self, caller: Caller, permission: str,
                sources: tuple[RoleSource, ...]) -> Decision:
        if permission in DECISION_PERMISSIONS:
            if caller.person is None:
                return Decision(False, "only configured people can decide requests")
            return Decision(True, "every configured person may use it; the request decides")
        needs_approval: tuple[Rule, RoleSource, str] | None = None
        for source in sources:
            for rule in self._rules.get(source.role, ()):
                if not _matches(permission, rule.glob):
                    continue
                approver = rule.approval_role(permission)
                if approver is None:
                    return Decision(
                        True, f"role {source.role} allows '{rule.glob}' via {source.via}",
                        via=source,
                    )
                needs_approval = needs_approval or (rule, source, approver)
        if needs_approval is not None:
            rule, source, approver = needs_approval
            return Decision(
                True,
                f"role {source.role} allows '{rule.glob}' via {source.via}, "
                f"with approval by role {approver}",
                approval_role=approver,
                via=source,
            )
        if caller.person is None:
            return Decision(False, f"{caller.label} is not a configured person")
        where = f" in channel {caller.channel_alias}" if caller.channel_alias else ""
        return Decision(False, f"no grant gives {caller.person.key} '{permission}'{where}")

    def may_decide(self, caller: Caller, request: PendingRequest | None,
                   choice: Choice) -> Decision:
        """Who may confirm, cancel, approve or deny a pending request: the one place that
        decides it (the dispatcher's decision gate, the ``approvals`` list and the adapters'
        buttons all ask here). The requester confirms or withdraws (``cancel``); someone else
        holding the request's approval role approves or denies. Whether the request is still
        pending is not decided here: the claim in the database decides that, atomically."""
        if caller.person is None:
            return Decision(False, "only configured people can decide requests")
        if request is None:
            return Decision(False, "there is no such request")
        me = caller.person.key
        if choice in (Choice.CONFIRM, Choice.CANCEL):
            if me != request.person:
                return Decision(False, f"only {request.person}, who asked, can {choice} "
                                       f"request {request.id}")
            return Decision(True, f"{me} asked for request {request.id}")
        if me == request.person:
            return Decision(False, f"you cannot decide your own request; someone else with "
                                   f"role {request.approval_role} must ('cancel {request.id}' "
                                   "withdraws it)")
        source = self.holds_role(caller, request.approval_role or "")
        if source is None:
            return Decision(False, f"deciding request {request.id} needs role "
                                   f"{request.approval_role}")
        return Decision(True, f"role {source.role} via {source.via} may decide request "
                              f"{request.id}", via=source)

    def holds_role(self, caller: Caller, role: str) -> RoleSource | None:
        """Does the caller hold ``role`` (directly or by inheritance) where they are now?"""
        for source in self.roles_of(caller):
            if role == source.role or role in self._ancestors(source.role):
                return source
        return None

    def _ancestors(self, role: str, seen: set[str] | None = None) -> set[str]:
        seen = seen if seen is not None else set()
        cfg = self.config.roles.get(role)
        if cfg is None or role in seen:
            return set()
        seen.add(role)
        out = set(cfg.inherits)
        for parent in cfg.inherits:
            out |= self._ancestors(parent, seen)
        return out

    def who_can(self, permission: str) -> list[str]:
        """Human-readable list of who may run ``permission`` (ignoring dynamic providers)."""
        lines = []
        for glob in self.config.bot.unknown_user_allow:
            if fnmatchcase(permission, glob):
                lines.append("everyone (baseline)")
                break
        for grant in self.config.grants:
            rules = [r for r in self._rules.get(grant.role, ()) if fnmatchcase(permission, r.glob)]
            if not rules:
                continue
            direct = [r for r in rules if r.approval_role(permission) is None]
            approver = rules[0].approval_role(permission)
            note = "" if direct else f" (with approval by role {approver})"
            where = f" in channels {', '.join(grant.channels)}" if grant.channels else ""
            for person in grant.people:
                lines.append(f"{person} (role {grant.role}){where}{note}")
            for group in grant.groups:
                members = ", ".join(self.config.groups.get(group, []))
                lines.append(f"group {group} [{members}] (role {grant.role}){where}{note}")
        for name in self.providers:
            lines.append(f"whoever provider '{name}' grants a role that allows it")
        return lines

    def rules_of_role(self, role: str) -> tuple[Rule, ...]:
        return self._rules.get(role, ())


@functools.lru_cache(maxsize=4096)
def _matches(permission: str, glob: str) -> bool:
    return fnmatchcase(permission, glob)
