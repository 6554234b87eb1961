"""data.chat: the chat template, the loss mask (checked by hand), packing, errors, and a
tiny chat fine-tune through `llmos run` whose registered tokenizer carries the template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmos.errors import ValidationError

WORDS = ["<unk>", "<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>",
         "Be", "brief.", "Hi", "Hello", "there", "Bye", "What", "is", "2+2?", "4"]
X = -100


@pytest.fixture(scope="module")
def tok():
    """A word-level tokenizer: one token per whitespace-separated word, so masks check by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", pad_token="<|pad|>", bos_token="<|bos|>",
                                   eos_token="<|eos|>")


def ids(*words: str) -> list[int]:
    return [WORDS.index(w) for w in words]


def test_mask_of_a_two_turn_conversation_checked_by_hand(tok):
    from llmos_models.chat import DEFAULT_CHAT_TEMPLATE, encode_chat, render

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello there"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Bye"}]
    assert render(tok, messages) == ("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello there<|eos|>"
                                     "<|user|>\nBye\n<|assistant|>\nBye<|eos|>")
    assert tok.chat_template is None  # the default template applies
    got_ids, got_labels = encode_chat(tok, messages)
    assert got_ids == ids("<|bos|>", "<|system|>", "Be", "brief.", "<|user|>", "Hi", "<|assistant|>", "Hello",
                          "there", "<|eos|>", "<|user|>", "Bye", "<|assistant|>", "Bye", "<|eos|>")
    # loss only on the assistant's words and the end-of-sequence closing each turn
    assert got_labels == [X, X, X, X, X, X, X, *ids("Hello", "there", "<|eos|>"), X, X, X, *ids("Bye", "<|eos|>")]
    # the same text as the whole conversation tokenized at once: the pieces cut at token boundaries
    assert got_ids[1:] == tok(render(tok, messages, DEFAULT_CHAT_TEMPLATE), add_special_tokens=False)["input_ids"]


def test_packing_keeps_the_mask_and_pads_with_no_loss(tok):
    from llmos_data.chat import pack
    from llmos_models.chat import encode_chat

    a = encode_chat(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    b = encode_chat(tok, [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}])
    assert a == (ids("<|bos|>", "<|user|>", "Hi", "<|assistant|>", "Hello", "<|eos|>"),
                 [X, X, X, X, *ids("Hello", "<|eos|>")])
    pad = WORDS.index("<|pad|>")
    blocks = pack([a, b], 4, pad)
    assert blocks.shape == (4, 2, 4) and str(blocks.dtype) == "int32"
    stream_ids = blocks[:, 0].reshape(-1).tolist()
    stream_labels = blocks[:, 1].reshape(-1).tolist()
    assert len(a[0]) + len(b[0]) == 14
    assert stream_ids == a[0] + b[0] + [pad] * 2
    assert stream_labels == a[1] + b[1] + [X] * 2  # the labels moved with their tokens; padding has none
    one = pack([a, b], 8, pad, packed=False)
    assert one.shape == (2, 2, 8)
    assert one[1, 0].tolist() == b[0] + [pad] * (8 - len(b[0])) and one[1, 1].tolist() == b[1] + [X] * (8 - len(b[1]))


def test_masked_loss_in_the_training_loop_counts_only_labels(tok):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmos_data.chat import pack
    from llmos_models.chat import encode_chat
    from llmos_models.evaluate import perplexity
    from llmos_train.loop import evaluate, lm_loss

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16))
    ex = encode_chat(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}])
    blocks = pack([ex, ex], 8, WORDS.index("<|pad|>"))
    x = torch.from_numpy(blocks.astype(np.int64))
    logits = model(input_ids=x[:, 0]).logits
    want = F.cross_entropy(logits[:, :-1].reshape(-1, len(WORDS)), x[:, 1, 1:].reshape(-1),
                           ignore_index=-100).detach()
    assert torch.allclose(lm_loss(model, x), want)
    n_labels = int((x[:, 1, 1:] != -100).sum())
    assert 0 < n_labels < x[:, 0, 1:].numel()
    assert evaluate(model, blocks, 2)["val_loss"] == pytest.approx(float(want), rel=1e-5)
    assert perplexity(model, blocks, 2)[0] == pytest.approx(float(want), rel=1e-5)


