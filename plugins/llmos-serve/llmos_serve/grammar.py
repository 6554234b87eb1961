"""JSON as a character-level pushdown automaton, for constrained decoding (pure Python).

:func:`compile_schema` turns ``response_format`` into a :class:`Grammar`: ``json_object``
is any JSON object; ``json_schema`` is the documented subset below. A grammar's *state*
is a hashable tuple ``(frames, ws)``; :meth:`Grammar.feed` consumes one character and
returns the next state, or ``None`` when that character cannot continue a valid
document. ``frames == ()`` means the top-level value is complete.

Supported JSON Schema subset (anything else is an :class:`UnsupportedSchema` naming the
keyword): ``type`` (``object``, ``array``, ``string``, ``number``, ``integer``,
``boolean``, ``null``, or a list of distinct ones), ``properties``, ``required``,
``additionalProperties`` (a boolean; only declared properties are ever generated),
``items``, ``minItems``, ``maxItems``, ``enum``, ``const``, and the annotations
``title``, ``description``, ``default``, ``examples``, ``$schema``, ``$id``,
``$comment``. The root must be an object (as OpenAI requires).

Limits that keep a sampled document finite: at most :data:`MAX_WS` whitespace
characters in a row between tokens of the document, at most :data:`MAX_DIGITS` digits
in the integer or fraction part of a number and 3 in an exponent, objects and arrays
nested at most :data:`MAX_NESTING` deep (a schema: :data:`MAX_SCHEMA_DEPTH`).
"""

from __future__ import annotations

import json
from typing import Any

#: most whitespace characters in a row outside strings (``", "`` and ``"\n "`` fit; a model
#: that pads with spaces cannot spend its max_tokens on them)
MAX_WS = 2
#: most digits of a number's integer part, and of its fraction
MAX_DIGITS = 15
#: deepest nesting of schemas (objects and arrays inside each other) a json_schema may have
MAX_SCHEMA_DEPTH = 32
#: deepest nesting of objects and arrays in a generated document
MAX_NESTING = 64
_WS = frozenset(" \t\n\r")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = frozenset('"\\/bfnrtu')
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment"})
_KEYWORDS = {
    "object": frozenset({"type", "properties", "required", "additionalProperties"}),
    "array": frozenset({"type", "items", "minItems", "maxItems"}),
    "string": frozenset({"type"}),
    "number": frozenset({"type"}),
    "integer": frozenset({"type"}),
    "boolean": frozenset({"type"}),
    "null": frozenset({"type"}),
}
_TYPES = tuple(_KEYWORDS)
# node kinds (nodes are tuples; their index in Grammar.nodes is the id states carry)
ANY, OBJECT, ARRAY, STRING, NUMBER, INTEGER, LITERAL, UNION = range(8)


class UnsupportedSchema(ValueError):
    """A schema outside the supported subset; ``keyword`` and ``path`` say where."""

    def __init__(self, message: str, keyword: str, path: str) -> None:
        super().__init__(message)
        self.keyword, self.path = keyword, path


def plain_char(c: str) -> bool:
    """A character that stands for itself inside a JSON string."""
    return c != '"' and c != "\\" and c >= " "


