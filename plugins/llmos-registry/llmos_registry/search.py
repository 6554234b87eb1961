"""Registry search: filter model versions with a small query language, turned into
SQLAlchemy expressions with bound parameters (never SQL built from strings).

::

    metrics.val_ppl < 50 and tags.team = 'nlp'
    name = 'quickstart' and (aliases = 'production' or version >= 10)
    not tags.reviewed = 'yes' and created_at >= '2026-11-01'

Grammar (keywords case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := FIELD OP VALUE
    OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "like"
    VALUE      := 'text' | "text" | NUMBER

Fields: ``name``, ``version``, ``status``, ``description``, ``run_id``, ``created_at``
(an ISO date or time, UTC unless it says otherwise), ``size_bytes``,
``metrics.<name>`` (numbers), ``tags.<key>`` (text) and ``aliases`` (text: the version
has an alias that compares so). A comparison on a metric, tag or alias the version does
not have is false (and ``not`` of it true). ``like`` takes SQL wildcards ``%`` and ``_``
and ignores case (``ILIKE``). Text order (``<``...) is the database's collation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select

from llmos.sdk import ValidationError
from llmos_registry.models import Alias, Model, ModelVersion, Tag, VersionMetric
from llmos_registry.refs import KEY_RE

if TYPE_CHECKING:
    from llmos_registry.store import Store
    from llmos_registry.types import VersionInfo

OPS = ("<=", ">=", "!=", "==", "=", "<", ">", "like")
#: field -> (kind, column); kind "num", "text" or "time"
COLUMNS: dict[str, tuple[str, Any]] = {
    "name": ("text", Model.name),
    "version": ("num", ModelVersion.number),
    "status": ("text", ModelVersion.status),
    "description": ("text", ModelVersion.description),
    "run_id": ("text", ModelVersion.run_id),
    "created_at": ("time", ModelVersion.created_at),
    "size_bytes": ("num", ModelVersion.size_bytes),
}
FIELDS = (*COLUMNS, "metrics.<name>", "tags.<key>", "aliases")
MAX_FILTER = 4096
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><=|>=|!=|==|=|<|>)
    | (?P<paren>[()])
    | (?P<word>[A-Za-z_][\w.\-/]*)
    )""",
    re.VERBOSE,
)


@dataclass
class Token:
    kind: str  # num, str, op, paren, word, end
    text: str
    col: int  # 1-based column in the filter


@dataclass
class Comparison:
    field: str  # "name", "metrics.val_ppl", "tags.team", "aliases", ...
    op: str
    value: Any  # float | str | datetime


@dataclass
class BoolOp:
    op: str  # "and", "or", "not"
    args: list[Any]


Node = Comparison | BoolOp


def _error(text: str, col: int, message: str) -> ValidationError:
    return ValidationError(f"invalid search filter at column {col}: {message} (in {text!r})")