def test_prompt_response_pairs_and_located_errors(tok, tmp_path):
    from llmos_data.chat import ChatConfig, read_examples

    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt": "Hi", "response": "Hello", "system": "Be brief."}) + "\n\n"
                 + json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Bye"}]}) + "\n")
    ex = read_examples(ChatConfig(paths=[str(f)]))
    assert [m for _, m in ex] == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bye"}]]
    f.write_text(json.dumps({"prompt": "Hi", "response": "Hello"}) + "\n" + json.dumps({"prompt": "Hi"}) + "\n")
    with pytest.raises(ValidationError, match=rf"{f}:2: needs 'messages' .* 'prompt' and 'response'"):
        read_examples(ChatConfig(paths=[str(f)]))
    f.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
    with pytest.raises(ValidationError, match=rf"{f}:1: messages\[0\]: each message needs a role"):
        read_examples(ChatConfig(paths=[str(f)]))
    f.write_text("{not json\n")
    with pytest.raises(ValidationError, match=rf"{f}:1: not valid JSON"):
        read_examples(ChatConfig(paths=[str(f)]))
    with pytest.raises(Exception, match="below 1"):  # pydantic's, when the config is read
        ChatConfig(paths=[str(f)], validation_fraction=0.5, test_fraction=0.5)


CHAT = [
    ("What does len return?", "The number of items."),
    ("What does sorted return?", "A new sorted list."),
    ("How do I open a file?", "Call open with its path."),
    ("What closes a socket?", "Its close method."),
]


def test_chat_fine_tune_through_llmos_run_registers_the_template(tmp_path):
    """model.load (a registered base) → data.chat → optimizer.train → model.register, as a real process."""
    from llmos_data.tokenizer import save_tokenizer, train_bpe
    from llmos_models.build import build_model
    from llmos_models.chat import DEFAULT_CHAT_TEMPLATE
    from llmos_models.config import LlamaConfig
    from llmos_models.io import save_model

    home = tmp_path / "home"
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-data,llmos-models,llmos-train,llmos-registry",
               OMP_NUM_THREADS="1")
    env.pop("LLMOS_DATABASE_URL", None)
    text = [f"{q} {a}" for q, a in CHAT] * 20
    raw = train_bpe(iter(text), vocab_size=300, min_frequency=1, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"])
    tok = save_tokenizer(raw, tmp_path / "tok", bos="<|bos|>", eos="<|eos|>", pad="<|pad|>", model_max_length=64)
    model = build_model("llama", LlamaConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                        vocab_size=len(tok), max_positions=64)
    base = save_model(model, tok, tmp_path / "base")
    r = subprocess.run([sys.executable, "-m", "llmos", "model", "register", "chatbase", str(base)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"{q} ({i})"},
                                                        {"role": "assistant", "content": a}]})
                              for i, (q, a) in enumerate(CHAT * 10)))  # examples split by hash: all distinct
    p = tmp_path / "chat.toml"
    p.write_text(f"""
[pipeline]
name = "chatbase"
[[stages]]
use = "model.load"
[stages.config]
ref = "chatbase:1"
[[stages]]
use = "data.chat"
[stages.config]
paths = ["{data}"]
block_size = 32
validation_fraction = 0.25
[[stages]]
use = "optimizer.train"
[stages.config]
max_steps = 3
batch_size = 2
threads = 1
[[stages]]
use = "model.register"
""")
    r = subprocess.run([sys.executable, "-m", "llmos", "run", str(p)], env=env, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    os.environ["LLMOS_HOME"] = str(home)
    try:
        from llmos.registry import open_registry

        reg = open_registry()
        v = reg.resolve("chatbase:2")
        assert v.parents == ["chatbase:1"]
        cfg = json.loads((Path(reg.checkout("chatbase:2")) / "tokenizer_config.json").read_text())
        assert cfg["chat_template"] == DEFAULT_CHAT_TEMPLATE
        # every version carries a template: the base (saved without one) the default too
        base = json.loads((Path(reg.checkout("chatbase:1")) / "tokenizer_config.json").read_text())
        assert base["chat_template"] == DEFAULT_CHAT_TEMPLATE
        from llmos_models.io import load_ref

        _, loaded, _ = load_ref("chatbase:2")
        assert loaded.chat_template == DEFAULT_CHAT_TEMPLATE
        assert v.metrics["val_loss"] > 0
    finally:
        os.environ.pop("LLMOS_HOME", None)
