"""The JSON automaton and its token masks, without a server: every document the automaton
completes parses, valid documents are accepted, schemas are enforced, and the trie walk
allows exactly the tokens whose text the automaton accepts (checked by brute force)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from llmos_serve import grammar

SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": ["number", "null"]},
    "tags": {"type": "array", "items": {"enum": ["a", "b", 12]}, "minItems": 1, "maxItems": 2},
    "sub": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}},
    "required": ["name", "n", "sub"]}


def _feed(g: grammar.Grammar, text: str) -> Any:
    st = g.start()
    for c in text:
        st = g.feed(st, c)
        if st is None:
            return None
    return st


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([True, False, None])
    if kind == 1:
        return rng.randint(-10**6, 10**6)
    if kind == 2:
        return round(rng.uniform(-1e3, 1e3), rng.randint(0, 6))
    if kind in (3, 4):
        return "".join(rng.choice('ab "\\/\n\té€\u0001') for _ in range(rng.randint(0, 6)))
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}{rng.choice('xé')}": _value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def test_valid_documents_are_accepted_and_complete():
    g = grammar.json_object()
    rng = random.Random(0)
    for _ in range(300):
        doc = {f"k{i}": _value(rng, 1) for i in range(rng.randint(0, 4))}
        for text in (json.dumps(doc), json.dumps(doc, separators=(",", ":")), json.dumps(doc, ensure_ascii=False)):
            st = _feed(g, text)
            assert st is not None and st[0] == (), text


def test_whatever_the_automaton_completes_parses():
    """Random character strings, fed one by one: every prefix the automaton calls complete
    is a JSON object, and it refuses what json.loads refuses once the object closed."""
    g = grammar.json_object()
    rng = random.Random(1)
    alphabet = '{}[]",:  0123456789-.eE+truefalsnl\\/u\n\tab'
    completed = 0
    for _ in range(3000):
        st, text = g.start(), ""
        for _ in range(60):
            c = rng.choice(alphabet)
            nxt = g.feed(st, c)
            if nxt is None:
                continue  # refused: try another character
            st, text = nxt, text + c
            if st[0] == ():
                assert isinstance(json.loads(text), dict), text
                completed += 1
                break
    assert completed > 100


@pytest.mark.parametrize("text,ok", [
    ('{"name": "a", "n": 3, "sub": {"ok": true}}', True),
    ('{"sub": {"ok": false}, "tags": ["a", 12], "n": -0, "name": "", "x": null}', True),
    ('{"name": "a", "n": 3, "x": 1.5e3, "sub": {"ok": true}}', True),
    ('{"name": "a", "n": 3}', False),  # required sub missing
    ('{"name": "a", "n": 3.5, "sub": {"ok": true}}', False),  # not an integer
    ('{"name": "a", "n": 3, "sub": {"ok": true}, "extra": 1}', False),  # undeclared
    ('{"name": "a", "name": "b", "n": 3, "sub": {"ok": true}}', False),  # twice
    ('{"name": "a", "n": 3, "tags": [], "sub": {"ok": true}}', False),  # minItems
    ('{"name": "a", "n": 3, "tags": ["a", "b", "a"], "sub": {"ok": true}}', False),  # maxItems
    ('{"name": "a", "n": 3, "tags": ["c"], "sub": {"ok": true}}', False),  # enum
    ('{"name": "a", "n": 3, "sub": {"ok": 1}}', False),
    ('{"name": 1, "n": 3, "sub": {"ok": true}}', False),
    ('{"name": "a",    "n": 3, "sub": {"ok": true}}', False),  # more than 2 whitespace characters in a row
])
def test_schema_is_enforced(text, ok):
    st = _feed(grammar.compile_schema(SCHEMA), text)
    assert (st is not None and st[0] == ()) is ok, text


@pytest.fixture(scope="module")
def tok(tiny_models: list[Path]):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models[0])


def test_masks_allow_exactly_the_tokens_the_automaton_accepts(tok):
    """Random walks through the allowed tokens: at each state, the cached trie walk's mask
    equals feeding every token's text to the automaton; the walk ends in a parsable object."""
    from llmos_serve import constrain

    table = constrain.token_table(tok)
    special = set(tok.all_special_ids)
    rng = random.Random(2)
    plain = set(table.plain.nonzero()[:, 0].tolist())
    for g in (grammar.json_object(), grammar.compile_schema(SCHEMA)):
        c = constrain.TokenConstraint(g, table)
        finished = 0
        for _ in range(6):
            p, doc = c.start(), ""
            for _ in range(150):
                banned, any_ok = c.banned(p.state)
                assert any_ok
                brute = set()
                for tid, text in enumerate(table.texts):
                    if tid in special or not text:
                        continue
                    st = p.state
                    for ch in text:
                        st = g.feed(st, ch)
                        if st is None:
                            break
                    if st is not None:
                        brute.add(tid)
                assert set((~banned).nonzero()[:, 0].tolist()) == brute
                structural = sorted(brute - plain)  # prefer quotes and punctuation: documents close
                pick = rng.choice(structural if structural and rng.random() < 0.7 else sorted(brute))
                doc += table.texts[pick]
                if p.accept(pick):
                    assert isinstance(json.loads(doc), dict), doc
                    finished += 1
                    break
            assert p.error is None
        assert finished >= 3
        assert c.hits > 0  # states repeat: the cache answers


def test_token_texts_keep_leading_spaces(tok):
    from llmos_serve import constrain

    texts = constrain.token_texts(tok)
    ids = tok(" the quick brown fox").input_ids
    assert "".join(texts[i] for i in ids) == " the quick brown fox"


def test_masks_are_kept_on_the_logits_device(tok):
    """A mask is moved once to the device of the logits it applies to, then reused."""
    import torch

    from llmos_serve import constrain

    c = constrain.TokenConstraint(grammar.json_object(), constrain.token_table(tok))
    state = c.grammar.start()
    cpu, _ = c.banned(state)
    meta, _ = c.banned(state, torch.device("meta"))
    assert cpu.device.type == "cpu" and meta.device.type == "meta"
    assert c.banned(state, torch.device("meta"))[0] is meta and (c.hits, c.misses) == (2, 1)


def test_unsupported_schemas_name_the_keyword():
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    for schema, keyword in (
        ({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}, "format"),
        ({"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}, "schema"),
        ({"type": "object", "properties": {"a": {"type": ["string", "string"]}}}, "type"),
        ({"type": "object", "properties": {"a": {"enum": []}}}, "enum"),
        ({"type": "object", "properties": {"a": {"type": "array", "minItems": 3, "maxItems": 2}}}, "maxItems"),
        (deep, "properties"),
    ):
        with pytest.raises(grammar.UnsupportedSchema) as err:
            grammar.compile_schema(schema)
        assert err.value.keyword == keyword, (schema, str(err.value))


def test_nesting_is_bounded():
    g = grammar.json_object()
    assert _feed(g, '{"a":' + "[" * (grammar.MAX_NESTING - 1)) is not None
    assert _feed(g, '{"a":' + "[" * grammar.MAX_NESTING) is None
