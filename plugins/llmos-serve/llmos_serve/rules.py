"""Promotion rules: ``val_ppl <= current.val_ppl and size_bytes < 200e6``.

A small grammar, parsed here and evaluated over numbers only (never ``eval``)::

    rule       := comparison (("and" | ",") comparison)*
    comparison := expr ("<=" | "<" | ">=" | ">" | "==" | "!=") expr
    expr       := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := NUMBER | NAME | "(" expr ")" | "-" factor

A ``NAME`` is a metric of the version being promoted (``val_ppl``, a task metric such
as ``docstrings/acc`` or ``tasks.docstrings.acc``) or, prefixed with ``current.``, of
the version the alias points at now. ``candidate.`` may prefix the former for
clarity. Besides recorded metrics, ``size_bytes`` and ``params`` (counted from the
stored tensors when not recorded) are known for every version.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from llmos.sdk import ValidationError

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_./]*))"
)
_COMPARE = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
            "!=": operator.ne}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
MAX_RULE = 1000


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValidationError(f"rule {text!r}: cannot read {text[pos:].strip()[:20]!r} "
                                  "(write e.g. 'val_ppl <= current.val_ppl and size_bytes < 2e8')")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value in ("and", "AND"):
            kind, value = "op", ","
        out.append((kind, value))
        pos = m.end()
    return out


@dataclass(frozen=True)
class Ref:
    """A metric of the candidate (``side="candidate"``) or the current version."""

    side: str
    name: str

    def __str__(self) -> str:
        return f"current.{self.name}" if self.side == "current" else self.name


@dataclass(frozen=True)
class Comparison:
    left: Any
    op: str
    right: Any
    text: str

    def refs(self) -> list[Ref]:
        return _refs(self.left) + _refs(self.right)


def _refs(node: Any) -> list[Ref]:
    if isinstance(node, Ref):
        return [node]
    if isinstance(node, tuple):
        return [r for part in node[1:] for r in _refs(part)]
    return []


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_RULE:
            raise ValidationError(f"rule is {len(text)} characters long: keep it under {MAX_RULE}")
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.error("ends too early")
        self.i += 1
        return tok

    def error(self, what: str) -> ValidationError:
        return ValidationError(f"rule {self.text!r}: {what} (write e.g. 'val_ppl <= current.val_ppl')")

    def rule(self) -> list[Comparison]:
        out = [self.comparison()]
        while self.peek() == ("op", ","):
            self.take()
            out.append(self.comparison())
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return out

    def comparison(self) -> Comparison:
        start = self.i
        left = self.expr()
        tok = self.take()
        if tok[0] != "op" or tok[1] not in _COMPARE:
            raise self.error(f"expected a comparison (<=, <, >=, >, ==, !=), got {tok[1]!r}")
        right = self.expr()
        text = " ".join(v for _, v in self.toks[start:self.i])
        return Comparison(left, tok[1], right, text)

    def expr(self) -> Any:
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            node = (self.take()[1], node, self.term())
        return node

    def term(self) -> Any:
        node = self.factor()
        while self.peek() in (("op", "*"), ("op", "/")):
            node = (self.take()[1], node, self.factor())
        return node

    def factor(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return float(value)
        if kind == "name":
            if value.startswith("current."):
                return Ref("current", value[len("current."):])
            if value.startswith("candidate."):
                return Ref("candidate", value[len("candidate."):])
            return Ref("candidate", value)
        if value == "(":
            node = self.expr()
            if self.take() != ("op", ")"):
                raise self.error("a '(' is not closed")
            return node
        if value == "-":
            return ("-", 0.0, self.factor())
        raise self.error(f"expected a number or a metric name, got {value!r}")


def parse(text: str) -> list[Comparison]:
    """Parse a rule. :raises ValidationError: one line naming what is wrong."""
    if not text or not text.strip():
        raise ValidationError("the rule is empty: write e.g. 'val_ppl <= current.val_ppl'")
    return _Parser(text).rule()


def _value(node: Any, metrics: dict[str, dict[str, float]]) -> float:
    if isinstance(node, float):
        return node
    if isinstance(node, Ref):
        return metrics[node.side][node.name]
    op, a, b = node
    try:
        return float(_ARITH[op](_value(a, metrics), _value(b, metrics)))
    except ZeroDivisionError:
        return math.nan


@dataclass
class Outcome:
    """How a rule came out: ``ok``, and one line per comparison with its numbers."""

    ok: bool
    checks: list[dict[str, Any]]

    def explain(self) -> str:
        return "; ".join(c["detail"] for c in self.checks)


def evaluate(rule: list[Comparison], candidate: dict[str, float], current: dict[str, float] | None,
             names: tuple[str, str] = ("candidate", "current")) -> Outcome:
    """Evaluate ``rule`` over the two versions' metrics (``current`` is ``None`` when the
    alias points nowhere yet: comparisons that need it pass — the first promotion)."""
    checks = []
    values = {"candidate": candidate, "current": current or {}}
    for comp in rule:
        refs = comp.refs()
        if current is None and any(r.side == "current" for r in refs):
            checks.append({"rule": comp.text, "ok": True, "detail": f"{comp.text}: no current version yet"})
            continue
        missing = [r for r in refs if r.name not in values[r.side]]
        if missing:
            r = missing[0]
            who = names[0] if r.side == "candidate" else names[1]
            known = ", ".join(sorted(values[r.side])) or "none"
            raise ValidationError(f"rule {comp.text!r}: {who} has no metric {r.name!r} (it has: {known})")
        left, right = _value(comp.left, values), _value(comp.right, values)
        ok = bool(_COMPARE[comp.op](left, right)) and not (math.isnan(left) or math.isnan(right))
        shown = ", ".join(f"{names[0] if r.side == 'candidate' else names[1]} {r.name} = "
                          f"{values[r.side][r.name]:.6g}" for r in dict.fromkeys(refs))
        verdict = "holds" if ok else "fails"
        checks.append({"rule": comp.text, "ok": ok, "left": left, "right": right,
                       "detail": f"{comp.text} {verdict} ({shown or f'{left:.6g} {comp.op} {right:.6g}'})"})
    return Outcome(all(c["ok"] for c in checks), checks)
