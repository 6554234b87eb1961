"""Chat prompts use the version's own chat template (tokenizer_config.json, as Hugging
Face stores it), else llmos_models.chat.DEFAULT_CHAT_TEMPLATE, encoded exactly as
training encodes conversations (llmos_models.chat.encode_chat)."""

from __future__ import annotations

import json
import shutil

import httpx

MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hello world"},
    {"role": "user", "content": "the quick brown fox"},
]


def _prompt_tokens(srv, model: str) -> int:
    r = httpx.post(srv.url + "/v1/chat/completions",
                   json={"model": model, "messages": MESSAGES, "max_tokens": 1}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["usage"]["prompt_tokens"]


def test_chat_uses_the_versions_template_else_the_default(start_server, tiny_models, tmp_path):
    from transformers import AutoTokenizer

    from llmos_models.chat import DEFAULT_CHAT_TEMPLATE, encode_chat, encode_prompt

    plain = tmp_path / "tiny"
    shutil.copytree(tiny_models[0], plain)
    tok = AutoTokenizer.from_pretrained(plain)
    assert tok.chat_template is None
    # no template: the default, token for token what training would feed before the reply
    expected = encode_prompt(tok, MESSAGES, DEFAULT_CHAT_TEMPLATE)
    trained, _ = encode_chat(tok, [*MESSAGES, {"role": "assistant", "content": "x"}], DEFAULT_CHAT_TEMPLATE)
    assert trained[: len(expected)] == expected
    srv = start_server(model=str(plain))
    assert _prompt_tokens(srv, "tiny") == len(expected)

    # a version carrying its own template (tokenizer_config.json chat_template) is prompted with it
    own = tmp_path / "own"
    shutil.copytree(tiny_models[0], own)
    template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }} {% endfor %}### assistant:"
    cfg = json.loads((own / "tokenizer_config.json").read_text())
    cfg["chat_template"] = template
    (own / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert AutoTokenizer.from_pretrained(own).chat_template == template
    srv2 = start_server(model=str(own))
    mine = encode_prompt(tok, MESSAGES, template)
    assert len(mine) != len(expected)
    assert _prompt_tokens(srv2, "own") == len(mine)
