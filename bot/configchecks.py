"""``shiftbot check-config``: every problem with its key path and a hint.

Schema problems come from pydantic (bot/config.py); this module checks what needs the command
registry (feature sections and the features' own ``check_config``, bot/features.py) and the
references between sections (grants naming unknown groups, channel aliases
never defined, role inheritance cycles, ...).
"""

from __future__ import annotations

import difflib
from fnmatch import fnmatchcase

from bot.condor.configcheck import check_pools
from bot.config import Config, Problem
from bot.features import bind_sections, run_checks
from bot.permissions import DECISION_PERMISSIONS
from bot.registry import Registry


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    if candidates and len(candidates) <= 12:
        return "known: " + ", ".join(sorted(candidates))
    return ""


def _check_globs(path: str, globs: list[str], known: list[str], problems: list[Problem]) -> None:
    for i, glob in enumerate(globs):
        if not _known(glob, known):
            problems.append(Problem(f"{path}[{i}]", f"unknown permission '{glob}'",
                                    _did_you_mean(glob, known)))


def _known(glob: str, known: list[str]) -> bool:
    """Does ``glob`` name a permission some command needs? ``restart.*`` stands for every
    ``restart.TARGET`` (a permission completed by an argument)."""
    return any(fnmatchcase(p, glob) or ("*" in p and fnmatchcase(glob, p)) for p in known)


def _ref(path: str, kind: str, name: str, known: list[str], problems: list[Problem]) -> None:
    if name not in known:
        problems.append(Problem(path, f"unknown {kind} '{name}'", _did_you_mean(name, known)))


def check_references(config: Config, registry: Registry) -> list[Problem]:
    # Feature sections first: validated by their modules' models, then their own checks.
    problems: list[Problem] = bind_sections(config, registry.sections)
    if not problems:
        problems += run_checks(config, registry)
    known_perms = sorted(registry.permissions() | DECISION_PERMISSIONS)
    people, groups = list(config.people), list(config.groups)
    roles, channels = list(config.roles), list(config.channels)

    if config.bot.console_person is not None:
        _ref("bot.console_person", "person", config.bot.console_person, people, problems)
    _check_globs("bot.unknown_user_allow", config.bot.unknown_user_allow, known_perms, problems)

    for group, members in config.groups.items():
        for i, member in enumerate(members):
            _ref(f"groups.{group}[{i}]", "person", member, people, problems)

    for name, role in config.roles.items():
        _check_globs(f"roles.{name}.allow", role.allow, known_perms, problems)
        for i, parent in enumerate(role.inherits):
            _ref(f"roles.{name}.inherits[{i}]", "role", parent, roles, problems)
        for glob, approver in role.approval.items():
            if not _known(glob, known_perms):
                problems.append(Problem(f"roles.{name}.approval.{glob}",
                                        f"unknown permission '{glob}'",
                                        _did_you_mean(glob, known_perms)))
            _ref(f"roles.{name}.approval.{glob}", "role", approver, roles, problems)
    problems += _inheritance_cycles(config)

    for i, grant in enumerate(config.grants):
        _ref(f"grants[{i}].role", "role", grant.role, roles, problems)
        if not grant.people and not grant.groups:
            problems.append(Problem(f"grants[{i}]", "grants the role to nobody",
                                    "add people: [...] or groups: [...]"))
        for j, person in enumerate(grant.people):
            _ref(f"grants[{i}].people[{j}]", "person", person, people, problems)
        for j, group in enumerate(grant.groups):
            _ref(f"grants[{i}].groups[{j}]", "group", group, groups, problems)
        for j, channel in enumerate(grant.channels or []):
            _ref(f"grants[{i}].channels[{j}]", "channel alias", channel, channels, problems)
            if channel in channels:
                problems += _unmapped(config, f"grants[{i}].channels[{j}]", channel)

    for platform in ("slack", "mattermost"):
        section = getattr(config, platform)
        if section is None:
            continue
        for alias in section.channels:
            _ref(f"{platform}.channels.{alias}", "channel alias", alias, channels, problems)
        for command, family in section.commands.items():
            if family is not None and family not in registry.families:
                problems.append(Problem(f"{platform}.commands.{command}",
                                        f"unknown command family '{family}'",
                                        _did_you_mean(family, list(registry.families))))
    if config.slack is not None:
        if config.slack.mode == "socket" and config.slack.app_token is None:
            problems.append(Problem("slack.app_token", "socket mode needs an app token (xapp-...)",
                                    "or set slack.mode: http with a signing_secret"))
        if config.slack.mode == "http" and config.slack.signing_secret is None:
            problems.append(Problem("slack.signing_secret", "http mode needs the signing secret",
                                    "find it under Basic Information in the Slack app settings"))

    pools = list(config.condor.pools)
    if config.condor.default_pool is not None:
        _ref("condor.default_pool", "pool", config.condor.default_pool, pools, problems)
    problems += check_pools(config)  # submit files readable, getenv warnings
    problems += config.load_warnings  # e.g. a secret too short to be masked
    return problems


def _unmapped(config: Config, path: str, alias: str) -> list[Problem]:
    """A grant limited to an alias some enabled platform does not map: there it matches no
    channel (fail-closed, but surely not what was meant), so say so without failing."""
    missing = [platform for platform in ("slack", "mattermost")
               if (section := getattr(config, platform)) is not None
               and alias not in section.channels]
    return [Problem(path, f"channel alias '{alias}' is not mapped on {platform}: the grant "
                          f"applies in no {platform} channel",
                    f"add it to {platform}.channels, or ignore this if that is intended",
                    severity="warning")
            for platform in missing]


def _inheritance_cycles(config: Config) -> list[Problem]:
    problems = []
    for start in config.roles:
        stack, path = [start], []
        seen: set[str] = set()
        while stack:
            role = stack.pop()
            if role in seen:
                continue
            seen.add(role)
            path.append(role)
            for parent in config.roles.get(role, None).inherits if role in config.roles else []:
                if parent == start:
                    problems.append(Problem(f"roles.{start}.inherits",
                                            f"role '{start}' inherits itself",
                                            "remove one of the inherits entries in the cycle"))
                    stack.clear()
                    break
                stack.append(parent)
    return problems


def summary(config: Config, registry: Registry) -> str:
    platforms = ["console"]
    if config.slack is not None and config.slack.enabled:
        platforms.append(f"slack ({config.slack.mode} mode)")
    if config.mattermost is not None and config.mattermost.enabled:
        platforms.append("mattermost")
    commands = [s for s in registry.specs() if not s.hidden]
    lines = [
        "Configuration OK.",
        f"  people:    {len(config.people)} ({', '.join(sorted(config.people)) or 'none'})",
        f"  groups:    {len(config.groups)}",
        f"  roles:     {len(config.roles)} ({', '.join(config.roles) or 'none'})",
        f"  grants:    {len(config.grants)}",
        f"  commands:  {len(commands)} in {len(registry.families)} families",
        f"  platforms: {', '.join(platforms)}",
        f"  database:  {config.bot.database.split('://')[0]}",
    ]
    if config.condor.pools:
        lines.append(f"  condor:    {', '.join(config.condor.pools)}")
    return "\n".join(lines)
