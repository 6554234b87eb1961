"""Token-level constrained decoding: a :mod:`~llmos_serve.grammar` over a tokenizer's vocabulary.

Per tokenizer, once (:func:`token_table`, cached): each token's text as it reads inside
a sequence, a character trie of the tokens, and the tokens made only of characters that
stand for themselves inside a JSON string. Per grammar and tokenizer
(:func:`constraint`, cached): which tokens each grammar state allows, computed by
walking the trie with the grammar (a branch ends at the first character the grammar
refuses) and kept in a bounded cache of masks by state, so a state seen before costs one
dictionary look-up. Inside a free string, the plain tokens are allowed without a walk;
only tokens with a quote, a backslash or a control character are walked.

:class:`JsonProcessor` is the engine's per-sequence logits processor
(:attr:`llmos_serve.engine.Sequence.processor`): ``apply(row)`` sets the logits of
refused tokens to ``-inf`` before sampling, ``accept(token)`` advances the grammar and
returns True once the top-level value is complete (the sequence then stops, ``finish_reason``
``stop``). Special tokens (end of text included) are never allowed: a constrained
sequence ends when its document closes, or at ``max_tokens`` (``length``).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

from llmos_serve.grammar import Grammar, plain_char

#: bytes of masks kept per (tokenizer, grammar)
MASK_CACHE_BYTES = 64 << 20
#: grammars kept per tokenizer
GRAMMARS_PER_TOKENIZER = 32

_tables: weakref.WeakKeyDictionary[Any, TokenTable] = weakref.WeakKeyDictionary()
_constraints: weakref.WeakKeyDictionary[Any, OrderedDict[str, TokenConstraint]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

_Trie = tuple[dict[str, Any], list[int]]  # (children by character, ids of tokens ending here)


def _trie() -> _Trie:
    return ({}, [])


class TokenTable:
    """A tokenizer's tokens as text, in tries (see the module's docstring)."""

    def __init__(self, tok: Any) -> None:
        import torch

        self.size = len(tok)
        self.texts = token_texts(tok)
        special = set(getattr(tok, "all_special_ids", []) or [])
        self.trie = _trie()
        self.special_trie = _trie()  # tokens with a character that is not plain inside a string
        plain = torch.zeros(self.size, dtype=torch.bool)
        for tid, text in enumerate(self.texts):
            if not text or tid in special:
                continue
            _insert(self.trie, text, tid)
            if all(plain_char(c) for c in text):
                plain[tid] = True
            else:
                _insert(self.special_trie, text, tid)
        self.plain = plain


def _insert(root: _Trie, text: str, tid: int) -> None:
    node = root
    for c in text:
        node = node[0].setdefault(c, _trie())
    node[1].append(tid)


def token_texts(tok: Any) -> list[str]:
    """Each token's text as it reads after another token (a leading space that a
    tokenizer drops at the start of a text is kept): decoded after an anchor token,
    the anchor's own text removed."""
    n = len(tok)
    kw = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    anchor_ids = tok.encode("a", add_special_tokens=False)
    single = tok.batch_decode([[t] for t in range(n)], **kw)
    if len(anchor_ids) != 1:
        return single
    a = anchor_ids[0]
    prefix = tok.decode([a], **kw)
    paired = tok.batch_decode([[a, t] for t in range(n)], **kw)
    return [p[len(prefix):] if p.startswith(prefix) else s for p, s in zip(paired, single, strict=True)]


def token_table(tok: Any) -> TokenTable:
    """The :class:`TokenTable` of ``tok`` (made once per tokenizer object)."""
    with _lock:
        table = _tables.get(tok)
    if table is None:
        table = TokenTable(tok)
        with _lock:
            table = _tables.setdefault(tok, table)
    return table


class TokenConstraint:
    """A grammar over one tokenizer: allowed tokens by grammar state (cached)."""

    def __init__(self, grammar: Grammar, table: TokenTable) -> None:
        self.grammar, self.table = grammar, table
        self._masks: OrderedDict[Any, tuple[Any, bool, dict[Any, Any]]] = OrderedDict()
        self._capacity = max(64, MASK_CACHE_BYTES // max(1, table.size))
        self.hits = self.misses = 0

    def start(self) -> JsonProcessor:
        """A new sequence's processor."""
        return JsonProcessor(self)

    def banned(self, state: Any, device: Any = None) -> tuple[Any, bool]:
        """``(mask of refused token ids, whether any token is allowed)`` in ``state``, the
        mask on ``device`` (default: the CPU; a copy per device is cached beside it)."""
        got = self._masks.get(state)
        if got is None:
            self.misses += 1
            got = self._masks[state] = self._compute(state)
            if len(self._masks) > self._capacity:
                self._masks.popitem(last=False)
        else:
            self.hits += 1
            self._masks.move_to_end(state)
        mask, any_ok, on = got
        if device is None or device == mask.device:
            return mask, any_ok
        moved = on.get(device)
        if moved is None:
            moved = on[device] = mask.to(device)
        return moved, any_ok

    def _compute(self, state: Any) -> tuple[Any, bool, dict[Any, Any]]:
        import torch

        allowed = self._walk(state)
        if self.grammar.in_plain_string(state):
            ok = self.table.plain.clone()
        else:
            ok = torch.zeros(self.table.size, dtype=torch.bool)
        if allowed:
            ok[torch.tensor(allowed, dtype=torch.long)] = True
        return ~ok, bool(ok.any()), {}

    def _walk(self, state: Any) -> list[int]:
        feed = self.grammar.feed
        root = self.table.special_trie if self.grammar.in_plain_string(state) else self.table.trie
        out: list[int] = []
        todo = [(root, state)]
        while todo:
            (children, ids), st = todo.pop()
            out.extend(ids)
            for c, child in children.items():
                nxt = feed(st, c)
                if nxt is not None:
                    todo.append((child, nxt))
        return out


def constraint(tok: Any, grammar: Grammar) -> TokenConstraint:
    """The :class:`TokenConstraint` of ``grammar`` over ``tok`` (cached by the grammar's text)."""
    table = token_table(tok)
    with _lock:
        per = _constraints.setdefault(tok, OrderedDict())
        found = per.get(grammar.key)
        if found is not None:
            per.move_to_end(grammar.key)
            return found
        made = per[grammar.key] = TokenConstraint(grammar, table)
        if len(per) > GRAMMARS_PER_TOKENIZER:
            per.popitem(last=False)
        return made


class JsonProcessor:
    """One sequence's position in its grammar (the engine's per-row logits processor)."""

    def __init__(self, c: TokenConstraint) -> None:
        self.c = c
        self.state = c.grammar.start()
        self.error: str | None = None

    def apply(self, row: Any) -> None:
        """Set the logits of tokens that cannot continue the document to ``-inf`` (in place)."""
        banned, any_ok = self.c.banned(self.state, row.device)
        if not any_ok:
            self.error = "no token of the vocabulary continues the JSON document here"
            return
        n = min(banned.shape[0], row.shape[-1])
        row[:n].masked_fill_(banned[:n].to(row.device), float("-inf"))  # the mask is cached on the CPU
        if row.shape[-1] > n:
            row[n:] = float("-inf")

    def accept(self, token: int) -> bool:
        """Advance past ``token``; True when the top-level value is complete."""
        texts = self.c.table.texts
        st = self.state
        for ch in texts[token] if 0 <= token < len(texts) else "\0":
            st = self.c.grammar.feed(st, ch)
            if st is None:
                self.error = f"token {token} does not continue the JSON document"
                return False
        self.state = st
        return not st[0]
