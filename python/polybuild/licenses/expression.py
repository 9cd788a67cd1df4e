"""SPDX license expressions: a small parser and the policy evaluation cargo-deny uses.

`OR` passes when any branch is allowed, `AND` needs every operand, `WITH` binds an exception to its license and is
matched as one token (`Apache-2.0 WITH LLVM-exception` is not `Apache-2.0`), and ids match exactly (a deprecated id
such as `GPL-2.0+` is not `GPL-2.0-or-later`). Parsing is lenient where real metadata is sloppy: `MIT/Apache-2.0`
is an OR, and lowercase operators are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(\()|(\))|(/)|([A-Za-z0-9.+:-]+))")


class ExpressionError(ValueError):
    """Not an SPDX expression (the message says where)."""


@dataclass(frozen=True)
class License:
    """A license id (or LicenseRef-...), with its exception when written `X WITH Y`."""

    id: str
    exception: str | None = None

    def __str__(self) -> str:
        return f"{self.id} WITH {self.exception}" if self.exception else self.id


@dataclass(frozen=True)
class Op:
    op: str  # "AND" or "OR"
    args: tuple[Node, ...]

    def __str__(self) -> str:
        return f" {self.op} ".join(f"({a})" if isinstance(a, Op) and a.op != self.op else str(a) for a in self.args)


Node = License | Op


def parse(text: str) -> Node:
    """Parse an expression; raises ExpressionError for anything that is not one."""
    tokens = _tokens(text)
    node, rest = _or(tokens, text)
    if rest:
        raise ExpressionError(f"unexpected '{rest[0]}' in license expression '{text}'")
    return node


def normalize(text: str) -> str:
    """The expression in canonical spelling (`MIT/Apache-2.0` -> `MIT OR Apache-2.0`)."""
    return str(parse(text))


def canonical(text: str) -> str:
    """One spelling for equivalent expressions: AND and OR are commutative and associative, so operands are
    flattened, sorted and deduplicated (`Apache-2.0 OR MIT` for `MIT OR Apache-2.0`); for grouping, not for
    reporting what a package declares."""
    return str(_canonical(parse(text)))


def _canonical(node: Node) -> Node:
    if isinstance(node, License):
        return node
    args: dict[str, Node] = {}
    for arg in map(_canonical, node.args):
        flat = arg.args if isinstance(arg, Op) and arg.op == node.op else (arg,)
        args.update((str(a), a) for a in flat)
    ordered = tuple(args[key] for key in sorted(args))
    return ordered[0] if len(ordered) == 1 else Op(node.op, ordered)


def licenses(node: Node) -> list[License]:
    """Every license mentioned, in order."""
    if isinstance(node, License):
        return [node]
    return [lic for arg in node.args for lic in licenses(arg)]


def satisfied(node: Node, allowed: Callable[[License], bool]) -> bool:
    """Whether the expression is acceptable when each license is judged by `allowed`."""
    if isinstance(node, License):
        return allowed(node)
    results = (satisfied(arg, allowed) for arg in node.args)
    return any(results) if node.op == "OR" else all(results)


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"unexpected character '{text[pos:].strip()[0]}' in license expression '{text}'")
        open_, close, slash, word = m.groups()
        if slash:
            tokens.append("OR")
        elif word and word.upper() in ("AND", "OR", "WITH"):
            tokens.append(word.upper())
        else:
            tokens.append(open_ or close or word)
        pos = m.end()
    if not tokens:
        raise ExpressionError("empty license expression")
    return tokens


def _or(tokens: list[str], text: str) -> tuple[Node, list[str]]:
    return _binary("OR", _and, tokens, text)


def _and(tokens: list[str], text: str) -> tuple[Node, list[str]]:
    return _binary("AND", _with, tokens, text)


def _binary(op: str, operand: Callable[[list[str], str], tuple[Node, list[str]]], tokens: list[str],
            text: str) -> tuple[Node, list[str]]:
    """`operand (op operand)*`, one level of precedence."""
    node, rest = operand(tokens, text)
    args = [node]
    while rest and rest[0] == op:
        node, rest = operand(rest[1:], text)
        args.append(node)
    return (args[0] if len(args) == 1 else Op(op, tuple(args))), rest


def _with(tokens: list[str], text: str) -> tuple[Node, list[str]]:
    if not tokens:
        raise ExpressionError(f"license expression '{text}' ends too early")
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        node, rest = _or(rest, text)
        if not rest or rest[0] != ")":
            raise ExpressionError(f"missing ')' in license expression '{text}'")
        return node, rest[1:]
    if head in ("AND", "OR", "WITH", ")"):
        raise ExpressionError(f"unexpected '{head}' in license expression '{text}'")
    if rest[:1] == ["WITH"]:
        if len(rest) < 2 or rest[1] in ("AND", "OR", "WITH", "(", ")"):
            raise ExpressionError(f"'WITH' needs an exception id in license expression '{text}'")
        return License(head, rest[1]), rest[2:]
    return License(head), rest
