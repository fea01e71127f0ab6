"""How condor_submit fills a job's ``Environment`` attribute (for the demo schedd).

A model of ``SubmitHash::SetEnvironment`` (htcondor/htcondor, src/condor_utils/submit_utils.cpp)
and of ``WhiteBlackEnvFilter``: the demo schedd uses it so that a job submitted through the
demo carries, in its ad, exactly what a real pool would store -- which is how the tests check
that no secret of the bot reaches a job ad. Runs inside the worker only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase

import classad2


def job_environment(lower: dict[str, str], environ: Mapping[str, str]) -> str:
    """The job's ``Environment`` as condor_submit builds it (``SubmitHash::SetEnvironment``).

    ``environment``/``env`` first; then ``getenv`` imports the variables of the *submitting
    process* (here, as with the real bindings, the worker) that are not set yet: all of them
    for true (literal ``true``/``1`` in any case, or an expression evaluating to true),
    otherwise those matching a list of case-insensitive globs, ``!glob`` excluding (only
    exclusions: everything else). Values with a newline are skipped. The result is the V2
    form, ``NAME=value`` pairs separated by spaces, single-quoted when needed.
    """
    env: dict[str, str] = {}
    explicit = lower.get("environment", lower.get("env"))
    if explicit:
        env.update(_parse_environment(explicit))
    getenv = lower.get("getenv", lower.get("get_env"))
    if getenv is not None:
        wanted = _getenv_filter(getenv)
        for name, value in environ.items():
            if name not in env and "\n" not in value and wanted(name):
                env[name] = value
    return " ".join(_v2_quote(f"{name}={value}") for name, value in sorted(env.items()))


def _getenv_filter(value: str) -> Callable[[str], bool]:
    text = value.strip()
    if text.lower() in ("true", "1", "false", "0"):
        flag = text.lower() in ("true", "1")
        return lambda name: flag
    try:
        result = classad2.ExprTree(text).eval()
    except (classad2.ClassAdException, ValueError):
        result = None
    if isinstance(result, bool):
        return lambda name: result
    items = [item for item in re.split(r"[,;\s]+", text) if item]
    white = [item.lower() for item in items if not item.startswith("!")]
    black = [item[1:].lower() for item in items if item.startswith("!") and item[1:]]

    def wanted(name: str) -> bool:
        lowered = name.lower()
        if any(fnmatchcase(lowered, pattern) for pattern in black):
            return False
        return not white or any(fnmatchcase(lowered, pattern) for pattern in white)

    return wanted


def _parse_environment(value: str) -> dict[str, str]:
    """``"A=1 B='x y'"`` (V2: quoted, space separated) or ``A=1;B=2`` (V1)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        words, word, quoted, i = [], "", False, 0
        inner = value[1:-1].replace('""', '"')
        while i < len(inner):
            char = inner[i]
            if char == "'":
                if quoted and inner[i + 1:i + 2] == "'":
                    word += "'"
                    i += 1
                else:
                    quoted = not quoted
            elif char.isspace() and not quoted:
                if word:
                    words.append(word)
                word = ""
            else:
                word += char
            i += 1
        if word:
            words.append(word)
    else:
        words = [w for w in value.split(";") if w]
    return dict(word.partition("=")[::2] for word in words)


def _v2_quote(word: str) -> str:
    if not word or any(c in word for c in " \t\r\n'"):
        return "'" + word.replace("'", "''") + "'"
    return word
