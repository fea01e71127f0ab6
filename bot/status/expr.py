"""The expression checks' small language: a verdict from other checks' values, never ``eval``.

::

    expression := condition [ "for" DURATION ]           DURATION: 30s, 15m, 2h, 1d, 1h30m
    condition  := and-term { "or" and-term }
    and-term   := not-term { "and" not-term }
    not-term   := "not" not-term | comparison
    comparison := sum [ ( ">" | ">=" | "<" | "<=" | "==" | "!=" ) sum ]
    sum        := product { ( "+" | "-" ) product }
    product    := unary { ( "*" | "/" ) unary }
    unary      := "-" unary | NUMBER | "true" | "false" | VALUE | "(" condition ")"
    VALUE      := CHECK "." KEY                             nomad.workers, pantasks.stack.nfail
    KEY        := word { "." word } | '"' any text '"'       disk."/var/log"

A check name may hold ``-`` (``nomad-prod.workers``); write spaces around a minus sign. Types
are checked when parsing: arithmetic and comparisons take numbers, ``and``/``or``/``not`` take
truths, the whole expression must be a truth, comparisons do not chain (``0 < a.x < 5``: use
``and``). Every error names its column.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["number", "truth"]

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9_.]))
  | (?P<duration>(?:\d+(?:\.\d+)?[smhd])+(?![A-Za-z0-9_]))
  | (?P<value>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*
        \.(?:"[^"]*"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>>=|<=|==|!=|[-+*/()<>])
""", re.VERBOSE)
_KEYWORDS = frozenset({"and", "or", "not", "for", "true", "false"})
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ExpressionError(ValueError):
    """The expression does not parse or is not well typed (a config error)."""


