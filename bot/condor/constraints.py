"""Everything that becomes a constraint goes through here.

- Free-form constraints (``--constraint``, a pool's ``scope``) are checked lexically, parsed
  with ``classad2.ExprTree`` and replaced by the parser's own unparsed text: what is sent is
  exactly one complete expression, so ``true) || (true`` or ``x; y = 1`` cannot widen a scope.
- Values typed in chat (owner, batch name) are never pasted: they become string literals with
  ``classad2.quote``.
- Job ids are pattern-checked and turned into ``ClusterId``/``ProcId`` comparisons.

``classad2`` is imported lazily (the handler module must stay cheap to import); parsing does no
network I/O, so these helpers are safe on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.condor.errors import CondorBadConstraint

# [0-9], not \d (which matches every Unicode digit: Arabic-Indic or full-width digits are
# not a job id to the schedd).
JOBID_RE = re.compile(r"([0-9]{1,10})(?:\.([0-9]{1,7}))?")
ATTRIBUTE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MAX_CONSTRAINT = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


def quote(value: str) -> str:
    """A ClassAd string literal for ``value`` (``x" || true`` -> ``"x\\" || true"``)."""
    import classad2

    if _CONTROL.search(value):
        raise CondorBadConstraint("control characters are not allowed in values")
    return str(classad2.quote(value))


def _lexical_check(text: str, what: str) -> None:
    """Reject what ``ExprTree`` would silently truncate: ``a; b``, ``a ] [ b``, comments."""
    depth: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":  # string literal or quoted attribute name
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise CondorBadConstraint(f"{what}: unterminated quote")
            i = j + 1
            continue
        if ch in _OPEN:
            depth.append(_OPEN[ch])
        elif ch in _CLOSE:
            if not depth or depth.pop() != ch:
                raise CondorBadConstraint(f"{what}: unbalanced '{ch}'")
        elif ch == ";" and not depth:
            raise CondorBadConstraint(f"{what}: ';' is not allowed (one expression only)")
        elif ch == "/" and i + 1 < n and text[i + 1] in "/*":
            raise CondorBadConstraint(f"{what}: comments are not allowed")
        i += 1
    if depth:
        raise CondorBadConstraint(f"{what}: missing '{depth[-1]}'")


def validate(text: str, *, what: str = "constraint") -> str:
    """Parse a constraint; return the parser's canonical text or raise CondorBadConstraint."""
    import classad2

    text = text.strip()
    if not text:
        raise CondorBadConstraint(f"{what} is empty")
    if len(text) > MAX_CONSTRAINT:
        raise CondorBadConstraint(f"{what} is too long ({len(text)} characters, at most "
                                  f"{MAX_CONSTRAINT})")
    if _CONTROL.search(text):
        raise CondorBadConstraint(f"{what}: control characters are not allowed")
    _lexical_check(text, what)
    try:
        tree = classad2.ExprTree(text)
    except Exception:
        raise CondorBadConstraint(f"{what} is not a valid ClassAd expression: {text}") from None
    canonical = " ".join(str(tree).split())
    if not canonical:
        raise CondorBadConstraint(f"{what} is not a valid ClassAd expression: {text}")
    try:  # the parser's own text must parse again (``0 .T`` prints as ``0.T``, which does not)
        classad2.ExprTree(canonical)
    except Exception:
        raise CondorBadConstraint(f"{what} is not a valid ClassAd expression: {text}") from None
    return canonical


def all_of(*parts: str | None) -> str:
    """``(a) && (b)`` over the non-empty parts (each already validated); ``true`` when none."""
    kept = [p for p in parts if p]
    if not kept:
        return "true"
    if len(kept) == 1:
        return kept[0]
    return " && ".join(f"({p})" for p in kept)


def any_of(parts: Iterable[str]) -> str:
    kept = [p for p in parts if p]
    if not kept:
        return "false"
    return kept[0] if len(kept) == 1 else " || ".join(f"({p})" for p in kept)


def attr_equals(attribute: str, value: str) -> str:
    """``Owner == "alice"``: the attribute from our code, the value from chat, quoted."""
    if not ATTRIBUTE_RE.fullmatch(attribute):
        raise CondorBadConstraint(f"invalid attribute name {attribute!r}")
    return f"{attribute} == {quote(value)}"


def parse_jobid(text: str) -> tuple[int, int | None]:
    """``"123.4"`` -> ``(123, 4)``, ``"123"`` -> ``(123, None)`` (the whole cluster)."""
    match = JOBID_RE.fullmatch(text.strip())
    if not match:
        raise CondorBadConstraint(f"'{text}' is not a job id (expected 1234 or 1234.0)")
    cluster = int(match.group(1))
    proc = match.group(2)
    return cluster, (int(proc) if proc is not None else None)


def jobs_constraint(job_ids: Iterable[str]) -> str:
    """``["12.0", "12.3", "15"]`` -> ``(ClusterId == 12 && member(ProcId, {0, 3})) || ...``."""
    clusters: dict[int, set[int] | None] = {}
    for text in job_ids:
        cluster, proc = parse_jobid(text)
        if proc is None:
            clusters[cluster] = None  # the whole cluster wins over single procs
        elif cluster not in clusters or clusters[cluster] is not None:
            procs = clusters.setdefault(cluster, set())
            assert procs is not None
            procs.add(proc)
    if not clusters:
        raise CondorBadConstraint("no job ids given")
    clauses = []
    for cluster, procs in clusters.items():
        if procs is None:
            clauses.append(f"ClusterId == {cluster}")
        elif len(procs) == 1:
            clauses.append(f"ClusterId == {cluster} && ProcId == {next(iter(procs))}")
        else:
            listed = ", ".join(str(p) for p in sorted(procs))
            clauses.append(f"ClusterId == {cluster} && member(ProcId, {{{listed}}})")
    return any_of(clauses)


def format_jobid(cluster: int, proc: int | None) -> str:
    return f"{cluster}" if proc is None else f"{cluster}.{proc}"