class Grammar:
    """A compiled JSON grammar; ``nodes[0]`` is the root value."""

    def __init__(self) -> None:
        self.nodes: list[tuple[Any, ...]] = []
        self.key = ""  # canonical text of what was compiled (cache key)
        self.any_id = -1  # the ANY node (values of objects without properties)

    def add(self, node: tuple[Any, ...]) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def start(self) -> tuple[tuple[Any, ...], int]:
        return ((("V", 0),), 0)

    @staticmethod
    def in_plain_string(state: tuple[Any, ...]) -> bool:
        """True inside a free string outside an escape, where every plain character keeps the state."""
        frames = state[0]
        return bool(frames) and frames[-1] == ("S", 0)

    # -- one character ----------------------------------------------------------------

    def feed(self, state: tuple[Any, ...], c: str) -> tuple[Any, ...] | None:
        frames, ws = state
        if not frames:  # done: trailing whitespace only
            return ((), ws + 1) if c in _WS and ws < MAX_WS else None
        top = frames[-1]
        kind = top[0]
        if kind == "S":
            sub = top[1]
            if sub == 0:
                if c == '"':
                    return self._pop(frames, None, ws)
                if c == "\\":
                    return (frames[:-1] + (("S", -1),), 0)
                return state if c >= " " else None
            if sub == -1:
                if c not in _ESCAPES:
                    return None
                return (frames[:-1] + (("S", 4 if c == "u" else 0),), 0)
            if c not in _HEX:
                return None
            return (frames[:-1] + (("S", sub - 1),), 0)
        if c in _WS and kind != "L" and kind != "N":  # a number or a literal may end here: below
            return (frames, ws + 1) if ws < MAX_WS else None
        if kind == "V":
            return self._value(frames[:-1], top[1], c)
        if kind == "L":
            cands, pos = top[1], top[2]
            nxt = tuple(t for t in cands if len(t) > pos and t[pos] == c)
            if nxt:
                return (frames[:-1] + (("L", nxt, pos + 1),), 0)
            done = next((t for t in cands if len(t) == pos), None)
            if done is None:
                return None
            after = self._pop(frames, done, 0)
            return None if after is None else self.feed(after, c)
        if kind == "N":
            return self._number(frames, top, c)
        if kind == "O":
            return self._object(frames, top, c)
        return self._array(frames, top, c)

    def _pop(self, frames: tuple[Any, ...], result: Any, ws: int) -> tuple[Any, ...] | None:
        """The top frame is complete (``result``: a literal's text): hand over to its parent."""
        rest = frames[:-1]
        if not rest:
            return ((), 0)
        parent = rest[-1]
        if parent[0] == "O":
            _, nid, phase, done, key = parent
            if phase == 4:  # a key
                return (rest[:-1] + (("O", nid, 1, done, result),), 0)
            return (rest[:-1] + (("O", nid, 2, done | {key} if key is not None else done, None),), 0)
        _, nid, _phase, count = parent
        return (rest[:-1] + (("A", nid, 2, count + 1),), 0)

    def _value(self, below: tuple[Any, ...], nid: int, c: str) -> tuple[Any, ...] | None:
        """Start a value of node ``nid`` with ``c`` (on top of ``below``)."""
        node = self.nodes[nid]
        kind = node[0]
        if (c == "{" or c == "[") and len(below) >= MAX_NESTING:
            return None
        if kind == ANY:
            if c == "{":
                return (below + (("O", nid, 0, frozenset(), None),), 0)
            if c == "[":
                return (below + (("A", nid, 0, 0),), 0)
            if c == '"':
                return (below + (("S", 0),), 0)
            if c == "-" or c in _DIGITS:
                return self._number_start(below, False, c)
            for lit in ("true", "false", "null"):
                if c == lit[0]:
                    return (below + (("L", (lit,), 1),), 0)
            return None
        if kind == OBJECT:
            return (below + (("O", nid, 0, frozenset(), None),), 0) if c == "{" else None
        if kind == ARRAY:
            return (below + (("A", nid, 0, 0),), 0) if c == "[" else None
        if kind == STRING:
            return (below + (("S", 0),), 0) if c == '"' else None
        if kind == NUMBER or kind == INTEGER:
            return self._number_start(below, kind == INTEGER, c) if (c == "-" or c in _DIGITS) else None
        if kind == LITERAL:
            cands = tuple(t for t in node[1] if t[0] == c)
            return (below + (("L", cands, 1),), 0) if cands else None
        for alt in node[1]:  # UNION: alternatives start with distinct characters
            got = self._value(below, alt, c)
            if got is not None:
                return got
        return None

    @staticmethod
    def _number_start(below: tuple[Any, ...], integer: bool, c: str) -> tuple[Any, ...]:
        if c == "-":
            return (below + (("N", integer, "sign", 0),), 0)
        return (below + (("N", integer, "zero" if c == "0" else "int", 1),), 0)

    def _number(self, frames: tuple[Any, ...], top: tuple[Any, ...], c: str) -> tuple[Any, ...] | None:
        _, integer, phase, n = top
        below = frames[:-1]
        digit = c in _DIGITS
        nxt: tuple[str, int] | None = None
        if phase == "sign":
            nxt = ("zero" if c == "0" else "int", 1) if digit else None
        elif phase in ("zero", "int"):
            if digit and phase == "int" and n < MAX_DIGITS:
                nxt = ("int", n + 1)
            elif c == "." and not integer:
                nxt = ("dot", 0)
            elif c in "eE" and not integer:
                nxt = ("e", 0)
        elif phase == "dot":
            nxt = ("frac", 1) if digit else None
        elif phase == "frac":
            if digit and n < MAX_DIGITS:
                nxt = ("frac", n + 1)
            elif c in "eE":
                nxt = ("e", 0)
        elif phase == "e":
            if c in "+-":
                nxt = ("esign", 0)
            elif digit:
                nxt = ("exp", 1)
        elif phase == "esign":
            nxt = ("exp", 1) if digit else None
        elif phase == "exp" and digit and n < 3:
            nxt = ("exp", n + 1)
        if nxt is not None:
            return (below + (("N", integer, nxt[0], nxt[1]),), 0)
        if phase in ("zero", "int", "frac", "exp") and not digit:
            after = self._pop(frames, None, 0)
            return None if after is None else self.feed(after, c)
        return None

    def _object(self, frames: tuple[Any, ...], top: tuple[Any, ...], c: str) -> tuple[Any, ...] | None:
        _, nid, phase, done, key = top
        node = self.nodes[nid]
        below = frames[:-1]
        props = node[1] if node[0] == OBJECT else None  # None: any keys; else JSON text of a key -> node
        if phase in (0, 3) and c == '"':
            if props is None:
                return (below + (("O", nid, 4, done, None), ("S", 0)), 0)
            left = tuple(k for k in props if k not in done)
            return (below + (("O", nid, 4, done, None), ("L", left, 1)), 0) if left else None
        if c == "}" and phase in (0, 2):
            if props is not None and not node[2] <= done:
                return None  # a required property is missing
            return self._pop(frames, None, 0)
        if phase == 1 and c == ":":
            child = props[key] if props is not None else self.any_id
            return (below + (("O", nid, 5, done, key), ("V", child)), 0)
        if phase == 2 and c == ",":
            if props is not None and all(k in done for k in props):
                return None  # nothing left to add
            return (below + (("O", nid, 3, done, None),), 0)
        return None

    def _array(self, frames: tuple[Any, ...], top: tuple[Any, ...], c: str) -> tuple[Any, ...] | None:
        _, nid, phase, count = top
        node = self.nodes[nid]
        below = frames[:-1]
        item, lo, hi = (node[1], node[2], node[3]) if node[0] == ARRAY else (nid, 0, None)
        if c == "]" and phase in (0, 2):
            return self._pop(frames, None, 0) if count >= lo else None
        if phase == 2:
            if c == "," and (hi is None or count < hi):
                return (below + (("A", nid, 3, count),), 0)
            return None
        if phase == 0 and hi == 0:
            return None
        got = self._value(below + (("A", nid, 5, count),), item, c)
        return got