class EvaluationError(Exception):
    """The expression cannot be evaluated now: a value is missing, a division by zero."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    column: int  # 1-based


@dataclass(frozen=True, slots=True)
class Node:
    op: str  # "num", "bool", "ref", "neg", "not", "+", "-", "*", "/", ">", ..., "and", "or"
    kind: Kind
    args: tuple[Node, ...] = ()
    number: float = 0.0  # "num"; "bool": 1.0 or 0.0
    check: str = ""  # "ref"
    key: str = ""  # "ref"


@dataclass(frozen=True, slots=True)
class Expression:
    text: str
    root: Node
    duration: float | None  # seconds of "for DURATION", None without

    def references(self) -> frozenset[str]:
        """The checks whose values it reads."""
        return frozenset(ref.check for ref in _refs(self.root))

    def names(self) -> list[str]:
        """``check.key`` of every value it reads, in order of appearance, once each."""
        return list(dict.fromkeys(f"{ref.check}.{ref.key}" for ref in _refs(self.root)))


Lookup = Callable[[str, str], float]  # (check, key) -> value; raises EvaluationError


def evaluate(expression: Expression, lookup: Lookup) -> tuple[bool, dict[str, float]]:
    """The truth of ``expression`` and the values it read (``check.key`` -> value). Every
    value is read first, so a missing one always shows, whatever ``and``/``or`` would skip."""
    values = {f"{ref.check}.{ref.key}": lookup(ref.check, ref.key)
              for ref in _refs(expression.root)}
    return bool(_eval(expression.root, values)), values


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Expression:
    """Parse (and type-check) an expression; ExpressionError says what and where."""
    parser = _Parser(text, tokenize(text))
    root = parser.condition()
    duration = None
    if parser.accept("word", "for"):
        token = parser.expect("duration", "a duration such as 30s, 15m, 2h after 'for'")
        duration = parse_duration(token.text)
    if parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        raise parser.error(token, f"unexpected {token.text!r}")
    if root.kind != "truth":
        raise ExpressionError(f"{text!r} is a number, not a condition: compare it (e.g. "
                              "... > 0)")
    return Expression(text, root, duration)


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"column {pos + 1}: unexpected {text[pos:pos + 10]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos + 1))
        pos = match.end()
    return tokens


def parse_duration(text: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    seconds = sum(float(number) * _UNIT[unit] for number, unit in parts)
    if seconds <= 0:
        raise ExpressionError(f"{text!r}: a duration must be longer than 0")
    return seconds


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    # ------------------------------------------------------------------ token helpers

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        token = self.peek()
        if token is not None and token.kind == kind and (text is None or token.text == text):
            self.pos += 1
            return token
        return None

    def expect(self, kind: str, what: str) -> Token:
        token = self.accept(kind)
        if token is None:
            raise self.error(self.peek(), f"expected {what}")
        return token

    def error(self, token: Token | None, message: str) -> ExpressionError:
        where = f"column {token.column}" if token else "at the end"
        return ExpressionError(f"{where}: {message}")

    def need(self, node: Node, kind: Kind, token: Token) -> Node:
        if node.kind != kind:
            wanted = "a number" if kind == "number" else "a condition"
            raise self.error(token, f"{token.text!r} needs {wanted} on each side")
        return node

    # ------------------------------------------------------------------ grammar

    def condition(self) -> Node:
        node = self.and_term()
        while (token := self.accept("word", "or")) is not None:
            right = self.and_term()
            node = Node("or", "truth", (self.need(node, "truth", token),
                                         self.need(right, "truth", token)))
        return node

    def and_term(self) -> Node:
        node = self.not_term()
        while (token := self.accept("word", "and")) is not None:
            right = self.not_term()
            node = Node("and", "truth", (self.need(node, "truth", token),
                                          self.need(right, "truth", token)))
        return node

    def not_term(self) -> Node:
        token = self.accept("word", "not")
        if token is None:
            return self.comparison()
        return Node("not", "truth", (self.need(self.not_term(), "truth", token),))

    def comparison(self) -> Node:
        left = self.sum()
        token = self.peek()
        if token is None or token.kind != "op" or token.text not in (">", ">=", "<", "<=",
                                                                      "==", "!="):
            return left
        self.pos += 1
        right = self.sum()
        after = self.peek()
        if after is not None and after.kind == "op" and after.text in (">", ">=", "<", "<=",
                                                                       "==", "!="):
            raise self.error(after, "comparisons do not chain: join them with 'and'")
        if token.text in ("==", "!=") and left.kind == right.kind:
            return Node(token.text, "truth", (left, right))
        return Node(token.text, "truth", (self.need(left, "number", token),
                                          self.need(right, "number", token)))

    def sum(self) -> Node:
        node = self.product()
        while (token := self.accept("op", "+") or self.accept("op", "-")) is not None:
            right = self.product()
            node = Node(token.text, "number", (self.need(node, "number", token),
                                               self.need(right, "number", token)))
        return node

    def product(self) -> Node:
        node = self.unary()
        while (token := self.accept("op", "*") or self.accept("op", "/")) is not None:
            right = self.unary()
            node = Node(token.text, "number", (self.need(node, "number", token),
                                               self.need(right, "number", token)))
        return node

    def unary(self) -> Node:
        if (token := self.accept("op", "-")) is not None:
            return Node("neg", "number", (self.need(self.unary(), "number", token),))
        return self.atom()

    def atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise self.error(None, "expected a number, a value (check.value) or '('")
        self.pos += 1
        if token.kind == "number":
            return Node("num", "number", number=float(token.text))
        if token.kind == "value":
            check, _, key = token.text.partition(".")
            return Node("ref", "number", check=check, key=key.strip('"'))
        if token.kind == "word" and token.text in ("true", "false"):
            return Node("bool", "truth", number=float(token.text == "true"))
        if token.kind == "op" and token.text == "(":
            node = self.condition()
            self.expect_close(token)
            return node
        if token.kind == "word" and token.text not in _KEYWORDS:
            raise self.error(token, f"{token.text!r} is not a value: write check.value "
                             f"(e.g. {token.text}.value)")
        raise self.error(token, f"expected a number, a value (check.value) or '(', found "
                         f"{token.text!r}")

    def expect_close(self, opening: Token) -> None:
        if self.accept("op", ")") is None:
            raise self.error(self.peek(), f"'(' at column {opening.column} is not closed")


def _refs(node: Node) -> list[Node]:
    if node.op == "ref":
        return [node]
    return [ref for arg in node.args for ref in _refs(arg)]


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _eval(node: Node, values: dict[str, float]) -> float:
    """Numbers as floats, truths as 1.0/0.0 (the parser has checked the kinds)."""
    if node.op in ("num", "bool"):
        return node.number
    if node.op == "ref":
        return values[f"{node.check}.{node.key}"]
    args = [_eval(arg, values) for arg in node.args]
    if node.op == "neg":
        return -args[0]
    if node.op == "not":
        return float(not args[0])
    if node.op == "and":
        return float(bool(args[0]) and bool(args[1]))
    if node.op == "or":
        return float(bool(args[0]) or bool(args[1]))
    if node.op == "/":
        if args[1] == 0:
            raise EvaluationError("division by zero")
        return args[0] / args[1]
    if node.op in _ARITHMETIC:
        return _ARITHMETIC[node.op](args[0], args[1])
    return float(_COMPARE[node.op](args[0], args[1]))