def tokenize(text: str) -> list[Token]:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("empty search filter: write e.g. \"metrics.val_ppl < 50 and tags.team = 'nlp'\"")
    if len(text) > MAX_FILTER:
        raise ValidationError(f"search filter is {len(text)} characters long; the limit is {MAX_FILTER}")
    tokens: list[Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _error(text, pos + 1, f"unexpected {text[pos]!r}")
        kind = m.lastgroup
        assert kind is not None
        tokens.append(Token(kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise _error(self.text, tok.col, f"expected 'and', 'or' or the end, found {tok.text!r}")
        return node

    def expr(self) -> Node:
        args = [self.and_expr()]
        while self.keyword("or"):
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else BoolOp("or", args)

    def and_expr(self) -> Node:
        args = [self.not_expr()]
        while self.keyword("and"):
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else BoolOp("and", args)

    def not_expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.text, self.peek().col, f"nested more than {MAX_DEPTH} deep")
        try:
            if self.keyword("not"):
                return BoolOp("not", [self.not_expr()])
            tok = self.peek()
            if tok.kind == "paren" and tok.text == "(":
                self.take()
                node = self.expr()
                close = self.take()
                if close.kind != "paren" or close.text != ")":
                    raise _error(self.text, close.col, f"expected ')', found {close.text or 'the end'!r}")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Comparison:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() in ("and", "or", "not", "like"):
            found = tok.text or "the end"
            raise _error(self.text, tok.col, f"expected a field ({', '.join(FIELDS)}), found {found!r}")
        field = self.field(tok)
        op_tok = self.take()
        op = op_tok.text.lower() if op_tok.kind in ("op", "word") else ""
        if op not in OPS:
            raise _error(self.text, op_tok.col, f"expected an operator ({' '.join(OPS)}) after {tok.text!r}, "
                                                f"found {op_tok.text or 'the end'!r}")
        op = "=" if op == "==" else op
        val_tok = self.take()
        if val_tok.kind not in ("num", "str"):
            raise _error(self.text, val_tok.col, f"expected a value ('text' or a number) after {op_tok.text!r}, "
                                                 f"found {val_tok.text or 'the end'!r}")
        return Comparison(field, op, self.value(field, op, val_tok))

    def field(self, tok: Token) -> str:
        name = tok.text
        low = name.lower()
        if low in COLUMNS or low == "aliases":
            return low
        for prefix in ("metrics.", "tags."):
            if low.startswith(prefix):
                key = name[len(prefix):]
                if not KEY_RE.fullmatch(key):
                    raise _error(self.text, tok.col + len(prefix), f"bad {prefix[:-1]} name {key!r}")
                return prefix + key
        raise _error(self.text, tok.col, f"unknown field {name!r}; use one of {', '.join(FIELDS)}")

    def value(self, field: str, op: str, tok: Token) -> Any:
        kind = _kind(field)
        if tok.kind == "str":
            text = re.sub(r"\\(.)", r"\1", tok.text[1:-1])
            if kind == "num":
                raise _error(self.text, tok.col, f"{field} is a number: write it without quotes")
            if kind == "time":
                return _parse_time(self.text, tok.col, text)
            return text
        if kind != "num":
            raise _error(self.text, tok.col, f"{field} is text: quote the value, e.g. '{tok.text}'")
        if op == "like":
            raise _error(self.text, tok.col, "like compares text: quote the pattern")
        value = float(tok.text)
        if value != value or value in (float("inf"), float("-inf")):
            raise _error(self.text, tok.col, f"{tok.text} is not a finite number")
        return value


def _kind(field: str) -> str:
    if field in COLUMNS:
        return COLUMNS[field][0]
    return "num" if field.startswith("metrics.") else "text"


def _parse_time(text: str, col: int, value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _error(text, col, f"{value!r} is not an ISO date or time, e.g. '2026-11-01' or '2026-11-01T12:00'") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def parse(text: str) -> Node:
    """Parse a filter. :raises ValidationError: one line naming the column."""
    return _Parser(text).parse()


# -- to SQL -------------------------------------------------------------------------------


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    return column.ilike(value)


def to_sql(node: Node, *, drives: bool = True) -> ColumnElement[bool]:
    """The filter as a boolean SQLAlchemy expression over ``ModelVersion`` joined to
    ``Model`` (values are bound parameters).

    A metric, tag or alias comparison that every match must satisfy (``drives``: the
    filter's top-level ``and``) is ``id IN (subquery)``: the database reads the matching
    versions from the (name, value, version_id) / (key, value, version_id) covering
    index, and sorts only those. Under ``or`` or ``not`` it is a correlated
    ``EXISTS``: the database walks versions newest first (the created_at index, which
    is the result order) and probes each by its (version_id, name) unique index,
    stopping at the limit; an ``IN`` there made SQLite materialize and merge whole
    subqueries (query plans in docs/benchmarks/registry.md)."""
    if isinstance(node, BoolOp):
        keep = drives and node.op == "and"
        parts = [to_sql(a, drives=keep) for a in node.args]
        if node.op == "not":
            return not_(parts[0])
        return and_(*parts) if node.op == "and" else or_(*parts)
    f, op, v = node.field, node.op, node.value
    if f in COLUMNS:
        column = COLUMNS[f][1]
        if f == "run_id":  # NULL run ids compare false, as a missing tag does
            return and_(column.is_not(None), _compare(column, op, v))
        if COLUMNS[f][0] == "num" and float(v).is_integer():
            # an integer column compared with a float parameter is cast to numeric by
            # PostgreSQL, which then cannot use the column's index (EXPLAIN showed it)
            v = int(v)
        return _compare(column, op, v)
    if f.startswith("metrics."):
        table, cond = VersionMetric, and_(VersionMetric.name == f[8:], _compare(VersionMetric.value, op, v))
    elif f.startswith("tags."):
        table, cond = Tag, and_(Tag.key == f[5:], _compare(Tag.value, op, v))
    elif f == "aliases":
        table, cond = Alias, _compare(Alias.name, op, v)
    else:  # pragma: no cover - the parser only makes the fields above
        return false()
    if drives:
        return ModelVersion.id.in_(select(table.version_id).where(cond))
    return exists().where(table.version_id == ModelVersion.id, cond)


def search(
    store: Store,
    query: str,
    *,
    limit: int = 100,
    include_deleted: bool = False,
) -> list[VersionInfo]:
    """Versions matching ``query``, a filter such as ``"metrics.val_ppl < 50 and
    tags.team = 'nlp'"`` (grammar and fields: :mod:`llmos_registry.search`), newest first, at
    most ``limit``. Deleted versions (tombstones) only with ``include_deleted``.

    :raises ValidationError: a syntax error, an unknown field or a wrongly typed value,
        in one line naming the column.
    """
    from llmos_registry.versions import version_infos

    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise ValidationError(f"invalid search limit {limit!r}: give 1 to 100000")
    where = to_sql(parse(query))
    if not include_deleted:
        where = and_(where, ModelVersion.status != "deleted")
    with store.engine.connect() as s:  # a Core connection (one read transaction): no ORM session to set up
        rows = s.execute(
            select(Model.name, ModelVersion.id, ModelVersion.number, ModelVersion.status, ModelVersion.lineage,
                   ModelVersion.created_at, ModelVersion.size_bytes, ModelVersion.description, ModelVersion.run_id)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(where)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
            .limit(limit)
        ).all()
        return version_infos(s, rows)