def nid_any(g: Grammar) -> int:
    """The id of the grammar's ANY node (made on first use)."""
    if g.any_id < 0:
        g.any_id = g.add((ANY,))
    return g.any_id


# -- schemas -> grammars ------------------------------------------------------------------


def json_object() -> Grammar:
    """Any JSON object (``response_format: {"type": "json_object"}``)."""
    g = Grammar()
    g.key = "json_object"
    g.add((OBJECT, None, frozenset()))
    g.any_id = g.add((ANY,))
    return g


def compile_schema(schema: Any) -> Grammar:
    """The grammar of ``schema`` (a JSON Schema in the supported subset).

    :raises UnsupportedSchema: a keyword or value outside the subset, naming it.
    """
    if not isinstance(schema, dict):
        raise UnsupportedSchema("the schema must be a JSON object", "schema", "")
    g = Grammar()
    g.key = json.dumps(schema, sort_keys=True)
    g.add((LITERAL, ("null",)))  # id 0: replaced by the root below
    root = _compile(g, schema, "")
    if g.nodes[root][0] != OBJECT:
        raise UnsupportedSchema("the root schema's 'type' must be 'object' (a JSON object at the top, as OpenAI "
                                "requires)", "type", "")
    g.nodes[0] = g.nodes[root]
    nid_any(g)  # values of objects without properties
    return g


def _where(path: str) -> str:
    return f" at {path}" if path else " at the root"


