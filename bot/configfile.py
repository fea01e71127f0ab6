"""Reading the configuration file before and around validation (:func:`bot.config.load_config`):
``${VAR}``/``*_file`` expansion, secrets registered before anything can echo them, and config
that would silently change who may do what refused.

* The YAML is read with :class:`UniqueKeyLoader`: ``yaml.safe_load`` keeps the *last* of two
  equal keys without a word (a second ``grants:`` replaces the first), so duplicates are errors
  with their key path and lines.
* Values under secret keys are given to the masker before validation
  (:func:`register_raw_secrets`), so no problem message (of that key or another) shows one.
* Two people with one platform account, and roles named like the gate's own ``everyone``, are
  errors (:func:`ambiguity_problems`), as are two aliases of one channel.

:mod:`bot.config` imports this module lazily (it imports :mod:`bot.config`).
"""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from bot.config import Config, Problem, format_path
from bot.permissions import BASELINE
from bot.secrets import MIN_LENGTH, masker

# ${VAR}s that are never secrets (the masking rule in bot/config.py); XDG_* too.
PLAIN_VARIABLES = frozenset({"HOME", "USER", "LOGNAME", "PWD", "TMPDIR", "HOSTNAME", "SHELL",
                             "LANG"})

# Role names the gate gives a meaning of its own: BASELINE is what everybody holds, so a role
# of that name would be held by everybody (and as an approval role, let anybody approve).
RESERVED_ROLES = frozenset({BASELINE})

MERGE = "tag:yaml.org,2002:merge"  # the tag of a `<<` key


# libyaml's parser when PyYAML has it: the same nodes, several times faster to read (the
# config is read at every start, also by the one-shot console).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UniqueKeyLoader(_SafeLoader):
    """A SafeLoader that records every duplicate mapping key (path, line, first line)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, str, int, int]] = []  # (path, key, line, first line)
        self.merge_conflicts: list[tuple[str, str]] = []  # (path, message)

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._walk(node, (), set())
        return self.construct_document(node)

    def _walk(self, node: yaml.Node, loc: tuple[Any, ...], seen: set[int]) -> None:
        if id(node) in seen:  # an alias to a node already walked (or a recursive one)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*loc, index), seen)
        elif isinstance(node, yaml.MappingNode):
            self._check_merges(node, loc)
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE:
                    continue
                line = key_node.start_mark.line + 1
                key = (key_node.tag, key_node.value)
                if key in first:
                    self.duplicates.append((format_path((*loc, key_node.value)),
                                            key_node.value, line, first[key]))
                else:
                    first[key] = line
                self._walk(value_node, (*loc, key_node.value), seen)


    def _check_merges(self, node: yaml.MappingNode, loc: tuple[Any, ...]) -> None:
        """Merge keys (``<<: *defaults``) may be overridden by the mapping's own keys (that is
        what they are for), but a key two merges both provide is decided by YAML's ordering
        rules, silently: two ``<<`` in one mapping (the later wins) or two mappings in one
        ``<<: [*a, *b]`` (the first wins). Both are errors, unless the mapping sets the key."""
        merges = [(k, v) for k, v in node.value
                  if isinstance(k, yaml.ScalarNode) and k.tag == MERGE]
        if len(merges) > 1:
            self.duplicates.append((format_path((*loc, "<<")), "<<",
                                    merges[1][0].start_mark.line + 1,
                                    merges[0][0].start_mark.line + 1))
        own = {(k.tag, k.value) for k, _ in node.value
               if isinstance(k, yaml.ScalarNode) and k.tag != MERGE}
        given: dict[tuple[str, str], yaml.Node] = {}  # merged key -> the mapping setting it
        for _, value_node in merges:
            sources = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                       else [value_node])
            for source in sources:
                for key, origin in _merged_keys(source, set()).items():
                    other = given.setdefault(key, origin)
                    if key in own or other is origin:
                        continue
                    self.merge_conflicts.append((
                        format_path((*loc, key[1])),
                        f"key '{key[1]}' is merged from two mappings (lines "
                        f"{other.start_mark.line + 1} and {origin.start_mark.line + 1})"))


def _merged_keys(node: yaml.Node, seen: set[int]) -> dict[tuple[str, str], yaml.Node]:
    """The keys a mapping gives where it is merged, each with the mapping that sets it (its
    own keys, and those it merges itself: one anchor reached twice is no conflict)."""
    if not isinstance(node, yaml.MappingNode) or id(node) in seen:
        return {}
    seen.add(id(node))
    keys: dict[tuple[str, str], yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != MERGE:
            continue
        for source in (value_node.value if isinstance(value_node, yaml.SequenceNode)
                       else [value_node]):
            for key, origin in _merged_keys(source, set(seen)).items():
                keys.setdefault(key, origin)
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != MERGE:
            keys[(key_node.tag, key_node.value)] = node
    return keys


def read_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``; a :class:`~bot.config.ConfigError` for duplicate keys, an
    empty file or broken YAML (``source`` names the file in messages)."""
    from bot.config import ConfigError

    loader = UniqueKeyLoader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([Problem("", f"{source} is not valid YAML{where}")]) from None
    finally:
        loader.dispose()
    if loader.duplicates or loader.merge_conflicts:
        raise ConfigError([
            Problem(path, f"duplicate key '{key}' at line {line} (first at line {first})",
                    "one merge key takes a list: <<: [*a, *b]" if key == "<<"
                    else "YAML would silently keep only the last one: merge them")
            for path, key, line, first in loader.duplicates] + [
            Problem(path, message, "YAML would silently take one of them: set it explicitly "
                                   "in this mapping")
            for path, message in loader.merge_conflicts])
    if raw is None:
        raise ConfigError([Problem("", f"the configuration file {source} is empty",
                                   "start from config/shiftbot.example.yaml")])
    return raw


def register_raw_secrets(node: Any, annotation: Any = Config) -> None:
    """Before validation: mask every string given under a secret (``SecretStr``) key."""
    if annotation is SecretStr:
        if isinstance(node, str):
            masker.add(node)
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(node, dict):
            for key, value in node.items():
                field = annotation.model_fields.get(str(key))
                if field is not None:
                    register_raw_secrets(value, field.annotation)
        return
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # a discriminated union of check types, a constrained str
        register_raw_secrets(node, args[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            register_raw_secrets(node, arg)
    elif origin is dict and len(args) == 2 and isinstance(node, dict):
        for value in node.values():
            register_raw_secrets(value, args[1])
    elif origin is list and args and isinstance(node, list):
        for value in node:
            register_raw_secrets(value, args[0])


def ambiguity_problems(config: Config) -> list[Problem]:
    """One platform account is one person, one channel has one alias, and no role takes a name
    the gate uses: otherwise the config silently decides who may do what."""
    problems: list[Problem] = []
    owners: dict[tuple[str, str], str] = {}  # (field, id or username) -> people.<key>.<field>
    for key, person in config.people.items():
        for field in ("slack", "mattermost", "mattermost_username"):
            value = getattr(person, field)
            if not value:
                continue
            # Ids are case-sensitive strings of one case; usernames are case-insensitive.
            normal = value.lstrip("@").lower()
            path = f"people.{key}.{field}"
            other = owners.setdefault((field, normal), path)
            if other != path:
                problems.append(Problem(path, f"'{value}' is also {other}",
                                        "one account is one person: the gate would give "
                                        "it the roles of only one of them"))
    for platform in ("slack", "mattermost"):
        section = getattr(config, platform)
        seen: dict[str, str] = {}
        for alias, value in (section.channels if section is not None else {}).items():
            # One channel, one alias: an inbound message carries only one (the last would win).
            path = f"{platform}.channels.{alias}"
            other = seen.setdefault(value.lstrip("#~").lower(), path)
            if other != path:
                problems.append(Problem(path, f"'{value}' is also {other}",
                                        "a channel has one alias: grants limited to one of "
                                        "them would not apply there"))
    for name in config.roles:
        if name.lower() in RESERVED_ROLES:
            problems.append(Problem(f"roles.{name}", f"the role name '{name}' is reserved",
                                    f"'{BASELINE}' is what everybody holds "
                                    "(bot.unknown_user_allow): rename the role"))
    return problems


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate(node: Any, loc: tuple[Any, ...], problems: list[Problem], base: Path) -> Any:
    """Expand ``${VAR}`` and ``key_file:`` in the raw YAML tree."""
    if isinstance(node, str):

        def expand(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(
                    Problem(format_path(loc), f"environment variable {name} is not set",
                            "export it or use a *_file key")
                )
                return ""
            value = os.environ[name]
            if name not in PLAIN_VARIABLES and not name.startswith("XDG_"):
                masker.add(value)  # whatever key it sits under: bot/config.py's masking rule
                if 0 < len(value) < MIN_LENGTH:
                    problems.append(_short_secret(loc, f"${{{name}}}"))
            return value

        return _VAR.sub(expand, node)
    if isinstance(node, list):
        return [interpolate(v, (*loc, i), problems, base) for i, v in enumerate(node)]
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            if isinstance(key, str) and key.endswith("_file") and isinstance(value, str):
                target = key[: -len("_file")]
                if target in node:
                    problems.append(Problem(format_path((*loc, key)),
                                            f"both {target} and {key} are set", "keep one"))
                    continue
                path = Path(interpolate(value, (*loc, key), problems, base))
                if not path.is_absolute():
                    path = base / path
                try:
                    content = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    problems.append(Problem(format_path((*loc, key)),
                                            f"cannot read {path}: {exc.strerror}"))
                    continue
                except UnicodeDecodeError:  # no excerpt: the bytes may be the secret
                    problems.append(Problem(format_path((*loc, key)),
                                            f"{path} is not UTF-8 text"))
                    continue
                masker.add(content)  # anything read from a file is treated as a secret
                if 0 < len(content) < MIN_LENGTH:
                    problems.append(_short_secret((*loc, key), str(path)))
                out[target] = content
            else:
                out[key] = interpolate(value, (*loc, key), problems, base)
        return out
    return node


def _short_secret(loc: tuple[Any, ...], source: str) -> Problem:
    # Too short to mask (it would mask ordinary words): it may show in logs and replies.
    return Problem(format_path(loc), f"the secret from {source} is shorter than {MIN_LENGTH} "
                   "characters, so it is never masked in logs, replies or check-config output",
                   "use a longer value, or do not take a non-secret from the environment",
                   severity="warning")


def register_secrets(node: Any) -> None:
    """After validation: every ``SecretStr`` (also those built from dicts in tests)."""
    if isinstance(node, SecretStr):
        masker.add(node.get_secret_value())
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            register_secrets(getattr(node, name))
    elif isinstance(node, dict):
        for value in node.values():
            register_secrets(value)
    elif isinstance(node, list):
        for value in node:
            register_secrets(value)