def _compile(g: Grammar, s: Any, path: str) -> int:
    if path.count(".") >= 2 * MAX_SCHEMA_DEPTH:
        raise UnsupportedSchema(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels{_where(path[:60] + '...')}",
                                "properties", path)
    if s is True or s == {}:
        return nid_any(g)
    if not isinstance(s, dict):
        raise UnsupportedSchema(f"a schema must be an object{_where(path)}", "schema", path)
    if "enum" in s or "const" in s:
        word = "enum" if "enum" in s else "const"
        values = s[word] if word == "enum" else [s["const"]]
        if not isinstance(values, list) or not values:
            raise UnsupportedSchema(f"{word} must be a non-empty list{_where(path)}", word, path)
        extra = set(s) - _ANNOTATIONS - {word, "type"}
        if extra:
            bad = sorted(extra)[0]
            raise UnsupportedSchema(f"the keyword {bad!r}{_where(path)} is not supported beside {word}", bad, path)
        texts = tuple(dict.fromkeys(json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in values))
        return g.add((LITERAL, texts))
    t = s.get("type")
    if t is None:
        bad = next((k for k in s if k not in _ANNOTATIONS), None)
        if bad is None:
            return nid_any(g)
        raise UnsupportedSchema(f"the keyword {bad!r}{_where(path)} is not supported (give a 'type')", bad, path)
    types = t if isinstance(t, list) else [t]
    if not types or any(not isinstance(x, str) or x not in _TYPES for x in types) or len(set(types)) != len(types):
        raise UnsupportedSchema(f"type{_where(path)} must be one of {', '.join(_TYPES)} or a list of distinct "
                                f"ones, got {t!r}", "type", path)
    allowed = set().union(*(_KEYWORDS[x] for x in types)) | _ANNOTATIONS
    for k in s:
        if k not in allowed:
            raise UnsupportedSchema(f"the keyword {k!r}{_where(path)} is not supported (supported: "
                                    f"{', '.join(sorted(allowed - _ANNOTATIONS))})", k, path)
    if "number" in types and "integer" in types:
        types = [x for x in types if x != "integer"]
    alts = [_one(g, s, x, path) for x in types]
    return alts[0] if len(alts) == 1 else g.add((UNION, tuple(alts)))


def _one(g: Grammar, s: dict[str, Any], t: str, path: str) -> int:
    if t == "string":
        return g.add((STRING,))
    if t == "number":
        return g.add((NUMBER,))
    if t == "integer":
        return g.add((INTEGER,))
    if t == "boolean":
        return g.add((LITERAL, ("true", "false")))
    if t == "null":
        return g.add((LITERAL, ("null",)))
    if t == "array":
        items = s.get("items", True)
        lo, hi = s.get("minItems", 0), s.get("maxItems")
        for word, v in (("minItems", lo), ("maxItems", hi)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise UnsupportedSchema(f"{word}{_where(path)} must be a non-negative integer", word, path)
        if hi is not None and hi < lo:
            raise UnsupportedSchema(f"maxItems{_where(path)} is below minItems", "maxItems", path)
        item = _compile(g, items, f"{path}.items" if path else "items")
        return g.add((ARRAY, item, lo, hi))
    props = s.get("properties")
    extra = s.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise UnsupportedSchema(f"additionalProperties{_where(path)} must be true or false (a schema there is "
                                f"not supported)", "additionalProperties", path)
    required = s.get("required", [])
    if not isinstance(required, list) or any(not isinstance(r, str) for r in required):
        raise UnsupportedSchema(f"required{_where(path)} must be a list of property names", "required", path)
    if props is None:
        if required:
            raise UnsupportedSchema(f"required{_where(path)} names properties that are not declared "
                                    f"(add them to properties)", "required", path)
        return g.add((OBJECT, None, frozenset())) if extra else g.add((OBJECT, {}, frozenset()))
    if not isinstance(props, dict):
        raise UnsupportedSchema(f"properties{_where(path)} must be an object", "properties", path)
    missing = [r for r in required if r not in props]
    if missing:
        raise UnsupportedSchema(f"required{_where(path)} names {missing[0]!r}, which is not in properties",
                                "required", path)
    compiled = {_key(name): _compile(g, sub, f"{path}.properties.{name}" if path else f"properties.{name}")
                for name, sub in props.items()}
    return g.add((OBJECT, compiled, frozenset(_key(r) for r in required)))


def _key(name: str) -> str:
    """A property name as the document spells it (OBJECT nodes key properties so)."""
    return json.dumps(name, ensure_ascii=False)
